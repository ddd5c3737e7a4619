//! Helpers shared by the browser tests: a minimal HTTP/1.1 request reader
//! for the std-only test servers that feed pages and take their reports.

// Each test binary uses only some of these.
#![allow(dead_code)]

pub mod conv;

use std::io::{BufRead, BufReader, Read};
use std::net::TcpStream;

/// One request: method, target (path and query) and body.
pub struct Request {
    /// `GET`, `POST`, …
    pub method: String,
    /// The request target, e.g. `/ipfs/bafk…?format=raw`.
    pub target: String,
    /// The body (`Content-Length` bytes).
    pub body: Vec<u8>,
}

/// Reads one request from `stream` (request line, headers, body).
pub fn read_request(stream: &TcpStream) -> std::io::Result<Request> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or("").to_string(), parts.next().unwrap_or("").to_string());
    let mut length = 0usize;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.trim().eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    Ok(Request { method, target, body })
}

use ipfs_accelerate_browser::discover::{find, BrowserKind, InstalledBrowser};
use ipfs_accelerate_browser::launch::{launch, BrowserProcess, LaunchOptions, Profile};
use std::path::{Path, PathBuf};

/// Whether the tests run under CI, where a missing browser is a failure.
pub fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Chromium as the crate finds it (`IPFS_ACCELERATE_CHROMIUM`, PATH, standard
/// places), or `None` (skip with a notice; a failure under CI).
pub fn chromium() -> Option<PathBuf> {
    match find(BrowserKind::Chromium) {
        Some(b) => Some(b.path),
        None => {
            assert!(!ci(), "CI=true and no chromium (apt-get install chromium, or IPFS_ACCELERATE_CHROMIUM)");
            eprintln!("SKIPPED: no chromium (apt-get install chromium, or IPFS_ACCELERATE_CHROMIUM)");
            None
        }
    }
}

/// The unpacked @sparticuz/chromium binary, or `None` (skip; a failure under CI).
pub fn webnn_chromium() -> Option<PathBuf> {
    let path = match std::env::var_os("IPFS_ACCELERATE_WEBNN_CHROMIUM") {
        Some(p) => PathBuf::from(p),
        None => {
            let root = std::env::var_os("IPFS_ACCELERATE_WEBNN_CHROMIUM_DIR").map(PathBuf::from).unwrap_or_else(|| {
                let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
                home.join(".cache/ipfs-accelerate/webnn-chromium")
            });
            root.join("chromium/chromium")
        }
    };
    if path.is_file() {
        return Some(path);
    }
    if ci() {
        panic!("CI=true and the WebNN chromium {} is missing: run scripts/install-webnn-chromium.sh", path.display());
    }
    eprintln!("SKIPPED: WebNN chromium {} is missing; run scripts/install-webnn-chromium.sh", path.display());
    None
}

/// Starts the browser at `path` headless on `url` with the crate's own
/// launcher (its flags, own process group, stopped on drop), plus `extra`
/// arguments.
pub fn open(path: &Path, url: &str, profile: Profile, extra: &[&str]) -> BrowserProcess {
    let browser = InstalledBrowser::from_path(path).unwrap_or_else(|e| panic!("{e}"));
    let options = LaunchOptions { headless: true, profile, extra_args: extra.iter().map(|a| a.to_string()).collect() };
    launch(&browser, url, &options).unwrap_or_else(|e| panic!("{e}"))
}

/// Kills the browser and every process of its group at once, as a crash would.
pub fn crash(browser: &BrowserProcess) {
    // SAFETY: killpg only signals the group the launcher created for this browser.
    unsafe { libc::killpg(browser.pid() as libc::pid_t, libc::SIGKILL) };
    let _ = browser.stop();
}
