//! Image input for the vision models (ViT, CLIP, EfficientNet): decoding user
//! files with bounded memory ([`decode_image`]) and turning them into the
//! normalized `[3, H, W]` float32 tensors their processors produce
//! ([`ImageProcessor`]), with Pillow's resampling reproduced bit for bit
//! ([`resize`]).
//!
//! The reference is transformers' PIL-backend image processors
//! (`ViTImageProcessorPil`, `CLIPImageProcessorPil`; transformers 5 picks
//! the torchvision backend instead when torchvision is installed, whose
//! float antialiasing differs from Pillow by a few grey levels). torchvision's
//! `Resize`/`CenterCrop` on PIL images, as EfficientNet uses, resize with the
//! same Pillow code, so a `shortest_edge` + `crop_size` config describes them
//! too (torchvision rounds an odd crop offset, transformers floors it).
//!
//! On top of that, the models: ViT image classification ([`ViTModel`]),
//! CLIP image/text embeddings ([`ClipModel`]), and [`ImageClassifier`],
//! which loads either from a model directory and classifies images (CLIP
//! zero-shot over labels the caller names).

mod classifier;
pub mod clip;
mod decode;
pub mod efficientnet;
mod processor;
pub mod resize;
mod transformer;
pub mod vit;

pub use classifier::{ImageClassifier, Scored, DEFAULT_TEMPLATE};
pub use clip::ClipModel;
pub use decode::{decode_image, decode_image_with_limit, Alpha, MAX_PIXELS};
pub use processor::{ImageProcessor, ResizeTo};
pub use resize::Filter;
pub use vit::ViTModel;
