//! What capture hands on: one decoded frame of one lane and where its planes sit.

use std::time::Instant;

use gstreamer as gst;

/// One decoded camera frame. It holds GStreamer's buffer (from the decoder's own pool) rather than a
/// copy, so capture allocates nothing per frame; the GPU stage maps it when uploading.
pub struct Frame {
    /// Index of the lane in the station config.
    pub lane: usize,
    /// Frame number within the lane since (re)start.
    pub seq: u64,
    pub pts: Option<gst::ClockTime>,
    /// Monotonic time at which the appsink handed the frame over.
    pub captured: Instant,
    pub layout: FrameLayout,
    pub buffer: gst::Buffer,
}

/// Where the planes of an I420 frame sit in its buffer (GStreamer's layout: strides rounded up to 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameLayout {
    pub width: u32,
    pub height: u32,
    pub y_off: u32,
    pub y_stride: u32,
    pub u_off: u32,
    pub u_stride: u32,
    pub v_off: u32,
    pub v_stride: u32,
    /// Luma in 16..235 (decoded video) rather than 0..255.
    pub limited_range: bool,
}

impl FrameLayout {
    /// GStreamer's default I420 layout for a frame of this size (even width and height).
    pub fn i420(width: u32, height: u32) -> Self {
        let up4 = |v: u32| v.div_ceil(4) * 4;
        let y_stride = up4(width);
        let c_stride = up4(width.div_ceil(2));
        let y_size = y_stride * height;
        let c_size = c_stride * height.div_ceil(2);
        Self {
            width,
            height,
            y_off: 0,
            y_stride,
            u_off: y_size,
            u_stride: c_stride,
            v_off: y_size + c_size,
            v_stride: c_stride,
            limited_range: true,
        }
    }

    /// Bytes a frame buffer must hold.
    pub fn size(&self) -> usize {
        let c_rows = self.height.div_ceil(2) as usize;
        let y_end = self.y_off as usize + self.y_stride as usize * self.height as usize;
        let u_end = self.u_off as usize + self.u_stride as usize * c_rows;
        let v_end = self.v_off as usize + self.v_stride as usize * c_rows;
        y_end.max(u_end).max(v_end)
    }
}
