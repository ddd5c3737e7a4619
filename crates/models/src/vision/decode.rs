//! Decoding user image bytes into 8-bit RGB, refusing oversized images before
//! their pixels are allocated.

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageReader, Limits, RgbImage, RgbaImage};

use crate::{Error, Result};

/// The largest image [`decode_image`] accepts, in pixels (100 megapixels, e.g.
/// 10000×10000). A 20000×20000 image is refused from its header alone.
pub const MAX_PIXELS: u64 = 100_000_000;

/// The formats this build decodes, for error messages.
const SUPPORTED: &str = "PNG, JPEG, WebP, GIF or BMP";

/// What happens to an alpha channel when an image becomes RGB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alpha {
    /// Composite over opaque white, exactly as transformers' `convert_to_rgb`
    /// (PIL `alpha_composite` on a white background), which image processors
    /// with `do_convert_rgb` apply.
    OverWhite,
    /// Drop the alpha channel, keeping the colour underneath, as PIL's
    /// `Image.convert("RGB")` (and so transformers' `load_image`) does.
    Drop,
}

/// Decodes PNG, JPEG, WebP, GIF (first frame) or BMP bytes into 8-bit RGB,
/// refusing images over [`MAX_PIXELS`].
///
/// The EXIF orientation (JPEG, WebP) is applied, as transformers'
/// `load_image` does with `ImageOps.exif_transpose`. 16-bit images are
/// rounded to 8 bits.
pub fn decode_image(bytes: &[u8], alpha: Alpha) -> Result<RgbImage> {
    decode_image_with_limit(bytes, alpha, MAX_PIXELS)
}

/// [`decode_image`] with a caller-chosen pixel bound. Decoder allocations are
/// bounded too, to 4 bytes per allowed pixel (8-bit RGBA), so a 16-bit image
/// may be refused at half the pixel bound.
pub fn decode_image_with_limit(bytes: &[u8], alpha: Alpha, max_pixels: u64) -> Result<RgbImage> {
    if bytes.is_empty() {
        return Err(Error::Image(format!("the image is empty (0 bytes): send a {SUPPORTED} file")));
    }
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| Error::Image(format!("cannot read the image: {e}")))?;
    if reader.format().is_none() {
        return Err(Error::Image(format!("the bytes are not a recognized image (expected {SUPPORTED})")));
    }
    if reader.format() == Some(image::ImageFormat::Jpeg) && !has_jpeg_end(bytes) {
        // zune-jpeg fills a cut-off scan with grey and reports success;
        // Pillow refuses such a file ("image file is truncated"), and so do we.
        return Err(Error::Image("the JPEG is truncated: it has no end-of-image marker; send the whole file".into()));
    }
    let mut reader = reader;
    // The side bound stops a header claiming e.g. 20000×20000 before any
    // allocation; the pixel bound is checked against the header below, and
    // max_alloc caps what the codec itself allocates (zune-jpeg, png, gif
    // honour it).
    let side = u32::try_from(max_pixels).unwrap_or(u32::MAX);
    let mut limits = Limits::default();
    limits.max_image_width = Some(side);
    limits.max_image_height = Some(side);
    limits.max_alloc = Some(max_pixels.saturating_mul(4).max(1 << 20));
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(|e| image_error(e, max_pixels))?;
    let (width, height) = decoder.dimensions();
    let pixels = u64::from(width) * u64::from(height);
    if pixels > max_pixels {
        return Err(too_large(width, height, max_pixels));
    }
    if pixels == 0 {
        return Err(Error::Image(format!("the image has no pixels ({width}×{height})")));
    }
    // A malformed EXIF block is no reason to refuse the picture: keep it
    // upright as stored.
    let orientation = decoder.orientation().ok();
    let mut image = DynamicImage::from_decoder(decoder).map_err(|e| image_error(e, max_pixels))?;
    if let Some(orientation) = orientation {
        image.apply_orientation(orientation);
    }
    Ok(to_rgb(image, alpha))
}

/// Whether a JPEG ends with its end-of-image marker (FF D9), allowing some
/// trailing bytes after it as some cameras write. In entropy-coded data an FF
/// byte is always followed by 00 or a restart marker, so FF D9 is the EOI.
fn has_jpeg_end(bytes: &[u8]) -> bool {
    let tail = &bytes[bytes.len().saturating_sub(4096)..];
    tail.windows(2).any(|w| w == [0xFF, 0xD9])
}

/// Converts any decoded layout to RGB8 with the given alpha policy.
fn to_rgb(image: DynamicImage, alpha: Alpha) -> RgbImage {
    if !image.color().has_alpha() {
        return image.into_rgb8();
    }
    match alpha {
        Alpha::Drop => image.into_rgb8(),
        Alpha::OverWhite => over_white(&image.into_rgba8()),
    }
}

/// PIL's `alpha_composite(white, image)` in its own fixed-point arithmetic
/// (libImaging/AlphaComposite.c, PRECISION_BITS 7), specialised to an opaque
/// white destination so that results match bit for bit.
fn over_white(rgba: &RgbaImage) -> RgbImage {
    const SHIFT: u32 = 7;
    let (width, height) = rgba.dimensions();
    let mut out = RgbImage::new(width, height);
    for (src, dst) in rgba.pixels().zip(out.pixels_mut()) {
        let a = u32::from(src[3]);
        // With an opaque destination PIL's coef1 = a·255²·2⁷ / 255² = a·2⁷.
        let coef1 = a << SHIFT;
        let coef2 = (255 << SHIFT) - coef1;
        for c in 0..3 {
            let tmp = u32::from(src[c]) * coef1 + 255 * coef2 + (0x80 << SHIFT);
            let div255 = ((tmp >> 8) + tmp) >> 8;
            dst[c] = (div255 >> SHIFT).min(255) as u8;
        }
    }
    out
}

fn too_large(width: u32, height: u32, max_pixels: u64) -> Error {
    Error::Image(format!(
        "the image is {width}×{height} pixels, over the limit of {max_pixels} pixels; downscale it before sending"
    ))
}

/// Turns the codec's error into a message that says what to do.
fn image_error(error: image::ImageError, max_pixels: u64) -> Error {
    match error {
        image::ImageError::Limits(e) => Error::Image(format!(
            "the image is too large to decode ({e}); the limit is {max_pixels} pixels: downscale it before sending"
        )),
        image::ImageError::Unsupported(e) => Error::Image(format!("unsupported image: {e} (expected {SUPPORTED})")),
        image::ImageError::IoError(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            Error::Image("the image is truncated: the file ends before its pixel data does; send the whole file".into())
        }
        other => Error::Image(format!("the image is corrupt: {other}")),
    }
}
