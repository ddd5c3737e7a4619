//! Finding the real test models fetched by `scripts/fetch-test-models.sh`.

use std::path::PathBuf;

/// Directory of the test model `name`, from `IPFS_ACCELERATE_TEST_MODELS`
/// (default `~/.cache/ipfs-accelerate/test-models`). When it is missing the
/// test is skipped with a note, except under CI (`CI=true`), where a missing
/// model is a failure.
pub fn test_model(name: &str) -> Option<PathBuf> {
    let root = std::env::var_os("IPFS_ACCELERATE_TEST_MODELS").map(PathBuf::from).unwrap_or_else(|| {
        let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
        home.join(".cache/ipfs-accelerate/test-models")
    });
    let dir = root.join(name);
    if dir.join("config.json").exists() {
        return Some(dir);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        panic!("test model {} is missing under CI: run scripts/fetch-test-models.sh", dir.display());
    }
    eprintln!("SKIPPED: test model {} is missing; run scripts/fetch-test-models.sh", dir.display());
    None
}
