//! Image classification from Python: loading an image classifier (ViT,
//! EfficientNet-Lite, or CLIP for zero-shot over labels the caller names),
//! decoding the images (files or bytes) and ranking labels, with the GIL
//! released.
//!
//! The model crate's `ImageClassifier` has no cancellation hook, so the work
//! runs on a thread of its own (`wait::run_interruptible`): Ctrl-C raises
//! KeyboardInterrupt at once while the batch finishes in the background and
//! its answer is dropped.

use crate::errors::{Error, Result};
use crate::wait::{run_interruptible, WaitError};
use ipfs_accelerate_models::vision::{ImageClassifier, Scored, DEFAULT_TEMPLATE};
use ipfs_accelerate_models::{BackendChoice, Error as ModelError, Precision};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// A loaded classifier; the lock lets each call set its own prompt template.
pub type SharedClassifier = Arc<Mutex<ImageClassifier>>;

/// One image, as the Python layer hands it over.
pub enum ImageArg {
    /// An image file (PNG, JPEG, WebP, GIF or BMP).
    Path(PathBuf),
    /// An image file's bytes.
    Bytes(Vec<u8>),
}

/// What one classification asks for.
pub struct Request {
    /// The images, in order.
    pub images: Vec<ImageArg>,
    /// Candidate labels (CLIP zero-shot only).
    pub labels: Option<Vec<String>>,
    /// Labels kept per image, most probable first.
    pub top_k: usize,
    /// The zero-shot prompt template (`{label}` marks the label); `None`:
    /// the default, "a photo of a {label}.".
    pub template: Option<String>,
}

/// Loads the classifier in `dir` on the CPU with the GIL released (Ctrl-C
/// interrupts the wait; the load finishes in the background and is dropped).
pub fn load(py: Python<'_>, dir: &Path) -> PyResult<SharedClassifier> {
    check_model_type(dir)?;
    let owned = dir.to_path_buf();
    let loaded = match run_interruptible(py, None, move || {
        ImageClassifier::load_with(&owned, BackendChoice::Cpu, Precision::F32)
    }) {
        Ok(loaded) => loaded,
        Err(WaitError::Python(e)) => return Err(e),
        Err(WaitError::TimedOut | WaitError::Lost) => {
            return Err(Error::Inference(format!("loading {} ended without an answer", dir.display())).into())
        }
    };
    loaded.map(|c| Arc::new(Mutex::new(c))).map_err(|e| load_error(e, dir).into())
}

/// Refuses a directory whose `config.json` names no image classifier (a
/// text model, say) before the loader asks for files such a model never
/// has. An unreadable config is left to the loader to report.
fn check_model_type(dir: &Path) -> Result<()> {
    let Ok(raw) = std::fs::read(dir.join("config.json")) else { return Ok(()) };
    let Ok(config) = serde_json::from_slice::<serde_json::Value>(&raw) else { return Ok(()) };
    let model_type = config.get("model_type").and_then(|v| v.as_str()).unwrap_or("");
    let architecture = config.get("architectures").and_then(|v| v.get(0)).and_then(|v| v.as_str()).unwrap_or("");
    let known = matches!(model_type, "vit" | "clip" | "efficientnet_lite")
        || (model_type.is_empty() && (architecture.starts_with("ViT") || architecture.starts_with("CLIP")));
    if known {
        return Ok(());
    }
    Err(Error::UnsupportedModelType(format!(
        "{} is not an image classifier (model_type {model_type:?}, architecture {architecture:?}): classify() runs \
         ViT (ViTForImageClassification), EfficientNet-Lite and CLIP (zero-shot) models",
        dir.display()
    )))
}

/// A model-crate error met while loading `dir`, as the package's error.
fn load_error(e: ModelError, dir: &Path) -> Error {
    let shown = dir.display();
    match e {
        ModelError::MissingFile { .. } | ModelError::ModelDirMissing(_) | ModelError::Io { .. } => {
            Error::ModelNotFound(format!("cannot load the image classifier {shown}: {e}"))
        }
        ModelError::Config { .. } | ModelError::UnknownArchitecture { .. } => Error::UnsupportedModelType(format!(
            "{shown} is not an image classifier this version runs (ViT, EfficientNet-Lite or CLIP): {e}"
        )),
        ModelError::InvalidOption(m) => Error::InvalidInput(m),
        other => Error::Inference(format!("cannot load the image classifier {shown}: {other}")),
    }
}

/// A model-crate error met while decoding or classifying, as the package's
/// error: an unreadable image or an unusable option is the caller's input.
fn classify_error(e: ModelError) -> Error {
    match e {
        ModelError::Image(m) => Error::InvalidInput(format!("cannot use the image: {m}")),
        ModelError::InvalidOption(m) => Error::InvalidInput(m),
        ModelError::EmptyInput => Error::InvalidInput("no images were given: pass at least one".into()),
        e @ ModelError::Io { .. } => Error::InvalidInput(e.to_string()),
        other => Error::Inference(format!("classification failed: {other}")),
    }
}

/// Checks `request` against the model (labels only for CLIP, which needs
/// them; a usable `top_k`), decodes the images and classifies them.
fn classify(classifier: &Mutex<ImageClassifier>, request: Request) -> Result<Vec<Vec<Scored>>> {
    if request.top_k == 0 {
        return Err(Error::InvalidInput("top_k must be at least 1".into()));
    }
    if request.images.is_empty() {
        return Err(Error::InvalidInput("no images were given: pass at least one".into()));
    }
    let mut model = classifier.lock().unwrap_or_else(|p| p.into_inner());
    let labels: Vec<&str> =
        request.labels.as_deref().unwrap_or_default().iter().map(|l| l.trim()).filter(|l| !l.is_empty()).collect();
    match (model.is_zero_shot(), labels.is_empty()) {
        (true, true) => {
            return Err(Error::InvalidInput(format!(
                "{} is a CLIP model, which classifies by labels you name: pass labels=[...], e.g. [\"cat\", \"dog\"]",
                model.dir().display()
            )))
        }
        (false, false) => {
            return Err(Error::InvalidInput(format!(
                "{} is a {} classifier with its own {} labels; labels= is for CLIP models (zero-shot)",
                model.dir().display(),
                model.model_type(),
                model.labels().len()
            )))
        }
        _ => {}
    }
    if request.template.is_some() && !model.is_zero_shot() {
        return Err(Error::InvalidInput(format!(
            "template= is for CLIP models (zero-shot); {} is a {} classifier",
            model.dir().display(),
            model.model_type()
        )));
    }
    model.set_template(request.template.as_deref().unwrap_or(DEFAULT_TEMPLATE)).map_err(classify_error)?;
    let images = request
        .images
        .iter()
        .enumerate()
        .map(|(i, image)| match image {
            ImageArg::Path(path) => model.read_image(path),
            ImageArg::Bytes(bytes) => model.decode(bytes).map_err(|e| match e {
                ModelError::Image(m) => ModelError::Image(format!("image {i} (bytes): {m}")),
                other => other,
            }),
        })
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(classify_error)?;
    let mut results =
        if model.is_zero_shot() { model.zero_shot(&images, &labels) } else { model.classify(&images, request.top_k) }
            .map_err(classify_error)?;
    for scored in &mut results {
        scored.truncate(request.top_k);
    }
    Ok(results)
}

/// Classifies on a thread of its own, waiting with the GIL released;
/// Ctrl-C raises KeyboardInterrupt.
pub fn run(py: Python<'_>, classifier: SharedClassifier, request: Request) -> PyResult<Vec<Vec<Scored>>> {
    match run_interruptible(py, None, move || classify(&classifier, request)) {
        Ok(outcome) => outcome.map_err(Into::into),
        Err(WaitError::Python(e)) => Err(e),
        Err(WaitError::TimedOut | WaitError::Lost) => {
            Err(Error::Inference("the classification ended without an answer".into()).into())
        }
    }
}

/// The results as a list (one per image) of lists of `{"label", "score"}`.
pub fn to_list<'py>(py: Python<'py>, results: &[Vec<Scored>]) -> PyResult<Bound<'py, PyList>> {
    let out = PyList::empty(py);
    for scored in results {
        let row = PyList::empty(py);
        for (label, score) in scored {
            let d = PyDict::new(py);
            d.set_item("label", label)?;
            d.set_item("score", f64::from(*score))?;
            row.append(d)?;
        }
        out.append(row)?;
    }
    Ok(out)
}
