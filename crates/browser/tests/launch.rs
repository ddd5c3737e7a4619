//! Browser discovery and launch against the real browsers on this machine.
//!
//! Tests that need Chromium skip with a notice when none is installed, unless `CI=true`,
//! where a missing Chromium is a failure.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ipfs_accelerate_browser::discover::{self, BrowserKind, InstalledBrowser};
use ipfs_accelerate_browser::launch::{self, BrowserError, LaunchOptions, Profile};

fn chromium() -> Option<InstalledBrowser> {
    match discover::require(BrowserKind::Chromium) {
        Ok(b) => Some(b),
        Err(e) => {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("CI=true but {e}");
            }
            eprintln!("SKIPPED: {e}");
            None
        }
    }
}

/// The test page: reports the user agent and `navigator.gpu`, then the WebGPU adapter.
const PAGE: &str = r#"<!doctype html><html><body><script type="module">
await fetch('/done?ua=' + encodeURIComponent(navigator.userAgent) + '&gpu=' + !!navigator.gpu);
let adapter = null, info = '', err = '';
try {
  adapter = navigator.gpu ? await navigator.gpu.requestAdapter() : null;
  if (adapter && adapter.info) {
    info = [adapter.info.vendor, adapter.info.architecture, adapter.info.description].join('|');
  }
} catch (e) { err = String(e); }
await fetch('/adapter?ok=' + (adapter !== null) + '&info=' + encodeURIComponent(info)
  + '&err=' + encodeURIComponent(err));
</script></body></html>"#;

/// A tiny HTTP server: `/` serves [`PAGE`], every other path is reported on the channel
/// (path with query) and answered 204.
fn serve() -> (String, mpsc::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    return;
                }
                // Drain the headers.
                loop {
                    let mut h = String::new();
                    match reader.read_line(&mut h) {
                        Ok(0) | Err(_) => break,
                        Ok(_) if h == "\r\n" || h == "\n" => break,
                        Ok(_) => {}
                    }
                }
                let target = line.split_whitespace().nth(1).unwrap_or("/").to_string();
                let response = if target == "/" {
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{PAGE}",
                        PAGE.len()
                    )
                } else {
                    if target != "/favicon.ico" {
                        let _ = tx.send(target);
                    }
                    "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n".to_string()
                };
                let _ = stream.write_all(response.as_bytes());
            });
        }
    });
    (url, rx)
}

fn wait_for(rx: &mpsc::Receiver<String>, prefix: &str, timeout: Duration) -> Option<String> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        match rx.recv_timeout(left) {
            Ok(t) if t.starts_with(prefix) => return Some(t),
            Ok(_) => {}
            Err(_) => return None,
        }
    }
}

fn query_param(target: &str, key: &str) -> Option<String> {
    let query = target.split_once('?')?.1;
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == key).then(|| percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Live (non-zombie) processes whose command line mentions `needle`, or whose process
/// group is `pgid`.
fn processes_matching(needle: &Path, pgid: Option<u32>) -> Vec<(u32, String)> {
    let needle = needle.to_string_lossy().into_owned();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // Fields after the ")" that closes the command name: state ppid pgrp ...
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.first() == Some(&"Z") || fields.first() == Some(&"X") {
            continue;
        }
        let pgrp: u32 = fields.get(2).and_then(|p| p.parse().ok()).unwrap_or(0);
        let cmdline = std::fs::read(entry.path().join("cmdline"))
            .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
            .unwrap_or_default();
        if Some(pgrp) == pgid || cmdline.contains(&needle) {
            found.push((pid, cmdline));
        }
    }
    found
}

#[test]
fn discovery_finds_chromium() {
    let Some(b) = chromium() else { return };
    eprintln!("found {b}");
    assert_eq!(b.kind, BrowserKind::Chromium);
    assert!(b.path.is_file());
    let major = b.major_version().expect("chromium --version gives a version");
    assert!(major >= 100, "{b}");
    if Path::new("/usr/bin/chromium").exists() && std::env::var_os("IPFS_ACCELERATE_CHROMIUM").is_none() {
        assert_eq!(b.path, PathBuf::from("/usr/bin/chromium"));
    }
    // By name and by path.
    assert_eq!(discover::resolve("chromium").unwrap().path, b.path);
    let by_path = discover::resolve(b.path.to_str().unwrap()).unwrap();
    assert_eq!(by_path.kind, BrowserKind::Chromium);
    assert_eq!(by_path.version, b.version);
    assert!(discover::find_all().iter().any(|x| x.path == b.path));
}

#[test]
fn unknown_names_and_missing_binaries_are_clear_errors() {
    let err = discover::resolve("safari").unwrap_err();
    assert!(err.to_string().contains("unknown browser"), "{err}");
    let err = discover::resolve("/nonexistent/dir/chrome").unwrap_err();
    assert!(matches!(err, BrowserError::NotExecutable(_)), "{err}");
    assert!(err.to_string().contains("/nonexistent/dir/chrome"), "{err}");

    // Launching a binary that does not exist (e.g. uninstalled since discovery).
    let ghost =
        InstalledBrowser { kind: BrowserKind::Chromium, path: "/nonexistent/dir/chromium".into(), version: None };
    let err = launch::launch(&ghost, "about:blank", &LaunchOptions::default()).unwrap_err();
    assert!(err.to_string().contains("/nonexistent/dir/chromium"), "{err}");
}

#[test]
fn env_override_is_used() {
    let dir = tempfile::tempdir().unwrap();
    let edge = dir.path().join("my-edge");
    std::fs::write(&edge, "#!/bin/sh\necho 'Microsoft Edge 130.0.2849.80 '\n").unwrap();
    make_executable(&edge);
    // Only this test sets IPFS_ACCELERATE_EDGE (find_all in another test may see it,
    // which is harmless: the script answers at once).
    std::env::set_var("IPFS_ACCELERATE_EDGE", &edge);
    let found = discover::find(BrowserKind::Edge);
    std::env::remove_var("IPFS_ACCELERATE_EDGE");
    let found = found.expect("env override is used");
    assert_eq!(found.path, edge);
    assert_eq!(found.kind, BrowserKind::Edge);
    assert_eq!(found.version.as_deref(), Some("130.0.2849.80"));
}

#[test]
fn version_probe_never_hangs() {
    let dir = tempfile::tempdir().unwrap();
    // A "browser" whose --version never answers (and whose child keeps stdout open).
    let slow = dir.path().join("slow-browser");
    std::fs::write(&slow, "#!/bin/sh\nsleep 60 &\nsleep 60\n").unwrap();
    make_executable(&slow);
    let start = Instant::now();
    let found = InstalledBrowser::from_path(&slow).unwrap();
    let took = start.elapsed();
    assert_eq!(found.version, None);
    assert!(took < discover::VERSION_TIMEOUT + Duration::from_secs(3), "took {took:?}");
    // The script and its children were killed with their process group.
    std::thread::sleep(Duration::from_millis(200));
    let left = processes_matching(&slow, None);
    assert!(left.is_empty(), "left running: {left:?}");
}

fn make_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn browser_that_exits_at_once_is_an_error_with_its_output() {
    let b = InstalledBrowser::from_path("/bin/false").unwrap();
    assert_eq!(b.kind, BrowserKind::Chromium);
    let start = Instant::now();
    let err = launch::launch(&b, "about:blank", &LaunchOptions::default()).unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(2), "{:?}", start.elapsed());
    assert!(matches!(err, BrowserError::ExitedAtStartup { .. }), "{err}");
    assert!(err.to_string().contains("exit code 1"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let crash = dir.path().join("chrome");
    std::fs::write(&crash, "#!/bin/sh\necho 'starting up' >&2\necho 'FATAL: cannot open libfoo.so' >&2\nexit 3\n")
        .unwrap();
    make_executable(&crash);
    let b = InstalledBrowser::from_path(&crash).unwrap();
    let data = tempfile::tempdir().unwrap();
    let opts = LaunchOptions {
        profile: Profile::Slot { data_dir: data.path().to_path_buf(), slot: 0 },
        ..LaunchOptions::default()
    };
    let err = launch::launch(&b, "about:blank", &opts).unwrap_err();
    let msg = err.to_string();
    eprintln!("{msg}");
    assert!(msg.contains("exit code 3"), "{msg}");
    assert!(msg.contains("FATAL: cannot open libfoo.so"), "{msg}");
}

#[test]
fn headless_chromium_loads_a_page_with_webgpu_and_stops_cleanly() {
    let Some(b) = chromium() else { return };
    let (url, rx) = serve();
    let proc = launch::launch(&b, &url, &LaunchOptions::default()).expect("launch chromium");
    let profile = proc.profile_dir().to_path_buf();
    let pid = proc.pid();
    assert!(profile.is_dir());
    assert!(proc.is_running());

    let done = wait_for(&rx, "/done", Duration::from_secs(30));
    let adapter = done.as_ref().and_then(|_| wait_for(&rx, "/adapter", Duration::from_secs(30)));
    let log = proc.output_tail(40);
    let running = processes_matching(&profile, Some(pid));
    eprintln!("{} processes in the browser's group", running.len());
    eprintln!("browser output so far:\n{log}");

    let stopping = Instant::now();
    proc.stop().expect("stop");
    eprintln!("stop took {:?}", stopping.elapsed());
    proc.stop().expect("stop is idempotent");
    assert!(!proc.is_running());

    let done = done.unwrap_or_else(|| panic!("page never reported; browser output:\n{log}"));
    let ua = query_param(&done, "ua").unwrap();
    eprintln!("user agent: {ua}");
    assert!(ua.contains("Chrome/"), "{ua}");
    assert_eq!(query_param(&done, "gpu").as_deref(), Some("true"), "navigator.gpu missing");
    let adapter = adapter.unwrap_or_else(|| panic!("no adapter report; output:\n{log}"));
    eprintln!(
        "adapter: ok={:?} info={:?} err={:?}",
        query_param(&adapter, "ok"),
        query_param(&adapter, "info"),
        query_param(&adapter, "err")
    );
    assert_eq!(
        query_param(&adapter, "ok").as_deref(),
        Some("true"),
        "requestAdapter() returned null: {adapter}\n{log}"
    );

    // The whole process group is gone, and the ephemeral profile with it.
    let left = processes_matching(&profile, Some(pid));
    assert!(left.is_empty(), "left running: {left:?}");
    assert!(!profile.exists(), "ephemeral profile {profile:?} not deleted");
    assert!(running.len() > 1, "expected helper processes: {running:?}");
}

#[test]
fn slot_profile_persists_across_restarts() {
    let Some(b) = chromium() else { return };
    let data = tempfile::tempdir().unwrap();
    let opts = LaunchOptions {
        profile: Profile::Slot { data_dir: data.path().to_path_buf(), slot: 3 },
        ..LaunchOptions::default()
    };
    let expected = data.path().join("browser-profiles/chromium-3");
    for round in 0..2 {
        let (url, rx) = serve();
        let proc = launch::launch(&b, &url, &opts).expect("launch chromium");
        assert_eq!(proc.profile_dir(), expected);
        let done = wait_for(&rx, "/done", Duration::from_secs(30));
        let log = proc.output_tail(40);
        let pid = proc.pid();
        drop(proc); // drop stops it
        assert!(done.is_some(), "round {round}: page never reported; output:\n{log}");
        let left = processes_matching(&expected, Some(pid));
        assert!(left.is_empty(), "left running: {left:?}");
        assert!(expected.is_dir());
        // A clean shutdown writes the profile's Local State.
        assert!(
            expected.join("Local State").is_file(),
            "round {round}: {:?}",
            std::fs::read_dir(&expected).unwrap().map(|e| e.unwrap().file_name()).collect::<Vec<_>>()
        );
    }
    assert!(expected.join("Default").is_dir());
}
