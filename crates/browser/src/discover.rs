//! Finding installed browsers.
//!
//! For each [`BrowserKind`] the search order is:
//!
//! 1. an environment override (`IPFS_ACCELERATE_CHROME`, `IPFS_ACCELERATE_CHROMIUM`,
//!    `IPFS_ACCELERATE_EDGE`, `IPFS_ACCELERATE_FIREFOX`) naming the binary;
//! 2. the usual command names on `PATH` (`google-chrome`, `chromium`, `msedge`, `firefox`, ...);
//! 3. the standard install locations of the platform (Linux packages and snaps, macOS
//!    `.app` bundles, Windows `Program Files`).
//!
//! A user can also name a binary directly ([`InstalledBrowser::from_path`], or [`resolve`]
//! with a path); its kind is guessed from the file name (Chromium family by default).
//! The version comes from `--version`, run with a timeout so a misbehaving binary never
//! hangs discovery.

use std::ffi::OsString;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant};

/// How long `--version` may take before it is killed and the version left unknown.
pub const VERSION_TIMEOUT: Duration = Duration::from_secs(5);

/// Errors from discovering, launching and stopping browsers.
#[derive(Debug, thiserror::Error)]
pub enum BrowserError {
    /// A browser name that is none of chrome, chromium, edge, firefox and not an existing path.
    #[error("unknown browser {0:?}: expected chrome, chromium, edge, firefox or a path to a browser binary")]
    UnknownKind(String),
    /// No installation of this kind was found.
    #[error("no {kind} found: {hint}")]
    NotFound {
        /// The kind searched for.
        kind: BrowserKind,
        /// How to install it or point at it.
        hint: String,
    },
    /// An environment override names something that is not an executable file.
    #[error("{var}={path:?} is not an executable file")]
    BadOverride {
        /// The environment variable.
        var: &'static str,
        /// Its value.
        path: PathBuf,
    },
    /// An explicit binary path that does not exist or is not executable.
    #[error("browser binary {0:?} does not exist or is not an executable file")]
    NotExecutable(PathBuf),
    /// The profile directory could not be prepared.
    #[error("cannot prepare browser profile {path:?}: {source}")]
    Profile {
        /// The profile directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The process could not be started at all.
    #[error("failed to start {path:?}: {source}")]
    Spawn {
        /// The binary.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The browser started but exited during its first seconds.
    #[error("{browser} exited at startup ({status}){hint}; last lines of its output:\n{output}")]
    ExitedAtStartup {
        /// The binary.
        browser: String,
        /// How it exited.
        status: String,
        /// A likely cause, if one is recognised (starts with "; ").
        hint: String,
        /// The tail of its stderr/stdout.
        output: String,
    },
    /// Stopping (signalling or waiting for) the process failed.
    #[error("failed to stop browser (pid {pid}): {source}")]
    Stop {
        /// The browser's pid.
        pid: u32,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// A browser family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BrowserKind {
    /// Google Chrome.
    Chrome,
    /// Chromium (including distribution builds and unpacked Chromium binaries).
    Chromium,
    /// Microsoft Edge.
    Edge,
    /// Mozilla Firefox.
    Firefox,
}

impl BrowserKind {
    /// All kinds, in the order [`find_all`] reports them.
    pub const ALL: [BrowserKind; 4] =
        [BrowserKind::Chrome, BrowserKind::Chromium, BrowserKind::Edge, BrowserKind::Firefox];

    /// The lowercase name: `chrome`, `chromium`, `edge` or `firefox`.
    pub fn name(self) -> &'static str {
        match self {
            BrowserKind::Chrome => "chrome",
            BrowserKind::Chromium => "chromium",
            BrowserKind::Edge => "edge",
            BrowserKind::Firefox => "firefox",
        }
    }

    /// Whether this is a Chromium-based browser (Chrome, Chromium, Edge).
    pub fn is_chromium_family(self) -> bool {
        !matches!(self, BrowserKind::Firefox)
    }

    /// The environment variable that overrides discovery for this kind.
    pub fn env_var(self) -> &'static str {
        match self {
            BrowserKind::Chrome => "IPFS_ACCELERATE_CHROME",
            BrowserKind::Chromium => "IPFS_ACCELERATE_CHROMIUM",
            BrowserKind::Edge => "IPFS_ACCELERATE_EDGE",
            BrowserKind::Firefox => "IPFS_ACCELERATE_FIREFOX",
        }
    }

    /// Command names searched on `PATH` (without `.exe`).
    pub fn path_names(self) -> &'static [&'static str] {
        match self {
            BrowserKind::Chrome => &["google-chrome", "google-chrome-stable", "chrome"],
            BrowserKind::Chromium => &["chromium", "chromium-browser"],
            BrowserKind::Edge => &["microsoft-edge", "microsoft-edge-stable", "msedge"],
            BrowserKind::Firefox => &["firefox", "firefox-esr"],
        }
    }

    /// Standard install locations on this platform, most likely first.
    pub fn install_locations(self) -> Vec<PathBuf> {
        install_locations(self)
    }

    /// Guesses the kind from a binary's path (its file name, or the `.app` bundle on
    /// macOS). Anything unrecognised is taken to be Chromium-family.
    pub fn guess_from_path(path: &Path) -> BrowserKind {
        let name = path.file_name().map(|n| n.to_string_lossy().to_lowercase()).unwrap_or_default();
        let full = path.to_string_lossy().to_lowercase();
        let is = |needle: &str| name.contains(needle);
        if is("firefox") {
            BrowserKind::Firefox
        } else if is("edge") || is("msedge") {
            BrowserKind::Edge
        } else if is("chromium") {
            BrowserKind::Chromium
        } else if is("chrome") {
            // `chrome` is also the binary inside Chromium's own install dirs.
            if full.contains("chromium") {
                BrowserKind::Chromium
            } else {
                BrowserKind::Chrome
            }
        } else if full.contains("firefox") {
            BrowserKind::Firefox
        } else {
            BrowserKind::Chromium
        }
    }

    fn install_hint(self) -> String {
        let how = match self {
            BrowserKind::Chrome => "install Google Chrome (https://www.google.com/chrome/)",
            BrowserKind::Chromium => "install it (apt-get install chromium)",
            BrowserKind::Edge => "install Microsoft Edge (https://www.microsoft.com/edge)",
            BrowserKind::Firefox => "install it (apt-get install firefox-esr)",
        };
        format!("{how} or set {}=/path", self.env_var())
    }
}

impl fmt::Display for BrowserKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for BrowserKind {
    type Err = BrowserError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "chrome" | "google-chrome" => Ok(BrowserKind::Chrome),
            "chromium" => Ok(BrowserKind::Chromium),
            "edge" | "msedge" | "microsoft-edge" => Ok(BrowserKind::Edge),
            "firefox" => Ok(BrowserKind::Firefox),
            _ => Err(BrowserError::UnknownKind(s.to_string())),
        }
    }
}

/// A browser binary found on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalledBrowser {
    /// Its family (decides the launch flags).
    pub kind: BrowserKind,
    /// The binary to execute.
    pub path: PathBuf,
    /// The version number from `--version` (e.g. `148.0.7778.167`), if it answered in time.
    pub version: Option<String>,
}

impl InstalledBrowser {
    /// An explicitly named binary; the kind is guessed from its file name.
    pub fn from_path(path: impl AsRef<Path>) -> Result<InstalledBrowser, BrowserError> {
        let path = path.as_ref();
        Self::with_kind(BrowserKind::guess_from_path(path), path)
    }

    /// An explicitly named binary of a known kind.
    pub fn with_kind(kind: BrowserKind, path: impl AsRef<Path>) -> Result<InstalledBrowser, BrowserError> {
        let path = path.as_ref();
        if !is_executable(path) {
            return Err(BrowserError::NotExecutable(path.to_path_buf()));
        }
        Ok(InstalledBrowser { kind, path: path.to_path_buf(), version: browser_version(path) })
    }

    /// The major version, if the version is known.
    pub fn major_version(&self) -> Option<u32> {
        self.version.as_deref()?.split('.').next()?.parse().ok()
    }
}

impl fmt::Display for InstalledBrowser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ", self.kind)?;
        if let Some(v) = &self.version {
            write!(f, "{v} ")?;
        }
        write!(f, "({})", self.path.display())
    }
}

/// Finds a browser of this kind: env override, then `PATH`, then standard locations.
///
/// `None` when there is none (or the env override is not an executable file; [`require`]
/// says which).
pub fn find(kind: BrowserKind) -> Option<InstalledBrowser> {
    require(kind).ok()
}

/// Like [`find`], but with an error that says how to install the browser or point at it.
pub fn require(kind: BrowserKind) -> Result<InstalledBrowser, BrowserError> {
    let path = locate(kind, std::env::var_os(kind.env_var()), std::env::var_os("PATH"))?;
    Ok(InstalledBrowser { kind, version: browser_version(&path), path })
}

/// All installed browsers, one per kind at most, in [`BrowserKind::ALL`] order.
/// A binary found for two kinds (e.g. a `chrome` link to Chromium) is reported once.
pub fn find_all() -> Vec<InstalledBrowser> {
    let mut out: Vec<InstalledBrowser> = Vec::new();
    let mut seen = Vec::new();
    for kind in BrowserKind::ALL {
        if let Some(b) = find(kind) {
            let canon = std::fs::canonicalize(&b.path).unwrap_or_else(|_| b.path.clone());
            if !seen.contains(&canon) {
                seen.push(canon);
                out.push(b);
            }
        }
    }
    out
}

/// Resolves a user's `--browser` argument: `chrome`, `chromium`, `edge`, `firefox`
/// (discovered) or a path to a binary (kind guessed from its name).
pub fn resolve(spec: &str) -> Result<InstalledBrowser, BrowserError> {
    if let Ok(kind) = spec.parse::<BrowserKind>() {
        return require(kind);
    }
    let path = Path::new(spec);
    if path.components().count() > 1 || path.exists() {
        return InstalledBrowser::from_path(path);
    }
    Err(BrowserError::UnknownKind(spec.to_string()))
}

/// The binary for `kind` given the override and `PATH` values (separated out for tests).
fn locate(
    kind: BrowserKind,
    env_override: Option<OsString>,
    path_var: Option<OsString>,
) -> Result<PathBuf, BrowserError> {
    if let Some(value) = env_override.filter(|v| !v.is_empty()) {
        let path = PathBuf::from(value);
        if is_executable(&path) {
            return Ok(path);
        }
        return Err(BrowserError::BadOverride { var: kind.env_var(), path });
    }
    if let Some(path_var) = path_var {
        for dir in std::env::split_paths(&path_var) {
            for name in kind.path_names() {
                for candidate in exe_candidates(&dir, name) {
                    if is_executable(&candidate) {
                        return Ok(candidate);
                    }
                }
            }
        }
    }
    kind.install_locations()
        .into_iter()
        .find(|p| is_executable(p))
        .ok_or_else(|| BrowserError::NotFound { kind, hint: kind.install_hint() })
}

fn exe_candidates(dir: &Path, name: &str) -> Vec<PathBuf> {
    if cfg!(windows) {
        vec![dir.join(format!("{name}.exe")), dir.join(name)]
    } else {
        vec![dir.join(name)]
    }
}

#[cfg(target_os = "macos")]
fn install_locations(kind: BrowserKind) -> Vec<PathBuf> {
    let bundle: &[(&str, &str)] = match kind {
        BrowserKind::Chrome => {
            &[("Google Chrome.app", "Google Chrome"), ("Google Chrome Canary.app", "Google Chrome Canary")]
        }
        BrowserKind::Chromium => &[("Chromium.app", "Chromium")],
        BrowserKind::Edge => &[("Microsoft Edge.app", "Microsoft Edge")],
        BrowserKind::Firefox => &[("Firefox.app", "firefox")],
    };
    let mut roots = vec![PathBuf::from("/Applications")];
    if let Some(home) = std::env::var_os("HOME") {
        roots.push(PathBuf::from(home).join("Applications"));
    }
    let mut out = Vec::new();
    for root in &roots {
        for (app, exe) in bundle {
            out.push(root.join(app).join("Contents/MacOS").join(exe));
        }
    }
    out
}

#[cfg(windows)]
fn install_locations(kind: BrowserKind) -> Vec<PathBuf> {
    let rel: &[&str] = match kind {
        BrowserKind::Chrome => &[r"Google\Chrome\Application\chrome.exe"],
        BrowserKind::Chromium => &[r"Chromium\Application\chrome.exe"],
        BrowserKind::Edge => &[r"Microsoft\Edge\Application\msedge.exe"],
        BrowserKind::Firefox => &[r"Mozilla Firefox\firefox.exe"],
    };
    let mut out = Vec::new();
    for var in ["ProgramFiles", "ProgramFiles(x86)", "LOCALAPPDATA"] {
        if let Some(root) = std::env::var_os(var) {
            for r in rel {
                out.push(PathBuf::from(&root).join(r));
            }
        }
    }
    out
}

#[cfg(not(any(target_os = "macos", windows)))]
fn install_locations(kind: BrowserKind) -> Vec<PathBuf> {
    let paths: &[&str] = match kind {
        BrowserKind::Chrome => &[
            "/opt/google/chrome/chrome",
            "/usr/bin/google-chrome",
            "/usr/bin/google-chrome-stable",
            "/opt/google/chrome-beta/chrome",
            "/opt/google/chrome-unstable/chrome",
        ],
        BrowserKind::Chromium => &[
            "/usr/bin/chromium",
            "/usr/bin/chromium-browser",
            "/usr/lib/chromium/chromium",
            "/usr/lib/chromium-browser/chromium-browser",
            "/snap/bin/chromium",
            "/var/lib/flatpak/exports/bin/org.chromium.Chromium",
        ],
        BrowserKind::Edge => {
            &["/opt/microsoft/msedge/msedge", "/usr/bin/microsoft-edge", "/usr/bin/microsoft-edge-stable"]
        }
        BrowserKind::Firefox => &[
            "/usr/bin/firefox",
            "/usr/bin/firefox-esr",
            "/usr/lib/firefox/firefox",
            "/usr/lib/firefox-esr/firefox-esr",
            "/opt/firefox/firefox",
            "/snap/bin/firefox",
            "/var/lib/flatpak/exports/bin/org.mozilla.firefox",
        ],
    };
    paths.iter().map(PathBuf::from).collect()
}

/// Whether `path` is a regular file this process could execute.
pub(crate) fn is_executable(path: &Path) -> bool {
    let Ok(meta) = std::fs::metadata(path) else {
        return false;
    };
    if !meta.is_file() {
        return false;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        meta.permissions().mode() & 0o111 != 0
    }
    #[cfg(not(unix))]
    {
        true
    }
}

/// The browser's version number, from `<path> --version` (killed after
/// [`VERSION_TIMEOUT`]); `None` if it fails, prints no version or takes too long.
///
/// On Windows `chrome.exe --version` opens a window instead of printing, so there the
/// version is read from the versioned directory Chrome and Edge install next to the binary.
pub fn browser_version(path: &Path) -> Option<String> {
    if cfg!(windows) {
        return version_from_sibling_dir(path);
    }
    let output = run_with_timeout(path, &["--version"], VERSION_TIMEOUT)?;
    parse_version(&output)
}

fn version_from_sibling_dir(path: &Path) -> Option<String> {
    let dir = path.parent()?;
    let mut best: Option<(Vec<u32>, String)> = None;
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(v) = parse_version(&name) {
            if v == name {
                let key: Vec<u32> = v.split('.').filter_map(|p| p.parse().ok()).collect();
                if best.as_ref().is_none_or(|(k, _)| key > *k) {
                    best = Some((key, v));
                }
            }
        }
    }
    best.map(|(_, v)| v)
}

/// The first dotted number in `text` (`Chromium 148.0.7778.167 built on ...` →
/// `148.0.7778.167`, `Mozilla Firefox 128.5.0esr` → `128.5.0esr`).
fn parse_version(text: &str) -> Option<String> {
    text.split_whitespace()
        .find(|tok| {
            tok.starts_with(|c: char| c.is_ascii_digit())
                && tok.contains('.')
                && tok.split('.').next().is_some_and(|p| p.parse::<u32>().is_ok())
        })
        .map(|tok| tok.trim_end_matches([',', ';']).to_string())
}

/// Runs a short command and returns its stdout, or `None` on failure or timeout. On unix
/// the command gets its own process group, killed as a whole on timeout (a wrapper script
/// and its children included).
fn run_with_timeout(path: &Path, args: &[&str], timeout: Duration) -> Option<String> {
    let mut cmd = Command::new(path);
    cmd.args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::null());
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
    }
    let mut child = cmd.spawn().ok()?;
    let mut stdout = child.stdout.take()?;
    let (tx, rx) = std::sync::mpsc::channel();
    // A reader thread so a child that never closes stdout cannot block us.
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stdout.by_ref().take(64 * 1024).read_to_end(&mut buf);
        let _ = tx.send(buf);
    });
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                let left = deadline.saturating_duration_since(Instant::now());
                let out = rx.recv_timeout(left.max(Duration::from_millis(200))).ok();
                kill_tree(&mut child);
                if !status.success() {
                    return None;
                }
                return out.map(|b| String::from_utf8_lossy(&b).into_owned());
            }
            Ok(None) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            _ => {
                // Debug, not a warning: the version is only shown, and a busy
                // machine can delay a browser's start past the timeout; a
                // warning here broke the one-line errors commands promise.
                tracing::debug!("{} --version did not answer within {timeout:?}; version unknown", path.display());
                kill_tree(&mut child);
                return None;
            }
        }
    }
}

/// Kills a child started in its own process group (and anything left in that group).
fn kill_tree(child: &mut std::process::Child) {
    #[cfg(unix)]
    {
        if let Ok(pgid) = libc::pid_t::try_from(child.id()) {
            // SAFETY: killpg has no memory-safety preconditions.
            unsafe {
                libc::killpg(pgid, libc::SIGKILL);
            }
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kinds() {
        assert_eq!("chrome".parse::<BrowserKind>().unwrap(), BrowserKind::Chrome);
        assert_eq!("Chromium".parse::<BrowserKind>().unwrap(), BrowserKind::Chromium);
        assert_eq!("edge".parse::<BrowserKind>().unwrap(), BrowserKind::Edge);
        assert_eq!("firefox".parse::<BrowserKind>().unwrap(), BrowserKind::Firefox);
        assert!("safari".parse::<BrowserKind>().is_err());
        for k in BrowserKind::ALL {
            assert_eq!(k.name().parse::<BrowserKind>().unwrap(), k);
        }
    }

    #[test]
    fn guesses_kind_from_path() {
        let g = |p: &str| BrowserKind::guess_from_path(Path::new(p));
        assert_eq!(g("/opt/google/chrome/chrome"), BrowserKind::Chrome);
        assert_eq!(g("/usr/bin/google-chrome-stable"), BrowserKind::Chrome);
        assert_eq!(g("/usr/lib/chromium/chromium"), BrowserKind::Chromium);
        assert_eq!(g("/tmp/chromium-153/chrome"), BrowserKind::Chromium);
        assert_eq!(g("/opt/microsoft/msedge/msedge"), BrowserKind::Edge);
        assert_eq!(g("/Applications/Microsoft Edge.app/Contents/MacOS/Microsoft Edge"), BrowserKind::Edge);
        assert_eq!(g("/Applications/Google Chrome.app/Contents/MacOS/Google Chrome"), BrowserKind::Chrome);
        assert_eq!(g("/Applications/Firefox.app/Contents/MacOS/firefox"), BrowserKind::Firefox);
        assert_eq!(g("/usr/bin/firefox-esr"), BrowserKind::Firefox);
        assert_eq!(g("/bin/false"), BrowserKind::Chromium);
    }

    #[test]
    fn parses_versions() {
        assert_eq!(
            parse_version("Chromium 148.0.7778.167 built on Debian GNU/Linux 12 (bookworm)").as_deref(),
            Some("148.0.7778.167")
        );
        assert_eq!(parse_version("Google Chrome 120.0.6099.129 \n").as_deref(), Some("120.0.6099.129"));
        assert_eq!(parse_version("Mozilla Firefox 128.5.0esr").as_deref(), Some("128.5.0esr"));
        assert_eq!(parse_version("no version here"), None);
    }

    #[test]
    fn bad_override_is_an_error_not_a_fallback() {
        let err = locate(BrowserKind::Edge, Some("/nonexistent/msedge".into()), Some("/usr/bin".into())).unwrap_err();
        assert!(err.to_string().contains("IPFS_ACCELERATE_EDGE"), "{err}");
    }

    #[test]
    fn not_found_says_how_to_fix() {
        let err = BrowserError::NotFound { kind: BrowserKind::Chromium, hint: BrowserKind::Chromium.install_hint() };
        assert_eq!(
            err.to_string(),
            "no chromium found: install it (apt-get install chromium) or set IPFS_ACCELERATE_CHROMIUM=/path"
        );
    }
}
