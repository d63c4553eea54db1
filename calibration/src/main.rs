//! gate-calibrate: numbers a station engineer decides with.
//!
//! - `eval`: verification accuracy of the station's face chain (BlazeFace → 4-point alignment → SFace)
//!   on a labelled photo folder (`labels.csv`: path,identity) or a pairs file — genuine/impostor cosine
//!   distributions, EER, FNMR at fixed FMR, detection rate, DET/ROC plots (`--plots`), 10-fold
//!   accuracy with a pairs file; with `--landmarks`, the same SFace on chips
//!   aligned from reference (dlib) landmarks, side by side.
//! - `keypoints`: BlazeFace keypoint error against reference landmarks and the least-squares 4-point
//!   template (detection only).
//! - `detect`: per-frame face counts on a clip (GIF, video file or frame folder), optionally against
//!   dlib's boxes.
//! - `bench`: SFace throughput of the engine's CPU reference on chips from a `.npy` file.
//! - `footage`: recorded multi-lane walk-through footage (H.264 MP4 per lane) with ground truth.
//! - `identify`: 1:N identification (FNIR/FPIR) on a labelled folder, and the threshold, margin and
//!   fusion depth a gallery of N people needs for a target FPIR.
//! - `pad`: presentation-attack detection, APCER per species and BPCER (ISO/IEC 30107-3).
//! - `lane`, `lighting`: lane zone check and lighting setpoints, written back with `--write`.

mod bench;
mod clip;
mod eval;
mod footage;
mod fuse;
mod identify;
mod keypoints;
mod lane;
mod lane_draw;
mod lighting;
mod mask;
mod npy;
mod pad;
mod pad_journal;
mod photo;
mod plot;
mod refmarks;
mod scores;
mod select;
mod station_toml;

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "gate-calibrate",
    version,
    about = "Accuracy evaluation and calibration for the face gate"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

/// Which photos of a set, and how they are prepared.
#[derive(Args)]
struct Selection {
    /// Use at most this many photos per identity (first by path, after --skip-per-identity).
    #[arg(long)]
    per_identity: Option<usize>,
    /// Leave out the first N photos (by path) of every identity: e.g. derive on the photos that
    /// `--per-identity N` evaluation leaves unused.
    #[arg(long, default_value_t = 0)]
    skip_per_identity: usize,
    /// Border added around each photo, as a fraction of its larger side (tightly cropped sets need it).
    #[arg(long, default_value_t = 0.5)]
    pad: f32,
    /// Folder with the ONNX models (default: $GATE_MODELS, else the workspace's models/).
    #[arg(long, default_value_os_t = engine::face::models_dir())]
    models: PathBuf,
    /// Also write the result as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Genuine/impostor scores, EER and FNMR@FMR on a labelled folder (labels.csv) or a pairs file.
    Eval {
        /// Folder with labels.csv (path,identity; paths relative to the folder).
        #[arg(long)]
        set: PathBuf,
        /// Pairs CSV (file_x,file_y,Decision with Yes/No), file names relative to <set>/images.
        #[arg(long)]
        pairs: Option<PathBuf>,
        #[command(flatten)]
        sel: Selection,
        /// Reference landmarks (benches/peers/dlib_landmarks.py CSV): also embed chips aligned from
        /// them (5 points onto the ArcFace template) and compare on the photos both found a face in.
        #[arg(long)]
        landmarks: Option<PathBuf>,
        /// An alternative 4-point template for BlazeFace's eyes, nose, mouth centre
        /// ("x0,y0,…,x3,y3", chip pixels), evaluated beside TEMPLATE_4.
        #[arg(long)]
        template4: Option<String>,
        /// Write the BlazeFace-aligned chips as a float32 .npy (N×3×112×112, 0–255) for the peers.
        #[arg(long)]
        dump_chips: Option<PathBuf>,
        /// Write det.png, det.svg, roc.png, roc.svg (DET and ROC curves) into this folder.
        #[arg(long)]
        plots: Option<PathBuf>,
        /// Also score flip-averaged embeddings (each chip and its mirror averaged): on both
        /// photos of a pair, and on the first only (a flipped enrolment template against a plain
        /// gate probe). One more SFace chip per photo.
        #[arg(long)]
        flip: bool,
        /// Refine each face's keypoints with the short-range (front-128) model on a crop around
        /// it before aligning (faces at least 64 px wide; issue 19's sharper alignment).
        #[arg(long)]
        refine: bool,
        /// Also score embeddings averaged over N photos of a person (each identity's photos cut
        /// into groups of N): one photo, an N-photo template against one photo, and N on both
        /// sides, over the same groups (enrolment's templates, the station's `mean` fusion).
        #[arg(long)]
        fuse: Option<usize>,
        /// Also score a masked variant of every photo: a mask of this colour (blue, white, black)
        /// drawn from the face's keypoints, the face detected again on the masked photo. Rows for
        /// masked probes against plain templates ("one side") and masked on both.
        #[arg(long)]
        mask: Option<String>,
        /// The station's per-frame threshold T: the verdict (first line) gives FMR and FNMR at T,
        /// and the DET plot marks it.
        #[arg(long, conflicts_with = "station")]
        threshold: Option<f32>,
        /// Take T from this station file's `[decision] threshold`.
        #[arg(long)]
        station: Option<PathBuf>,
    },
    /// BlazeFace keypoint error vs reference landmarks, and the least-squares 4-point template.
    Keypoints {
        /// Folder with labels.csv; repeat, one --landmarks each.
        #[arg(long, required = true)]
        set: Vec<PathBuf>,
        /// dlib_landmarks.py CSV for the --set at the same position.
        #[arg(long, required = true)]
        landmarks: Vec<PathBuf>,
        #[command(flatten)]
        sel: Selection,
    },
    /// Per-frame face counts on a clip (animated GIF, video file, or a folder of PNG/JPEG frames).
    Detect {
        #[arg(long)]
        clip: PathBuf,
        /// Reference faces (benches/peers/dlib_clip.py CSV: frame,left,top,right,bottom).
        #[arg(long)]
        reference: Option<PathBuf>,
        #[arg(long, default_value_t = 0.5)]
        min_score: f32,
        /// Write every frame with the boxes drawn (red back-256, green front-128, yellow reference).
        #[arg(long)]
        dump_frames: Option<PathBuf>,
        /// Folder with the ONNX models (default: $GATE_MODELS, else the workspace's models/).
        #[arg(long, default_value_os_t = engine::face::models_dir())]
        models: PathBuf,
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// SFace throughput of the CPU reference (JSON lines: peer, batch, items_per_s, threads).
    Bench {
        /// float32 .npy of chips, N×3×112×112 (e.g. from `eval --dump-chips`).
        #[arg(long)]
        chips: PathBuf,
        #[arg(long, value_delimiter = ',', default_value = "1,8,32")]
        batch: Vec<usize>,
        /// Repeat each batch size for at least this long.
        #[arg(long, default_value_t = 3.0)]
        min_seconds: f64,
        /// Folder with the ONNX models (default: $GATE_MODELS, else the workspace's models/).
        #[arg(long, default_value_os_t = engine::face::models_dir())]
        models: PathBuf,
    },
    /// Multi-lane walk-through footage (MP4 per lane) with ground truth (truth.json).
    Footage(footage::Args),
    /// Draw a lane's zone (and the faces found) on one of its frames; --write stores the zone.
    Lane(lane::Args),
    /// Face luma per lighting scenario, [lighting]/[normalise] setpoints, FNMR before/after.
    Lighting(lighting::Args),
    /// 1:N identification: FNIR/FPIR on a labelled folder and the T, margin, fusion depth to use.
    Identify(identify::Args),
    /// Presentation-attack detection: APCER per attack species and BPCER at the threshold.
    Pad(pad::Args),
}

fn main() -> Result<()> {
    match Cli::parse().cmd {
        Cmd::Eval {
            set,
            pairs,
            sel,
            landmarks,
            template4,
            dump_chips,
            plots,
            flip,
            refine,
            fuse,
            mask,
            threshold,
            station,
        } => eval::run(eval::Options {
            threshold: match (threshold, station) {
                (Some(t), _) => Some(t),
                (None, Some(path)) => Some(
                    station_toml::read_number(&path, "decision", "threshold")?.with_context(
                        || {
                            format!(
                                "--station {}: no [decision] threshold in it",
                                path.display()
                            )
                        },
                    )? as f32,
                ),
                (None, None) => None,
            },
            set,
            pairs,
            skip_per_identity: sel.skip_per_identity,
            per_identity: sel.per_identity,
            pad: sel.pad,
            models: sel.models,
            json: sel.json,
            landmarks,
            template4: template4
                .as_deref()
                .map(refmarks::parse_template)
                .transpose()?,
            dump_chips,
            plots,
            flip,
            refine,
            fuse,
            mask: mask
                .map(|m| {
                    mask::style(&m)
                        .map(|c| (m.clone(), c))
                        .with_context(|| format!("--mask {m}: not one of blue, white, black"))
                })
                .transpose()?,
        }),
        Cmd::Keypoints {
            set,
            landmarks,
            sel,
        } => keypoints::run(keypoints::Options {
            sets: set,
            landmarks,
            skip_per_identity: sel.skip_per_identity,
            per_identity: sel.per_identity,
            pad: sel.pad,
            models: sel.models,
            json: sel.json,
        }),
        Cmd::Detect {
            clip,
            reference,
            min_score,
            dump_frames,
            models,
            json,
        } => clip::run(clip::Options {
            clip,
            models,
            reference,
            min_score,
            dump_frames,
            json,
        }),
        Cmd::Bench {
            chips,
            batch,
            min_seconds,
            models,
        } => bench::run(&models, &chips, &batch, min_seconds),
        Cmd::Footage(args) => footage::run(args),
        Cmd::Lane(args) => lane::run(args),
        Cmd::Lighting(args) => lighting::run(args),
        Cmd::Identify(args) => identify::run(args),
        Cmd::Pad(args) => pad::run(args),
    }
}
