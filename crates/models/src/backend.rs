//! Choosing the backend a model runs on.

use crate::error::{Error, Result};

/// What the user asked for (`--backend`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BackendChoice {
    /// The best backend available here.
    #[default]
    Auto,
    /// The CPU backend.
    Cpu,
}

/// A backend that can actually run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendKind {
    /// The multi-threaded CPU backend.
    Cpu,
}

impl BackendKind {
    /// Name shown to users and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Cpu => "cpu",
        }
    }
}

impl BackendChoice {
    /// Parses `cpu` or `auto`.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(BackendChoice::Auto),
            "cpu" => Ok(BackendChoice::Cpu),
            other => Err(Error::InvalidOption(format!("unknown backend {other:?}: use cpu or auto"))),
        }
    }

    /// The backend this choice runs on here. `auto` picks the fastest
    /// available; in this build that is the CPU backend.
    pub fn resolve(self) -> BackendKind {
        match self {
            BackendChoice::Auto | BackendChoice::Cpu => BackendKind::Cpu,
        }
    }
}
