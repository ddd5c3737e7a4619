//! The Python venv with the real API clients (openai, huggingface_hub) that
//! `scripts/install-client-venv.sh` makes, shared by the server and CLI tests.

use std::path::PathBuf;

/// The client venv's python, or `None` (a skip with a note; a failure under CI).
pub fn client_python() -> Option<PathBuf> {
    let venv = std::env::var_os("IPFS_ACCELERATE_CLIENT_VENV").map(PathBuf::from).unwrap_or_else(|| {
        let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
        home.join(".cache/ipfs-accelerate/client-venv")
    });
    let python = venv.join("bin/python");
    if python.exists() {
        return Some(python);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        panic!("the client venv {} is missing under CI: run scripts/install-client-venv.sh", venv.display());
    }
    eprintln!("SKIPPED: the client venv {} is missing; run scripts/install-client-venv.sh", venv.display());
    None
}
