//! RGB frames → H.264 MP4 through GStreamer (the same encoder settings the station's test clips use,
//! so `gated` decodes these like any recorded lane).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

const ELEMENTS: [(&str, &str); 6] = [
    ("appsrc", "gstreamer1.0-plugins-base"),
    ("videoconvert", "gstreamer1.0-plugins-base"),
    ("x264enc", "gstreamer1.0-plugins-ugly"),
    ("h264parse", "gstreamer1.0-plugins-bad"),
    ("mp4mux", "gstreamer1.0-plugins-good"),
    ("filesink", "gstreamer1.0 core"),
];

/// Frames queued in appsrc before `push` waits for the encoder; bounds memory on long sets.
const QUEUE_FRAMES: u64 = 16;

pub struct Encoder {
    pipeline: gst::Pipeline,
    src: gst_app::AppSrc,
    path: PathBuf,
    w: usize,
    h: usize,
    fps: u32,
    pushed: u64,
    stride: usize,
}

impl Encoder {
    pub fn new(path: &Path, w: usize, h: usize, fps: u32) -> Result<Encoder> {
        gst::init().context("initialising GStreamer")?;
        for (e, pkg) in ELEMENTS {
            if gst::ElementFactory::find(e).is_none() {
                bail!("GStreamer element '{e}' missing (Debian package {pkg}; run scripts/setup)");
            }
        }
        // One encoder thread: x264's frame threads made each run's pictures differ slightly (the
        // decoded frames, not only the MP4's header), so the same seed gave footage on which a
        // borderline walker was decided differently from machine to machine. Lanes are encoded in
        // parallel anyway.
        let desc = format!(
            "appsrc name=src format=time ! videoconvert ! video/x-raw,format=I420 ! \
             x264enc speed-preset=ultrafast threads=1 key-int-max={fps} ! h264parse ! mp4mux ! filesink name=sink"
        );
        let pipeline = gst::parse::launch(&desc)
            .context("building the encoder pipeline")?
            .downcast::<gst::Pipeline>()
            .map_err(|_| anyhow!("encoder description is not a pipeline"))?;
        let src = pipeline
            .by_name("src")
            .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
            .ok_or_else(|| anyhow!("encoder pipeline has no appsrc"))?;
        let sink = pipeline
            .by_name("sink")
            .ok_or_else(|| anyhow!("encoder pipeline has no filesink"))?;
        // Set here, not in the description: a path with spaces would not survive parsing.
        sink.set_property("location", path.to_string_lossy().as_ref());
        let fps_i = i32::try_from(fps).context("fps out of range")?;
        let caps = gst::Caps::builder("video/x-raw")
            .field("format", "RGB")
            .field("width", i32::try_from(w).context("width out of range")?)
            .field("height", i32::try_from(h).context("height out of range")?)
            .field("framerate", gst::Fraction::new(fps_i, 1))
            .build();
        src.set_caps(Some(&caps));
        // GStreamer pads RGB rows to 4 bytes.
        let stride = (w * 3 + 3) & !3;
        src.set_max_bytes((stride * h) as u64 * QUEUE_FRAMES);
        pipeline
            .set_state(gst::State::Playing)
            .map_err(|e| anyhow!("{}: encoder refused to start: {e}", path.display()))?;
        Ok(Encoder {
            pipeline,
            src,
            path: path.to_owned(),
            w,
            h,
            fps,
            pushed: 0,
            stride,
        })
    }

    fn check_bus(&self) -> Result<()> {
        let Some(bus) = self.pipeline.bus() else {
            return Ok(());
        };
        if let Some(m) = bus.pop_filtered(&[gst::MessageType::Error])
            && let gst::MessageView::Error(e) = m.view()
        {
            let from = e.src().map(|s| s.name().to_string()).unwrap_or_default();
            bail!("encoding {}: {from}: {}", self.path.display(), e.error());
        }
        Ok(())
    }

    /// Queues one RGB8 frame (`w`·`h`·3 bytes).
    pub fn push(&mut self, rgb: &[u8]) -> Result<()> {
        if rgb.len() != self.w * self.h * 3 {
            bail!(
                "frame of {} bytes, expected {}",
                rgb.len(),
                self.w * self.h * 3
            );
        }
        // Wait for the encoder rather than queue without bound (appsrc does not block by default).
        while self.src.current_level_bytes() >= self.src.max_bytes() {
            self.check_bus()?;
            std::thread::sleep(Duration::from_millis(2));
        }
        self.check_bus()?;
        let data = if self.stride == self.w * 3 {
            rgb.to_vec()
        } else {
            let mut d = vec![0u8; self.stride * self.h];
            for (dst, src) in d
                .chunks_exact_mut(self.stride)
                .zip(rgb.chunks_exact(self.w * 3))
            {
                dst[..self.w * 3].copy_from_slice(src);
            }
            d
        };
        let mut buf = gst::Buffer::from_mut_slice(data);
        {
            let b = buf
                .get_mut()
                .ok_or_else(|| anyhow!("fresh buffer is not writable"))?;
            let ns = |n: u64| gst::ClockTime::from_nseconds(n * 1_000_000_000 / self.fps as u64);
            b.set_pts(ns(self.pushed));
            b.set_duration(ns(self.pushed + 1) - ns(self.pushed));
        }
        self.src.push_buffer(buf).map_err(|e| {
            anyhow!(
                "encoding {}: appsrc refused a frame: {e:?}",
                self.path.display()
            )
        })?;
        self.pushed += 1;
        Ok(())
    }

    /// Ends the stream and waits until the MP4 is complete on disk.
    pub fn finish(self) -> Result<()> {
        self.src.end_of_stream().map_err(|e| {
            anyhow!(
                "encoding {}: end of stream refused: {e:?}",
                self.path.display()
            )
        })?;
        let bus = self
            .pipeline
            .bus()
            .ok_or_else(|| anyhow!("encoder pipeline has no bus"))?;
        let msg = bus.timed_pop_filtered(
            gst::ClockTime::from_seconds(300),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        );
        match msg {
            Some(m) => match m.view() {
                gst::MessageView::Error(e) => {
                    let from = e.src().map(|s| s.name().to_string()).unwrap_or_default();
                    bail!("encoding {}: {from}: {}", self.path.display(), e.error())
                }
                _ => Ok(()),
            },
            None => bail!(
                "encoding {}: no end of stream after 300 s",
                self.path.display()
            ),
        }
    }
}

impl Drop for Encoder {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}
