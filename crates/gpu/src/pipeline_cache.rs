//! On-disk pipeline cache, so a second process start does not compile again the
//! kernels that an earlier one compiled.
//!
//! Where the device supports wgpu's `PIPELINE_CACHE` feature (Vulkan adapters — not
//! Metal, DX12, GL or browsers, where everything works without it), [`crate::KernelRunner`]
//! creates one [`wgpu::PipelineCache`], seeds it from a file, passes it to every
//! `create_compute_pipeline`, and writes it back (temp file + rename) when new pipelines
//! were compiled: on [`crate::KernelRunner::save_pipeline_cache`] and when the runner is
//! dropped (best effort: errors are only logged).
//!
//! * `IPFS_ACCELERATE_PIPELINE_CACHE=off` (or `0`, `false`, `no`) disables it.
//! * `IPFS_ACCELERATE_CACHE_DIR=<dir>` puts it in `<dir>/pipelines/`; otherwise
//!   `$XDG_CACHE_HOME/ipfs-accelerate/pipelines/`, else
//!   `~/.cache/ipfs-accelerate/pipelines/`.
//! * The file name is wgpu's `pipeline_cache_key` (backend, vendor and device id), a
//!   hash of the driver name/version, and a hash of every kernel's source, so another
//!   GPU, another driver or a changed kernel uses another file. wgpu also checks its own
//!   header (driver cache UUID, wgpu cache format) and starts empty on a mismatch.
//! * The file carries a checksum of the driver's data: a truncated or garbled file is
//!   ignored (and later overwritten), never handed to the driver.
//! * Stale files (old kernels, old drivers) are not removed; deleting the directory is
//!   always safe.
//!
//! The driver cache only saves the driver's compile step (SPIR-V → machine code);
//! WGSL → SPIR-V translation (naga) still runs on every start.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use serde::Serialize;

use crate::context::GpuContext;
use crate::kernels::KERNELS;

/// Environment variable for the cache root (pipelines go in its `pipelines/` folder).
pub const CACHE_DIR_ENV: &str = "IPFS_ACCELERATE_CACHE_DIR";
/// Environment variable that disables the pipeline cache when `off`/`0`/`false`/`no`.
pub const PIPELINE_CACHE_ENV: &str = "IPFS_ACCELERATE_PIPELINE_CACHE";

/// Our file header: magic, then the FNV-1a 64 hash of the payload (little endian).
const MAGIC: &[u8; 8] = b"IPFSAPC1";
const HEADER_LEN: usize = 16;

/// What the runner's pipeline cache did, for `--verbose` output and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PipelineCacheStatus {
    /// A `wgpu::PipelineCache` is in use.
    pub enabled: bool,
    /// The cache file (whether or not it existed).
    pub path: Option<PathBuf>,
    /// Bytes of cache data read from the file and kept by wgpu and the driver; 0 on a
    /// cold start (no file, or one that was damaged, outdated or for another driver).
    pub loaded_bytes: u64,
    /// Pipelines this runner compiled (created) so far, cache hits included.
    pub pipelines_compiled: u64,
    /// Bytes written by the last save, 0 if none.
    pub saved_bytes: u64,
    /// Why the cache is disabled or the file was ignored, if it was.
    pub note: Option<String>,
}

impl PipelineCacheStatus {
    /// Whether this start found cache data from an earlier one.
    pub fn warm(&self) -> bool {
        self.loaded_bytes > 0
    }
}

/// FNV-1a, 64 bit: stable across builds and platforms (unlike `DefaultHasher`).
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    fnv1a64_extend(0xcbf2_9ce4_8422_2325, bytes)
}

fn fnv1a64_extend(mut hash: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// A hash of every kernel (id, entry point, overrides, WGSL source) and of this crate's
/// version: it changes whenever a kernel does.
pub fn kernels_hash() -> u64 {
    let mut h = fnv1a64(env!("CARGO_PKG_VERSION").as_bytes());
    for k in KERNELS {
        for part in [k.id, k.entry_point, k.source] {
            h = fnv1a64_extend(h, part.as_bytes());
            h = fnv1a64_extend(h, &[0]);
        }
        for o in k.overrides {
            h = fnv1a64_extend(h, o.as_bytes());
            h = fnv1a64_extend(h, &[0]);
        }
    }
    h
}

/// The pipelines folder from the environment: `$IPFS_ACCELERATE_CACHE_DIR/pipelines`,
/// else `$XDG_CACHE_HOME/ipfs-accelerate/pipelines`, else
/// `~/.cache/ipfs-accelerate/pipelines`; `None` when none of those is set.
pub fn default_pipeline_cache_dir() -> Option<PathBuf> {
    let non_empty = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    let root = non_empty(CACHE_DIR_ENV)
        .or_else(|| non_empty("XDG_CACHE_HOME").map(|d| d.join("ipfs-accelerate")))
        .or_else(|| non_empty("HOME").map(|d| d.join(".cache").join("ipfs-accelerate")))?;
    Some(root.join("pipelines"))
}

/// Whether [`PIPELINE_CACHE_ENV`] leaves the cache on (the default).
pub fn pipeline_cache_enabled_by_env() -> bool {
    match std::env::var(PIPELINE_CACHE_ENV) {
        Ok(v) => !matches!(v.trim().to_ascii_lowercase().as_str(), "off" | "0" | "false" | "no"),
        Err(_) => true,
    }
}

/// The cache file name for this adapter and driver, or `None` where wgpu has no
/// pipeline cache for the backend.
pub fn cache_file_name(info: &wgpu::AdapterInfo) -> Option<String> {
    let key = wgpu::util::pipeline_cache_key(info)?;
    // wgpu's key is vendor + device id only; add the driver, so a driver update starts
    // a new file instead of overwriting (and wgpu rejecting) the old one.
    let driver = fnv1a64(format!("{}\0{}\0{}", info.name, info.driver, info.driver_info).as_bytes());
    Some(format!("{key}_{driver:016x}_{:016x}.bin", kernels_hash()))
}

/// Parses our file format; `Err` says why the data is unusable.
fn decode(file: &[u8]) -> Result<&[u8], &'static str> {
    if file.len() < HEADER_LEN || &file[..8] != MAGIC {
        return Err("not a pipeline cache file (bad header)");
    }
    let want = u64::from_le_bytes(file[8..16].try_into().expect("8 bytes"));
    let payload = &file[HEADER_LEN..];
    if payload.is_empty() || fnv1a64(payload) != want {
        return Err("checksum mismatch (truncated or corrupt)");
    }
    Ok(payload)
}

fn encode(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&fnv1a64(payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// Writes `bytes` to `path` atomically: a unique temp file in the same folder, then a
/// rename over the old file (concurrent writers: the last rename wins, never a torn file).
fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("pipelines");
    let tmp = dir.join(format!(".{name}.{}.{}.tmp", std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed)));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// A `wgpu::PipelineCache` bound to a file.
#[derive(Debug)]
pub(crate) struct DiskPipelineCache {
    cache: wgpu::PipelineCache,
    path: PathBuf,
    /// Hash and length of the data last read or written, to skip saves that change nothing.
    last: Mutex<(u64, usize)>,
}

/// What [`open`] made: the cache (if any) and the initial status.
pub(crate) fn open(ctx: &GpuContext, dir: Option<&Path>) -> (Option<DiskPipelineCache>, PipelineCacheStatus) {
    let mut status = PipelineCacheStatus::default();
    let Some(dir) = dir else {
        status.note = Some("disabled (no cache directory, or IPFS_ACCELERATE_PIPELINE_CACHE=off)".into());
        return (None, status);
    };
    if !ctx.has_pipeline_cache() {
        status.note = Some(format!("the {} adapter has no pipeline cache", ctx.report().backend));
        return (None, status);
    }
    let Some(name) = cache_file_name(&ctx.adapter_info()) else {
        status.note = Some(format!("wgpu has no pipeline cache key for {}", ctx.report().backend));
        return (None, status);
    };
    let path = dir.join(name);
    status.path = Some(path.clone());
    let file = match std::fs::read(&path) {
        Ok(bytes) => Some(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            tracing::warn!(path = %path.display(), "ignoring unreadable pipeline cache: {e}");
            status.note = Some(format!("cache file unreadable: {e}"));
            None
        }
    };
    let payload = file.as_deref().and_then(|f| match decode(f) {
        Ok(p) => Some(p),
        Err(why) => {
            tracing::warn!(path = %path.display(), "ignoring pipeline cache file: {why}");
            status.note = Some(format!("cache file ignored: {why}"));
            None
        }
    });
    let device = ctx.device();
    let create = |data: Option<&[u8]>| {
        crate::kernels::scoped(device, "pipeline cache", || {
            // SAFETY: `data` is only ever bytes that `PipelineCache::get_data` returned in
            // an earlier run, for this adapter and driver (the file name says so, wgpu's
            // header checks it again), checksummed by us so a torn or garbled file is
            // never passed on.
            unsafe {
                device.create_pipeline_cache(&wgpu::PipelineCacheDescriptor {
                    label: Some("ipfs-accelerate pipelines"),
                    data,
                    fallback: true,
                })
            }
        })
    };
    let cache = match create(payload) {
        Ok(cache) => {
            if let Some(p) = payload {
                // With `fallback`, wgpu drops data silently when its header says another
                // wgpu version or driver made it; the new cache then holds less than given.
                let held = cache.get_data().map_or(0, |d| d.len());
                if held >= p.len() {
                    status.loaded_bytes = p.len() as u64;
                } else {
                    tracing::info!(path = %path.display(), "pipeline cache data outdated, starting empty");
                    status.note = Some(format!(
                        "cache data discarded by wgpu or the driver (outdated?): {} bytes given, {held} kept",
                        p.len()
                    ));
                }
            }
            cache
        }
        Err(e) => {
            // wgpu refuses even with `fallback` when the data is for another device.
            tracing::warn!(path = %path.display(), "pipeline cache data rejected, starting empty: {e}");
            status.note = Some(format!("cache data rejected: {e}"));
            match create(None) {
                Ok(cache) => cache,
                Err(e) => {
                    tracing::warn!("no pipeline cache: {e}");
                    status.note = Some(format!("could not create a pipeline cache: {e}"));
                    status.path = None;
                    return (None, status);
                }
            }
        }
    };
    status.enabled = true;
    let last = payload.map_or((0, 0), |p| (fnv1a64(p), p.len()));
    (Some(DiskPipelineCache { cache, path, last: Mutex::new(last) }), status)
}

impl DiskPipelineCache {
    pub(crate) fn cache(&self) -> &wgpu::PipelineCache {
        &self.cache
    }

    /// Writes the cache if its data changed since it was loaded or last saved; the bytes
    /// written, or `None` when there was nothing new.
    pub(crate) fn save(&self) -> std::io::Result<Option<u64>> {
        let Some(data) = self.cache.get_data() else {
            return Ok(None);
        };
        if data.is_empty() {
            return Ok(None);
        }
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let now = (fnv1a64(&data), data.len());
        if *last == now {
            return Ok(None);
        }
        let file = encode(&data);
        write_atomic(&self.path, &file)?;
        *last = now;
        tracing::debug!(path = %self.path.display(), bytes = file.len(), "saved pipeline cache");
        Ok(Some(file.len() as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_is_the_reference_function() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn file_format_round_trips_and_rejects_damage() {
        let payload = b"some driver cache bytes".to_vec();
        let file = encode(&payload);
        assert_eq!(decode(&file), Ok(&payload[..]));
        assert!(decode(&file[..file.len() - 1]).is_err(), "truncated");
        assert!(decode(&file[..10]).is_err(), "header cut");
        let mut flipped = file.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert!(decode(&flipped).is_err(), "bit flip");
        assert!(decode(b"garbage garbage garbage").is_err());
        assert!(decode(&encode(b"")).is_err(), "empty payload");
    }

    #[test]
    fn atomic_write_replaces_the_file() {
        let dir = std::env::temp_dir().join(format!("ipfs-accelerate-pc-unit-{}", std::process::id()));
        let path = dir.join("sub").join("x.bin");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(path.parent().unwrap()).unwrap().count(), 1, "no temp files left");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
