//! Reading GPU buffers back to the CPU: the one place that copies into staging buffers, maps them,
//! waits for the device and copies the bytes out. Every reader in the engine and the station goes
//! through here, so a lost device or a failed map reads the same everywhere and no caller writes
//! its own `map_async` channel.

use std::sync::mpsc;

#[derive(Debug, thiserror::Error)]
pub enum ReadbackError {
    /// Waiting for the device failed (typically: the device was lost).
    #[error("waiting for the GPU: {0}")]
    Poll(#[source] wgpu::PollError),
    #[error("mapping a readback buffer: {0}")]
    Map(#[source] wgpu::BufferAsyncError),
    #[error("reading a mapped buffer: {0}")]
    Range(#[source] wgpu::MapRangeError),
    /// The device went away before the map completed.
    #[error("the GPU device was lost during a readback")]
    Lost,
}

/// A buffer the CPU can map, `size` bytes, filled by a copy.
pub fn staging(device: &wgpu::Device, label: &str, size: u64) -> wgpu::Buffer {
    device.create_buffer(&wgpu::BufferDescriptor {
        label: Some(label),
        size,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    })
}

/// Maps every buffer of `bufs` (MAP_READ, filled by work already submitted), waits for the device
/// once, and returns each buffer's bytes in order.
pub fn map_all(
    device: &wgpu::Device,
    bufs: &[&wgpu::Buffer],
) -> Result<Vec<Vec<u8>>, ReadbackError> {
    let (tx, rx) = mpsc::channel();
    for (i, b) in bufs.iter().enumerate() {
        let tx = tx.clone();
        b.slice(..).map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send((i, r));
        });
    }
    drop(tx);
    device
        .poll(wgpu::PollType::wait_indefinitely())
        .map_err(ReadbackError::Poll)?;
    let mut mapped = 0;
    for (_, r) in rx.iter() {
        r.map_err(ReadbackError::Map)?;
        mapped += 1;
    }
    if mapped != bufs.len() {
        return Err(ReadbackError::Lost);
    }
    bufs.iter()
        .map(|b| {
            let v = b
                .slice(..)
                .get_mapped_range()
                .map(|m| m.to_vec())
                .map_err(ReadbackError::Range);
            b.unmap();
            v
        })
        .collect()
}

/// Copies the first `size` bytes of each source into its own staging buffer in one submission and
/// reads them all back with one wait.
pub fn read_all(
    device: &wgpu::Device,
    queue: &wgpu::Queue,
    sources: &[(&wgpu::Buffer, u64)],
) -> Result<Vec<Vec<u8>>, ReadbackError> {
    let mut enc = device.create_command_encoder(&Default::default());
    let stages: Vec<wgpu::Buffer> = sources
        .iter()
        .map(|&(src, size)| {
            let s = staging(device, "readback", size);
            enc.copy_buffer_to_buffer(src, 0, &s, 0, size);
            s
        })
        .collect();
    queue.submit([enc.finish()]);
    map_all(device, &stages.iter().collect::<Vec<_>>())
}

/// [`read_all`] for one buffer.
pub fn read(
    device: &wgpu::Device,
    queue: &wgpu::Queue,
    src: &wgpu::Buffer,
    size: u64,
) -> Result<Vec<u8>, ReadbackError> {
    read_all(device, queue, &[(src, size)])?
        .pop()
        .ok_or(ReadbackError::Lost)
}

/// Records, into `enc`, copies of every source (`(buffer, bytes)`, each a multiple of 4) one after
/// the other into one new staging buffer, so a caller with several result buffers waits for the
/// device once and maps once. Returns the staging buffer (read it with [`map_all`] after the
/// submission) and each source's byte range in it.
pub fn record_gather(
    device: &wgpu::Device,
    enc: &mut wgpu::CommandEncoder,
    sources: &[(&wgpu::Buffer, u64)],
) -> (wgpu::Buffer, Vec<std::ops::Range<usize>>) {
    let total: u64 = sources.iter().map(|&(_, n)| n).sum();
    let stage = staging(device, "gathered readback", total.max(4));
    let mut ranges = Vec::with_capacity(sources.len());
    let mut at = 0u64;
    for &(src, n) in sources {
        if n > 0 {
            enc.copy_buffer_to_buffer(src, 0, &stage, at, n);
        }
        ranges.push(at as usize..(at + n) as usize);
        at += n;
    }
    (stage, ranges)
}
