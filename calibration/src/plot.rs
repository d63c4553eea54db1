//! DET and ROC curves as PNG and SVG (plotters). Text is set in DejaVu Sans embedded by the `dejavu`
//! crate through plotters' ab_glyph backend, so no system font or fontconfig is needed; the PNG is
//! encoded by our own `image` crate.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{Context, Result, anyhow};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

use crate::scores::{Eer, OperatingPoint};

const SIZE: (u32, u32) = (900, 700);
const FONT: &str = "sans-serif";

/// One curve on log axes.
struct Chart<'a> {
    title: &'a str,
    x_desc: &'a str,
    y_desc: &'a str,
    x: (f64, f64),
    y: (f64, f64),
    y_log: bool,
    points: Vec<(f64, f64)>,
    /// Marked points (the EER, the station's threshold), each with its label and colour.
    marks: Vec<((f64, f64), String, RGBColor)>,
    /// A dotted reference line (the DET's FMR = FNMR diagonal).
    diagonal: bool,
    note: String,
}

fn font() -> Result<()> {
    static DONE: OnceLock<bool> = OnceLock::new();
    let ok = *DONE
        .get_or_init(|| register_font(FONT, FontStyle::Normal, dejavu::sans::regular()).is_ok());
    ok.then_some(())
        .ok_or_else(|| anyhow!("the embedded DejaVu Sans font was rejected by ab_glyph"))
}

/// The decade at or below `v`.
fn decade_floor(v: f64) -> f64 {
    10f64.powf(v.log10().floor())
}

/// Drops points that would land within a fraction of a pixel of the last kept one (in log space):
/// the 80 000 thresholds of a set would otherwise make a multi-megabyte SVG of invisible steps.
fn thin(points: &[(f64, f64)], x: (f64, f64), y: (f64, f64), y_log: bool) -> Vec<(f64, f64)> {
    let lx = |v: f64| v.log10();
    let ly = |v: f64| if y_log { v.log10() } else { v };
    let dx = (lx(x.1) - lx(x.0)) / 2000.0;
    let dy = (ly(y.1) - ly(y.0)) / 2000.0;
    let mut out: Vec<(f64, f64)> = Vec::new();
    for (k, &p) in points.iter().enumerate() {
        let keep = match out.last() {
            None => true,
            Some(&q) => {
                k + 1 == points.len()
                    || (lx(p.0) - lx(q.0)).abs() > dx
                    || (ly(p.1) - ly(q.1)).abs() > dy
            }
        };
        if keep {
            out.push(p);
        }
    }
    out
}

fn draw<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, c: &Chart) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow!("drawing {}: {e:?}", c.title);
    root.fill(&WHITE).map_err(e)?;
    let mut b = ChartBuilder::on(&root);
    b.caption(c.title, (FONT, 24))
        .margin(20)
        .x_label_area_size(55)
        .y_label_area_size(75);
    let x_fmt = |v: &f64| format!("{v:.0e}");
    let mut xy: Vec<(f64, f64)> = c.points.clone();
    // The same drawing code for both y scales: a log chart, or a linear one.
    if c.y_log {
        let mut ch = b
            .build_cartesian_2d((c.x.0..c.x.1).log_scale(), (c.y.0..c.y.1).log_scale())
            .map_err(e)?;
        ch.configure_mesh()
            .x_desc(c.x_desc)
            .y_desc(c.y_desc)
            .x_label_formatter(&x_fmt)
            .y_label_formatter(&x_fmt)
            .label_style((FONT, 15))
            .axis_desc_style((FONT, 18))
            .draw()
            .map_err(e)?;
        if c.diagonal {
            let lo = c.x.0.max(c.y.0);
            let hi = c.x.1.min(c.y.1);
            ch.draw_series(LineSeries::new([(lo, lo), (hi, hi)], BLACK.mix(0.3)))
                .map_err(e)?;
        }
        ch.draw_series(LineSeries::new(xy.drain(..), BLUE.stroke_width(2)))
            .map_err(e)?;
        for (p, label, colour) in &c.marks {
            ch.draw_series([Circle::new(*p, 6, colour.stroke_width(2))])
                .map_err(e)?;
            ch.draw_series([Text::new(label.clone(), *p, (FONT, 16).into_font())])
                .map_err(e)?;
        }
    } else {
        let mut ch = b
            .build_cartesian_2d((c.x.0..c.x.1).log_scale(), c.y.0..c.y.1)
            .map_err(e)?;
        ch.configure_mesh()
            .x_desc(c.x_desc)
            .y_desc(c.y_desc)
            .x_label_formatter(&x_fmt)
            .y_label_formatter(&|v: &f64| format!("{v:.2}"))
            .label_style((FONT, 15))
            .axis_desc_style((FONT, 18))
            .draw()
            .map_err(e)?;
        ch.draw_series(LineSeries::new(xy.drain(..), BLUE.stroke_width(2)))
            .map_err(e)?;
    }
    root.draw(&Text::new(
        c.note.clone(),
        (90, SIZE.1 as i32 - 18),
        (FONT, 13).into_font(),
    ))
    .map_err(e)?;
    root.present().map_err(e)?;
    Ok(())
}

fn write_both(dir: &Path, stem: &str, c: &Chart) -> Result<[PathBuf; 2]> {
    let png = dir.join(format!("{stem}.png"));
    let svg = dir.join(format!("{stem}.svg"));
    let mut rgb = vec![0u8; (SIZE.0 * SIZE.1 * 3) as usize];
    draw(
        BitMapBackend::with_buffer(&mut rgb, SIZE).into_drawing_area(),
        c,
    )?;
    image::RgbImage::from_raw(SIZE.0, SIZE.1, rgb)
        .ok_or_else(|| anyhow!("{stem}: bitmap size mismatch"))?
        .save_with_format(&png, image::ImageFormat::Png)
        .with_context(|| format!("writing {}", png.display()))?;
    let mut text = String::new();
    draw(
        SVGBackend::with_string(&mut text, SIZE).into_drawing_area(),
        c,
    )?;
    std::fs::write(&svg, text).with_context(|| format!("writing {}", svg.display()))?;
    Ok([png, svg])
}

/// Writes det.png, det.svg, roc.png and roc.svg into `dir` (created if missing). Rates of 0 cannot
/// sit on a log axis: they are drawn on the axis floor, half a sample below the smallest measurable
/// rate (1/#impostor scores on x, 1/#genuine on y), as the notes under the charts say. The DET marks
/// the EER and, when given, the station's threshold `(T, FMR, FNMR)`.
pub fn det_roc(
    dir: &Path,
    set: &str,
    curve: &[OperatingPoint],
    n_genuine: usize,
    n_impostor: usize,
    eer: Option<Eer>,
    station: Option<(f32, f64, f64)>,
) -> Result<Vec<PathBuf>> {
    if curve.is_empty() || n_genuine == 0 || n_impostor == 0 {
        anyhow::bail!("--plots: no genuine or no impostor scores to draw");
    }
    font()?;
    std::fs::create_dir_all(dir).with_context(|| format!("--plots: creating {}", dir.display()))?;
    let x0 = decade_floor(0.5 / n_impostor as f64);
    let y0 = decade_floor(0.5 / n_genuine as f64);
    let clamp = |v: f64, lo: f64| v.max(lo);
    let note = format!(
        "{n_genuine} genuine, {n_impostor} impostor scores; a rate of 0 is drawn on the axis floor ({x0:.0e} FMR, {y0:.0e} FNMR)"
    );
    let det: Vec<(f64, f64)> = curve
        .iter()
        .map(|p| (clamp(p.fmr, x0), clamp(p.fnmr, y0)))
        .collect();
    let det_chart = Chart {
        title: &format!("DET — {set}"),
        x_desc: "false match rate (FMR)",
        y_desc: "false non-match rate (FNMR)",
        x: (x0, 1.0),
        y: (y0, 1.0),
        y_log: true,
        points: thin(&det, (x0, 1.0), (y0, 1.0), true),
        marks: eer
            .map(|e| {
                let r = clamp(e.rate, x0.max(y0));
                (
                    (r, r),
                    format!("  EER {:.2} % at {:.3}", e.rate * 100.0, e.threshold),
                    RED,
                )
            })
            .into_iter()
            .chain(station.map(|(t, fmr, fnmr)| {
                (
                    (clamp(fmr, x0), clamp(fnmr, y0)),
                    format!("  station T = {t:.3}: FNMR {:.2} %", fnmr * 100.0),
                    RGBColor(0, 140, 60),
                )
            }))
            .collect(),
        diagonal: true,
        note: note.clone(),
    };
    let roc: Vec<(f64, f64)> = curve
        .iter()
        .map(|p| (clamp(p.fmr, x0), 1.0 - p.fnmr))
        .collect();
    // Zoom the TPR axis onto where the curve is once FMR is at most 1e-1; below is uninformative.
    let low = roc
        .iter()
        .filter(|p| p.0 <= 0.1 && p.0 > x0)
        .map(|p| p.1)
        .fold(1.0f64, f64::min);
    let y_lo = ((low * 10.0).floor() / 10.0).clamp(0.0, 0.9);
    let roc_chart = Chart {
        title: &format!("ROC — {set}"),
        x_desc: "false match rate (FMR)",
        y_desc: "true match rate (1 − FNMR)",
        x: (x0, 1.0),
        y: (y_lo, 1.0),
        y_log: false,
        points: thin(&roc, (x0, 1.0), (y_lo, 1.0), false),
        marks: Vec::new(),
        diagonal: false,
        note,
    };
    let mut out = Vec::new();
    out.extend(write_both(dir, "det", &det_chart)?);
    out.extend(write_both(dir, "roc", &roc_chart)?);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scores;

    #[test]
    fn writes_decodable_png_and_well_formed_svg() {
        let g: Vec<f32> = (0..2000).map(|k| 0.4 + 0.6 * k as f32 / 2000.0).collect();
        let i: Vec<f32> = (0..20000).map(|k| 0.6 * k as f32 / 20000.0).collect();
        let c = scores::curve(&g, &i).expect("curve");
        let dir = tempfile::tempdir().expect("tempdir");
        let out = det_roc(
            dir.path(),
            "synthetic",
            &c,
            g.len(),
            i.len(),
            scores::eer(&g, &i),
            Some((0.5, scores::fmr(&i, 0.5), scores::fnmr(&g, 0.5))),
        )
        .expect("plots");
        assert_eq!(out.len(), 4);
        for stem in ["det", "roc"] {
            let png = std::fs::read(dir.path().join(format!("{stem}.png"))).expect("png");
            assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
            let img = image::load_from_memory(&png).expect("decodes").to_rgb8();
            assert_eq!(img.dimensions(), SIZE);
            // Something was drawn: not a blank page.
            assert!(img.pixels().filter(|p| p.0 != [255, 255, 255]).count() > 5000);
            let svg = std::fs::read_to_string(dir.path().join(format!("{stem}.svg"))).expect("svg");
            assert!(svg.starts_with("<svg") || svg.starts_with("<?xml"));
            assert!(svg.trim_end().ends_with("</svg>"));
            assert!(svg.contains("<text") && svg.contains("false match rate"));
            assert!(well_formed(&svg), "unbalanced tags in {stem}.svg");
        }
        assert!(det_roc(dir.path(), "x", &[], 0, 0, None, None).is_err());
    }

    /// A small well-formedness check: every element closes in order (no XML crate needed for it).
    fn well_formed(xml: &str) -> bool {
        let mut stack: Vec<String> = Vec::new();
        let mut rest = xml;
        while let Some(at) = rest.find('<') {
            rest = &rest[at + 1..];
            let Some(end) = rest.find('>') else {
                return false;
            };
            let tag = &rest[..end];
            rest = &rest[end + 1..];
            if tag.starts_with('?') || tag.starts_with('!') || tag.ends_with('/') {
                continue;
            }
            let name = |t: &str| t.split_whitespace().next().unwrap_or("").to_owned();
            if let Some(close) = tag.strip_prefix('/') {
                if stack.pop() != Some(name(close)) {
                    return false;
                }
            } else {
                stack.push(name(tag));
            }
        }
        stack.is_empty()
    }
}
