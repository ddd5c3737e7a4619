//! Any bytes loaded as a text-generation model (`TextGenerator::load`, the
//! path `ipfs-accelerate generate` takes) end in an error or in a model that
//! generates three greedy tokens (or fails to, with an error): never a
//! panic, and never an allocation over libFuzzer's `-malloc_limit_mb`
//! (default: the 2 GiB RSS limit).
//!
//! The loader reads a path, so each input goes through one scratch file.
//! Seed the corpus with the tiny valid Llama of the hostile-GGUF test:
//! `cargo test -p ipfs-accelerate-models --test llm_hostile_gguf -- --ignored write_fuzz_seed`,
//! then `cargo +nightly fuzz run llm_load corpus/llm_load`.
#![no_main]

use ipfs_accelerate_models::llm::generate::GenerationOptions;
use ipfs_accelerate_models::llm::sampler::SamplingOptions;
use ipfs_accelerate_models::llm::text::{Prompt, TextGenerator, TextOptions};
use ipfs_accelerate_models::llm::weights::WeightBits;
use libfuzzer_sys::fuzz_target;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::OnceLock;

fn scratch() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| std::env::temp_dir().join(format!("ipfs-accelerate-fuzz-llm-load-{}.gguf", std::process::id())))
}

fuzz_target!(|data: &[u8]| {
    let path = scratch();
    // The previous input's model (and its mapping of this file) is dropped.
    std::fs::write(path, data).expect("the scratch file is writable");
    if let Ok(model) = TextGenerator::load(path, WeightBits::AsStored) {
        let options = TextOptions {
            generation: GenerationOptions { max_tokens: 3, sampling: SamplingOptions::greedy(), ..Default::default() },
            ignore_eos: true,
            ..Default::default()
        };
        let _ = model.generate(&Prompt::Text("hello world".into()), &options, &mut |_| ControlFlow::Continue(()));
    }
});
