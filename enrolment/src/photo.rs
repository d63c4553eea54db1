//! Bounded decoding of enrolment photos (JPEG or PNG).
//!
//! Everything untrusted is checked before the pixels are allocated: the container is sniffed from its
//! magic bytes (never from a file name or content type), the dimensions are read from the header and
//! refused above [`DecodeLimits::max_pixels`], a file whose end marker is missing is refused as
//! truncated, and the decoder itself runs under `image::Limits`. The worst case memory of one decode is
//! therefore about `max_pixels` × 8 bytes (16-bit RGBA PNG) plus the 3-byte RGB copy.

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits};
use zeroize::Zeroizing;

/// What the decoder may allocate.
#[derive(Debug, Clone, Copy)]
pub struct DecodeLimits {
    /// Largest accepted `width × height`.
    pub max_pixels: u64,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        Self {
            max_pixels: 40_000_000,
        }
    }
}

/// Why a photo could not be decoded. Each has its own reason code (`quality::Reason`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhotoError {
    #[error("not a JPEG or PNG file")]
    UnsupportedFormat,
    #[error("the {format} file is truncated (its end marker is missing)")]
    Truncated { format: &'static str },
    #[error("{width}×{height} pixels is more than the {max} pixels accepted")]
    TooManyPixels { width: u32, height: u32, max: u64 },
    #[error("the {format} file could not be decoded: {detail}")]
    Corrupt {
        format: &'static str,
        detail: String,
    },
}

/// A decoded photo: RGB8, rows top-down, EXIF orientation applied. The pixels are zeroized on drop.
pub struct RgbPhoto {
    pub rgb: Zeroizing<Vec<u8>>,
    pub w: usize,
    pub h: usize,
}

impl RgbPhoto {
    /// The pixels as the face chain reads them.
    pub fn view(&self) -> engine::face::Rgb<'_> {
        engine::face::Rgb {
            rgb: &self.rgb,
            w: self.w,
            h: self.h,
        }
    }
}

const PNG_MAGIC: &[u8] = b"\x89PNG\r\n\x1a\n";
const PNG_IEND: &[u8] = b"\0\0\0\0IEND\xae\x42\x60\x82";

/// The container, from the magic bytes.
pub fn sniff(bytes: &[u8]) -> Option<ImageFormat> {
    if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
        Some(ImageFormat::Jpeg)
    } else if bytes.starts_with(PNG_MAGIC) {
        Some(ImageFormat::Png)
    } else {
        None
    }
}

fn format_name(f: ImageFormat) -> &'static str {
    match f {
        ImageFormat::Png => "PNG",
        _ => "JPEG",
    }
}

/// True when the file has its end marker: PNG's `IEND` chunk, JPEG's `EOI` (`FF D9`). Trailing bytes
/// after the marker are tolerated for JPEG (cameras append trailers, e.g. motion photos), so for JPEG
/// the test is "an EOI marker after the last start-of-scan", which a file cut inside its scan data
/// fails.
fn has_end_marker(format: ImageFormat, bytes: &[u8]) -> bool {
    match format {
        ImageFormat::Png => bytes
            .windows(PNG_IEND.len())
            .rev()
            .take(4096)
            .any(|w| w == PNG_IEND),
        _ => {
            // Last SOS (FF DA) of the main image, then an EOI (FF D9) after it. Inside entropy-coded
            // data a literal FF is always followed by 00 (byte stuffing) or a restart marker, so
            // neither marker can appear there by accident.
            let sos = bytes.windows(2).rposition(|w| w == [0xff, 0xda]);
            match sos {
                Some(at) => bytes[at..].windows(2).any(|w| w == [0xff, 0xd9]),
                None => false,
            }
        }
    }
}

fn classify(format: ImageFormat, e: image::ImageError) -> PhotoError {
    let name = format_name(format);
    let eof = match &e {
        image::ImageError::IoError(io) => io.kind() == std::io::ErrorKind::UnexpectedEof,
        other => {
            let s = other.to_string().to_ascii_lowercase();
            [
                "eof",
                "end of file",
                "truncat",
                "not enough bytes",
                "unexpected end",
            ]
            .iter()
            .any(|m| s.contains(m))
        }
    };
    if eof {
        PhotoError::Truncated { format: name }
    } else {
        PhotoError::Corrupt {
            format: name,
            detail: e.to_string(),
        }
    }
}

/// Reads the dimensions from the header only.
pub fn dimensions(bytes: &[u8]) -> Result<(ImageFormat, u32, u32), PhotoError> {
    let format = sniff(bytes).ok_or(PhotoError::UnsupportedFormat)?;
    // PNG: the IHDR chunk must come first and holds the size; the `png` crate wants to see more of
    // the file before it reports it, so read it here (a header-only file still gets its size checked).
    if format == ImageFormat::Png {
        return match bytes.get(12..24) {
            Some([b'I', b'H', b'D', b'R', w @ ..]) if w.len() == 8 => {
                let w32 = u32::from_be_bytes([w[0], w[1], w[2], w[3]]);
                let h32 = u32::from_be_bytes([w[4], w[5], w[6], w[7]]);
                Ok((format, w32, h32))
            }
            Some(_) => Err(PhotoError::Corrupt {
                format: "PNG",
                detail: "the first chunk is not IHDR".into(),
            }),
            None => Err(PhotoError::Truncated { format: "PNG" }),
        };
    }
    let (w, h) = ImageReader::with_format(Cursor::new(bytes), format)
        .into_dimensions()
        .map_err(|e| classify(format, e))?;
    Ok((format, w, h))
}

/// Decodes a photo within `limits`. Never panics on hostile input; see the module docs for the order
/// of the checks.
pub fn decode(bytes: &[u8], limits: DecodeLimits) -> Result<RgbPhoto, PhotoError> {
    let (format, width, height) = dimensions(bytes)?;
    let pixels = u64::from(width) * u64::from(height);
    if pixels > limits.max_pixels || width == 0 || height == 0 {
        return Err(PhotoError::TooManyPixels {
            width,
            height,
            max: limits.max_pixels,
        });
    }
    if !has_end_marker(format, bytes) {
        return Err(PhotoError::Truncated {
            format: format_name(format),
        });
    }
    let mut l = Limits::default();
    let side = u32::try_from(limits.max_pixels).unwrap_or(u32::MAX);
    l.max_image_width = Some(side);
    l.max_image_height = Some(side);
    l.max_alloc = Some(limits.max_pixels.saturating_mul(8).saturating_add(64 << 20));
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    reader.limits(l);
    let mut decoder = reader.into_decoder().map_err(|e| classify(format, e))?;
    let orientation = decoder.orientation().map_err(|e| classify(format, e))?;
    let mut img = DynamicImage::from_decoder(decoder).map_err(|e| classify(format, e))?;
    img.apply_orientation(orientation);
    let rgb = img.into_rgb8();
    let (w, h) = (rgb.width() as usize, rgb.height() as usize);
    Ok(RgbPhoto {
        rgb: Zeroizing::new(rgb.into_raw()),
        w,
        h,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(w: u32, h: u32) -> Vec<u8> {
        let img = image::RgbImage::from_pixel(w, h, image::Rgb([10, 20, 30]));
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, ImageFormat::Png).unwrap();
        out.into_inner()
    }

    fn jpeg(w: u32, h: u32) -> Vec<u8> {
        let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8, y as u8, 7]));
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, ImageFormat::Jpeg).unwrap();
        out.into_inner()
    }

    /// A PNG signature and IHDR claiming `w`×`h`, and nothing else.
    pub fn header_only_png(w: u32, h: u32) -> Vec<u8> {
        let mut v = PNG_MAGIC.to_vec();
        let mut ihdr = b"IHDR".to_vec();
        ihdr.extend_from_slice(&w.to_be_bytes());
        ihdr.extend_from_slice(&h.to_be_bytes());
        ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
        v.extend_from_slice(&13u32.to_be_bytes());
        v.extend_from_slice(&ihdr);
        v.extend_from_slice(&crc32(&ihdr).to_be_bytes());
        v
    }

    fn crc32(data: &[u8]) -> u32 {
        let mut c = 0xffff_ffffu32;
        for &b in data {
            c ^= u32::from(b);
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0xedb8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
        }
        !c
    }

    #[test]
    fn decodes_small_images() {
        let p = decode(&png(7, 5), DecodeLimits::default()).unwrap();
        assert_eq!((p.w, p.h, p.rgb.len()), (7, 5, 105));
        assert_eq!(&p.rgb[..3], &[10, 20, 30]);
        let j = decode(&jpeg(64, 48), DecodeLimits::default()).unwrap();
        assert_eq!((j.w, j.h), (64, 48));
    }

    #[test]
    fn hostile_inputs_get_their_own_reason() {
        let l = DecodeLimits::default();
        assert_eq!(decode(b"", l).err(), Some(PhotoError::UnsupportedFormat));
        assert_eq!(
            decode(&[0x42; 1000], l).err(),
            Some(PhotoError::UnsupportedFormat)
        );
        assert!(matches!(
            decode(&header_only_png(30000, 30000), l),
            Err(PhotoError::TooManyPixels {
                width: 30000,
                height: 30000,
                ..
            })
        ));
        // Small header-only PNG: passes the size check, then is truncated.
        assert!(matches!(
            decode(&header_only_png(10, 10), l),
            Err(PhotoError::Truncated { format: "PNG" })
        ));
        let j = jpeg(64, 48);
        for cut in [3, 20, j.len() / 2, j.len() - 2] {
            let e = decode(&j[..cut], l).err();
            assert!(
                matches!(e, Some(PhotoError::Truncated { .. })),
                "cut at {cut}: {e:?}"
            );
        }
        let p = png(30, 30);
        let e = decode(&p[..p.len() - 13], l).err();
        assert!(matches!(e, Some(PhotoError::Truncated { .. })), "{e:?}");
        // Valid markers, garbage in between: JPEG's decoder conceals damaged scan data (no error, no
        // panic; the quality checks judge the result); PNG's chunk CRCs catch it.
        let mut bad = j.clone();
        let mid = bad.len() / 3;
        bad[mid..mid + 40].fill(0xff);
        let _ = decode(&bad, l);
        let mut bad = png(64, 64);
        let mid = bad.len() / 2;
        bad[mid..mid + 8].fill(0x55);
        let e = decode(&bad, l).err();
        assert!(matches!(e, Some(PhotoError::Corrupt { .. })), "{e:?}");
    }
}
