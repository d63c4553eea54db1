//! Host side of `lighting.wgsl` (beside this file): per-lane pooled buffers and the batched dispatch.

use bytemuck::{Pod, Zeroable};
use engine::gpu::readback;
use wgpu::util::DeviceExt;

use super::{FrameLayout, Gpu, GpuError, LightingStats, NormaliseParams, tile_grid};

const SHADER: &str = include_str!("lighting.wgsl");
const ENTRIES: [&str; 4] = ["tile_hist", "stats_main", "tile_lut", "apply"];

#[derive(Debug, thiserror::Error)]
pub enum NormaliseError {
    #[error("frame has {got} bytes, a {w}x{h} I420 frame needs {want}")]
    ShortFrame {
        got: usize,
        want: usize,
        w: u32,
        h: u32,
    },
    #[error("unsupported frame size {w}x{h}: width and height must be even and at least 16")]
    BadSize { w: u32, h: u32 },
    #[error(
        "frame layout {w} pixels wide has rows narrower than that: strides y {y}, u {u}, v {v}"
    )]
    BadStride { w: u32, y: u32, u: u32, v: u32 },
    #[error("normaliser for lane index {0} does not exist")]
    NoLane(usize),
    #[error(transparent)]
    Gpu(#[from] GpuError),
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
struct Params {
    width: u32,
    height: u32,
    y_off: u32,
    y_stride: u32,
    u_off: u32,
    u_stride: u32,
    v_off: u32,
    v_stride: u32,
    tiles_x: u32,
    tiles_y: u32,
    tile_w: u32,
    tile_h: u32,
    limited_range: u32,
    target_mean: f32,
    gamma_min: f32,
    gamma_max: f32,
    clip_limit: f32,
    strength: f32,
    dark_q: f32,
    bright_q: f32,
    min_range: f32,
    _pad: [u32; 3],
}

/// The compiled kernel, shared by every lane.
pub struct LightingKernel {
    layout: wgpu::BindGroupLayout,
    pipelines: [wgpu::ComputePipeline; ENTRIES.len()],
}

impl LightingKernel {
    pub fn new(gpu: &Gpu) -> Self {
        use wgpu::BufferBindingType::{Storage, Uniform};
        let (read, write) = (Storage { read_only: true }, Storage { read_only: false });
        let layout = engine::gpu::shader::buffer_layout(
            &gpu.device,
            "lighting",
            &[
                (0, Uniform),
                (1, read),
                (2, write),
                (3, write),
                (4, write),
                (5, write),
            ],
        );
        let pipelines = engine::gpu::shader::compute_pipelines(
            &gpu.device,
            "lighting.wgsl",
            SHADER,
            &layout,
            ENTRIES,
        );
        Self { layout, pipelines }
    }
}

/// What one frame produced: its statistics and, where the adapter has timestamps, the GPU time.
#[derive(Debug, Clone, Copy)]
pub struct FrameResult {
    pub stats: LightingStats,
    pub gpu_ns: Option<u64>,
}

/// One lane's buffers, allocated once for the lane's frame size and reused for every frame.
pub struct LaneNormaliser {
    layout: FrameLayout,
    tiles: (u32, u32),
    src: wgpu::Buffer,
    stats: wgpu::Buffer,
    /// The normalised frame, packed RGBA8, one u32 per pixel; later stages bind it directly.
    pub output: wgpu::Buffer,
    readback: wgpu::Buffer,
    bind_group: wgpu::BindGroup,
    timer: Option<Timer>,
    period_ns: f32,
}

struct Timer {
    set: wgpu::QuerySet,
    resolve: wgpu::Buffer,
    readback: wgpu::Buffer,
}

const STATS_SIZE: u64 = std::mem::size_of::<LightingStats>() as u64;

impl LaneNormaliser {
    pub fn new(
        gpu: &Gpu,
        kernel: &LightingKernel,
        layout: FrameLayout,
        params: &NormaliseParams,
    ) -> Result<Self, NormaliseError> {
        if layout.width < 16
            || layout.height < 16
            || layout.width % 2 == 1
            || layout.height % 2 == 1
        {
            return Err(NormaliseError::BadSize {
                w: layout.width,
                h: layout.height,
            });
        }
        let d = &gpu.device;
        let (tx, ty, tile_w, tile_h) = tile_grid(layout.width, layout.height, params);
        let p = Params {
            width: layout.width,
            height: layout.height,
            y_off: layout.y_off,
            y_stride: layout.y_stride,
            u_off: layout.u_off,
            u_stride: layout.u_stride,
            v_off: layout.v_off,
            v_stride: layout.v_stride,
            tiles_x: tx,
            tiles_y: ty,
            tile_w,
            tile_h,
            limited_range: layout.limited_range as u32,
            target_mean: params.target_mean,
            gamma_min: params.gamma_min,
            gamma_max: params.gamma_max,
            clip_limit: params.clip_limit,
            strength: params.strength,
            dark_q: params.dark_q,
            bright_q: params.bright_q,
            min_range: params.min_range,
            _pad: [0; 3],
        };
        let uniform = d.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("lighting params"),
            contents: bytemuck::bytes_of(&p),
            usage: wgpu::BufferUsages::UNIFORM,
        });
        let buf = |label, size: u64, usage| {
            d.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size,
                usage,
                mapped_at_creation: false,
            })
        };
        use wgpu::BufferUsages as U;
        let tiles = (tx * ty) as u64;
        let src = buf(
            "frame",
            (layout.size() as u64).div_ceil(4) * 4,
            U::STORAGE | U::COPY_DST,
        );
        let tile_hists = buf("tile hists", tiles * 256 * 4, U::STORAGE);
        let stats = buf("stats", STATS_SIZE, U::STORAGE | U::COPY_SRC);
        let luts = buf("luts", tiles * 256 * 4, U::STORAGE);
        let output = buf(
            "normalised",
            layout.width as u64 * layout.height as u64 * 4,
            U::STORAGE | U::COPY_SRC,
        );
        let readback = buf("stats readback", STATS_SIZE, U::MAP_READ | U::COPY_DST);
        let bind_group = d.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("lighting"),
            layout: &kernel.layout,
            entries: &[
                wgpu::BindGroupEntry {
                    binding: 0,
                    resource: uniform.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 1,
                    resource: src.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 2,
                    resource: tile_hists.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 3,
                    resource: stats.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 4,
                    resource: luts.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 5,
                    resource: output.as_entire_binding(),
                },
            ],
        });
        let timer = gpu.timestamps.then(|| Timer {
            set: d.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("lighting time"),
                ty: wgpu::QueryType::Timestamp,
                count: 2,
            }),
            resolve: buf("time resolve", 16, U::QUERY_RESOLVE | U::COPY_SRC),
            readback: buf("time readback", 16, U::MAP_READ | U::COPY_DST),
        });
        Ok(Self {
            layout,
            tiles: (tx, ty),
            src,
            stats,
            output,
            readback,
            bind_group,
            timer,
            period_ns: gpu.queue.get_timestamp_period(),
        })
    }

    pub fn layout(&self) -> &FrameLayout {
        &self.layout
    }

    /// Uploads the frame and records the four dispatches into `enc`.
    fn encode(
        &self,
        gpu: &Gpu,
        kernel: &LightingKernel,
        enc: &mut wgpu::CommandEncoder,
        frame: &[u8],
    ) -> Result<(), NormaliseError> {
        let want = self.layout.size();
        if frame.len() < want {
            return Err(NormaliseError::ShortFrame {
                got: frame.len(),
                want,
                w: self.layout.width,
                h: self.layout.height,
            });
        }
        // Buffer writes must be 4-byte multiples; the odd tail goes in padded.
        let whole = want / 4 * 4;
        gpu.queue.write_buffer(&self.src, 0, &frame[..whole]);
        if whole < want {
            let mut tail = [0u8; 4];
            tail[..want - whole].copy_from_slice(&frame[whole..want]);
            gpu.queue.write_buffer(&self.src, whole as u64, &tail);
        }
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("lighting"),
                timestamp_writes: self
                    .timer
                    .as_ref()
                    .map(|t| wgpu::ComputePassTimestampWrites {
                        query_set: &t.set,
                        beginning_of_pass_write_index: Some(0),
                        end_of_pass_write_index: Some(1),
                    }),
            });
            pass.set_bind_group(0, &self.bind_group, &[]);
            let tiles = self.tiles.0 * self.tiles.1;
            let groups = [
                (tiles, 1),
                (1, 1),
                (tiles, 1),
                (
                    self.layout.width.div_ceil(16),
                    self.layout.height.div_ceil(16),
                ),
            ];
            for (pipeline, (x, y)) in kernel.pipelines.iter().zip(groups) {
                pass.set_pipeline(pipeline);
                pass.dispatch_workgroups(x, y, 1);
            }
        }
        enc.copy_buffer_to_buffer(&self.stats, 0, &self.readback, 0, STATS_SIZE);
        if let Some(t) = &self.timer {
            enc.resolve_query_set(&t.set, 0..2, &t.resolve, 0);
            enc.copy_buffer_to_buffer(&t.resolve, 0, &t.readback, 0, 16);
        }
        Ok(())
    }

    /// The buffers [`LaneNormaliser::result`] reads: statistics, then the timer when there is one.
    fn readbacks(&self) -> Vec<&wgpu::Buffer> {
        let mut v = vec![&self.readback];
        if let Some(t) = &self.timer {
            v.push(&t.readback);
        }
        v
    }

    /// The frame's result from the bytes of [`LaneNormaliser::readbacks`].
    fn result(&self, bytes: &[Vec<u8>]) -> Result<FrameResult, NormaliseError> {
        let short = || GpuError::Other("statistics readback is short".into());
        let stats_bytes = bytes
            .first()
            .and_then(|b| b.get(..STATS_SIZE as usize))
            .ok_or_else(short)?;
        let stats = bytemuck::pod_read_unaligned::<LightingStats>(stats_bytes);
        let gpu_ns = match (&self.timer, bytes.get(1).and_then(|b| b.get(..16))) {
            (Some(_), Some(b)) => {
                let ts: [u64; 2] = bytemuck::pod_read_unaligned(b);
                Some((ts[1].saturating_sub(ts[0]) as f64 * self.period_ns as f64) as u64)
            }
            _ => None,
        };
        Ok(FrameResult { stats, gpu_ns })
    }

    /// Copies the normalised frame back to the CPU (tests, diagnostics, the CPU backend).
    pub fn read_output(&self, gpu: &Gpu) -> Result<Vec<u32>, NormaliseError> {
        read_outputs(gpu, &[self])?
            .pop()
            .ok_or_else(|| GpuError::Lost.into())
    }
}

/// The normalised frames of several lanes, copied back in one submission with one wait.
pub fn read_outputs(gpu: &Gpu, lanes: &[&LaneNormaliser]) -> Result<Vec<Vec<u32>>, NormaliseError> {
    let sources: Vec<(&wgpu::Buffer, u64)> =
        lanes.iter().map(|l| (&l.output, l.output.size())).collect();
    let bytes =
        readback::read_all(&gpu.device, &gpu.queue, &sources).map_err(|e| gpu_err(gpu, e))?;
    Ok(bytes
        .iter()
        .map(|b| bytemuck::pod_collect_to_vec(b))
        .collect())
}

/// A readback failure, as the station's GPU error: `Lost` when the device is gone.
fn gpu_err(gpu: &Gpu, e: readback::ReadbackError) -> NormaliseError {
    if gpu.is_lost() {
        GpuError::Lost.into()
    } else {
        GpuError::Other(e.to_string()).into()
    }
}

/// Normalises one frame per listed lane with a single command encoder and a single submit, so that
/// lanes share the GPU instead of taking turns round trips. Results come back in the order given.
pub fn normalise_batch(
    gpu: &Gpu,
    kernel: &LightingKernel,
    work: &[(&LaneNormaliser, &[u8])],
) -> Result<Vec<FrameResult>, NormaliseError> {
    if gpu.is_lost() {
        return Err(GpuError::Lost.into());
    }
    let mut enc = gpu
        .device
        .create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("normalise batch"),
        });
    for (lane, frame) in work {
        lane.encode(gpu, kernel, &mut enc, frame)?;
    }
    gpu.queue.submit([enc.finish()]);
    // Every lane's statistics (and timers) mapped with one wait.
    let per_lane: Vec<Vec<&wgpu::Buffer>> = work.iter().map(|(lane, _)| lane.readbacks()).collect();
    let bufs: Vec<&wgpu::Buffer> = per_lane.iter().flatten().copied().collect();
    let mut bytes = readback::map_all(&gpu.device, &bufs)
        .map_err(|e| gpu_err(gpu, e))?
        .into_iter();
    work.iter()
        .zip(&per_lane)
        .map(|((lane, _), bufs)| {
            let mine: Vec<Vec<u8>> = bytes.by_ref().take(bufs.len()).collect();
            lane.result(&mine)
        })
        .collect()
}
