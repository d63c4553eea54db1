//! Dataset photos for the face chain (`engine::face::FaceChain`, the one chain enrolment, the demo
//! centre and the benchmarks use too).
//!
//! Calibration reads trusted datasets on the engineer's disk in whatever format the image crate
//! reads (the Yale set's files have no extension, some sets are PGM or GIF), so it decodes here
//! rather than through enrolment's bounded, JPEG/PNG-only decoder for untrusted uploads
//! (`enrolment::photo`). And it pads: tightly cropped face sets (AT&T, Yale) show faces far larger
//! than any gate camera, and the detectors need context.

use std::path::Path;

use anyhow::{Context, Result};
use engine::face::Rgb;

/// Decodes an image file of any format the image crate reads, to RGB8.
pub fn decode(path: &Path) -> Result<image::RgbImage> {
    // Content sniffing, not the extension: the Yale set's files have none (`subject01.happy`).
    Ok(image::ImageReader::open(path)
        .and_then(|r| r.with_guessed_format())
        .with_context(|| format!("reading {}", path.display()))?
        .decode()
        .with_context(|| format!("decoding {}", path.display()))?
        .to_rgb8())
}

/// A decoded photo with its black border: RGB8, `w`×`h`, the original at (`border`, `border`).
pub struct Photo {
    pub rgb: Vec<u8>,
    pub w: usize,
    pub h: usize,
    pub border: usize,
}

impl Photo {
    /// Pads an RGB8 image (`w0`×`h0`) by `border` black pixels on every side.
    pub fn padded(raw: &[u8], w0: usize, h0: usize, border: usize) -> Photo {
        let (w, h) = (w0 + 2 * border, h0 + 2 * border);
        let mut rgb = vec![0u8; w * h * 3];
        if w0 > 0 {
            for (y, row) in raw.chunks_exact(w0 * 3).take(h0).enumerate() {
                let at = ((y + border) * w + border) * 3;
                rgb[at..at + w0 * 3].copy_from_slice(row);
            }
        }
        Photo { rgb, w, h, border }
    }

    /// Decodes a photo and adds a border of `pad` × its larger side.
    pub fn load(path: &Path, pad: f32) -> Result<Photo> {
        let img = decode(path)?;
        let (w0, h0) = (img.width() as usize, img.height() as usize);
        let border = (w0.max(h0) as f32 * pad) as usize;
        Ok(Photo::padded(img.as_raw(), w0, h0, border))
    }

    /// The pixels as the face chain reads them.
    pub fn view(&self) -> Rgb<'_> {
        Rgb {
            rgb: &self.rgb,
            w: self.w,
            h: self.h,
        }
    }
}
