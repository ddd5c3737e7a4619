//! A private `XDG_RUNTIME_DIR` when the environment has none.
//!
//! Looking for a GPU loads Mesa's Vulkan driver, which tries the Wayland
//! display; without `XDG_RUNTIME_DIR` (no desktop session: a server, a
//! container, an SSH login) libwayland prints "error: XDG_RUNTIME_DIR is
//! invalid or not set in the environment." to stderr. That line is not an
//! error of ours, yet it appeared in front of every command's output, the
//! README's first command included. So when the variable is unset, the CLI
//! points it at a fresh private directory (mode 0700, removed at exit)
//! before any thread starts; browsers it launches inherit it, and want one
//! too. A variable that is set is left alone.

/// Sets `XDG_RUNTIME_DIR` to a new private directory when it is unset, and
/// returns the directory, which is removed when dropped. Call it first in
/// `main`, while the process has one thread (the environment is not
/// synchronized between threads).
pub fn ensure() -> Option<tempfile::TempDir> {
    if !cfg!(target_os = "linux") || std::env::var_os("XDG_RUNTIME_DIR").is_some() {
        return None;
    }
    // tempfile creates the directory with mode 0700 under a unique name, so
    // no other user can have prepared it.
    let dir = tempfile::Builder::new().prefix("ipfs-accelerate-runtime-").tempdir().ok()?;
    std::env::set_var("XDG_RUNTIME_DIR", dir.path());
    Some(dir)
}
