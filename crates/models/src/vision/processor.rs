//! `preprocessor_config.json` → normalized CHW float32 pixel values, as
//! transformers' image processors (PIL backend) compute them.

use image::RgbImage;
use ipfs_accelerate_tensor::Tensor;
use serde::Deserialize;
use serde_json::Value;

use super::decode::{decode_image, Alpha};
use super::resize::{resize, Filter};
use crate::{Error, Result};

/// How the image is resized before cropping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResizeTo {
    /// To exactly this size (ViT: `{"height": 224, "width": 224}`).
    Exact {
        /// Output height.
        height: u32,
        /// Output width.
        width: u32,
    },
    /// The shorter side to this length, keeping the aspect ratio with the
    /// longer side truncated as transformers does (CLIP:
    /// `{"shortest_edge": 224}`).
    ShortestEdge(u32),
}

/// The preprocessing steps of one model, read from its
/// `preprocessor_config.json` ([`ImageProcessor::from_preprocessor_config`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ImageProcessor {
    /// Resize target and filter, when `do_resize`.
    pub resize: Option<(ResizeTo, Filter)>,
    /// Center crop `(height, width)`, when `do_center_crop`.
    pub center_crop: Option<(u32, u32)>,
    /// The factor pixel values are multiplied by, when `do_rescale`.
    pub rescale_factor: Option<f64>,
    /// Per-channel `(mean, std)`, when `do_normalize`.
    pub normalize: Option<([f32; 3], [f32; 3])>,
    /// Whether transparency is composited over white (`do_convert_rgb`) or
    /// dropped (what transformers' `load_image` does before any processor).
    pub convert_rgb: bool,
}

/// The keys of `preprocessor_config.json` this crate reads; the defaults are
/// those of transformers' `BaseImageProcessor`.
#[derive(Deserialize)]
struct RawConfig {
    image_processor_type: Option<String>,
    #[serde(default = "yes")]
    do_resize: bool,
    size: Option<Value>,
    resample: Option<u64>,
    #[serde(default)]
    do_center_crop: bool,
    crop_size: Option<Value>,
    #[serde(default = "yes")]
    do_rescale: bool,
    rescale_factor: Option<f64>,
    #[serde(default = "yes")]
    do_normalize: bool,
    image_mean: Option<Value>,
    image_std: Option<Value>,
    do_convert_rgb: Option<bool>,
}

fn yes() -> bool {
    true
}

fn invalid(message: impl std::fmt::Display) -> Error {
    Error::InvalidOption(format!("preprocessor_config.json: {message}"))
}

/// A positive pixel count from JSON.
fn side(value: &Value, key: &str) -> Result<u32> {
    value
        .as_u64()
        .filter(|&v| v > 0 && v <= 65_536)
        .map(|v| v as u32)
        .ok_or_else(|| invalid(format!("{key} must be a positive integer of at most 65536, got {value}")))
}

/// `size`/`crop_size`: `{"height","width"}`, `{"shortest_edge"}` or a bare
/// integer (square, or the shortest edge for CLIP, as transformers'
/// `get_size_dict` reads old configs).
fn parse_size(value: &Value, key: &str, int_is_shortest_edge: bool) -> Result<ResizeTo> {
    if let Some(obj) = value.as_object() {
        if let (Some(h), Some(w)) = (obj.get("height"), obj.get("width")) {
            return Ok(ResizeTo::Exact { height: side(h, key)?, width: side(w, key)? });
        }
        if let Some(s) = obj.get("shortest_edge") {
            if obj.get("longest_edge").is_some_and(|v| !v.is_null()) {
                return Err(invalid(format!("{key}.longest_edge is not supported")));
            }
            return Ok(ResizeTo::ShortestEdge(side(s, key)?));
        }
        return Err(invalid(format!("{key} must hold \"height\" and \"width\" or \"shortest_edge\", got {value}")));
    }
    let s = side(value, key)?;
    Ok(if int_is_shortest_edge { ResizeTo::ShortestEdge(s) } else { ResizeTo::Exact { height: s, width: s } })
}

/// `image_mean`/`image_std`: three numbers or one for all channels.
fn parse_triple(value: Option<&Value>, key: &str, default: [f32; 3]) -> Result<[f32; 3]> {
    let Some(value) = value else { return Ok(default) };
    let number = |v: &Value| {
        v.as_f64().map(|x| x as f32).ok_or_else(|| invalid(format!("{key} must hold numbers, got {value}")))
    };
    match value {
        Value::Array(items) if items.len() == 3 => Ok([number(&items[0])?, number(&items[1])?, number(&items[2])?]),
        Value::Number(_) => Ok([number(value)?; 3]),
        _ => Err(invalid(format!("{key} must be 3 numbers (one per RGB channel), got {value}"))),
    }
}

/// transformers' IMAGENET_STANDARD_MEAN/STD, the `BaseImageProcessor` default.
const STANDARD: [f32; 3] = [0.5, 0.5, 0.5];

impl ImageProcessor {
    /// Reads the text of a `preprocessor_config.json`.
    pub fn from_preprocessor_config(json: &str) -> Result<Self> {
        let raw: RawConfig = serde_json::from_str(json).map_err(invalid)?;
        let clip_like = raw.image_processor_type.as_deref().is_some_and(|t| t.starts_with("CLIP"));
        let resize = if raw.do_resize {
            let size = raw.size.as_ref().ok_or_else(|| invalid("do_resize is set but size is missing"))?;
            let to = parse_size(size, "size", clip_like)?;
            Some((to, Filter::from_pil(raw.resample.unwrap_or(2))?))
        } else {
            None
        };
        let center_crop = if raw.do_center_crop {
            let crop =
                raw.crop_size.as_ref().ok_or_else(|| invalid("do_center_crop is set but crop_size is missing"))?;
            match parse_size(crop, "crop_size", false)? {
                ResizeTo::Exact { height, width } => Some((height, width)),
                ResizeTo::ShortestEdge(_) => return Err(invalid("crop_size needs \"height\" and \"width\"")),
            }
        } else {
            None
        };
        let rescale_factor = raw.do_rescale.then(|| raw.rescale_factor.unwrap_or(1.0 / 255.0));
        let normalize = if raw.do_normalize {
            let mean = parse_triple(raw.image_mean.as_ref(), "image_mean", STANDARD)?;
            let std = parse_triple(raw.image_std.as_ref(), "image_std", STANDARD)?;
            if std.iter().any(|&s| s == 0.0 || !s.is_finite()) {
                return Err(invalid(format!("image_std must be non-zero, got {std:?}")));
            }
            Some((mean, std))
        } else {
            None
        };
        Ok(Self { resize, center_crop, rescale_factor, normalize, convert_rgb: raw.do_convert_rgb.unwrap_or(false) })
    }

    /// Reads `preprocessor_config.json` from a model directory.
    pub fn load(model_dir: &std::path::Path) -> Result<Self> {
        let path = model_dir.join("preprocessor_config.json");
        if !path.exists() {
            return Err(Error::MissingFile {
                path,
                hint: "a vision model needs its preprocessor_config.json (download it with the weights)",
            });
        }
        let text = String::from_utf8(crate::error::read_file(&path)?).map_err(|e| Error::Config {
            path: path.clone(),
            what: "JSON file",
            message: e.to_string(),
        })?;
        Self::from_preprocessor_config(&text).map_err(|e| match e {
            Error::InvalidOption(message) => Error::Config { path, what: "preprocessor config", message },
            other => other,
        })
    }

    /// The `(height, width)` of the tensor for an input of `width`×`height`.
    pub fn output_size(&self, width: u32, height: u32) -> (u32, u32) {
        if let Some((h, w)) = self.center_crop {
            return (h, w);
        }
        let (w, h) = self.resized_size(width, height);
        (h, w)
    }

    /// The `(width, height)` after resizing, as transformers'
    /// `get_resize_output_image_size(default_to_square=False)` computes it.
    fn resized_size(&self, width: u32, height: u32) -> (u32, u32) {
        match self.resize {
            None => (width, height),
            Some((ResizeTo::Exact { height, width }, _)) => (width, height),
            Some((ResizeTo::ShortestEdge(s), _)) => {
                let (short, long) = if width <= height { (width, height) } else { (height, width) };
                // int(size * long / short): Python's true division then truncation.
                let new_long = ((f64::from(s) * f64::from(long) / f64::from(short)) as u32).max(1);
                if width <= height {
                    (s, new_long)
                } else {
                    (new_long, s)
                }
            }
        }
    }

    /// Decodes image bytes (with the alpha policy of this processor) and
    /// preprocesses them: a `[3, H, W]` float32 tensor.
    pub fn preprocess_bytes(&self, bytes: &[u8]) -> Result<Tensor> {
        let alpha = if self.convert_rgb { Alpha::OverWhite } else { Alpha::Drop };
        self.preprocess(&decode_image(bytes, alpha)?)
    }

    /// Resizes, crops, rescales and normalizes an RGB image into a
    /// `[3, H, W]` float32 tensor (`pixel_values` of one image).
    pub fn preprocess(&self, image: &RgbImage) -> Result<Tensor> {
        let (values, h, w) = self.pixel_values(image)?;
        Ok(Tensor::from_f32([3, h as usize, w as usize], &values)?)
    }

    /// Preprocesses several images into one `[N, 3, H, W]` tensor; they must
    /// come out the same size (configs with a center crop or an exact resize
    /// guarantee it).
    pub fn preprocess_batch(&self, images: &[RgbImage]) -> Result<Tensor> {
        if images.is_empty() {
            return Err(Error::EmptyInput);
        }
        let mut all = Vec::new();
        let mut size = None;
        for (i, image) in images.iter().enumerate() {
            let (values, h, w) = self.pixel_values(image)?;
            if *size.get_or_insert((h, w)) != (h, w) {
                let (h0, w0) = size.unwrap_or_default();
                return Err(Error::InvalidOption(format!(
                    "image {i} preprocesses to {h}×{w} but image 0 to {h0}×{w0}; a batch needs one size (use a config with a center crop, or preprocess the images one by one)"
                )));
            }
            all.extend_from_slice(&values);
        }
        let (h, w) = size.unwrap_or_default();
        Ok(Tensor::from_f32([images.len(), 3, h as usize, w as usize], &all)?)
    }

    /// The CHW values and their height and width.
    fn pixel_values(&self, image: &RgbImage) -> Result<(Vec<f32>, u32, u32)> {
        let resized;
        let mut current = image;
        if let Some((_, filter)) = self.resize {
            let (w, h) = self.resized_size(image.width(), image.height());
            resized = resize(image, w, h, filter)?;
            current = &resized;
        }
        let cropped;
        if let Some((h, w)) = self.center_crop {
            cropped = center_crop(current, h, w);
            current = &cropped;
        }
        let (w, h) = current.dimensions();
        let plane = (w * h) as usize;
        let mut values = vec![0f32; 3 * plane];
        // transformers rescales in float64 and rounds to float32, then
        // normalizes in float32: the same order here keeps results exact.
        let scale = self.rescale_factor;
        let (mean, std) = self.normalize.unwrap_or(([0.0; 3], [1.0; 3]));
        for (i, p) in current.pixels().enumerate() {
            for c in 0..3 {
                let mut v = match scale {
                    Some(s) => (f64::from(p[c]) * s) as f32,
                    None => f32::from(p[c]),
                };
                if self.normalize.is_some() {
                    v = (v - mean[c]) / std[c];
                }
                values[c * plane + i] = v;
            }
        }
        Ok((values, h, w))
    }
}

/// transformers' `center_crop`: top/left offsets `(size - crop) // 2`, and
/// zero padding (centred, rounding the extra row/column up) when the image is
/// smaller than the crop.
fn center_crop(image: &RgbImage, crop_h: u32, crop_w: u32) -> RgbImage {
    let (w, h) = (i64::from(image.width()), i64::from(image.height()));
    let (ch, cw) = (i64::from(crop_h), i64::from(crop_w));
    // transformers pads to max(crop, size) with the image at
    // ceil((new - orig) / 2) and then shifts the window by that pad, which in
    // source coordinates leaves the floor-divided offset in every case.
    let top = (h - ch).div_euclid(2);
    let left = (w - cw).div_euclid(2);
    RgbImage::from_fn(crop_w, crop_h, |x, y| {
        let sx = i64::from(x) + left;
        let sy = i64::from(y) + top;
        if (0..w).contains(&sx) && (0..h).contains(&sy) {
            *image.get_pixel(sx as u32, sy as u32)
        } else {
            image::Rgb([0, 0, 0])
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLIP: &str = r#"{"image_processor_type": "CLIPImageProcessor", "size": {"shortest_edge": 224},
        "resample": 3, "do_center_crop": true, "crop_size": {"height": 224, "width": 224},
        "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711],
        "do_convert_rgb": true}"#;

    #[test]
    fn reads_clip_config() {
        let p = ImageProcessor::from_preprocessor_config(CLIP).unwrap();
        assert_eq!(p.resize, Some((ResizeTo::ShortestEdge(224), Filter::Bicubic)));
        assert_eq!(p.center_crop, Some((224, 224)));
        assert_eq!(p.rescale_factor, Some(1.0 / 255.0));
        assert!(p.convert_rgb);
        assert_eq!(p.output_size(640, 480), (224, 224));
    }

    #[test]
    fn shortest_edge_truncates_the_long_side_like_transformers() {
        let mut p = ImageProcessor::from_preprocessor_config(CLIP).unwrap();
        p.center_crop = None;
        // The short side becomes 224, the long one int(224 * 500 / 333) = 336.
        assert_eq!(p.output_size(500, 333), (224, 336));
        assert_eq!(p.resized_size(333, 500), (224, 336));
        assert_eq!(p.resized_size(224, 300), (224, 300));
    }

    #[test]
    fn bare_integer_sizes_follow_the_processor_type() {
        let vit = ImageProcessor::from_preprocessor_config(r#"{"size": 384}"#).unwrap();
        assert_eq!(vit.resize.unwrap().0, ResizeTo::Exact { height: 384, width: 384 });
        let clip =
            ImageProcessor::from_preprocessor_config(r#"{"image_processor_type": "CLIPImageProcessor", "size": 224}"#)
                .unwrap();
        assert_eq!(clip.resize.unwrap().0, ResizeTo::ShortestEdge(224));
    }

    #[test]
    fn center_crop_pads_small_images_with_zeros() {
        // 3×2 image into a 5×4 crop: transformers puts it at ceil((5-3)/2) = 1
        // and ceil((4-2)/2) = 1.
        let img = RgbImage::from_pixel(3, 2, image::Rgb([9, 9, 9]));
        let out = center_crop(&img, 4, 5);
        assert_eq!(out.get_pixel(0, 0).0, [0, 0, 0]);
        assert_eq!(out.get_pixel(1, 1).0, [9, 9, 9]);
        assert_eq!(out.get_pixel(3, 2).0, [9, 9, 9]);
        assert_eq!(out.get_pixel(4, 3).0, [0, 0, 0]);
        // A larger image: offsets (h - ch) // 2 and (w - cw) // 2.
        let img = RgbImage::from_fn(7, 6, |x, y| image::Rgb([x as u8, y as u8, 0]));
        let out = center_crop(&img, 3, 4);
        assert_eq!(out.get_pixel(0, 0).0, [1, 1, 0]);
    }
}
