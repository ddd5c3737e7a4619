//! Seeded mutation test of the audio entry points that take user files:
//! 2000 damaged WAV, FLAC, Ogg Vorbis and MP3 byte strings through
//! `decode_bytes` (and some through `AudioWindows`). None may panic, and none
//! may allocate without bound: a counting allocator records the largest
//! single allocation and the peak of live memory.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Cursor;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use ipfs_accelerate_models::audio::{decode_bytes, AudioWindows};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static LARGEST: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(live, Ordering::Relaxed);
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/goldens/audio");
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate: 22_050,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut wav = Cursor::new(Vec::new());
    let mut w = hound::WavWriter::new(&mut wav, spec).unwrap();
    for i in 0..4410 {
        let v = ((i as f32 * 0.1).sin() * 12_000.0) as i16;
        w.write_sample(v).unwrap();
        w.write_sample(-v).unwrap();
    }
    w.finalize().unwrap();
    let mut out = vec![("wav", wav.into_inner())];
    for ext in ["flac", "ogg", "mp3"] {
        out.push((ext, std::fs::read(dir.join(format!("tone44k_stereo.{ext}"))).unwrap()));
    }
    out
}

fn mutate(rng: &mut ChaCha8Rng, input: &[u8]) -> Vec<u8> {
    let mut b = input.to_vec();
    // Most damage where the headers are: the first 256 bytes.
    let pos = |rng: &mut ChaCha8Rng, len: usize| {
        if rng.random_bool(0.6) {
            rng.random_range(0..len.min(256))
        } else {
            rng.random_range(0..len)
        }
    };
    for _ in 0..rng.random_range(1..=4) {
        if b.is_empty() {
            break;
        }
        match rng.random_range(0..6) {
            0 => {
                let p = pos(rng, b.len());
                b[p] ^= 1 << rng.random_range(0..8);
            }
            1 => {
                let p = pos(rng, b.len());
                b[p] = rng.random();
            }
            2 => {
                // A length or count field set to something huge or zero.
                let p = pos(rng, b.len().saturating_sub(4).max(1));
                let v: u32 = if rng.random_bool(0.5) { u32::MAX - rng.random_range(0..16) } else { 0 };
                for (i, byte) in v.to_le_bytes().iter().enumerate() {
                    if let Some(x) = b.get_mut(p + i) {
                        *x = *byte;
                    }
                }
            }
            3 => {
                let cut = rng.random_range(0..b.len());
                b.truncate(cut);
            }
            4 => {
                let p = pos(rng, b.len());
                let n = rng.random_range(1..64);
                let junk: Vec<u8> = (0..n).map(|_| rng.random()).collect();
                b.splice(p..p, junk);
            }
            _ => {
                let p = pos(rng, b.len());
                let end = (p + rng.random_range(1..256)).min(b.len());
                b.drain(p..end);
            }
        }
    }
    b
}

#[test]
fn mutated_audio_never_panics_and_allocates_boundedly() {
    // Count panics the decoder libraries raise (the API catches them and
    // returns an error; each one is a bug to report upstream).
    let caught = Arc::new(AtomicUsize::new(0));
    let hook_count = caught.clone();
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        hook_count.fetch_add(1, Ordering::Relaxed);
        eprintln!("decoder panic (caught at the API boundary): {info}");
    }));

    let seeds = seeds();
    let mut rng = ChaCha8Rng::seed_from_u64(0x5eed_a0d1);
    let (mut ok, mut errors, mut escaped) = (0, 0, 0);
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    LARGEST.store(0, Ordering::Relaxed);
    for i in 0..2000 {
        let (ext, seed) = &seeds[i % seeds.len()];
        let bytes = mutate(&mut rng, seed);
        let hint = if i % 3 == 0 { None } else { Some(*ext) };
        let result = catch_unwind(AssertUnwindSafe(|| {
            if i % 10 == 0 {
                AudioWindows::from_bytes(bytes.clone(), hint).and_then(|w| w.collect::<Result<Vec<_>, _>>()).map(|_| ())
            } else {
                decode_bytes(&bytes, hint).map(|a| assert!(a.samples_16k.iter().all(|x| x.is_finite())))
            }
        }));
        // AUDIO_FUZZ_DUMP=1 writes the input behind an oversized allocation to /tmp.
        if LARGEST.load(Ordering::Relaxed) > 64 << 20 && std::env::var_os("AUDIO_FUZZ_DUMP").is_some() {
            std::fs::write(format!("/tmp/audio-fuzz-{i}.{ext}"), &bytes).unwrap();
            eprintln!("input {i} ({ext}, hint {hint:?}) allocated {} bytes at once", LARGEST.load(Ordering::Relaxed));
            LARGEST.store(0, Ordering::Relaxed);
        }
        match result {
            Ok(Ok(())) => ok += 1,
            Ok(Err(e)) => {
                errors += 1;
                assert!(e.to_string().starts_with("audio:"), "unclear error: {e}");
            }
            Err(_) => escaped += 1,
        }
    }
    std::panic::set_hook(default_hook);
    let peak = PEAK.load(Ordering::Relaxed).saturating_sub(base);
    let largest = LARGEST.load(Ordering::Relaxed);
    let caught = caught.load(Ordering::Relaxed);
    eprintln!(
        "2000 mutated inputs: {ok} decoded, {errors} errors, {caught} decoder panics caught, {escaped} escaped; peak live {} KiB, largest allocation {} KiB",
        peak / 1024,
        largest / 1024
    );
    assert_eq!(escaped, 0, "a panic escaped the audio API");
    // The inputs are under 64 KiB; a 30 s window is 1.9 MB. Anything near
    // these bounds would be an allocation sized by a corrupt header.
    assert!(largest < 64 << 20, "largest single allocation {largest} bytes");
    assert!(peak < 256 << 20, "peak live memory {peak} bytes");
}
