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

/// Decodes an image file of any format the image crate reads, to RGB8, upright: its EXIF
/// orientation applied, as a phone's photo is shown (and as OpenCV's `imread` reads it, which
/// upstream PAD's samples rely on: they are stored sideways with orientation 6).
pub fn decode(path: &Path) -> Result<image::RgbImage> {
    // Content sniffing, not the extension: the Yale set's files have none (`subject01.happy`).
    let decoding = || format!("decoding {}", path.display());
    let mut decoder = image::ImageReader::open(path)
        .and_then(|r| r.with_guessed_format())
        .with_context(|| format!("reading {}", path.display()))?
        .into_decoder()
        .with_context(decoding)?;
    let orientation = image::ImageDecoder::orientation(&mut decoder).with_context(decoding)?;
    let mut img = image::DynamicImage::from_decoder(decoder).with_context(decoding)?;
    img.apply_orientation(orientation);
    Ok(img.to_rgb8())
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

#[cfg(test)]
mod tests {
    use super::*;
    use image::ImageEncoder;

    /// A photo stored sideways with EXIF orientation 6 (turn 90° clockwise to show), as phones
    /// write them and as upstream PAD's samples are, is read upright.
    #[test]
    fn a_photo_stored_sideways_is_read_upright() {
        // Stored 32×16: left half red, right half blue.
        let (w, h) = (32u32, 16u32);
        let stored = image::RgbImage::from_fn(w, h, |x, _| {
            if x < w / 2 {
                image::Rgb([255, 0, 0])
            } else {
                image::Rgb([0, 0, 255])
            }
        });
        // TIFF, little-endian: one IFD entry, Orientation (0x0112) SHORT 1 = 6.
        let mut exif = b"II*\0".to_vec();
        exif.extend_from_slice(&8u32.to_le_bytes());
        exif.extend_from_slice(&1u16.to_le_bytes());
        exif.extend_from_slice(&[0x12, 0x01, 3, 0, 1, 0, 0, 0, 6, 0, 0, 0]);
        exif.extend_from_slice(&0u32.to_le_bytes());
        let mut jpeg = Vec::new();
        let mut enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 95);
        enc.set_exif_metadata(exif).unwrap();
        enc.write_image(stored.as_raw(), w, h, image::ExtendedColorType::Rgb8)
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sideways.jpg");
        std::fs::write(&path, &jpeg).unwrap();
        let upright = decode(&path).unwrap();
        // Turned clockwise: the stored left half is now the top half.
        assert_eq!(upright.dimensions(), (h, w));
        let (top, bottom) = (upright.get_pixel(h / 2, 4), upright.get_pixel(h / 2, w - 4));
        assert!(top[0] > 200 && top[2] < 60, "{top:?}");
        assert!(bottom[2] > 200 && bottom[0] < 60, "{bottom:?}");
    }
}
