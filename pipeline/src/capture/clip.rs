//! Writing H.264 MP4 clips with GStreamer: test fixtures and benchmark footage are made here rather
//! than committed.

use std::path::Path;

use gstreamer as gst;
use gstreamer::prelude::*;

/// Encodes `frames` frames of a moving test pattern at `fps` into an MP4 file.
pub fn encode_test_clip(
    path: &Path,
    width: u32,
    height: u32,
    fps: u32,
    frames: u32,
    pattern: &str,
) -> Result<(), String> {
    super::init().map_err(|e| e.to_string())?;
    let desc = format!(
        "videotestsrc num-buffers={frames} pattern={pattern} ! video/x-raw,width={width},height={height},framerate={fps}/1 ! videoconvert ! video/x-raw,format=I420 ! x264enc speed-preset=ultrafast tune=zerolatency key-int-max={fps} ! h264parse ! mp4mux ! filesink name=out"
    );
    let pipeline = gst::parse::launch(&desc)
        .map_err(|e| e.to_string())?
        .downcast::<gst::Pipeline>()
        .map_err(|_| "not a pipeline".to_owned())?;
    let out = pipeline.by_name("out").ok_or("no filesink")?;
    out.set_property("location", path.display().to_string());
    pipeline
        .set_state(gst::State::Playing)
        .map_err(|e| format!("encoder refused to start: {e}"))?;
    let bus = pipeline.bus().ok_or("no bus")?;
    let result = match bus.timed_pop_filtered(
        gst::ClockTime::from_seconds(120),
        &[gst::MessageType::Eos, gst::MessageType::Error],
    ) {
        Some(m) => match m.view() {
            gst::MessageView::Error(e) => {
                Err(format!("encoding {}: {}", path.display(), e.error()))
            }
            _ => Ok(()),
        },
        None => Err(format!("encoding {} timed out", path.display())),
    };
    let _ = pipeline.set_state(gst::State::Null);
    result
}
