//! Which workers a call asks for: the `platform` and `browser` arguments,
//! checked before anything starts.

use crate::errors::{Error, Result};
use ipfs_accelerate_browser::discover::{find, resolve, BrowserError, BrowserKind};
use ipfs_accelerate_browser::BrowserBackend;

/// Where a request runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The native CPU backend in this process.
    Cpu,
    /// A browser page; `browser` is what to launch (`None`: the first
    /// Chrome, Chromium or Edge installed).
    Browser {
        /// WebGPU or WebNN.
        backend: BrowserBackend,
        /// A browser name or binary path.
        browser: Option<String>,
    },
}

impl Target {
    /// Parses `platform` ("webgpu", "webnn", "cpu", "auto") and `browser`.
    ///
    /// "auto" is the CPU backend: a browser worker is only started when a
    /// call names its platform, since launching one takes seconds.
    pub fn parse(platform: &str, browser: Option<&str>) -> Result<Target> {
        let backend = match platform.to_ascii_lowercase().as_str() {
            "cpu" | "auto" => return Ok(Target::Cpu),
            "webgpu" => BrowserBackend::WebGpu,
            "webnn" => BrowserBackend::WebNn,
            _ => {
                return Err(Error::InvalidInput(format!(
                    "unknown platform {platform:?}: expected \"webgpu\", \"webnn\", \"cpu\" or \"auto\""
                )))
            }
        };
        Ok(Target::Browser { backend, browser: browser_spec(browser)? })
    }

    /// The platform name results report.
    pub fn platform(&self) -> &'static str {
        match self {
            Target::Cpu => "cpu",
            Target::Browser { backend: BrowserBackend::WebGpu, .. } => "webgpu",
            Target::Browser { backend: BrowserBackend::WebNn, .. } => "webnn",
        }
    }
}

/// Checks a browser argument: a known name that is installed, or a path to
/// a browser binary. "chrome" (the predecessor's default) falls back to any
/// installed Chromium-family browser when Google Chrome itself is absent;
/// results name the browser that actually ran.
pub fn browser_spec(browser: Option<&str>) -> Result<Option<String>> {
    let Some(name) = browser else { return Ok(None) };
    let lower = name.to_ascii_lowercase();
    if lower == "chrome" && find(BrowserKind::Chrome).is_none() {
        return match [BrowserKind::Chromium, BrowserKind::Edge].into_iter().find_map(find) {
            Some(_) => Ok(None),
            None => Err(Error::BackendUnavailable(
                "no Chrome, Chromium or Edge is installed: install one (apt-get install chromium) or pass a binary path"
                    .into(),
            )),
        };
    }
    match resolve(name) {
        Ok(_) => Ok(Some(name.to_string())),
        Err(BrowserError::UnknownKind(_)) => Err(Error::InvalidInput(format!(
            "unknown browser {name:?}: expected \"chrome\", \"chromium\", \"edge\", \"firefox\" or a path to a browser binary"
        ))),
        Err(e) => Err(Error::BackendUnavailable(e.to_string())),
    }
}
