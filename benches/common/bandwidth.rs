//! The buffer-copy bandwidth every GPU benchmark reports its figures against, one definition for
//! all of them (benches/engine.rs, benches/matching.rs).

use std::time::Instant;

use anyhow::{Result, anyhow};

/// Bytes copied per second by `copy_buffer_to_buffer` on the device (each byte is read once and
/// written once): the bandwidth ceiling the matching kernels are judged against.
pub fn copy_bandwidth(
    device: &wgpu::Device,
    queue: &wgpu::Queue,
    cpu_adapter: bool,
) -> Result<f64> {
    let size: u64 = if cpu_adapter { 64 << 20 } else { 1 << 30 };
    let size = size.min(device.limits().max_buffer_size);
    let mk = |label| {
        device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size,
            usage: wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        })
    };
    let (a, b) = (mk("copy a"), mk("copy b"));
    let copies = 8;
    let submit = |n: usize| -> Result<f64> {
        let mut enc = device.create_command_encoder(&Default::default());
        for i in 0..n {
            let (s, d) = if i % 2 == 0 { (&a, &b) } else { (&b, &a) };
            enc.copy_buffer_to_buffer(s, 0, d, 0, size);
        }
        let t = Instant::now();
        queue.submit([enc.finish()]);
        device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| anyhow!("poll: {e}"))?;
        Ok(t.elapsed().as_secs_f64())
    };
    submit(1)?;
    let t = submit(copies)?;
    Ok((size as f64 * copies as f64) / t)
}
