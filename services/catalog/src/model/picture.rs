//! A product's picture: bytes proven to be a PNG, JPEG or WebP picture by
//! decoding them, within bounds checked before decoding (bytes, then the
//! pixels the header declares, then what the decoder may allocate), and
//! re-encoded from the pixels alone, so nothing of the upload's metadata
//! (EXIF location, comments, colour profiles) is kept.

use std::io::Cursor;

use image::codecs::jpeg::JpegEncoder;
use image::codecs::webp::WebPEncoder;
use image::{ImageFormat, ImageReader, Limits};
use sha2::{Digest as _, Sha256};
use shop_platform::error::Invalid;

/// How big an upload may be.
#[derive(Debug, Clone, Copy)]
pub struct PictureLimits {
    pub max_bytes: usize,
    pub max_pixels: u64,
}

/// A picture ready to be stored.
#[derive(Debug, Clone)]
pub struct Picture {
    pub bytes: Vec<u8>,
    pub format: PictureFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PictureFormat {
    Png,
    Jpeg,
    WebP,
}

impl PictureFormat {
    pub fn extension(self) -> &'static str {
        match self {
            PictureFormat::Png => "png",
            PictureFormat::Jpeg => "jpg",
            PictureFormat::WebP => "webp",
        }
    }
}

const NOT_A_PICTURE: &str = "must be a PNG, JPEG or WebP picture";

/// How much larger than the upload cap a stored picture may be.
const STORED_GROWTH: usize = 4;

/// JPEG is lossy: re-encoding at this quality keeps what the eye sees.
const JPEG_QUALITY: u8 = 90;

impl Picture {
    /// The upload decoded and re-encoded in its own format, or why not.
    /// CPU-bound: run it off the async threads.
    pub fn decode(raw: &[u8], limits: PictureLimits) -> Result<Picture, Invalid> {
        if raw.len() > limits.max_bytes {
            return Err(Invalid::new(format!("must be at most {} bytes", limits.max_bytes)));
        }
        let reader =
            ImageReader::new(Cursor::new(raw)).with_guessed_format().map_err(|_| Invalid::new(NOT_A_PICTURE))?;
        let format = match reader.format() {
            Some(ImageFormat::Png) => PictureFormat::Png,
            Some(ImageFormat::Jpeg) => PictureFormat::Jpeg,
            Some(ImageFormat::WebP) => PictureFormat::WebP,
            _ => return Err(Invalid::new(NOT_A_PICTURE)),
        };
        let (width, height) = reader.into_dimensions().map_err(|_| Invalid::new(NOT_A_PICTURE))?;
        let pixels = u64::from(width) * u64::from(height);
        if pixels == 0 {
            return Err(Invalid::new(NOT_A_PICTURE));
        }
        if pixels > limits.max_pixels {
            return Err(Invalid::new(format!(
                "must have at most {} pixels (this one has {width}×{height})",
                limits.max_pixels
            )));
        }
        let mut reader =
            ImageReader::new(Cursor::new(raw)).with_guessed_format().map_err(|_| Invalid::new(NOT_A_PICTURE))?;
        let mut decoding = Limits::default();
        decoding.max_image_width = Some(width);
        decoding.max_image_height = Some(height);
        // Eight bytes a pixel is the widest layout decoded here (RGBA, 16 bits).
        decoding.max_alloc = Some(pixels.saturating_mul(8).saturating_add(1 << 20));
        reader.limits(decoding);
        let decoded = reader.decode().map_err(|_| Invalid::new(NOT_A_PICTURE))?;
        let mut out = Cursor::new(Vec::new());
        let encoded = match format {
            PictureFormat::Png => decoded.write_to(&mut out, ImageFormat::Png),
            PictureFormat::Jpeg => {
                decoded.to_rgb8().write_with_encoder(JpegEncoder::new_with_quality(&mut out, JPEG_QUALITY))
            }
            PictureFormat::WebP => {
                if decoded.color().has_alpha() {
                    decoded.to_rgba8().write_with_encoder(WebPEncoder::new_lossless(&mut out))
                } else {
                    decoded.to_rgb8().write_with_encoder(WebPEncoder::new_lossless(&mut out))
                }
            }
        };
        encoded.map_err(|_| Invalid::new(NOT_A_PICTURE))?;
        let bytes = out.into_inner();
        // WebP is re-encoded without loss: a small lossy upload can grow.
        let stored_cap = limits.max_bytes.saturating_mul(STORED_GROWTH);
        if bytes.len() > stored_cap {
            return Err(Invalid::new(format!(
                "must be at most {stored_cap} bytes once stored without loss (this one is {}); send it smaller",
                bytes.len()
            )));
        }
        Ok(Picture { bytes, format })
    }

    /// Where a product's picture is kept: its id and the digest of the
    /// stored bytes, so each version has its own key and the key's bytes
    /// never change.
    pub fn key(&self, product_id: i64) -> String {
        let digest = Sha256::digest(&self.bytes);
        let hex: String = digest[..12].iter().map(|byte| format!("{byte:02x}")).collect();
        format!("products/{product_id}/{hex}.{}", self.format.extension())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{DynamicImage, RgbImage};

    const LIMITS: PictureLimits = PictureLimits { max_bytes: 1 << 20, max_pixels: 10_000 };

    fn png(width: u32, height: u32) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        DynamicImage::ImageRgb8(RgbImage::new(width, height)).write_to(&mut out, ImageFormat::Png).unwrap();
        out.into_inner()
    }

    #[test]
    fn pictures_are_re_encoded_and_keyed_by_their_bytes() {
        let picture = Picture::decode(&png(4, 3), LIMITS).unwrap();
        assert_eq!(picture.format, PictureFormat::Png);
        let again = Picture::decode(&picture.bytes, LIMITS).unwrap();
        assert_eq!(picture.key(7), again.key(7));
        assert!(picture.key(7).starts_with("products/7/") && picture.key(7).ends_with(".png"));
        assert_ne!(picture.key(7), Picture::decode(&png(3, 4), LIMITS).unwrap().key(7));
    }

    #[test]
    fn what_is_not_a_small_picture_is_refused_before_decoding() {
        assert!(Picture::decode(b"this is not an image\n", LIMITS).is_err());
        assert!(Picture::decode(&png(4, 3)[..40], LIMITS).is_err(), "a truncated picture");
        let too_many_pixels = Picture::decode(&png(200, 100), LIMITS).unwrap_err();
        assert!(too_many_pixels.to_string().contains("at most 10000 pixels"), "{too_many_pixels}");
        let too_big = Picture::decode(&png(4, 3), PictureLimits { max_bytes: 10, max_pixels: 10_000 }).unwrap_err();
        assert!(too_big.to_string().contains("at most 10 bytes"), "{too_big}");
    }
}
