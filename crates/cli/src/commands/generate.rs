//! `ipfs-accelerate generate`: text generation, streamed to stdout.

use anyhow::{Context, Result};
use clap::Args;
use ipfs_accelerate_models::llm::chat_template::ChatMessage;
use ipfs_accelerate_models::llm::generate::GenerationOptions;
use ipfs_accelerate_models::llm::sampler::SamplingOptions;
use ipfs_accelerate_models::llm::text::{Prompt, TextGenerator, TextOptions};
use ipfs_accelerate_models::llm::weights::WeightBits;
use ipfs_accelerate_models::llm::ActivationType;
use ipfs_accelerate_models::BackendChoice;
use std::io::Write;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Generate text with a decoder-only model (Llama family or GPT-2).
#[derive(Args)]
#[command(after_help = "Examples:
  ipfs-accelerate generate --model ~/.cache/ipfs-accelerate/test-models/smollm2-135m-instruct \\
      --chat \"What is the capital of France?\"
  ipfs-accelerate generate --model model.gguf --greedy --max-tokens 24 --json \"The capital of France is\"")]
pub struct GenerateArgs {
    /// Model: a .gguf file, a directory holding one .gguf file, a Hugging Face directory
    /// (config.json, model.safetensors, tokenizer.json, tokenizer_config.json), a name from
    /// `models ls`, a CID or a Hugging Face id.
    #[command(flatten)]
    model: crate::model_ref::ModelArgs,
    /// Most new tokens (also bounded by the model's context).
    #[arg(long, default_value_t = 256)]
    max_tokens: usize,
    /// Sampling temperature (0 = greedy).
    #[arg(long, default_value_t = 0.8)]
    temperature: f32,
    /// Nucleus sampling: keep the most likely tokens up to this probability mass.
    #[arg(long, default_value_t = 0.95)]
    top_p: f32,
    /// Keep only the K most likely tokens (0 = all).
    #[arg(long, default_value_t = 40)]
    top_k: usize,
    /// Penalize tokens already in the prompt or output (1.0 = off).
    #[arg(long, default_value_t = 1.0)]
    repetition_penalty: f32,
    /// Seed of the sampler, for reproducible output [default: random].
    #[arg(long)]
    seed: Option<u64>,
    /// Greedy decoding: always the most likely token (overrides the sampling options).
    #[arg(long)]
    greedy: bool,
    /// Stop before this text (repeatable).
    #[arg(long, value_name = "TEXT")]
    stop: Vec<String>,
    /// Treat the prompt as a user message and apply the model's chat template.
    #[arg(long)]
    chat: bool,
    /// System message for --chat [default: the template's own, if any].
    #[arg(long, requires = "chat")]
    system: Option<String>,
    /// Keep generating through end-of-sequence tokens.
    #[arg(long)]
    ignore_eos: bool,
    /// Drop the oldest prompt tokens when the prompt does not fit in the context
    /// (otherwise that is an error).
    #[arg(long)]
    truncate: bool,
    /// Weight precision for safetensors models: 4, 8, 16 or 32 (GGUF weights run as stored).
    #[arg(long)]
    precision: Option<String>,
    /// Backend: auto (a hardware GPU through WebGPU if there is one, else the CPU), cpu, or
    /// webgpu (any WebGPU adapter, software ones included; IPFS_ACCELERATE_ADAPTER picks one).
    #[arg(long, default_value = "auto")]
    backend: String,
    /// How the webgpu backend stores activations and the KV cache: f32, or f16 (half the
    /// memory and bytes moved per token, arithmetic stays f32; needs the adapter's
    /// shader-f16, else f32 with a notice). The CPU backend always runs f32.
    #[arg(long, default_value = "f32", value_parser = ["f32", "f16"])]
    activations: String,
    /// Print one JSON object (token_ids, text, prompt_tokens, completion_tokens,
    /// tokens_per_second, …) at the end instead of streaming text.
    #[arg(long)]
    json: bool,
    /// The prompt; `-` reads it from stdin.
    prompt: String,
}

pub fn run(args: GenerateArgs) -> Result<()> {
    let prompt_text = if args.prompt == "-" {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text).context("cannot read the prompt from stdin")?;
        text
    } else {
        args.prompt.clone()
    };
    let choice = BackendChoice::parse(&args.backend)
        .map_err(|_| anyhow::anyhow!("unknown backend {:?} for generate: use auto, cpu or webgpu", args.backend))?;
    let bits = match &args.precision {
        Some(p) => WeightBits::parse(p)?,
        None => WeightBits::AsStored,
    };
    let path = crate::model_ref::resolve(&args.model)?;
    let activations = if args.activations == "f16" { ActivationType::F16 } else { ActivationType::F32 };
    let (generator, notice) = TextGenerator::load_with(&path, bits, choice, activations)?;
    if let Some(notice) = notice {
        eprintln!("{notice}");
    }
    if args.precision.is_some() && path.extension().is_some_and(|e| e == "gguf") {
        eprintln!("notice: GGUF weights run as stored; --precision applies to safetensors models");
    }
    let prompt = if args.chat {
        let mut messages = Vec::new();
        if let Some(system) = &args.system {
            messages.push(ChatMessage::new("system", system.clone()));
        }
        messages.push(ChatMessage::new("user", prompt_text));
        Prompt::Chat(messages)
    } else {
        Prompt::Text(prompt_text)
    };
    let sampling = if args.greedy {
        SamplingOptions::greedy()
    } else {
        SamplingOptions {
            temperature: args.temperature,
            top_k: args.top_k,
            top_p: args.top_p,
            repetition_penalty: args.repetition_penalty,
            seed: args.seed,
        }
    };
    let options = TextOptions {
        generation: GenerationOptions {
            max_tokens: args.max_tokens,
            sampling,
            eos_ids: Vec::new(),
            truncate_prompt: args.truncate,
        },
        stop: args.stop.clone(),
        ignore_eos: args.ignore_eos,
    };
    let interrupted = watch_ctrl_c();
    let stdout = std::io::stdout();
    let json = args.json;
    let out = generator.generate(&prompt, &options, &mut |piece| {
        if !json {
            let mut lock = stdout.lock();
            // A closed pipe (`| head`) ends the generation quietly.
            if lock.write_all(piece.as_bytes()).and_then(|_| lock.flush()).is_err() {
                return ControlFlow::Break(());
            }
        }
        if interrupted.load(Ordering::Relaxed) {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })?;
    let t = &out.tokens;
    if json {
        let value = serde_json::json!({
            "text": out.text,
            "token_ids": t.token_ids,
            "prompt_tokens": t.prompt_tokens,
            "completion_tokens": t.token_ids.len(),
            "truncated_prompt_tokens": t.truncated_tokens,
            "finish_reason": format!("{:?}", t.finish_reason).to_lowercase(),
            "tokens_per_second": round(t.tokens_per_second()),
            "prefill_tokens_per_second": round(t.prefill_tokens_per_second()),
            "decode_tokens_per_second": round(t.decode_tokens_per_second()),
            "prefill_ms": round(t.prefill.as_secs_f64() * 1000.0),
            "decode_ms": round(t.decode.as_secs_f64() * 1000.0),
            "backend": generator.decoder().backend_name(),
        });
        println!("{value}");
    } else {
        println!();
        eprintln!(
            "[{} prompt tokens, {} generated, {:.1} tokens/s (prefill {:.1}, decode {:.1}), {:?}]",
            t.prompt_tokens,
            t.token_ids.len(),
            t.tokens_per_second(),
            t.prefill_tokens_per_second(),
            t.decode_tokens_per_second(),
            t.finish_reason
        );
    }
    Ok(())
}

fn round(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// A flag set by Ctrl-C, so generation stops after the current token and
/// frees its cache instead of the process dying mid-write.
fn watch_ctrl_c() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    let set = flag.clone();
    std::thread::spawn(move || {
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
        runtime.block_on(async {
            if tokio::signal::ctrl_c().await.is_ok() {
                set.store(true, Ordering::Relaxed);
            }
        });
    });
    flag
}
