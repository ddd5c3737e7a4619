//! Decoding, mixing and resampling of the audio front end, and its errors.

use std::f32::consts::PI;
use std::io::Cursor;
use std::path::PathBuf;

use ipfs_accelerate_models::audio::{decode_bytes, load_audio, AudioWindows, LogMelSpectrogram, WINDOW_SAMPLES};

fn golden(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/goldens/audio").join(name)
}

fn tone(rate: u32, seconds: f32, hz: f32, amp: f32) -> Vec<f32> {
    (0..(rate as f32 * seconds) as usize).map(|i| amp * (2.0 * PI * hz * i as f32 / rate as f32).sin()).collect()
}

/// A WAV in memory; `frames[c]` is channel c.
fn wav(rate: u32, bits: u16, float: bool, channels: &[Vec<f32>]) -> Vec<u8> {
    let spec = hound::WavSpec {
        channels: channels.len() as u16,
        sample_rate: rate,
        bits_per_sample: bits,
        sample_format: if float { hound::SampleFormat::Float } else { hound::SampleFormat::Int },
    };
    let mut out = Cursor::new(Vec::new());
    let mut w = hound::WavWriter::new(&mut out, spec).unwrap();
    let full = ((1i64 << (bits - 1)) - 1) as f32;
    for i in 0..channels[0].len() {
        for ch in channels {
            if float {
                w.write_sample(ch[i]).unwrap();
            } else {
                w.write_sample((ch[i] * full).round() as i32).unwrap();
            }
        }
    }
    w.finalize().unwrap();
    out.into_inner()
}

/// The frequency of the strongest DFT bin of the middle 0.25 s of `x` at
/// 16 kHz (bins 4 Hz apart).
fn peak_hz(x: &[f32]) -> f32 {
    let n = x.len().min(4_000);
    let x = &x[x.len() / 2 - n / 2..][..n];
    let (mut best, mut best_p) = (0, 0f64);
    for k in 1..n / 2 {
        let (mut re, mut im) = (0f64, 0f64);
        for (i, &v) in x.iter().enumerate() {
            let a = 2.0 * std::f64::consts::PI * (k * i) as f64 / n as f64;
            re += f64::from(v) * a.cos();
            im -= f64::from(v) * a.sin();
        }
        let p = re * re + im * im;
        if p > best_p {
            (best, best_p) = (k, p);
        }
    }
    best as f32 * 16_000.0 / n as f32
}

fn rms(x: &[f32]) -> f32 {
    (x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32).sqrt()
}

#[test]
fn wav_round_trips_in_every_sample_format() {
    let left = tone(16_000, 0.25, 440.0, 0.6);
    let right = tone(16_000, 0.25, 440.0, -0.2);
    for (bits, float, tol) in
        [(8, false, 1.0 / 64.0), (16, false, 1e-4), (24, false, 1e-6), (32, false, 1e-6), (32, true, 0.0)]
    {
        let mono = decode_bytes(&wav(16_000, bits, float, std::slice::from_ref(&left)), Some("wav")).unwrap();
        assert_eq!((mono.source_rate, mono.channels, mono.samples_16k.len()), (16_000, 1, left.len()));
        let diff = mono.samples_16k.iter().zip(&left).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(diff <= tol, "{bits}-bit (float {float}) mono differs by {diff}");

        let stereo = decode_bytes(&wav(16_000, bits, float, &[left.clone(), right.clone()]), None).unwrap();
        assert_eq!(stereo.channels, 2);
        let diff = stereo
            .samples_16k
            .iter()
            .enumerate()
            .map(|(i, a)| (a - (left[i] + right[i]) / 2.0).abs())
            .fold(0f32, f32::max);
        assert!(diff <= tol, "{bits}-bit (float {float}) stereo mix differs by {diff}");
        assert!((stereo.duration.as_secs_f32() - 0.25).abs() < 1e-6);
    }
}

#[test]
fn resampling_keeps_frequency_and_length() {
    for (rate, hz) in [(44_100u32, 1000.0f32), (48_000, 3000.0), (22_050, 440.0), (8_000, 1000.0)] {
        let x = tone(rate, 2.0, hz, 0.5);
        let audio = decode_bytes(&wav(rate, 16, false, &[x.clone(), x.clone()]), None).unwrap();
        let want = (x.len() as f64 * 16_000.0 / f64::from(rate)).round() as usize;
        assert_eq!(audio.samples_16k.len(), want, "{rate} Hz length");
        assert!((peak_hz(&audio.samples_16k) - hz).abs() <= 2.0, "{rate} Hz tone frequency");
        // The filter's delay is removed: the output is in phase with the
        // ideal tone to within half a 16 kHz sample.
        let (shift, residual) = best_shift(&audio.samples_16k, hz, 0.5);
        assert!(shift.abs() <= 0.5, "{rate} Hz: output is {shift} samples late");
        assert!(residual < 2e-3, "{rate} Hz: residual {residual}");
    }
}

/// The shift d (16 kHz samples, to 0.01) that best fits x[j] to
/// amp·sin(2π hz (j − d) / 16000) in the middle of x, and the residual rms.
fn best_shift(x: &[f32], hz: f32, amp: f32) -> (f64, f64) {
    let range = x.len() / 8..x.len() * 7 / 8;
    let mut best = (0f64, f64::MAX);
    for k in -200..=200 {
        let d = f64::from(k) / 100.0;
        let e: f64 = range
            .clone()
            .map(|j| {
                let v = f64::from(amp) * (2.0 * std::f64::consts::PI * f64::from(hz) * (j as f64 - d) / 16_000.0).sin();
                (f64::from(x[j]) - v).powi(2)
            })
            .sum();
        if e < best.1 {
            best = (d, e);
        }
    }
    (best.0, (best.1 / range.len() as f64).sqrt())
}

#[test]
fn resampling_removes_content_above_8khz() {
    // 12 kHz at 44.1 kHz must not alias to 4 kHz at 16 kHz.
    let x = tone(44_100, 1.0, 12_000.0, 0.5);
    let audio = decode_bytes(&wav(44_100, 32, true, &[x]), None).unwrap();
    let r = rms(&audio.samples_16k[1000..15_000]);
    assert!(r < 1e-3, "aliased energy {r}");
}

#[test]
fn flac_ogg_mp3_decode() {
    // 0.5 s of 1 kHz at 44.1 kHz, left 0.5 and right 0.25: the mono mix is 0.375.
    // libsndfile's MP3 encoder lowers this tone's level by about 1.5 dB
    // (libsndfile itself decodes an rms of 0.21), hence the wider margin.
    for (ext, tol) in [("flac", 1e-3f32), ("ogg", 0.05), ("mp3", 0.08)] {
        let audio = load_audio(&golden(&format!("tone44k_stereo.{ext}"))).unwrap();
        assert_eq!((audio.source_rate, audio.channels), (44_100, 2), "{ext}");
        let secs = audio.duration.as_secs_f32();
        assert!((0.5..0.56).contains(&secs), "{ext}: duration {secs}");
        let peak = peak_hz(&audio.samples_16k);
        assert!((peak - 1000.0).abs() <= 4.0, "{ext}: peak at {peak} Hz");
        let r = rms(&audio.samples_16k[1600..6400]);
        assert!((r - 0.375 / 2f32.sqrt()).abs() < tol, "{ext}: rms {r}");
        // The same bytes without the extension hint decode the same.
        let bytes = std::fs::read(golden(&format!("tone44k_stereo.{ext}"))).unwrap();
        assert_eq!(decode_bytes(&bytes, None).unwrap().samples_16k.len(), audio.samples_16k.len());
    }
    // FLAC is lossless: sample for sample the ideal tone, up to resampling.
    let flac = load_audio(&golden("tone44k_stereo.flac")).unwrap();
    let (shift, residual) = best_shift(&flac.samples_16k, 1000.0, 0.375);
    assert!(shift.abs() <= 0.5 && residual < 2e-3, "flac: shift {shift}, residual {residual}");
}

fn err_text(r: ipfs_accelerate_models::Result<impl std::fmt::Debug>) -> String {
    r.expect_err("should fail").to_string()
}

#[test]
fn bad_input_gets_clear_errors() {
    assert!(err_text(decode_bytes(&[], None)).contains("empty"));
    assert!(err_text(decode_bytes(b"hello, this is not audio at all", Some("mp3"))).contains("audio:"));
    let good = wav(16_000, 16, false, &[tone(16_000, 1.0, 440.0, 0.5)]);
    // Truncated data chunk.
    let e = err_text(decode_bytes(&good[..good.len() / 2], None));
    assert!(e.contains("truncated"), "{e}");
    // Truncated header.
    assert!(err_text(decode_bytes(&good[..30], None)).contains("WAV"));
    // Zero channels and a zero rate in the fmt chunk.
    let mut zero_ch = good.clone();
    zero_ch[22..24].copy_from_slice(&0u16.to_le_bytes());
    let e = err_text(decode_bytes(&zero_ch, None));
    assert!(e.contains("WAV") || e.contains("channels"), "{e}");
    let mut zero_rate = good.clone();
    zero_rate[24..28].copy_from_slice(&0u32.to_le_bytes());
    let e = err_text(decode_bytes(&zero_rate, None));
    assert!(e.contains("0 Hz") || e.contains("WAV"), "{e}");
    // An unsupported codec: format tag 2 (MS ADPCM).
    let mut adpcm = good.clone();
    adpcm[20..22].copy_from_slice(&2u16.to_le_bytes());
    let e = err_text(decode_bytes(&adpcm, None));
    assert!(e.contains("unsupported") || e.contains("WAV"), "{e}");
    // A header with no samples.
    let e = err_text(decode_bytes(&wav(16_000, 16, false, &[vec![]]), None));
    assert!(e.contains("no audio samples"), "{e}");
    // Truncated FLAC.
    let flac = std::fs::read(golden("tone44k_stereo.flac")).unwrap();
    let e = err_text(decode_bytes(&flac[..flac.len() / 3], Some("flac")));
    assert!(e.contains("truncated"), "{e}");
    assert!(err_text(decode_bytes(&flac[..20], Some("flac"))).contains("audio:"));
    // A Vorbis comment whose length claims 4 GB: symphonia 0.5 would
    // allocate it at once; the pre-check refuses it (the mutation test's find).
    let mut tag = flac.clone();
    assert_eq!(&tag[0x2a..0x2e], &[0x84, 0, 0, 0x28], "the golden's comment block moved");
    let vendor = u32::from_le_bytes(tag[0x2e..0x32].try_into().unwrap()) as usize;
    let at = 0x32 + vendor;
    tag[0x2d] = 0x30; // the block grows by 8 bytes to hold one comment's length
    tag[at..at + 4].copy_from_slice(&1u32.to_le_bytes());
    tag[at + 4..at + 8].copy_from_slice(&0xF000_0000u32.to_le_bytes());
    let e = err_text(decode_bytes(&tag, Some("flac")));
    assert!(e.contains("Vorbis comment"), "{e}");
    // A missing file names the path.
    assert!(err_text(load_audio("/nonexistent/clip.wav".as_ref())).contains("/nonexistent/clip.wav"));
}

#[test]
fn one_shot_refuses_clips_over_the_limit() {
    // A header announcing 2 hours at 8 kHz: refused before anything is decoded.
    let mut long = wav(8_000, 16, false, &[tone(8_000, 0.1, 440.0, 0.5)]);
    let bytes = (2 * 3600 * 8000 * 2u32).to_le_bytes();
    long[40..44].copy_from_slice(&bytes);
    let e = err_text(decode_bytes(&long, None));
    assert!(e.contains("AudioWindows"), "{e}");
}

#[test]
fn windows_stream_a_long_clip_in_30s_pieces() {
    let x = tone(8_000, 75.0, 300.0, 0.4);
    let bytes = wav(8_000, 16, false, &[x]);
    let whole = decode_bytes(&bytes, None).unwrap().samples_16k;
    let windows: Vec<Vec<f32>> = AudioWindows::from_bytes(bytes, Some("wav")).unwrap().map(Result::unwrap).collect();
    let lens: Vec<usize> = windows.iter().map(Vec::len).collect();
    assert_eq!(lens, [WINDOW_SAMPLES, WINDOW_SAMPLES, 240_000]);
    assert_eq!(windows.concat(), whole);
    let mel = LogMelSpectrogram::new(80).unwrap();
    for w in &windows {
        assert_eq!(mel.compute(w).unwrap().len(), 80 * 3000);
    }
    // Errors surface through the iterator and end it.
    let mut it = AudioWindows::from_bytes(wav(16_000, 16, false, &[vec![]]), None).unwrap();
    assert!(it.next().unwrap().is_err());
    assert!(it.next().is_none());
}
