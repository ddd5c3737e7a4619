//! The native half of the `ipfs_accelerate` Python package
//! (`ipfs_accelerate._native`). The pure-Python layer in `python/` shapes
//! results, holds the docstrings, exception classes and type stubs; this
//! crate does the work: model resolution, pools, browsers, the journal, text generation,
//! speech recognition and image classification.

mod accelerator;
mod bridge;
mod errors;
mod generate;
mod infer;
mod memory;
mod model;
mod platform;
mod speech;
mod vision;
mod wait;

use pyo3::prelude::*;

/// The extension module.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<accelerator::NativeAccelerator>()?;
    m.add_class::<bridge::NativeBridge>()?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
