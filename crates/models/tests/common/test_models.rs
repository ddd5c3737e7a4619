//! Where the test models fetched by `scripts/fetch-test-models.sh` are.

use std::path::PathBuf;

/// `relative` under `IPFS_ACCELERATE_TEST_MODELS` (default
/// `~/.cache/ipfs-accelerate/test-models`). When it is missing the test is
/// skipped with a note, except under CI (`CI=true`), where a missing model is
/// a failure.
pub fn test_model(relative: &str) -> Option<PathBuf> {
    let root = std::env::var_os("IPFS_ACCELERATE_TEST_MODELS").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/ipfs-accelerate/test-models")
    });
    let path = root.join(relative);
    // A directory counts once the fetch script marked it complete.
    let complete = if path.is_dir() { path.join(".complete").exists() } else { path.is_file() };
    if complete {
        return Some(path);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        panic!("{} is missing under CI: run scripts/fetch-test-models.sh", path.display());
    }
    eprintln!("SKIPPED: {} is missing; run scripts/fetch-test-models.sh", path.display());
    None
}
