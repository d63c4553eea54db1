//! `gate-calibrate lane`: draws a lane's zone (where a person counts as inside the lane, for
//! tailgating) on one of its frames, so an engineer can check it before storing it in the station
//! file. Optionally marks the faces the CPU detector finds: the station tests a face's box centre
//! against the zone, so a walker whose face centre falls outside is never counted. A lane with a
//! lower camera (`[lane.lower]`) has a zone in each camera's own frame; both are drawn side by side
//! when both frames are at hand, so the two can be checked against the same moment.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use engine::face::{FaceChain, Rgb, iou};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use crate::lane_draw::{Marked, View, centre_in, side_by_side};
use crate::station_toml::{self, Edit, LaneViews, Section, Val};

#[derive(clap::Args)]
pub struct Args {
    /// The --view camera's recorded video (anything GStreamer decodes); the frame at --at is drawn.
    #[arg(long, required_unless_present = "image", conflicts_with = "image")]
    pub video: Option<PathBuf>,
    /// A still from the --view camera (PNG, JPEG, …) instead of a video.
    #[arg(long)]
    pub image: Option<PathBuf>,
    /// Seconds into --video.
    #[arg(long, default_value_t = 0.0)]
    pub at: f64,
    /// x0,y0,x1,y1 as fractions of the --view camera's frame; default: that camera's zone in
    /// --config, else the whole frame.
    #[arg(long)]
    pub zone: Option<String>,
    /// The camera --video/--image, --zone and --write refer to: `upper`, the lane's camera
    /// ([[lane]] zone), or `lower`, its lower camera ([lane.lower] zone).
    #[arg(long, value_enum, default_value_t = Which::Upper)]
    pub view: Which,
    /// The lower camera's video, drawn beside the lane camera's frame (the frame at the same --at).
    /// Default: the lane's [lane.lower] source in --config when that is a file:// URI.
    #[arg(long, conflicts_with = "lower_image")]
    pub lower_video: Option<PathBuf>,
    /// A still from the lower camera instead of --lower-video.
    #[arg(long)]
    pub lower_image: Option<PathBuf>,
    /// Station file to read the lane's current zones from (and the other camera's file:// source).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Lane id in the station file ([[lane]] id = "...").
    #[arg(long, default_value = "L1")]
    pub lane: String,
    /// PNG to write.
    #[arg(long, default_value = "lane.png")]
    pub out: PathBuf,
    /// Also run the CPU face detector and mark each face: green when its centre is inside the zone.
    #[arg(long)]
    pub faces: bool,
    /// Folder with the ONNX models (default: $GATE_MODELS, else the workspace's models/).
    #[arg(long, default_value_os_t = engine::face::models_dir())]
    pub models: PathBuf,
    /// Store --zone as this lane's `zone` (with --view lower: its [lane.lower] `zone`) in the
    /// station file (backup kept as <file>.bak).
    #[arg(long)]
    pub write: Option<PathBuf>,
}

/// One of a lane's two cameras.
#[derive(Clone, Copy, PartialEq, Eq, Debug, clap::ValueEnum)]
pub enum Which {
    Upper,
    Lower,
}

impl Which {
    fn name(self) -> &'static str {
        match self {
            Which::Upper => "upper",
            Which::Lower => "lower",
        }
    }

    fn other(self) -> Which {
        match self {
            Which::Upper => Which::Lower,
            Which::Lower => Which::Upper,
        }
    }
}

/// An RGB8 frame, rows packed.
pub struct Frame {
    pub index: u64,
    pub pts_s: Option<f64>,
    pub w: usize,
    pub h: usize,
    pub rgb: Vec<u8>,
}

/// `x0,y0,x1,y1` fractions of the frame.
pub fn parse_zone(s: &str) -> Result<[f64; 4]> {
    let v: Vec<f64> = s
        .split(',')
        .map(|p| p.trim().parse::<f64>())
        .collect::<Result<_, _>>()
        .map_err(|_| anyhow!("--zone '{s}': expected four numbers x0,y0,x1,y1"))?;
    let z: [f64; 4] = v
        .try_into()
        .map_err(|_| anyhow!("--zone '{s}': expected four numbers x0,y0,x1,y1"))?;
    check_zone(&z).with_context(|| format!("--zone '{s}'"))?;
    Ok(z)
}

/// The same rule the station applies when it loads the file (pipeline/src/config.rs).
pub fn check_zone(z: &[f64; 4]) -> Result<()> {
    if !z.iter().all(|v| (0.0..=1.0).contains(v)) {
        bail!("zone {z:?}: every value must be a fraction of the frame, 0..1");
    }
    if !(z[0] < z[2] && z[1] < z[3]) {
        bail!("zone {z:?}: need x0 < x1 and y0 < y1");
    }
    Ok(())
}

const DECODE: [(&str, &str); 4] = [
    ("filesrc", "gstreamer1.0 core"),
    ("decodebin", "gstreamer1.0-plugins-base"),
    ("videoconvert", "gstreamer1.0-plugins-base"),
    ("appsink", "gstreamer1.0-plugins-base"),
];

fn sample_frame(sample: &gst::Sample, index: u64, path: &Path) -> Result<Frame> {
    let s = sample
        .caps()
        .and_then(|c| c.structure(0))
        .ok_or_else(|| anyhow!("{}: decoded frame without caps", path.display()))?;
    let dim = |k: &str| {
        s.get::<i32>(k)
            .ok()
            .and_then(|v| usize::try_from(v).ok())
            .ok_or_else(|| anyhow!("{}: decoded frame without {k}", path.display()))
    };
    let (w, h) = (dim("width")?, dim("height")?);
    let buf = sample
        .buffer()
        .ok_or_else(|| anyhow!("{}: sample without buffer", path.display()))?;
    let pts_s = buf.pts().map(|t| t.nseconds() as f64 / 1e9);
    let map = buf
        .map_readable()
        .map_err(|_| anyhow!("{}: unreadable frame buffer", path.display()))?;
    // GStreamer pads RGB rows to 4 bytes.
    let stride = (w * 3 + 3) & !3;
    let rgb = if map.len() == w * h * 3 {
        map.to_vec()
    } else if map.len() >= stride * h {
        map.chunks_exact(stride)
            .take(h)
            .flat_map(|r| &r[..w * 3])
            .copied()
            .collect()
    } else {
        bail!(
            "{}: frame of {} bytes for {w}x{h} RGB",
            path.display(),
            map.len()
        );
    };
    Ok(Frame {
        index,
        pts_s,
        w,
        h,
        rgb,
    })
}

/// Decodes `path` frame by frame (RGB) and hands each to `visit` until it returns `false`.
pub fn for_each_frame(path: &Path, mut visit: impl FnMut(Frame) -> Result<bool>) -> Result<u64> {
    if !path.is_file() {
        bail!("{}: no such video file", path.display());
    }
    gst::init().context("initialising GStreamer")?;
    for (e, pkg) in DECODE {
        if gst::ElementFactory::find(e).is_none() {
            bail!("GStreamer element '{e}' missing (Debian package {pkg}; run scripts/setup)");
        }
    }
    // A short appsink queue: the decoder waits for us instead of buffering a whole file.
    let desc = "filesrc name=src ! decodebin ! videoconvert ! video/x-raw,format=RGB ! \
                appsink name=sink sync=false max-buffers=4";
    let pipeline = gst::parse::launch(desc)
        .context("building the decode pipeline")?
        .downcast::<gst::Pipeline>()
        .map_err(|_| anyhow!("decode description is not a pipeline"))?;
    let guard = StopOnDrop(pipeline.clone());
    let src = pipeline
        .by_name("src")
        .ok_or_else(|| anyhow!("decode pipeline has no filesrc"))?;
    src.set_property("location", path.to_string_lossy().as_ref());
    let sink = pipeline
        .by_name("sink")
        .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
        .ok_or_else(|| anyhow!("decode pipeline has no appsink"))?;
    pipeline
        .set_state(gst::State::Playing)
        .map_err(|e| anyhow!("{}: decoder refused to start: {e}", path.display()))?;
    let mut n = 0u64;
    let bus = pipeline
        .bus()
        .ok_or_else(|| anyhow!("decode pipeline has no bus"))?;
    // Pulled with a timeout and the bus read in between: a file the decoder cannot read posts an
    // error and never reaches end-of-stream, so a blocking pull would wait forever.
    loop {
        if let Some(m) = bus.pop_filtered(&[gst::MessageType::Error])
            && let gst::MessageView::Error(e) = m.view()
        {
            bail!("decoding {}: {}", path.display(), e.error());
        }
        match sink.try_pull_sample(gst::ClockTime::from_mseconds(100)) {
            Some(sample) => {
                let frame = sample_frame(&sample, n, path)?;
                n += 1;
                if !visit(frame)? {
                    break;
                }
            }
            None if sink.is_eos() => break,
            None => {}
        }
    }
    drop(guard);
    Ok(n)
}

struct StopOnDrop(gst::Pipeline);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        let _ = self.0.set_state(gst::State::Null);
    }
}

/// The first frame at or after `at` seconds (decoding from the start: footage clips are short and
/// this avoids depending on the container's seek index).
pub fn frame_at(path: &Path, at: f64) -> Result<Frame> {
    let mut found = None;
    let mut last = None;
    for_each_frame(path, |f| {
        if f.pts_s.unwrap_or(0.0) + 1e-6 >= at {
            found = Some(f);
            return Ok(false);
        }
        last = f.pts_s;
        Ok(true)
    })?;
    found.ok_or_else(|| match last {
        Some(t) => anyhow!("{}: --at {at} s is past the end ({t:.2} s)", path.display()),
        None => anyhow!("{}: no frames decoded", path.display()),
    })
}

fn load_image(path: &Path) -> Result<Frame> {
    let img = crate::photo::decode(path)?;
    Ok(Frame {
        index: 0,
        pts_s: None,
        w: img.width() as usize,
        h: img.height() as usize,
        rgb: img.into_raw(),
    })
}

/// One camera's frame, its zone and where that came from, and the faces found on it.
struct Shot {
    which: Which,
    frame: Frame,
    zone: [f64; 4],
    from: String,
    faces: Vec<Marked>,
}

/// `which` camera's zone in the station file, else the whole frame; `from` says which it is.
fn stored_zone(lane: Option<&LaneViews>, o: &Args, which: Which) -> Result<([f64; 4], String)> {
    let (Some(lane), Some(cfg)) = (lane, &o.config) else {
        return Ok(([0.0, 0.0, 1.0, 1.0], "default: whole frame".to_owned()));
    };
    let (zone, table) = match which {
        Which::Upper => (lane.zone, String::new()),
        Which::Lower => (
            lane.lower.as_ref().and_then(|l| l.zone),
            " [lane.lower]".to_owned(),
        ),
    };
    let at = format!("{} lane {}{table}", cfg.display(), o.lane);
    Ok(match zone {
        Some(z) => {
            check_zone(&z).with_context(|| at.clone())?;
            (z, at)
        }
        None => ([0.0, 0.0, 1.0, 1.0], format!("{at} (no zone: whole frame)")),
    })
}

/// The other camera's frame: the --lower-* flag, else its `file://` source in --config. `None`
/// (with a note why) when there is none to draw, so a station file naming a camera or a file this
/// machine lacks still leaves the engineer the one frame they gave.
fn other_frame(lane: Option<&LaneViews>, o: &Args, which: Which) -> Result<Option<Frame>> {
    match (&o.lower_video, &o.lower_image) {
        (Some(v), _) => return frame_at(v, o.at).map(Some),
        (None, Some(i)) => return load_image(i).map(Some),
        (None, None) => {}
    }
    let source = match (lane, which) {
        (Some(l), Which::Upper) => l.source.clone(),
        (Some(l), Which::Lower) => l.lower.as_ref().and_then(|l| l.source.clone()),
        (None, _) => None,
    };
    let Some(source) = source else {
        return Ok(None);
    };
    let note = |why: &str| {
        eprintln!(
            "note: lane {}'s {} camera ({source}) {why}; drawing the {} frame alone",
            o.lane,
            which.name(),
            which.other().name()
        );
    };
    let Some(path) = source.strip_prefix("file://").map(PathBuf::from) else {
        note(match which {
            Which::Lower => "is not a file:// source (give --lower-video or --lower-image)",
            Which::Upper => "is not a file:// source",
        });
        return Ok(None);
    };
    if !path.is_file() {
        note("is not a file on this machine");
        return Ok(None);
    }
    // Split by the extension as --image and --video split them: a still has no --at to seek.
    if image::ImageFormat::from_path(&path).is_ok() {
        load_image(&path).map(Some)
    } else {
        frame_at(&path, o.at).map(Some)
    }
}

/// Faces from both detectors, the stronger kept of boxes that overlap (both often find a face).
fn detect(chain: &FaceChain, frame: &Frame) -> Result<Vec<Marked>> {
    let img = Rgb {
        rgb: &frame.rgb,
        w: frame.w,
        h: frame.h,
    };
    let mut found = chain.detect_back(img)?;
    found.extend(chain.detect_front(img)?);
    found.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut dets: Vec<Marked> = Vec::new();
    for d in found {
        let bbox = d.corners();
        if !dets.iter().any(|m| iou(m.bbox, bbox) > 0.3) {
            dets.push(Marked {
                bbox,
                score: d.score,
            });
        }
    }
    Ok(dets)
}

/// The shot's line for stdout (its zone, where it came from, the frame) and one line per face.
fn report(shot: &Shot, lane: &str, tag: &str, faces: bool) -> (String, Vec<String>) {
    let z = shot.zone;
    let f = &shot.frame;
    let when = f
        .pts_s
        .map(|t| format!(" frame {} at {t:.2} s,", f.index))
        .unwrap_or_default();
    let head = format!(
        "lane {lane}{tag}: zone [{}, {}, {}, {}] ({});{when} {}x{}",
        z[0], z[1], z[2], z[3], shot.from, f.w, f.h
    );
    let zpx = [
        z[0] * f.w as f64,
        z[1] * f.h as f64,
        z[2] * f.w as f64,
        z[3] * f.h as f64,
    ];
    let mut lines: Vec<String> = shot
        .faces
        .iter()
        .map(|m| {
            let [x0, y0, x1, y1] = m.bbox;
            format!(
                "  face score {:.2} box ({x0:.0},{y0:.0})-({x1:.0},{y1:.0}) {}",
                m.score,
                if centre_in(m.bbox, zpx) {
                    "inside the zone"
                } else {
                    "OUTSIDE the zone"
                }
            )
        })
        .collect();
    if faces && lines.is_empty() {
        lines.push("  no face found in this frame".to_owned());
    }
    (head, lines)
}

pub fn run(o: Args) -> Result<()> {
    if o.view == Which::Lower && (o.lower_video.is_some() || o.lower_image.is_some()) {
        bail!(
            "--view lower: the lower camera's frame is --video/--image; \
             --lower-video/--lower-image go with --view upper"
        );
    }
    let frame = match (&o.video, &o.image) {
        (Some(v), None) => frame_at(v, o.at)?,
        (None, Some(i)) => load_image(i)?,
        _ => bail!("give exactly one of --video FILE or --image FILE"),
    };
    let lane = match &o.config {
        Some(cfg) => Some(station_toml::read_lane(cfg, &o.lane)?),
        None => None,
    };
    let (zone, from) = match &o.zone {
        Some(z) => (parse_zone(z)?, "--zone".to_owned()),
        None => stored_zone(lane.as_ref(), &o, o.view)?,
    };
    if o.write.is_some() && o.zone.is_none() {
        bail!("--write stores the --zone given; pass --zone x0,y0,x1,y1");
    }
    let mut shots = vec![Shot {
        which: o.view,
        frame,
        zone,
        from,
        faces: Vec::new(),
    }];
    if let Some(frame) = other_frame(lane.as_ref(), &o, o.view.other())? {
        let (zone, from) = stored_zone(lane.as_ref(), &o, o.view.other())?;
        shots.push(Shot {
            which: o.view.other(),
            frame,
            zone,
            from,
            faces: Vec::new(),
        });
    }
    shots.sort_by_key(|s| s.which != Which::Upper);
    if shots.iter().any(|s| s.frame.w == 0 || s.frame.h == 0) {
        bail!("empty frame");
    }
    if o.faces {
        let chain = FaceChain::load(&o.models)?;
        for s in &mut shots {
            s.faces = detect(&chain, &s.frame)?;
        }
    }
    let pair = shots.len() == 2;
    let tag = |s: &Shot| {
        if pair || s.which == Which::Lower {
            format!(" {}", s.which.name())
        } else {
            String::new()
        }
    };
    let reports: Vec<(String, Vec<String>)> = shots
        .iter()
        .map(|s| report(s, &o.lane, &tag(s), o.faces))
        .collect();
    let views: Vec<View> = shots
        .into_iter()
        .map(|s| {
            let z = s.zone;
            View {
                label: format!(
                    "{}{} ZONE {:.2},{:.2} - {:.2},{:.2}",
                    o.lane,
                    tag(&s).to_uppercase(),
                    z[0],
                    z[1],
                    z[2],
                    z[3]
                ),
                rgb: s.frame.rgb,
                w: s.frame.w,
                h: s.frame.h,
                zone: z,
                faces: s.faces,
            }
        })
        .collect();
    let mut views = views.into_iter();
    let img = match (views.next(), views.next()) {
        (Some(upper), Some(lower)) => side_by_side(upper, lower)?,
        (Some(one), None) => one.drawn()?,
        (None, _) => bail!("no frame to draw"),
    };
    img.save_with_format(&o.out, image::ImageFormat::Png)
        .with_context(|| format!("writing {}", o.out.display()))?;
    for (i, (head, faces)) in reports.iter().enumerate() {
        if pair {
            println!("{head}");
        } else {
            println!("{head} → {}", o.out.display());
        }
        for f in faces {
            println!("{f}");
        }
        if pair && i == 1 {
            println!(
                "upper | lower side by side, {}x{} → {}",
                img.width(),
                img.height(),
                o.out.display()
            );
        }
    }
    if let Some(station) = &o.write {
        let (section, what) = match o.view {
            Which::Upper => (Section::Lane(o.lane.clone()), "zone"),
            Which::Lower => (Section::LaneLower(o.lane.clone()), "[lane.lower] zone"),
        };
        let backup = station_toml::write(
            station,
            &[Edit::new(section, "zone", Val::Floats(zone.to_vec()))],
        )?;
        println!(
            "wrote lane {} {what} to {} (previous file kept as {})",
            o.lane,
            station.display(),
            backup.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zones_are_checked() {
        assert_eq!(parse_zone("0.1, 0, 0.9,1").unwrap(), [0.1, 0.0, 0.9, 1.0]);
        for bad in [
            "0.1,0,0.9",
            "0.9,0,0.1,1",
            "0,0,1.2,1",
            "a,b,c,d",
            "0,0.5,1,0.5",
        ] {
            assert!(parse_zone(bad).is_err(), "{bad}");
        }
    }
}
