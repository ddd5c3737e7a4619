//! What can go wrong in the package, and the Python exception each becomes.
//!
//! The exception classes are defined in Python (`ipfs_accelerate/errors.py`)
//! so they carry docstrings and can also subclass the built-in exception a
//! Python user expects (`ValueError`, `FileNotFoundError`, …); this module
//! looks them up by name when it raises.

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

/// One error enum for the crate; each variant names its Python class.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An argument has the right type but a value that cannot be used.
    #[error("{0}")]
    InvalidInput(String),
    /// The model cannot be found locally.
    #[error("{0}")]
    ModelNotFound(String),
    /// The platform or browser asked for cannot run here.
    #[error("{0}")]
    BackendUnavailable(String),
    /// The model family asked for has no implementation in this version.
    #[error("{0}")]
    UnsupportedModelType(String),
    /// The accelerator (or bridge) was closed.
    #[error("{0}")]
    Closed(String),
    /// The workers failed to run the request.
    #[error("{0}")]
    Inference(String),
}

/// The result type of this crate.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// The class in `ipfs_accelerate.errors` this error raises.
    fn class_name(&self) -> &'static str {
        match self {
            Error::InvalidInput(_) => "InvalidInputError",
            Error::ModelNotFound(_) => "ModelNotFoundError",
            Error::BackendUnavailable(_) => "BackendUnavailableError",
            Error::UnsupportedModelType(_) => "UnsupportedModelTypeError",
            Error::Closed(_) => "AcceleratorClosedError",
            Error::Inference(_) => "InferenceError",
        }
    }
}

impl From<Error> for PyErr {
    fn from(error: Error) -> PyErr {
        let message = error.to_string();
        Python::with_gil(|py| {
            let class = py.import("ipfs_accelerate.errors").and_then(|m| m.getattr(error.class_name()));
            match class {
                Ok(class) => PyErr::from_value(match class.call1((message.clone(),)) {
                    Ok(instance) => instance,
                    Err(e) => return e,
                }),
                // Only when the pure-Python layer is missing (a broken install):
                // still an exception with the message, never a crash.
                Err(_) => PyRuntimeError::new_err(message),
            }
        })
    }
}
