//! `gate-calibrate lane`: draws a lane's zone (where a person counts as inside the lane, for
//! tailgating) on one of its frames, so an engineer can check it before storing it in the station
//! file. Optionally marks the faces the CPU detector finds: the station tests a face's box centre
//! against the zone, so a walker whose face centre falls outside is never counted.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use engine::face::{FaceChain, Rgb, iou};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use crate::station_toml::{self, Edit, Section, Val};

pub const ZONE_COLOUR: [u8; 3] = [255, 196, 0];
const INSIDE: [u8; 3] = [40, 220, 60];
const OUTSIDE: [u8; 3] = [235, 40, 40];
const WHITE: [u8; 3] = [255, 255, 255];
const BLACK: [u8; 3] = [0, 0, 0];

#[derive(clap::Args)]
pub struct Args {
    /// A lane's recorded video (anything GStreamer decodes); the frame at --at is drawn.
    #[arg(long, required_unless_present = "image", conflicts_with = "image")]
    pub video: Option<PathBuf>,
    /// A still from the lane's camera (PNG, JPEG, …) instead of a video.
    #[arg(long)]
    pub image: Option<PathBuf>,
    /// Seconds into --video.
    #[arg(long, default_value_t = 0.0)]
    pub at: f64,
    /// x0,y0,x1,y1 as fractions of the frame; default: the lane's zone in --config, else the whole frame.
    #[arg(long)]
    pub zone: Option<String>,
    /// Station file to read the lane's current zone from.
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
    /// Store --zone as this lane's `zone` in the station file (backup kept as <file>.bak).
    #[arg(long)]
    pub write: Option<PathBuf>,
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

/// 5×7 glyphs, rows top to bottom; characters without a glyph draw as a space.
const FONT: &[(char, &str)] = &[
    ('0', "01110 10001 10011 10101 11001 10001 01110"),
    ('1', "00100 01100 00100 00100 00100 00100 01110"),
    ('2', "01110 10001 00001 00010 00100 01000 11111"),
    ('3', "11111 00010 00100 00010 00001 10001 01110"),
    ('4', "00010 00110 01010 10010 11111 00010 00010"),
    ('5', "11111 10000 11110 00001 00001 10001 01110"),
    ('6', "00110 01000 10000 11110 10001 10001 01110"),
    ('7', "11111 00001 00010 00100 01000 01000 01000"),
    ('8', "01110 10001 10001 01110 10001 10001 01110"),
    ('9', "01110 10001 10001 01111 00001 00010 01100"),
    ('A', "01110 10001 10001 11111 10001 10001 10001"),
    ('B', "11110 10001 10001 11110 10001 10001 11110"),
    ('C', "01110 10001 10000 10000 10000 10001 01110"),
    ('D', "11100 10010 10001 10001 10001 10010 11100"),
    ('E', "11111 10000 10000 11110 10000 10000 11111"),
    ('F', "11111 10000 10000 11110 10000 10000 10000"),
    ('G', "01110 10001 10000 10111 10001 10001 01111"),
    ('H', "10001 10001 10001 11111 10001 10001 10001"),
    ('I', "01110 00100 00100 00100 00100 00100 01110"),
    ('J', "00111 00010 00010 00010 00010 10010 01100"),
    ('K', "10001 10010 10100 11000 10100 10010 10001"),
    ('L', "10000 10000 10000 10000 10000 10000 11111"),
    ('M', "10001 11011 10101 10101 10001 10001 10001"),
    ('N', "10001 10001 11001 10101 10011 10001 10001"),
    ('O', "01110 10001 10001 10001 10001 10001 01110"),
    ('P', "11110 10001 10001 11110 10000 10000 10000"),
    ('Q', "01110 10001 10001 10001 10101 10010 01101"),
    ('R', "11110 10001 10001 11110 10100 10010 10001"),
    ('S', "01111 10000 10000 01110 00001 00001 11110"),
    ('T', "11111 00100 00100 00100 00100 00100 00100"),
    ('U', "10001 10001 10001 10001 10001 10001 01110"),
    ('V', "10001 10001 10001 10001 10001 01010 00100"),
    ('W', "10001 10001 10001 10101 10101 10101 01010"),
    ('X', "10001 10001 01010 00100 01010 10001 10001"),
    ('Y', "10001 10001 10001 01010 00100 00100 00100"),
    ('Z', "11111 00001 00010 00100 01000 10000 11111"),
    ('.', "00000 00000 00000 00000 00000 01100 01100"),
    (',', "00000 00000 00000 00000 01100 00100 01000"),
    ('-', "00000 00000 00000 11111 00000 00000 00000"),
    (':', "00000 01100 01100 00000 01100 01100 00000"),
    ('%', "11000 11001 00010 00100 01000 10011 00011"),
    ('[', "01110 01000 01000 01000 01000 01000 01110"),
    (']', "01110 00010 00010 00010 00010 00010 01110"),
    ('=', "00000 00000 11111 00000 11111 00000 00000"),
    ('/', "00000 00001 00010 00100 01000 10000 00000"),
];

struct Canvas<'a> {
    rgb: &'a mut [u8],
    w: usize,
    h: usize,
}

impl Canvas<'_> {
    fn blend(&mut self, x: i64, y: i64, c: [u8; 3], alpha: f32) {
        if x < 0 || y < 0 || x >= self.w as i64 || y >= self.h as i64 {
            return;
        }
        let i = (y as usize * self.w + x as usize) * 3;
        for (dst, src) in self.rgb[i..i + 3].iter_mut().zip(c) {
            let v = f32::from(*dst) * (1.0 - alpha) + f32::from(src) * alpha;
            *dst = v.round().clamp(0.0, 255.0) as u8;
        }
    }

    fn fill(&mut self, x0: i64, y0: i64, x1: i64, y1: i64, c: [u8; 3], alpha: f32) {
        for y in y0.max(0)..y1.min(self.h as i64) {
            for x in x0.max(0)..x1.min(self.w as i64) {
                self.blend(x, y, c, alpha);
            }
        }
    }

    /// Outline drawn inward from the given bounds, `t` pixels thick.
    fn rect(&mut self, [x0, y0, x1, y1]: [i64; 4], t: i64, c: [u8; 3]) {
        self.fill(x0, y0, x1, y0 + t, c, 1.0);
        self.fill(x0, y1 - t, x1, y1, c, 1.0);
        self.fill(x0, y0, x0 + t, y1, c, 1.0);
        self.fill(x1 - t, y0, x1, y1, c, 1.0);
    }

    fn text_width(s: &str, scale: i64) -> i64 {
        s.chars().count() as i64 * 6 * scale
    }

    /// Text on a dark plate, so it reads on any background.
    fn text(&mut self, x: i64, y: i64, s: &str, scale: i64, c: [u8; 3]) {
        let pad = scale;
        let tw = Self::text_width(s, scale);
        self.fill(
            x - pad,
            y - pad,
            x + tw + pad,
            y + 7 * scale + pad,
            BLACK,
            0.6,
        );
        for (i, ch) in s.chars().enumerate() {
            let up = ch.to_ascii_uppercase();
            let Some((_, g)) = FONT.iter().find(|(k, _)| *k == up) else {
                continue;
            };
            for (row, bits) in g.split(' ').enumerate() {
                for (col, b) in bits.bytes().enumerate() {
                    if b == b'1' {
                        let gx = x + (i as i64 * 6 + col as i64) * scale;
                        let gy = y + row as i64 * scale;
                        self.fill(gx, gy, gx + scale, gy + scale, c, 1.0);
                    }
                }
            }
        }
    }
}

/// A detected face for the overlay: box in frame pixels and detector score.
pub struct Marked {
    pub bbox: [f32; 4],
    pub score: f32,
}

/// Whether the box's centre is inside the zone, as the station decides it.
pub fn centre_in(bbox: [f32; 4], zone_px: [f64; 4]) -> bool {
    let cx = f64::from(bbox[0] + bbox[2]) / 2.0;
    let cy = f64::from(bbox[1] + bbox[3]) / 2.0;
    cx >= zone_px[0] && cx <= zone_px[2] && cy >= zone_px[1] && cy <= zone_px[3]
}

/// Zone, 10 % grid, label and faces drawn onto `rgb` (`w`×`h`).
pub fn draw(rgb: &mut [u8], w: usize, h: usize, zone: [f64; 4], label: &str, faces: &[Marked]) {
    let (wf, hf) = (w as f64, h as f64);
    let zpx = [zone[0] * wf, zone[1] * hf, zone[2] * wf, zone[3] * hf];
    let [zx0, zy0, zx1, zy1] = zpx.map(|v| v.round() as i64);
    let mut c = Canvas { rgb, w, h };
    let (wi, hi) = (w as i64, h as i64);
    // Outside the zone darkened, so the lane area stands out while the scene stays readable.
    let shade = [20, 24, 48];
    c.fill(0, 0, wi, zy0, shade, 0.5);
    c.fill(0, zy1, wi, hi, shade, 0.5);
    c.fill(0, zy0, zx0, zy1, shade, 0.5);
    c.fill(zx1, zy0, wi, zy1, shade, 0.5);
    let small = (h as i64 / 480).max(1);
    let tick = (w.min(h) as i64 / 40).max(6);
    for i in 1..10 {
        let x = (wf * f64::from(i) / 10.0).round() as i64;
        let y = (hf * f64::from(i) / 10.0).round() as i64;
        // Faint dotted grid lines, then solid ticks (longer at 50 %) on every edge.
        for yy in (0..hi).step_by(4) {
            c.blend(x, yy, WHITE, 0.35);
        }
        for xx in (0..wi).step_by(4) {
            c.blend(xx, y, WHITE, 0.35);
        }
        let len = if i == 5 { 2 * tick } else { tick };
        c.fill(x - 1, 0, x + 1, len, WHITE, 1.0);
        c.fill(x - 1, hi - len, x + 1, hi, WHITE, 1.0);
        c.fill(0, y - 1, len, y + 1, WHITE, 1.0);
        c.fill(wi - len, y - 1, wi, y + 1, WHITE, 1.0);
        let pct = format!("{}", i * 10);
        c.text(x + 3, len + 2 * small, &pct, small, WHITE);
        c.text(len + 3 * small, y + 3, &pct, small, WHITE);
    }
    for f in faces {
        let inside = centre_in(f.bbox, zpx);
        let col = if inside { INSIDE } else { OUTSIDE };
        let b = f.bbox.map(|v| v.round() as i64);
        c.rect([b[0], b[1], b[2], b[3]], (small * 2).max(2), col);
        let tag = format!("{:.2}{}", f.score, if inside { "" } else { " OUT" });
        c.text(b[0], b[3] + 2 * small, &tag, small, col);
    }
    // Border centred on the zone's edge (clamped to the frame), drawn last so nothing covers it.
    let t = (w.min(h) as i64 / 120).max(3);
    let half = t / 2;
    let outer = [
        (zx0 - half).max(0),
        (zy0 - half).max(0),
        (zx1 + t - half).min(wi),
        (zy1 + t - half).min(hi),
    ];
    c.rect(outer, t, ZONE_COLOUR);
    let mut scale = (h as i64 / 240).max(2);
    while scale > 1 && Canvas::text_width(label, scale) > wi - 4 {
        scale -= 1;
    }
    let lx = (zx0 + t + 4)
        .min(wi - Canvas::text_width(label, scale) - 2)
        .max(2);
    c.text(lx, zy0 + t + 2 * tick, label, scale, ZONE_COLOUR);
}

pub fn run(o: Args) -> Result<()> {
    let mut frame = match (&o.video, &o.image) {
        (Some(v), None) => frame_at(v, o.at)?,
        (None, Some(i)) => load_image(i)?,
        _ => bail!("give exactly one of --video FILE or --image FILE"),
    };
    if frame.w == 0 || frame.h == 0 {
        bail!("empty frame");
    }
    let (zone, from) = match (&o.zone, &o.config) {
        (Some(z), _) => (parse_zone(z)?, "--zone".to_owned()),
        (None, Some(cfg)) => match station_toml::read_lane_zone(cfg, &o.lane)? {
            Some(z) => {
                check_zone(&z).with_context(|| format!("{}: lane {}", cfg.display(), o.lane))?;
                (z, format!("{} lane {}", cfg.display(), o.lane))
            }
            None => (
                [0.0, 0.0, 1.0, 1.0],
                format!("{} lane {} (no zone: whole frame)", cfg.display(), o.lane),
            ),
        },
        (None, None) => ([0.0, 0.0, 1.0, 1.0], "default: whole frame".to_owned()),
    };
    if o.write.is_some() && o.zone.is_none() {
        bail!("--write stores the --zone given; pass --zone x0,y0,x1,y1");
    }
    let mut marked = Vec::new();
    if o.faces {
        let pipe = FaceChain::load(&o.models)?;
        let img = Rgb {
            rgb: &frame.rgb,
            w: frame.w,
            h: frame.h,
        };
        let mut found = pipe.detect_back(img)?;
        found.extend(pipe.detect_front(img)?);
        let mut dets: Vec<Marked> = Vec::new();
        // Both detectors often find the same face; keep the stronger of overlapping boxes.
        found.sort_by(|a, b| b.score.total_cmp(&a.score));
        for d in found {
            let bbox = d.corners();
            if !dets.iter().any(|m| iou(m.bbox, bbox) > 0.3) {
                dets.push(Marked {
                    bbox,
                    score: d.score,
                });
            }
        }
        marked = dets;
    }
    let label = format!(
        "{} ZONE {:.2},{:.2} - {:.2},{:.2}",
        o.lane, zone[0], zone[1], zone[2], zone[3]
    );
    draw(&mut frame.rgb, frame.w, frame.h, zone, &label, &marked);
    let img = image::RgbImage::from_raw(frame.w as u32, frame.h as u32, frame.rgb)
        .ok_or_else(|| anyhow!("frame buffer does not match {}x{}", frame.w, frame.h))?;
    img.save_with_format(&o.out, image::ImageFormat::Png)
        .with_context(|| format!("writing {}", o.out.display()))?;
    let when = frame
        .pts_s
        .map(|t| format!(" frame {} at {t:.2} s,", frame.index))
        .unwrap_or_default();
    println!(
        "lane {}: zone [{}, {}, {}, {}] ({from});{when} {}x{} → {}",
        o.lane,
        zone[0],
        zone[1],
        zone[2],
        zone[3],
        frame.w,
        frame.h,
        o.out.display()
    );
    let zpx = [
        zone[0] * frame.w as f64,
        zone[1] * frame.h as f64,
        zone[2] * frame.w as f64,
        zone[3] * frame.h as f64,
    ];
    for m in &marked {
        let [x0, y0, x1, y1] = m.bbox;
        println!(
            "  face score {:.2} box ({x0:.0},{y0:.0})-({x1:.0},{y1:.0}) {}",
            m.score,
            if centre_in(m.bbox, zpx) {
                "inside the zone"
            } else {
                "OUTSIDE the zone"
            }
        );
    }
    if o.faces && marked.is_empty() {
        println!("  no face found in this frame");
    }
    if let Some(station) = &o.write {
        let backup = station_toml::write(
            station,
            &[Edit::new(
                Section::Lane(o.lane.clone()),
                "zone",
                Val::Floats(zone.to_vec()),
            )],
        )?;
        println!(
            "wrote lane {} zone to {} (previous file kept as {})",
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

    #[test]
    fn border_has_the_zone_colour_and_centre_is_untouched() {
        let (w, h) = (200usize, 100usize);
        let mut rgb = vec![128u8; w * h * 3];
        draw(&mut rgb, w, h, [0.2, 0.1, 0.8, 0.9], "L1", &[]);
        let px = |x: usize, y: usize| {
            let i = (y * w + x) * 3;
            [rgb[i], rgb[i + 1], rgb[i + 2]]
        };
        assert_eq!(px(40, 50), ZONE_COLOUR);
        assert_eq!(px(160, 50), ZONE_COLOUR);
        assert_eq!(px(100, 10), ZONE_COLOUR);
        // Outside is darkened, a spot inside the zone away from grid and label is not.
        assert!(px(5, 45)[0] < 100);
        assert_eq!(px(73, 62), [128, 128, 128]);
    }

    #[test]
    fn whole_frame_zone_stays_inside_the_frame() {
        let (w, h) = (64usize, 48usize);
        let mut rgb = vec![0u8; w * h * 3];
        draw(&mut rgb, w, h, [0.0, 0.0, 1.0, 1.0], "L1", &[]);
        let i = ((h - 1) * w + (w - 1)) * 3;
        assert_eq!(rgb[i..i + 3], ZONE_COLOUR);
    }
}
