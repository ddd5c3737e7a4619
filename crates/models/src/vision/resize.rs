//! Resizing exactly as Pillow's `Image.resize` does for 8-bit RGB.
//!
//! Why not `image::imageops::resize`: Hugging Face image processors (the PIL
//! backend) resize the uint8 image with Pillow, whose filters are separable
//! convolutions whose support widens with the downscale factor (antialiasing),
//! with coefficients quantized to 22-bit fixed point and an 8-bit clamp
//! between the horizontal and vertical passes. The `image` crate's filters
//! differ in all three, which moves pixels by up to tens of grey levels at
//! 2-4× downscales (the golden test measures it); this file reproduces
//! Pillow's libImaging/Resample.c so the model sees the pixels it was trained
//! and evaluated on, bit for bit.
//!
//! Pillow 13 changed the order of the two passes for some shapes
//! ([`vertical_first`]); this port follows Pillow 13, so results from older
//! Pillow differ by at most one grey level on some pixels.

use image::RgbImage;

use crate::{Error, Result};

/// A Pillow resampling filter, by its PIL constant (`resample` in
/// `preprocessor_config.json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    /// `Image.LANCZOS` (1): a 3-lobed Lanczos window.
    Lanczos,
    /// `Image.BILINEAR` (2): the triangle filter.
    Bilinear,
    /// `Image.BICUBIC` (3): the cubic convolution with a = -0.5.
    Bicubic,
    /// `Image.BOX` (4): each output pixel averages the input pixels under it.
    Box,
    /// `Image.HAMMING` (5): a Hamming-windowed sinc of support 1.
    Hamming,
}

impl Filter {
    /// The filter for a PIL resampling constant; nearest (0) is refused since
    /// no vision model of this crate uses it.
    pub fn from_pil(value: u64) -> Result<Self> {
        Ok(match value {
            1 => Self::Lanczos,
            2 => Self::Bilinear,
            3 => Self::Bicubic,
            4 => Self::Box,
            5 => Self::Hamming,
            other => {
                return Err(Error::InvalidOption(format!(
                    "preprocessor_config.json: resample {other} is not supported; use 1 (lanczos), 2 (bilinear), 3 (bicubic), 4 (box) or 5 (hamming)"
                )))
            }
        })
    }

    fn support(self) -> f64 {
        match self {
            Self::Box => 0.5,
            Self::Bilinear | Self::Hamming => 1.0,
            Self::Bicubic => 2.0,
            Self::Lanczos => 3.0,
        }
    }

    fn weight(self, x: f64) -> f64 {
        match self {
            Self::Box => {
                if x > -0.5 && x <= 0.5 {
                    1.0
                } else {
                    0.0
                }
            }
            Self::Bilinear => {
                let x = x.abs();
                if x < 1.0 {
                    1.0 - x
                } else {
                    0.0
                }
            }
            Self::Hamming => {
                let x = x.abs();
                if x == 0.0 {
                    1.0
                } else if x >= 1.0 {
                    0.0
                } else {
                    let x = x * std::f64::consts::PI;
                    // Pillow writes 0.54f and 0.46f: float constants widened to double.
                    x.sin() / x * (f64::from(0.54f32) + f64::from(0.46f32) * x.cos())
                }
            }
            Self::Bicubic => {
                const A: f64 = -0.5;
                let x = x.abs();
                if x < 1.0 {
                    ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    (((x - 5.0) * x + 8.0) * x - 4.0) * A
                } else {
                    0.0
                }
            }
            Self::Lanczos => {
                if (-3.0..3.0).contains(&x) {
                    sinc(x) * sinc(x / 3.0)
                } else {
                    0.0
                }
            }
        }
    }
}

fn sinc(x: f64) -> f64 {
    if x == 0.0 {
        1.0
    } else {
        let x = x * std::f64::consts::PI;
        x.sin() / x
    }
}

/// Pillow's fixed-point precision for 8-bit images (32 - 8 - 2).
const PRECISION_BITS: u32 = 22;

/// The taps of one axis: for each output index, the first input index and
/// the fixed-point weights of the inputs from there.
struct Taps {
    first: Vec<usize>,
    weights: Vec<Vec<i32>>,
}

/// Pillow's `precompute_coeffs` + `normalize_coeffs_8bpc` for the whole
/// input range (`box` = (0, in_size)).
fn taps(in_size: usize, out_size: usize, filter: Filter) -> Taps {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = filter.support() * filterscale;
    let ss = 1.0 / filterscale;
    let mut first = Vec::with_capacity(out_size);
    let mut weights = Vec::with_capacity(out_size);
    for xx in 0..out_size {
        let center = (xx as f64 + 0.5) * scale;
        // C's (int) cast truncates toward zero; the result is then clamped.
        let xmin = ((center - support + 0.5) as i64).max(0) as usize;
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64).max(xmin as i64) as usize;
        let mut k: Vec<f64> = (xmin..xmax).map(|x| filter.weight((x as f64 - center + 0.5) * ss)).collect();
        let total: f64 = k.iter().sum();
        if total != 0.0 {
            k.iter_mut().for_each(|w| *w /= total);
        }
        let unit = f64::from(1u32 << PRECISION_BITS);
        let fixed =
            k.iter().map(|&w| if w < 0.0 { (-0.5 + w * unit) as i32 } else { (0.5 + w * unit) as i32 }).collect();
        first.push(xmin);
        weights.push(fixed);
    }
    Taps { first, weights }
}

/// Pillow's `clip8`: drop the fixed-point fraction and clamp to 0..=255.
fn clip8(acc: i64) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Resizes an RGB image to `width`×`height` exactly as Pillow's
/// `Image.resize((width, height), filter)` does (no `reducing_gap`).
pub fn resize(image: &RgbImage, width: u32, height: u32, filter: Filter) -> Result<RgbImage> {
    let (in_w, in_h) = image.dimensions();
    if width == 0 || height == 0 || in_w == 0 || in_h == 0 {
        return Err(Error::Image(format!("cannot resize a {in_w}×{in_h} image to {width}×{height}")));
    }
    if (in_w, in_h) == (width, height) {
        return Ok(image.clone());
    }
    let (in_w, in_h, out_w, out_h) = (in_w as usize, in_h as usize, width as usize, height as usize);
    let src = image.as_raw();
    let hor = (out_w != in_w).then(|| taps(in_w, out_w, filter));
    let vert = (out_h != in_h).then(|| taps(in_h, out_h, filter));
    let out = match (hor, vert) {
        (Some(hor), None) => horizontal(src, in_w, 0..in_h, &hor),
        (None, Some(vert)) => vertical(src, in_w, 0, &vert),
        (Some(hor), Some(vert)) if vertical_first(in_w, in_h, out_w, out_h) => {
            let tmp = vertical(src, in_w, 0, &vert);
            horizontal(&tmp, in_w, 0..out_h, &hor)
        }
        (Some(hor), Some(vert)) => {
            // Only the rows the vertical pass reads are resampled horizontally.
            let first = vert.first[0];
            let last = vert.first[out_h - 1] + vert.weights[out_h - 1].len();
            let tmp = horizontal(src, in_w, first..last, &hor);
            vertical(&tmp, out_w, first, &vert)
        }
        (None, None) => src.clone(),
    };
    RgbImage::from_raw(width, height, out).ok_or_else(|| Error::Image("internal resize size mismatch".into()))
}

/// Pillow 13's pass order (python-pillow/Pillow#9549, found by probing
/// Pillow 13.0 on 700 random shapes, all matched): the vertical pass runs
/// first when the height shrinks by more than twice as many pixels as the
/// width. Pillow up to 12 always ran the horizontal pass first; the order
/// matters because the intermediate image is rounded to 8 bits, which moves
/// some pixels by one grey level.
fn vertical_first(in_w: usize, in_h: usize, out_w: usize, out_h: usize) -> bool {
    let (in_w, in_h, out_w, out_h) = (in_w as i64, in_h as i64, out_w as i64, out_h as i64);
    out_h < in_h && in_h - out_h > 2 * (in_w - out_w)
}

/// Pillow's `ImagingResampleHorizontal_8bpc` over `rows` of an RGB buffer
/// `src_w` pixels wide.
fn horizontal(src: &[u8], src_w: usize, rows: std::ops::Range<usize>, hor: &Taps) -> Vec<u8> {
    let out_w = hor.first.len();
    let half = 1i64 << (PRECISION_BITS - 1);
    let mut out = vec![0u8; rows.len() * out_w * 3];
    for (y, row) in rows.zip(out.chunks_exact_mut(out_w * 3)) {
        let src_row = &src[y * src_w * 3..(y + 1) * src_w * 3];
        for (xx, px) in row.chunks_exact_mut(3).enumerate() {
            let start = hor.first[xx];
            let mut acc = [half; 3];
            for (i, &w) in hor.weights[xx].iter().enumerate() {
                let p = &src_row[(start + i) * 3..(start + i) * 3 + 3];
                for c in 0..3 {
                    acc[c] += i64::from(p[c]) * i64::from(w);
                }
            }
            for c in 0..3 {
                px[c] = clip8(acc[c]);
            }
        }
    }
    out
}

/// Pillow's `ImagingResampleVertical_8bpc` of an RGB buffer `width` pixels
/// wide whose first row is source row `row_offset`.
fn vertical(src: &[u8], width: usize, row_offset: usize, vert: &Taps) -> Vec<u8> {
    let out_h = vert.first.len();
    let half = 1i64 << (PRECISION_BITS - 1);
    let stride = width * 3;
    let mut out = vec![0u8; out_h * stride];
    for (yy, row) in out.chunks_exact_mut(stride).enumerate() {
        let start = vert.first[yy] - row_offset;
        for (x, value) in row.iter_mut().enumerate() {
            let mut acc = half;
            for (i, &w) in vert.weights[yy].iter().enumerate() {
                acc += i64::from(src[(start + i) * stride + x]) * i64::from(w);
            }
            *value = clip8(acc);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_size_is_a_copy_and_constant_images_stay_constant() {
        let img = RgbImage::from_pixel(37, 23, image::Rgb([200, 13, 77]));
        assert_eq!(resize(&img, 37, 23, Filter::Bicubic).unwrap(), img);
        for filter in [Filter::Bilinear, Filter::Bicubic, Filter::Lanczos, Filter::Box, Filter::Hamming] {
            let out = resize(&img, 11, 50, filter).unwrap();
            assert!(out.pixels().all(|p| p.0 == [200, 13, 77]), "{filter:?}");
        }
    }

    #[test]
    fn zero_sizes_and_nearest_are_errors() {
        let img = RgbImage::new(4, 4);
        assert!(resize(&img, 0, 4, Filter::Bilinear).is_err());
        assert!(Filter::from_pil(0).is_err());
        assert_eq!(Filter::from_pil(3).unwrap(), Filter::Bicubic);
    }

    #[test]
    fn taps_follow_pillow_bounds() {
        // 4 → 2 bilinear: support 2 around center 1.0 covers inputs [0, 3)
        // at distances (x + 0.5 - 1) / 2 = -0.25, 0.25, 0.75: weights
        // 0.75, 0.75, 0.25, normalized to 3/7, 3/7, 1/7 in 22-bit fixed point.
        let t = taps(4, 2, Filter::Bilinear);
        assert_eq!(t.first, [0, 1]);
        let q = |w: f64| (0.5 + w * f64::from(1u32 << 22)) as i32;
        assert_eq!(t.weights[0], [q(3.0 / 7.0), q(3.0 / 7.0), q(1.0 / 7.0)]);
    }
}

#[cfg(test)]
mod order_tests {
    use super::vertical_first;

    #[test]
    fn pass_order_matches_pillow_13_probes() {
        // (in_w, in_h, out_w, out_h, vertical first) as Pillow 13.0 resized them.
        for (iw, ih, ow, oh, v) in [
            (240, 320, 224, 224, true),
            (320, 200, 224, 224, false),
            (100, 120, 91, 100, true),
            (100, 120, 90, 100, false),
            (1000, 1200, 513, 224, true),
            (1000, 1200, 512, 224, false),
            (103, 48, 114, 63, false),
        ] {
            assert_eq!(vertical_first(iw, ih, ow, oh), v, "{iw}x{ih} -> {ow}x{oh}");
        }
    }
}
