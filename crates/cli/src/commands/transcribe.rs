//! `ipfs-accelerate transcribe`: speech to text with a Whisper model.

use super::BackendArgs;
use anyhow::Result;
use clap::Args;
use ipfs_accelerate_models::llm::weights::WeightBits;
use ipfs_accelerate_models::whisper::{Task, TranscribeOptions, Transcriber};
use ipfs_accelerate_models::{BackendChoice, Precision};
use std::path::PathBuf;
use std::time::Instant;

/// Transcribe speech with a Whisper model (WAV, MP3, FLAC or Ogg Vorbis; any sample rate).
#[derive(Args)]
#[command(after_help = "Examples:
  ipfs-accelerate transcribe --model ~/.cache/ipfs-accelerate/test-models/whisper-tiny.en speech.wav
  ipfs-accelerate transcribe --model whisper-tiny.en --timestamps meeting.mp3
  ipfs-accelerate transcribe --model whisper-small --language fr --translate --json interview.flac")]
pub struct TranscribeArgs {
    /// Model: a Hugging Face Whisper directory (config.json, generation_config.json,
    /// tokenizer.json, model.safetensors), a name from `models ls`, a CID or a Hugging Face id.
    #[command(flatten)]
    model: crate::model_ref::ModelArgs,
    /// Print each segment with its start and end time (clips over 30 s always decode with
    /// timestamps; this only changes what is printed).
    #[arg(long)]
    timestamps: bool,
    /// Spoken language code (en, fr, de, …) for multilingual models [default: detected].
    #[arg(long)]
    language: Option<String>,
    /// Translate into English instead of transcribing (multilingual models).
    #[arg(long)]
    translate: bool,
    /// Weight precision: 4, 8, 16 or 32 (float32 as stored by default).
    #[arg(long)]
    precision: Option<String>,
    /// Backend: auto (a hardware GPU through WebGPU if there is one, else the CPU), cpu,
    /// webgpu (any WebGPU adapter, software ones included), or browser-webgpu / browser-webnn
    /// (the encoder runs in a browser started as a worker, the decoder on the CPU).
    #[arg(long, default_value = "auto")]
    backend: String,
    /// Browser for the browser-* backends: chrome, chromium, edge, firefox, a path, or manual
    /// [default: the first Chrome, Chromium or Edge found].
    #[arg(long, value_name = "NAME|PATH")]
    browser: Option<String>,
    /// Show the browser window (browser-* backends; headless by default).
    #[arg(long)]
    no_headless: bool,
    /// Use a fresh temporary browser profile instead of the kept one.
    #[arg(long)]
    ephemeral: bool,
    /// Print one JSON object: text, language, duration, segments (start, end, text),
    /// backend, seconds taken and the real-time factor.
    #[arg(long)]
    json: bool,
    /// The audio file.
    file: PathBuf,
}

pub fn run(args: TranscribeArgs) -> Result<()> {
    let backend = BackendArgs {
        backend: args.backend.clone(),
        browser: args.browser.clone(),
        headless: !args.no_headless,
        no_headless: args.no_headless,
        ephemeral: args.ephemeral,
        precision: "32".into(),
    };
    let browser = super::browser_backend(&backend);
    let parse_choice = || {
        BackendChoice::parse(&args.backend).map_err(|_| {
            anyhow::anyhow!(
                "unknown backend {:?} for transcribe: use auto, cpu, webgpu, browser-webgpu or browser-webnn",
                args.backend
            )
        })
    };
    if browser.is_none() {
        parse_choice()?; // a bad --backend fails before anything loads
    }
    let bits = match &args.precision {
        Some(p) => WeightBits::parse(p)?,
        None => WeightBits::AsStored,
    };
    if !args.file.is_file() {
        anyhow::bail!("{} is not a file: pass an audio file (WAV, MP3, FLAC or Ogg Vorbis)", args.file.display());
    }
    let path = crate::model_ref::resolve(&args.model)?;
    let (model, notice) = match browser {
        Some(kind) => {
            let (engine, notice) = super::browser_engine(kind, &backend, Precision::F32)?;
            (Transcriber::load_on(&path, engine, bits)?, notice)
        }
        None => Transcriber::load(&path, parse_choice()?, bits)?,
    };
    if let Some(notice) = notice {
        eprintln!("{notice}");
    }
    let options = TranscribeOptions {
        timestamps: args.timestamps,
        language: args.language.clone(),
        task: if args.translate { Task::Translate } else { Task::Transcribe },
    };
    let started = Instant::now();
    let transcript = model.transcribe_file(&args.file, &options)?;
    let seconds = started.elapsed().as_secs_f64();
    let real_time_factor = if transcript.duration > 0.0 { seconds / transcript.duration } else { 0.0 };
    if args.json {
        let segments: Vec<_> = transcript
            .segments
            .iter()
            .map(|s| serde_json::json!({"start": s.start, "end": s.end, "text": s.text}))
            .collect();
        let value = serde_json::json!({
            "text": transcript.text.trim(),
            "language": transcript.language,
            "duration": round(transcript.duration),
            "segments": segments,
            "backend": model.backend_name(),
            "seconds": round(seconds),
            "real_time_factor": (real_time_factor * 10_000.0).round() / 10_000.0,
        });
        println!("{value}");
    } else if args.timestamps {
        for s in &transcript.segments {
            println!("[{} --> {}] {}", clock(s.start), clock(s.end), s.text.trim());
        }
    } else {
        println!("{}", transcript.text.trim());
    }
    if !args.json {
        eprintln!(
            "[{:.1} s of audio in {:.2} s: real-time factor {:.3}, {}]",
            transcript.duration,
            seconds,
            real_time_factor,
            model.backend_name()
        );
    }
    Ok(())
}

fn round(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// `MM:SS.cc`, or `H:MM:SS.cc` from an hour on.
fn clock(seconds: f64) -> String {
    let centis = (seconds * 100.0).round() as u64;
    let (h, m, s, c) = (centis / 360_000, centis / 6000 % 60, centis / 100 % 60, centis % 100);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}.{c:02}")
    } else {
        format!("{m:02}:{s:02}.{c:02}")
    }
}

#[cfg(test)]
mod tests {
    use super::clock;

    #[test]
    fn clock_formats_minutes_and_hours() {
        assert_eq!(clock(3.8), "00:03.80");
        assert_eq!(clock(61.25), "01:01.25");
        assert_eq!(clock(3725.5), "1:02:05.50");
    }
}
