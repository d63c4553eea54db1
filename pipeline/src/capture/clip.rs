//! Writing H.264 MP4 clips with GStreamer: test fixtures and benchmark footage are made here rather
//! than committed.

use std::path::Path;

use gstreamer as gst;
use gstreamer::prelude::*;

#[derive(Debug, thiserror::Error)]
pub enum ClipError {
    #[error(transparent)]
    Init(#[from] super::CaptureError),
    #[error("encoder pipeline")]
    Launch(#[source] gst::glib::Error),
    #[error("encoder pipeline: {0}")]
    Pipeline(&'static str),
    #[error("encoder refused to start")]
    Start(#[source] gst::StateChangeError),
    #[error("encoding {}", path.display())]
    Encode {
        path: std::path::PathBuf,
        #[source]
        source: gst::glib::Error,
    },
    #[error("encoding {} timed out", path.display())]
    Timeout { path: std::path::PathBuf },
}

/// Encodes `frames` frames of a moving test pattern at `fps` into an MP4 file.
pub fn encode_test_clip(
    path: &Path,
    width: u32,
    height: u32,
    fps: u32,
    frames: u32,
    pattern: &str,
) -> Result<(), ClipError> {
    super::init()?;
    let desc = format!(
        "videotestsrc num-buffers={frames} pattern={pattern} ! video/x-raw,width={width},height={height},framerate={fps}/1 ! videoconvert ! video/x-raw,format=I420 ! x264enc speed-preset=ultrafast tune=zerolatency key-int-max={fps} ! h264parse ! mp4mux ! filesink name=out"
    );
    let pipeline = gst::parse::launch(&desc)
        .map_err(ClipError::Launch)?
        .downcast::<gst::Pipeline>()
        .map_err(|_| ClipError::Pipeline("not a pipeline"))?;
    let out = pipeline
        .by_name("out")
        .ok_or(ClipError::Pipeline("no filesink"))?;
    out.set_property("location", path.display().to_string());
    pipeline
        .set_state(gst::State::Playing)
        .map_err(ClipError::Start)?;
    let bus = pipeline.bus().ok_or(ClipError::Pipeline("no bus"))?;
    let result = match bus.timed_pop_filtered(
        gst::ClockTime::from_seconds(120),
        &[gst::MessageType::Eos, gst::MessageType::Error],
    ) {
        Some(m) => match m.view() {
            gst::MessageView::Error(e) => Err(ClipError::Encode {
                path: path.to_path_buf(),
                source: e.error(),
            }),
            _ => Ok(()),
        },
        None => Err(ClipError::Timeout {
            path: path.to_path_buf(),
        }),
    };
    let _ = pipeline.set_state(gst::State::Null);
    result
}
