//! A blockstore on disk: one file per block, written atomically, verified
//! on every read, with recursive pins and garbage collection.
//!
//! Layout under the root directory:
//!
//! ```text
//! blocks/<last two chars of key>/<key>   block bytes
//! pins/<key>                             empty file = recursive pin
//! ```
//!
//! The key is the CIDv1 base32 string of the block (a CIDv0 is stored under
//! its v1 form), so names are lowercase and safe on case-insensitive file
//! systems, and v0/v1 names of the same node share one file.
//!
//! Writes go to a temporary file in the destination directory, are fsynced
//! and then renamed over the final name. A rename is atomic, and every
//! writer of a given name writes the same verified bytes, so two processes
//! storing the same block at once both succeed and a crash never leaves a
//! half-written block under a real name.
//!
//! Writers and garbage collection exclude each other through `<root>/lock`:
//! a store takes a shared lock on its first write and keeps it while it (or
//! a clone) lives, so an import can write all its blocks and then pin the
//! root; [`FsBlockstore::gc`] takes the lock exclusively, so it never deletes
//! the blocks of an import that has not pinned them yet. Readers take no
//! lock. The operating system drops the locks of a killed process.

use crate::block::{verify, DAG_PB};
use crate::dagpb;
use crate::error::{Error, Result};
use crate::exporter::BlockSource;
use crate::importer::BlockSink;
use cid::Cid;
use std::collections::HashSet;
use std::fs;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A directory of blocks; cheap to clone and share between threads.
#[derive(Debug, Clone)]
pub struct FsBlockstore {
    root: PathBuf,
    /// The shared writer lock on `<root>/lock`, taken on the first write
    /// and shared by clones (see the module docs).
    write_lock: Arc<Mutex<Option<fs::File>>>,
}

/// File whose lock keeps garbage collection and writers apart.
const LOCK_FILE: &str = "lock";

/// How long [`FsBlockstore::gc`] waits for writers in other processes.
pub const GC_WAIT: Duration = Duration::from_secs(30);

/// What [`FsBlockstore::gc`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Blocks deleted.
    pub removed_blocks: usize,
    /// Bytes freed.
    pub removed_bytes: u64,
    /// Blocks kept because a pin reaches them.
    pub kept_blocks: usize,
    /// Temporary files left by interrupted writes that were removed.
    pub removed_temp_files: usize,
}

/// Temporary files older than this are leftovers of a killed writer; younger
/// ones may belong to a write in progress in another process.
pub const STALE_TEMP_AGE: std::time::Duration = std::time::Duration::from_secs(3600);

/// The file name a CID is stored under.
fn key(cid: &Cid) -> String {
    Cid::new_v1(cid.codec(), *cid.hash()).to_string()
}

impl FsBlockstore {
    /// Opens (creating if needed) a blockstore rooted at `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        for sub in ["blocks", "pins"] {
            let dir = root.join(sub);
            fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        }
        Ok(FsBlockstore { root, write_lock: Arc::default() })
    }

    fn open_lock_file(&self) -> Result<fs::File> {
        let path = self.root.join(LOCK_FILE);
        fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path).map_err(|e| Error::io(&path, e))
    }

    /// Takes the shared writer lock once; later writes find it held.
    fn hold_write_lock(&self) -> Result<()> {
        let mut held = self.write_lock.lock().unwrap_or_else(|p| p.into_inner());
        if held.is_none() {
            let file = self.open_lock_file()?;
            // Blocks only while a garbage collection runs.
            file.lock_shared().map_err(|e| Error::io(self.root.join(LOCK_FILE), e))?;
            *held = Some(file);
        }
        Ok(())
    }

    /// The directory this store lives in.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn block_path(&self, cid: &Cid) -> PathBuf {
        let k = key(cid);
        let shard = &k[k.len() - 2..];
        self.root.join("blocks").join(shard).join(k)
    }

    fn pin_path(&self, cid: &Cid) -> PathBuf {
        self.root.join("pins").join(key(cid))
    }

    /// Stores a block after checking that `data` hashes to `cid`; storing a
    /// block that is already present and intact is a no-op, and storing it
    /// over a corrupted copy replaces that copy.
    pub fn put(&self, cid: &Cid, data: &[u8]) -> Result<()> {
        // Never store bytes under a CID they do not hash to.
        verify(cid, data)?;
        self.hold_write_lock()?;
        let path = self.block_path(cid);
        // Already stored and intact: nothing to do. Reading it back costs less
        // than a write + fsync, and lets a re-put repair a corrupted file.
        if fs::metadata(&path).is_ok_and(|m| m.len() == data.len() as u64) && self.get(cid).is_ok() {
            return Ok(());
        }
        let dir = path.parent().expect("block paths have a shard directory");
        fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let mut tmp = tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir).map_err(|e| Error::io(dir, e))?;
        tmp.write_all(data).map_err(|e| Error::io(tmp.path(), e))?;
        tmp.as_file().sync_all().map_err(|e| Error::io(tmp.path(), e))?;
        tmp.persist(&path).map_err(|e| Error::io(&path, e.error))?;
        sync_dir(dir);
        Ok(())
    }

    /// Reads a block and checks its hash; a mismatch is reported as
    /// [`Error::CorruptBlock`] and the bytes are never returned.
    pub fn get(&self, cid: &Cid) -> Result<Vec<u8>> {
        let path = self.block_path(cid);
        let data = match fs::read(&path) {
            Ok(d) => d,
            Err(e) if e.kind() == ErrorKind::NotFound => return Err(Error::BlockNotFound { cid: Box::new(*cid) }),
            Err(e) => return Err(Error::io(&path, e)),
        };
        match verify(cid, &data) {
            Ok(()) => Ok(data),
            Err(Error::HashMismatch { .. }) => Err(Error::CorruptBlock { cid: Box::new(*cid), path }),
            Err(e) => Err(e),
        }
    }

    /// True when a block is stored (its content is not checked).
    pub fn has(&self, cid: &Cid) -> bool {
        self.block_path(cid).is_file()
    }

    /// Deletes a block; returns whether it was present.
    pub fn delete(&self, cid: &Cid) -> Result<bool> {
        remove_if_present(&self.block_path(cid))
    }

    /// Every stored block's CID (as CIDv1), in no particular order.
    pub fn list(&self) -> Result<Vec<Cid>> {
        let blocks = self.root.join("blocks");
        let mut out = Vec::new();
        for shard in fs::read_dir(&blocks).map_err(|e| Error::io(&blocks, e))? {
            let shard = shard.map_err(|e| Error::io(&blocks, e))?.path();
            if !shard.is_dir() {
                continue;
            }
            out.extend(cids_in(&shard)?);
        }
        Ok(out)
    }

    /// Pins `root` recursively. Every block of the DAG must be present and
    /// valid, so a pin always protects a complete DAG.
    pub fn pin(&self, root: &Cid) -> Result<()> {
        self.reachable(root, &mut HashSet::new())?;
        let path = self.pin_path(root);
        fs::File::create(&path).map_err(|e| Error::io(&path, e))?;
        sync_dir(&self.root.join("pins"));
        Ok(())
    }

    /// Removes a pin; returns whether it existed. Blocks stay until [`gc`](Self::gc).
    pub fn unpin(&self, root: &Cid) -> Result<bool> {
        remove_if_present(&self.pin_path(root))
    }

    /// The pinned roots.
    pub fn pins(&self) -> Result<Vec<Cid>> {
        cids_in(&self.root.join("pins"))
    }

    /// True when `root` is pinned.
    pub fn is_pinned(&self, root: &Cid) -> bool {
        self.pin_path(root).is_file()
    }

    /// Adds the keys of every block under `root` to `seen`, reading and
    /// verifying each.
    fn reachable(&self, root: &Cid, seen: &mut HashSet<String>) -> Result<()> {
        let mut stack = vec![*root];
        while let Some(cid) = stack.pop() {
            if !seen.insert(key(&cid)) {
                continue;
            }
            let data = self.get(&cid)?;
            if cid.codec() == DAG_PB {
                let node = dagpb::decode(&cid, &data)?;
                stack.extend(node.links.iter().map(|l| l.cid));
            }
        }
        Ok(())
    }

    /// Deletes every block no pin reaches, waiting up to [`GC_WAIT`] for
    /// writers in other processes to finish.
    ///
    /// If any pinned DAG cannot be read completely (a block missing or
    /// corrupt), nothing is deleted: its unreadable links might protect
    /// blocks we would otherwise remove.
    pub fn gc(&self) -> Result<GcReport> {
        self.gc_waiting(GC_WAIT)
    }

    /// [`gc`](Self::gc), waiting at most `wait` for other writers (this
    /// store's own writer lock is given up first); fails with
    /// [`Error::StoreBusy`] when they have not finished by then.
    pub fn gc_waiting(&self, wait: Duration) -> Result<GcReport> {
        self.write_lock.lock().unwrap_or_else(|p| p.into_inner()).take();
        let lock = self.open_lock_file()?;
        let start = Instant::now();
        loop {
            match lock.try_lock() {
                Ok(()) => break,
                Err(fs::TryLockError::WouldBlock) if start.elapsed() < wait => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(fs::TryLockError::WouldBlock) => {
                    return Err(Error::StoreBusy { path: self.root.clone(), waited: start.elapsed() });
                }
                Err(fs::TryLockError::Error(e)) => return Err(Error::io(self.root.join(LOCK_FILE), e)),
            }
        }
        // The exclusive lock is released when `lock` is dropped.
        self.collect_garbage()
    }

    fn collect_garbage(&self) -> Result<GcReport> {
        let mut keep = HashSet::new();
        for pin in self.pins()? {
            self.reachable(&pin, &mut keep)?;
        }
        let mut report = GcReport { removed_temp_files: self.remove_stale_temp_files()?, ..GcReport::default() };
        for cid in self.list()? {
            if keep.contains(&key(&cid)) {
                report.kept_blocks += 1;
                continue;
            }
            let path = self.block_path(&cid);
            let size = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            if self.delete(&cid)? {
                report.removed_blocks += 1;
                report.removed_bytes += size;
            }
        }
        Ok(report)
    }
}

impl FsBlockstore {
    /// Deletes `.tmp-*` files older than [`STALE_TEMP_AGE`] (left when a
    /// process was killed mid-write; they never hold a block under its name).
    fn remove_stale_temp_files(&self) -> Result<usize> {
        let blocks = self.root.join("blocks");
        let mut removed = 0;
        for shard in fs::read_dir(&blocks).map_err(|e| Error::io(&blocks, e))? {
            let shard = shard.map_err(|e| Error::io(&blocks, e))?.path();
            let Ok(entries) = fs::read_dir(&shard) else { continue };
            for entry in entries.flatten() {
                let is_temp = entry.file_name().to_str().is_some_and(|n| n.starts_with(".tmp-"));
                let age = entry.metadata().ok().and_then(|m| m.modified().ok()).and_then(|t| t.elapsed().ok());
                if is_temp && age.is_some_and(|a| a > STALE_TEMP_AGE) && fs::remove_file(entry.path()).is_ok() {
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }
}

/// Makes a rename durable by syncing its directory; best effort, since not
/// every platform can open a directory for syncing.
fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}

/// Block writes in flight at once in [`FsBlockstore::write_parallel`]: each
/// durable write mostly waits on two fsyncs, so a few overlap well.
pub const PARALLEL_WRITES: usize = 4;

impl FsBlockstore {
    /// Runs `f` with a sink that stores blocks on [`PARALLEL_WRITES`]
    /// threads, so the fsyncs of consecutive blocks overlap instead of
    /// queueing behind each other. Returns once every block is durable;
    /// the first write error is returned (and makes later puts fail fast).
    ///
    /// ```
    /// # use ipfs_accelerate_ipfs::{import_file, FsBlockstore, ImportOptions};
    /// # let dir = tempfile::tempdir().unwrap();
    /// let store = FsBlockstore::open(dir.path())?;
    /// let root = store.write_parallel(|sink| import_file(&b"hello"[..], &ImportOptions::default(), sink))?;
    /// assert!(store.has(&root.cid));
    /// # Ok::<(), ipfs_accelerate_ipfs::Error>(())
    /// ```
    pub fn write_parallel<T>(&self, f: impl FnOnce(&mut dyn BlockSink) -> Result<T>) -> Result<T> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<(Cid, Vec<u8>)>(PARALLEL_WRITES * 2);
        let rx = Mutex::new(rx);
        let failed = Mutex::new(None::<Error>);
        let result = std::thread::scope(|scope| {
            for _ in 0..PARALLEL_WRITES {
                scope.spawn(|| loop {
                    let next = rx.lock().unwrap_or_else(|p| p.into_inner()).recv();
                    let Ok((cid, data)) = next else { return };
                    if let Err(e) = self.put(&cid, &data) {
                        failed.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(e);
                        return;
                    }
                });
            }
            let mut sink = ParallelSink { tx: Some(tx), failed: &failed };
            let result = f(&mut sink);
            // Closing the channel lets the writers drain it and stop.
            sink.tx = None;
            result
        });
        // A write error is the real cause of any error `f` saw after it.
        match failed.into_inner().unwrap_or_else(|p| p.into_inner()) {
            Some(e) => Err(e),
            None => result,
        }
    }
}

/// The sink of [`FsBlockstore::write_parallel`].
struct ParallelSink<'a> {
    tx: Option<std::sync::mpsc::SyncSender<(Cid, Vec<u8>)>>,
    failed: &'a Mutex<Option<Error>>,
}

impl BlockSink for ParallelSink<'_> {
    fn put_block(&mut self, cid: &Cid, data: &[u8]) -> Result<()> {
        if self.failed.lock().unwrap_or_else(|p| p.into_inner()).is_some() {
            return Err(Error::InvalidOption("a block write failed; the import stops".into()));
        }
        // The writer's put() checks the hash before storing.
        let sent = self.tx.as_ref().map(|tx| tx.send((*cid, data.to_vec())));
        match sent {
            Some(Ok(())) => Ok(()),
            _ => Err(Error::InvalidOption("the block writers stopped; the import stops".into())),
        }
    }
}

impl BlockSink for FsBlockstore {
    fn put_block(&mut self, cid: &Cid, data: &[u8]) -> Result<()> {
        self.put(cid, data)
    }
}

impl BlockSink for &FsBlockstore {
    fn put_block(&mut self, cid: &Cid, data: &[u8]) -> Result<()> {
        self.put(cid, data)
    }
}

impl BlockSource for FsBlockstore {
    fn get_block(&self, cid: &Cid) -> Result<Vec<u8>> {
        self.get(cid)
    }
}

/// Removes `path`; whether it was there.
fn remove_if_present(path: &Path) -> Result<bool> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// The CIDs named by the files in `dir` (block files, pin files). Temporary
/// files and strays do not parse as CIDs and are left out.
fn cids_in(dir: &Path) -> Result<Vec<Cid>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        if let Some(cid) = entry.file_name().to_str().and_then(|n| n.parse::<Cid>().ok()) {
            out.push(cid);
        }
    }
    Ok(out)
}
