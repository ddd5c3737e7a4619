//! Any bytes given to the image front end (`vision::decode_image_with_limit`,
//! what `ImageProcessor::preprocess_bytes` calls) end in an error or in an RGB
//! image within the pixel bound, which then preprocesses (EfficientNet-Lite0's
//! config: shortest edge 256, bicubic, 224×224 center crop, normalize) into a
//! `[3, 224, 224]` tensor: never a panic, and never an allocation over
//! `-malloc_limit_mb` (default: the RSS limit).
//!
//! The pixel bound is 1 megapixel here (the library's default is 100) so each
//! input stays fast.
//!
//! Seed the corpus with small committed images:
//! `mkdir -p corpus/image_decode && cp ../tests/goldens/vision/{alpha.png,nonsquare.png,photo.jpg} corpus/image_decode/`,
//! then `cargo +nightly fuzz run image_decode corpus/image_decode -- -max_total_time=120 -rss_limit_mb=2048`.
#![no_main]

use ipfs_accelerate_models::vision::{decode_image_with_limit, Alpha, ImageProcessor};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

const MAX_PIXELS: u64 = 1_000_000;

const CONFIG: &str = r#"{
  "do_resize": true, "size": {"shortest_edge": 256}, "resample": 3,
  "do_center_crop": true, "crop_size": {"height": 224, "width": 224},
  "do_rescale": false, "do_normalize": true,
  "image_mean": [127.0, 127.0, 127.0], "image_std": [128.0, 128.0, 128.0],
  "do_convert_rgb": true
}"#;

fn processor() -> &'static ImageProcessor {
    static PROCESSOR: OnceLock<ImageProcessor> = OnceLock::new();
    PROCESSOR.get_or_init(|| ImageProcessor::from_preprocessor_config(CONFIG).expect("a valid config"))
}

fuzz_target!(|data: &[u8]| {
    let alpha = if data.first().is_some_and(|b| b & 1 == 1) { Alpha::Drop } else { Alpha::OverWhite };
    if let Ok(image) = decode_image_with_limit(data, alpha, MAX_PIXELS) {
        assert!(u64::from(image.width()) * u64::from(image.height()) <= MAX_PIXELS);
        let tensor = processor().preprocess(&image).expect("a decoded image preprocesses");
        assert_eq!(tensor.shape().dims(), &[3, 224, 224]);
    }
});
