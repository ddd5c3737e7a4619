//! Launching and stopping browsers.
//!
//! [`launch`] starts an [`InstalledBrowser`] on a URL with the flags its family needs
//! (see [`browser_args`]) and a profile directory per worker slot ([`Profile::Slot`]) or a
//! temporary one ([`Profile::Ephemeral`]). The returned [`BrowserProcess`] owns the
//! browser: on unix it runs in its own process group, so [`BrowserProcess::stop`] (also
//! run on drop) takes the renderer, GPU and utility processes down with it.

use std::ffi::OsString;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub use crate::discover::BrowserError;
use crate::discover::{BrowserKind, InstalledBrowser};

/// A browser that exits within this long after starting is reported as a startup failure.
pub const STARTUP_GRACE: Duration = Duration::from_secs(2);
/// How long [`BrowserProcess::stop`] waits after SIGTERM before SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(3);
/// The file, inside the profile directory, that receives the browser's stdout and stderr.
pub const LOG_FILE: &str = "ipfs-accelerate-browser.log";

/// Where a launched browser keeps its profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Profile {
    /// A persistent profile at `<data_dir>/browser-profiles/<kind>-<slot>`: the browser's
    /// Cache Storage (model weights) and its compiled-shader cache survive restarts.
    /// One browser per slot at a time (the browser locks its profile).
    Slot {
        /// The data directory of ipfs-accelerate.
        data_dir: PathBuf,
        /// The worker slot number.
        slot: usize,
    },
    /// A fresh temporary profile, deleted when the browser is stopped.
    Ephemeral,
}

/// How to launch a browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchOptions {
    /// Run without a window (default true).
    pub headless: bool,
    /// Which profile directory to use (default [`Profile::Ephemeral`]).
    pub profile: Profile,
    /// More command-line arguments, passed before the URL.
    pub extra_args: Vec<String>,
}

impl Default for LaunchOptions {
    fn default() -> Self {
        LaunchOptions { headless: true, profile: Profile::Ephemeral, extra_args: Vec::new() }
    }
}

/// The persistent profile directory of a worker slot:
/// `<data_dir>/browser-profiles/<kind>-<slot>`.
pub fn slot_profile_dir(data_dir: &Path, kind: BrowserKind, slot: usize) -> PathBuf {
    data_dir.join("browser-profiles").join(format!("{}-{slot}", kind.name()))
}

/// Whether this process runs as root (Chromium's sandbox refuses to start as root).
pub fn running_as_root() -> bool {
    #[cfg(unix)]
    {
        // SAFETY: geteuid has no preconditions and cannot fail.
        unsafe { libc::geteuid() == 0 }
    }
    #[cfg(not(unix))]
    {
        false
    }
}

/// The command-line arguments for launching `kind` on `url` with the profile at `profile_dir`.
///
/// Chromium family (Chrome, Chromium, Edge):
/// * `--headless=new` when headless: the current headless mode, the full browser with
///   WebGPU (the old `--headless=old` shell is a separate binary in recent versions);
/// * `--no-first-run --no-default-browser-check --disable-default-apps --disable-extensions
///   --disable-sync --disable-background-networking --disable-component-update
///   --disable-quic --password-store=basic` (and `--use-mock-keychain` on macOS): no
///   dialogs, no network traffic of its own, no keyring prompts;
/// * `--disable-background-timer-throttling --disable-renderer-backgrounding
///   --disable-backgrounding-occluded-windows`: a worker tab must compute at full speed
///   even when its window is hidden or in the background (headful mode);
/// * `--mute-audio`;
/// * `--enable-unsafe-webgpu`: without it `navigator.gpu.requestAdapter()` silently
///   returns null on Linux (and on any GPU the browser's blocklist rejects);
/// * `--enable-features=WebMachineLearningNeuralNetwork`: WebNN, where the build has it;
/// * `--user-data-dir=<profile_dir>`;
/// * `--no-sandbox` only when running as root: Chromium refuses to start as root with
///   its sandbox on ("Running as root without --no-sandbox is not supported"). As any
///   other user the sandbox stays on; where user namespaces are unavailable pass
///   `--no-sandbox` in [`LaunchOptions::extra_args`] yourself.
///
/// Firefox: `--headless` when headless, `--profile <profile_dir>` (whose `user.js`
/// enables WebGPU and turns off first-run pages and telemetry), `--no-remote`,
/// `-new-instance`.
///
/// `extra_args` come last before the URL.
pub fn browser_args(kind: BrowserKind, url: &str, opts: &LaunchOptions, profile_dir: &Path) -> Vec<OsString> {
    let mut args: Vec<OsString> = Vec::new();
    if kind.is_chromium_family() {
        if opts.headless {
            args.push("--headless=new".into());
        }
        for a in [
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-default-apps",
            "--disable-extensions",
            "--disable-sync",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-quic",
            "--password-store=basic",
            "--disable-background-timer-throttling",
            "--disable-renderer-backgrounding",
            "--disable-backgrounding-occluded-windows",
            "--mute-audio",
            "--enable-unsafe-webgpu",
            "--enable-features=WebMachineLearningNeuralNetwork",
        ] {
            args.push(a.into());
        }
        if cfg!(target_os = "macos") {
            args.push("--use-mock-keychain".into());
        }
        let mut dir = OsString::from("--user-data-dir=");
        dir.push(profile_dir.as_os_str());
        args.push(dir);
        if running_as_root() {
            args.push("--no-sandbox".into());
        }
    } else {
        if opts.headless {
            args.push("--headless".into());
        }
        args.push("--profile".into());
        args.push(profile_dir.as_os_str().to_owned());
        args.push("--no-remote".into());
        args.push("-new-instance".into());
    }
    args.extend(opts.extra_args.iter().map(OsString::from));
    args.push(url.into());
    args
}

/// Firefox preferences written to the profile's `user.js` on every launch.
const FIREFOX_USER_JS: &str = r#"// Written by ipfs-accelerate on every launch.
user_pref("dom.webgpu.enabled", true);
user_pref("gfx.webgpu.ignore-blocklist", true);
user_pref("browser.shell.checkDefaultBrowser", false);
user_pref("browser.startup.homepage_override.mstone", "ignore");
user_pref("startup.homepage_welcome_url", "");
user_pref("startup.homepage_welcome_url.additional", "");
user_pref("browser.aboutwelcome.enabled", false);
user_pref("trailhead.firstrun.didSeeAboutWelcome", true);
user_pref("browser.sessionstore.resume_from_crash", false);
user_pref("browser.tabs.warnOnClose", false);
user_pref("datareporting.policy.dataSubmissionEnabled", false);
user_pref("datareporting.policy.firstRunURL", "");
user_pref("datareporting.healthreport.uploadEnabled", false);
user_pref("toolkit.telemetry.enabled", false);
user_pref("toolkit.telemetry.unified", false);
user_pref("toolkit.telemetry.archive.enabled", false);
user_pref("toolkit.telemetry.reportingpolicy.firstRun", false);
user_pref("app.normandy.enabled", false);
user_pref("app.shield.optoutstudies.enabled", false);
user_pref("app.update.auto", false);
user_pref("app.update.enabled", false);
user_pref("browser.discovery.enabled", false);
user_pref("extensions.update.enabled", false);
user_pref("dom.timeout.enable_budget_timer_throttling", false);
"#;

/// A launched browser. Stopped (with its whole process group) on drop.
#[derive(Debug)]
pub struct BrowserProcess {
    kind: BrowserKind,
    path: PathBuf,
    pid: u32,
    child: Mutex<Child>,
    profile_dir: PathBuf,
    log_path: PathBuf,
    /// The ephemeral profile; deleted by `stop`.
    temp: Mutex<Option<tempfile::TempDir>>,
    stopped: Mutex<bool>,
}

/// Launches `browser` on `url`.
///
/// Prepares the profile directory (created if missing), sends the browser's stdout and
/// stderr to [`LOG_FILE`] in it, and starts it in its own process group (unix). If it
/// exits within [`STARTUP_GRACE`] the error carries the last lines of its output. This
/// blocks for up to [`STARTUP_GRACE`]; call it from a blocking context.
///
/// On Linux the browser is told to quit (SIGTERM) when the *thread* that launched it
/// exits, so a killed process leaves no orphan browser: launch from a thread that lives
/// as long as the browser should (the main thread, or a long-lived one).
pub fn launch(browser: &InstalledBrowser, url: &str, opts: &LaunchOptions) -> Result<BrowserProcess, BrowserError> {
    if !crate::discover::is_executable(&browser.path) {
        return Err(BrowserError::NotExecutable(browser.path.clone()));
    }
    let (profile_dir, temp) = match &opts.profile {
        Profile::Slot { data_dir, slot } => {
            let dir = slot_profile_dir(data_dir, browser.kind, *slot);
            std::fs::create_dir_all(&dir).map_err(|source| BrowserError::Profile { path: dir.clone(), source })?;
            (dir, None)
        }
        Profile::Ephemeral => {
            let temp = tempfile::Builder::new()
                .prefix(&format!("ipfs-accelerate-{}-", browser.kind.name()))
                .tempdir()
                .map_err(|source| BrowserError::Profile { path: std::env::temp_dir(), source })?;
            (temp.path().to_path_buf(), Some(temp))
        }
    };
    let profile_err = |source| BrowserError::Profile { path: profile_dir.clone(), source };
    if browser.kind == BrowserKind::Firefox {
        std::fs::write(profile_dir.join("user.js"), FIREFOX_USER_JS).map_err(profile_err)?;
    }
    let log_path = profile_dir.join(LOG_FILE);
    let log = File::create(&log_path).map_err(profile_err)?;
    let log_out = log.try_clone().map_err(profile_err)?;

    let mut cmd = Command::new(&browser.path);
    cmd.args(browser_args(browser.kind, url, opts, &profile_dir))
        .stdin(Stdio::null())
        .stdout(Stdio::from(log_out))
        .stderr(Stdio::from(log));
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
    }
    // If this process dies without running `stop` (killed, SIGTERM), the
    // kernel tells the browser to quit too, so no orphan keeps running.
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: prctl is async-signal-safe and touches only the child.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
    }
    let child = cmd.spawn().map_err(|source| BrowserError::Spawn { path: browser.path.clone(), source })?;
    let process = BrowserProcess {
        kind: browser.kind,
        path: browser.path.clone(),
        pid: child.id(),
        child: Mutex::new(child),
        profile_dir,
        log_path,
        temp: Mutex::new(temp),
        stopped: Mutex::new(false),
    };
    tracing::debug!(pid = process.pid, "launched {browser} on {url}");

    let deadline = Instant::now() + STARTUP_GRACE;
    while Instant::now() < deadline {
        if let Some(status) = process.exit_status() {
            let output = process.output_tail(30);
            let hint = startup_hint(status, &output);
            let err = BrowserError::ExitedAtStartup {
                browser: browser.to_string(),
                status: describe_status(status),
                hint,
                output: if output.trim().is_empty() { "(no output)".to_string() } else { output },
            };
            let _ = process.stop();
            return Err(err);
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    Ok(process)
}

fn describe_status(status: ExitStatus) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = status.signal() {
            return format!("killed by signal {sig}");
        }
    }
    match status.code() {
        Some(code) => format!("exit code {code}"),
        None => status.to_string(),
    }
}

fn startup_hint(status: ExitStatus, output: &str) -> String {
    let o = output.to_ascii_lowercase();
    if o.contains("no-sandbox") || o.contains("no usable sandbox") {
        "; the sandbox cannot start here: pass --no-sandbox in extra args".into()
    } else if o.contains("missing x server") || o.contains("cannot open display") {
        "; no display for a headful browser: use headless or set DISPLAY".into()
    } else if status.success() {
        "; a browser that exits 0 at once usually handed the URL to an instance \
         already running on the same profile"
            .into()
    } else {
        String::new()
    }
}

impl BrowserProcess {
    /// The browser's process id (also its process group id on unix).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The browser family.
    pub fn kind(&self) -> BrowserKind {
        self.kind
    }

    /// The binary that was started.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The profile directory (for [`Profile::Ephemeral`], deleted by [`stop`](Self::stop)).
    pub fn profile_dir(&self) -> &Path {
        &self.profile_dir
    }

    /// The file receiving the browser's stdout and stderr.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Whether the browser's main process is still running.
    pub fn is_running(&self) -> bool {
        self.exit_status().is_none()
    }

    /// The main process's exit status, once it has exited.
    pub fn exit_status(&self) -> Option<ExitStatus> {
        let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        child.try_wait().ok().flatten()
    }

    /// The last `lines` lines of the browser's output (empty once an ephemeral profile
    /// has been deleted).
    pub fn output_tail(&self, lines: usize) -> String {
        read_tail(&self.log_path, lines)
    }

    /// Stops the browser and everything it started, then deletes an ephemeral profile.
    ///
    /// On unix: SIGTERM to the main process (a clean shutdown flushes the profile: Cache
    /// Storage, shader cache), up to [`STOP_GRACE`] for it to exit, then SIGTERM and
    /// finally SIGKILL to the whole process group, so no renderer or GPU process is left
    /// behind. Elsewhere the process tree is killed. Calling it again does nothing.
    pub fn stop(&self) -> Result<(), BrowserError> {
        let mut stopped = self.stopped.lock().unwrap_or_else(|e| e.into_inner());
        if *stopped {
            return Ok(());
        }
        let result = self.terminate();
        *stopped = true;
        if let Some(temp) = self.temp.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let path = temp.path().to_path_buf();
            if let Err(e) = temp.close() {
                tracing::warn!("could not delete ephemeral profile {}: {e}", path.display());
            }
        }
        result
    }

    #[cfg(unix)]
    fn terminate(&self) -> Result<(), BrowserError> {
        let pgid = libc::pid_t::try_from(self.pid)
            .map_err(|_| BrowserError::Stop { pid: self.pid, source: std::io::Error::other("pid out of range") })?;
        let group_alive = || {
            // SAFETY: killpg with signal 0 only checks for existence.
            unsafe { libc::killpg(pgid, 0) == 0 }
        };
        let signal_group = |sig| {
            // SAFETY: killpg has no memory-safety preconditions.
            unsafe { libc::killpg(pgid, sig) };
        };
        // Reaps the main process when it exits (a zombie leader keeps the group alive).
        let leader_done = || self.exit_status().is_some();
        let wait = |until: Instant, done: &dyn Fn() -> bool| {
            while Instant::now() < until {
                if done() {
                    return true;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            done()
        };
        let all_done = || leader_done() && !group_alive();

        if all_done() {
            return Ok(());
        }
        if !leader_done() {
            // SAFETY: kill has no memory-safety preconditions.
            unsafe { libc::kill(pgid, libc::SIGTERM) };
            wait(Instant::now() + STOP_GRACE, &leader_done);
        }
        if group_alive() {
            signal_group(libc::SIGTERM);
            wait(Instant::now() + Duration::from_millis(500), &all_done);
        }
        if !all_done() {
            tracing::debug!(pid = self.pid, "browser ignored SIGTERM; killing its group");
            signal_group(libc::SIGKILL);
            if !wait(Instant::now() + Duration::from_secs(2), &all_done) {
                // Only unreaped zombies can remain after SIGKILL (orphans wait for init).
                let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
                child.wait().map_err(|source| BrowserError::Stop { pid: self.pid, source })?;
            }
        }
        Ok(())
    }

    #[cfg(not(unix))]
    fn terminate(&self) -> Result<(), BrowserError> {
        if self.exit_status().is_some() {
            return Ok(());
        }
        #[cfg(windows)]
        {
            // Kill the whole tree (renderer, GPU and utility processes).
            let _ = Command::new("taskkill")
                .args(["/T", "/F", "/PID", &self.pid.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        let _ = child.kill();
        child.wait().map(|_| ()).map_err(|source| BrowserError::Stop { pid: self.pid, source })
    }
}

impl Drop for BrowserProcess {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            tracing::warn!("{e}");
        }
    }
}

/// The last `lines` lines of a file (reading at most its last 64 KiB).
fn read_tail(path: &Path, lines: usize) -> String {
    let Ok(mut f) = File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(64 * 1024);
    if f.seek(SeekFrom::Start(start)).is_err() {
        return String::new();
    }
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn has(args: &[OsString], a: &str) -> bool {
        args.iter().any(|x| x == a)
    }

    #[test]
    fn chromium_flags() {
        let opts = LaunchOptions::default();
        let args = browser_args(BrowserKind::Chromium, "http://127.0.0.1:1/", &opts, Path::new("/p"));
        for a in [
            "--headless=new",
            "--enable-unsafe-webgpu",
            "--enable-features=WebMachineLearningNeuralNetwork",
            "--user-data-dir=/p",
            "--no-first-run",
            "--disable-quic",
        ] {
            assert!(has(&args, a), "{a} missing from {args:?}");
        }
        assert_eq!(has(&args, "--no-sandbox"), running_as_root());
        assert_eq!(args.last().unwrap(), "http://127.0.0.1:1/");

        let headful = LaunchOptions { headless: false, extra_args: vec!["--foo".into()], ..LaunchOptions::default() };
        let args = browser_args(BrowserKind::Chrome, "u", &headful, Path::new("/p"));
        assert!(!args.iter().any(|a| a.to_string_lossy().starts_with("--headless")));
        assert_eq!(&args[args.len() - 2..], ["--foo", "u"]);
    }

    #[test]
    fn firefox_flags() {
        let args = browser_args(BrowserKind::Firefox, "u", &LaunchOptions::default(), Path::new("/p"));
        let args: Vec<String> = args.iter().map(|a| a.to_string_lossy().into_owned()).collect();
        assert_eq!(args, ["--headless", "--profile", "/p", "--no-remote", "-new-instance", "u"]);
    }

    #[test]
    fn slot_dir() {
        assert_eq!(
            slot_profile_dir(Path::new("/data"), BrowserKind::Edge, 2),
            Path::new("/data/browser-profiles/edge-2")
        );
    }
}
