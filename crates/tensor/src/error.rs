//! The one error type of this crate.

use crate::DType;

/// Everything that can go wrong while building, compiling or running a graph.
///
/// Each variant names the op (or input) involved and says what to do, so a
/// caller can show the message to a user as is.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An op got operands whose shapes do not fit together.
    #[error("{op}: {message}")]
    Shape {
        /// WebNN name of the op.
        op: String,
        /// What is wrong with the shapes.
        message: String,
    },
    /// An op got an operand of the wrong data type.
    #[error("{op}: expected {expected}, got {got}")]
    DType {
        /// WebNN name of the op.
        op: String,
        /// What the op accepts.
        expected: String,
        /// What it got.
        got: DType,
    },
    /// An op option is out of range or inconsistent.
    #[error("{op}: {message}")]
    InvalidArgument {
        /// WebNN name of the op.
        op: String,
        /// What is wrong.
        message: String,
    },
    /// A backend cannot run an op on a data type.
    #[error("the {backend} backend cannot run {op} on {dtype}: {hint}")]
    UnsupportedDType {
        /// Backend name.
        backend: &'static str,
        /// WebNN name of the op.
        op: String,
        /// The data type it cannot run.
        dtype: DType,
        /// What the user can do instead.
        hint: &'static str,
    },
    /// Tensor data does not have the size its shape and dtype require.
    #[error("tensor data is {got} bytes but a {dtype} tensor of shape {shape} needs {expected}")]
    DataSize {
        /// Data type of the tensor.
        dtype: DType,
        /// Shape, formatted.
        shape: String,
        /// Bytes needed.
        expected: usize,
        /// Bytes given.
        got: usize,
    },
    /// A graph refers to an operand, input, output or weight that does not exist,
    /// or a run was given inputs that do not match the graph.
    #[error("{0}")]
    Graph(String),
    /// A value met at run time is out of range (an index past the end of a table, say).
    #[error("{op}: {message}")]
    Runtime {
        /// WebNN name of the op.
        op: String,
        /// What is wrong with the value.
        message: String,
    },
}

impl Error {
    /// Shape error for `op`.
    pub fn shape(op: &str, message: impl Into<String>) -> Self {
        Error::Shape { op: op.to_string(), message: message.into() }
    }
    /// Invalid-argument error for `op`.
    pub fn invalid(op: &str, message: impl Into<String>) -> Self {
        Error::InvalidArgument { op: op.to_string(), message: message.into() }
    }
    /// Dtype error for `op`.
    pub fn dtype(op: &str, expected: impl Into<String>, got: DType) -> Self {
        Error::DType { op: op.to_string(), expected: expected.into(), got }
    }
    /// Run-time error for `op`.
    pub fn runtime(op: &str, message: impl Into<String>) -> Self {
        Error::Runtime { op: op.to_string(), message: message.into() }
    }
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
