//! Any bytes given to the audio front end (`audio::decode_bytes`, the path
//! `ipfs-accelerate transcribe` takes for a file's contents) end in an error
//! or in 16 kHz mono samples whose log-mel features (Whisper tiny's 80 bins,
//! at most one 30 s window) can be computed: never a panic (libFuzzer's hook
//! aborts even on a panic the decoder guard would catch, so a panic inside
//! symphonia or hound shows up too), and never an allocation over
//! `-malloc_limit_mb` (default: the RSS limit).
//!
//! Seed the corpus with the small committed clips:
//! `mkdir -p corpus/audio_decode && cp ../tests/goldens/audio/{signal16k.wav,tone44k_stereo.flac,tone44k_stereo.ogg} corpus/audio_decode/`,
//! then `cargo +nightly fuzz run audio_decode corpus/audio_decode -- -max_total_time=120 -rss_limit_mb=2048`.
#![no_main]

use ipfs_accelerate_models::audio::{decode_bytes, LogMelSpectrogram};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

/// 30 s at 16 kHz: one Whisper window.
const WINDOW: usize = 30 * 16_000;

fn features() -> &'static LogMelSpectrogram {
    static MEL: OnceLock<LogMelSpectrogram> = OnceLock::new();
    MEL.get_or_init(|| LogMelSpectrogram::new(80).expect("80 mel bins are valid"))
}

fuzz_target!(|data: &[u8]| {
    if let Ok(audio) = decode_bytes(data, None) {
        let samples = &audio.samples_16k[..audio.samples_16k.len().min(WINDOW)];
        let mel = features().compute(samples).expect("features of decoded samples");
        assert_eq!(mel.len(), 80 * 3000);
    }
});
