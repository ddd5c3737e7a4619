//! Hostile and broken images through the decoding entry point: each gets a
//! clear `Error::Image`, never a panic, and memory stays bounded (measured
//! with a counting allocator).

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ipfs_accelerate_models::vision::{decode_image, decode_image_with_limit, Alpha, ImageProcessor};
use ipfs_accelerate_models::Error;

/// Counts live heap bytes and their peak, so the tests can bound what a
/// hostile image makes the decoder allocate.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Serializes the tests that measure the peak, since the counter is global.
static MEASURE: Mutex<()> = Mutex::new(());

/// Runs `f` and returns its result with the peak heap growth it caused.
fn peak_during<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let out = f();
    (out, PEAK.load(Ordering::Relaxed).saturating_sub(base))
}

fn golden(name: &str) -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/goldens/vision").join(name)).unwrap()
}

fn message(result: Result<impl std::fmt::Debug, Error>) -> String {
    match result {
        Err(Error::Image(m)) => m,
        other => panic!("expected Error::Image, got {other:?}"),
    }
}

/// The PNG crc32 (ISO-HDLC), for a hand-made IHDR chunk.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

/// A PNG signature and IHDR claiming `width`×`height` RGBA8, with a valid
/// CRC, and no pixel data.
fn png_header(width: u32, height: u32) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut chunk = b"IHDR".to_vec();
    chunk.extend_from_slice(&width.to_be_bytes());
    chunk.extend_from_slice(&height.to_be_bytes());
    chunk.extend_from_slice(&[8, 6, 0, 0, 0]);
    out.extend_from_slice(&13u32.to_be_bytes());
    out.extend_from_slice(&chunk);
    out.extend_from_slice(&crc32(&chunk).to_be_bytes());
    // The decoder reads up to the first IDAT before it reports the size.
    let idat = b"IDAT\x78\x9c";
    out.extend_from_slice(&2u32.to_be_bytes());
    out.extend_from_slice(idat);
    out.extend_from_slice(&crc32(idat).to_be_bytes());
    out
}

#[test]
fn huge_png_header_is_refused_before_allocating() {
    let _guard = MEASURE.lock().unwrap_or_else(|e| e.into_inner());
    let bytes = png_header(20_000, 20_000);
    let start = Instant::now();
    let (result, peak) = peak_during(|| decode_image(&bytes, Alpha::Drop));
    let elapsed = start.elapsed();
    let m = message(result);
    eprintln!("20000x20000 header: {m:?} in {elapsed:?}, peak heap growth {peak} bytes");
    assert!(m.contains("too large") || m.contains("over the limit"), "{m}");
    assert!(elapsed < Duration::from_secs(1), "{elapsed:?}");
    assert!(peak < 1 << 20, "allocated {peak} bytes for a header");
}

#[test]
fn images_at_the_limit_are_judged_by_pixels() {
    // 12000×9000 = 108 MP: each side is under the side bound, the product is not.
    let m = message(decode_image(&png_header(12_000, 9_000), Alpha::Drop));
    assert!(m.contains("12000×9000") && m.contains("100000000"), "{m}");
}

#[test]
fn empty_non_image_and_unsupported_bytes_are_clear_errors() {
    assert!(message(decode_image(b"", Alpha::Drop)).contains("empty"));
    let m = message(decode_image(b"this is a text file, not a picture", Alpha::Drop));
    assert!(m.contains("not a recognized image"), "{m}");
    // TIFF is recognised by its magic but not compiled in.
    let m = message(decode_image(b"II*\0\x08\0\0\0\0\0\0\0\0\0\0\0", Alpha::Drop));
    assert!(m.contains("unsupported") || m.contains("not a recognized"), "{m}");
}

#[test]
fn truncated_and_corrupt_images_are_clear_errors() {
    for name in ["nonsquare.png", "alpha.png", "photo.jpg"] {
        let bytes = golden(name);
        for cut in [8, 40, bytes.len() / 2, bytes.len() - 20] {
            let m = message(decode_image(&bytes[..cut], Alpha::Drop));
            eprintln!("{name} cut at {cut}: {m}");
            assert!(m.contains("truncated") || m.contains("corrupt"), "{name} cut at {cut}: {m}");
        }
    }
    // A zeroed stretch of the PNG's compressed data breaks its CRC / zlib stream.
    let mut png = golden("nonsquare.png");
    let mid = png.len() / 2;
    png[mid..mid + 64].fill(0);
    let m = message(decode_image(&png, Alpha::Drop));
    assert!(m.contains("corrupt") || m.contains("truncated"), "{m}");
}

#[test]
fn processor_reports_decoding_errors() {
    let p = ImageProcessor::from_preprocessor_config(r#"{"size": {"height": 8, "width": 8}}"#).unwrap();
    assert!(matches!(p.preprocess_bytes(b"GIF89a"), Err(Error::Image(_))));
}

#[test]
fn bad_configs_are_clear_errors() {
    for (json, needle) in [
        (r#"{"size": {"height": 0, "width": 8}}"#, "positive"),
        (r#"{"size": {"longest_edge": 8}}"#, "shortest_edge"),
        (r#"{"size": {"height": 8, "width": 8}, "resample": 0}"#, "resample 0"),
        (r#"{"size": 8, "image_std": [1, 0, 1]}"#, "image_std"),
        (r#"{"size": 8, "image_mean": [1, 2]}"#, "image_mean"),
        (r#"{"do_resize": true}"#, "size is missing"),
        (r#"{"size": 8, "do_center_crop": true}"#, "crop_size is missing"),
        ("not json", "preprocessor_config.json"),
    ] {
        match ImageProcessor::from_preprocessor_config(json) {
            Err(Error::InvalidOption(m)) => assert!(m.contains(needle), "{json}: {m}"),
            other => panic!("{json}: {other:?}"),
        }
    }
}

/// Seeded byte mutations (flips, overwrites with boundary values, cuts,
/// duplicated runs) of real PNG, JPEG and other-format files: no panic, and
/// the heap never grows past a bound set by the pixel limit.
#[test]
fn mutated_images_never_panic_and_stay_bounded() {
    let _guard = MEASURE.lock().unwrap_or_else(|e| e.into_inner());
    const MAX_PIXELS: u64 = 1 << 20;
    let mut seeds = vec![golden("nonsquare.png"), golden("alpha.png"), golden("photo.jpg")];
    // Small files of the other compiled-in formats, encoded here.
    let small = image::RgbaImage::from_fn(17, 11, |x, y| image::Rgba([x as u8 * 15, y as u8 * 23, 99, (x * y) as u8]));
    for format in [image::ImageFormat::Gif, image::ImageFormat::Bmp, image::ImageFormat::WebP] {
        let mut out = std::io::Cursor::new(Vec::new());
        if image::DynamicImage::ImageRgba8(small.clone()).write_to(&mut out, format).is_ok() {
            seeds.push(out.into_inner());
        }
    }
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let (mut ok, mut err) = (0, 0);
    let (_, peak) = peak_during(|| {
        for i in 0..2000 {
            let mut bytes = seeds[i % seeds.len()].clone();
            let edits = 1 + next() % 8;
            for _ in 0..edits {
                let len = bytes.len().max(1);
                let at = ((next() % len as u64) as usize).min(bytes.len().saturating_sub(1));
                match next() % 5 {
                    0 => bytes[at] ^= 1 << (next() % 8),
                    1 => bytes[at] = [0, 0xFF, 0x7F, 0x80][(next() % 4) as usize],
                    2 => {
                        // Big-endian 0xFFFF.. in a header-sized field.
                        let end = (at + 4).min(bytes.len());
                        bytes[at..end].fill(0xFF);
                    }
                    3 => bytes.truncate(at.max(1)),
                    _ => {
                        let end = (at + 1 + (next() % 64) as usize).min(bytes.len());
                        let run = bytes[at..end].to_vec();
                        bytes.splice(at..at, run);
                    }
                }
            }
            let result = std::panic::catch_unwind(|| decode_image_with_limit(&bytes, Alpha::OverWhite, MAX_PIXELS));
            match result {
                Ok(Ok(_)) => ok += 1,
                Ok(Err(Error::Image(_))) => err += 1,
                Ok(Err(other)) => panic!("mutation {i}: unexpected error kind {other:?}"),
                Err(_) => panic!("mutation {i}: decoding panicked"),
            }
        }
    });
    eprintln!("mutations: {ok} decoded, {err} refused, peak heap growth {peak} bytes");
    // 4 bytes per allowed pixel for the codec, an RGB copy, and slack.
    assert!(peak < 16 * MAX_PIXELS as usize, "peak heap growth {peak} bytes");
}
