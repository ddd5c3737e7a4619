//! Models exported from the block store into `<repo>/models/<cid>`.
//!
//! A model named by CID is exported once, every block verified, and later
//! loads memory-map that copy instead of re-hashing the blocks. The CLI and
//! the Python package both go through here, so they share one copy per CID.

use crate::{export_to, Cid, Error, FsBlockstore, Result};
use std::path::{Path, PathBuf};

/// The marker written last into a finished export.
const COMPLETE: &str = ".complete";

/// The block store directory: `$IPFS_ACCELERATE_REPO`, else
/// `~/.local/share/ipfs-accelerate/repo`; `None` when neither can be found.
pub fn default_repo() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("IPFS_ACCELERATE_REPO").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir));
    }
    let home = std::env::var_os("HOME").filter(|h| !h.is_empty())?;
    Some(PathBuf::from(home).join(".local/share/ipfs-accelerate/repo"))
}

/// Where the export of `cid` lives (whether or not it exists yet).
pub fn exported_dir(repo: &Path, cid: &Cid) -> PathBuf {
    repo.join("models").join(cid.to_string())
}

/// Whether `cid` was exported completely before.
pub fn is_exported(repo: &Path, cid: &Cid) -> bool {
    exported_dir(repo, cid).join(COMPLETE).exists()
}

/// Exports the model `cid` from `store` to `<repo>/models/<cid>` unless that
/// was done before, and returns the directory. Every block must be in
/// `store` already (fetching is the caller's business); each is verified.
pub fn export_model(store: &FsBlockstore, cid: &Cid, repo: &Path) -> Result<PathBuf> {
    let target = exported_dir(repo, cid);
    if is_exported(repo, cid) {
        return Ok(target);
    }
    let cache = repo.join("models");
    std::fs::create_dir_all(&cache).map_err(|source| Error::Io { path: cache.clone(), source })?;
    // Export beside the target, then rename: a killed export never leaves a
    // half-written model where a later load would find it.
    let staging = cache.join(format!(".export-{}-{cid}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    export_to(store, cid, &staging)?;
    let marker = staging.join(COMPLETE);
    std::fs::write(&marker, b"").map_err(|source| Error::Io { path: marker, source })?;
    if std::fs::rename(&staging, &target).is_err() {
        // Another process finished the same export first; use its copy.
        let _ = std::fs::remove_dir_all(&staging);
    }
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{import_path, ImportOptions};

    #[test]
    fn exports_once_and_verifies() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("model");
        std::fs::create_dir_all(&src).unwrap();
        std::fs::write(src.join("config.json"), b"{\"a\": 1}").unwrap();
        let repo = tmp.path().join("repo");
        let mut store = FsBlockstore::open(&repo).unwrap();
        let imported = import_path(&src, &ImportOptions::default(), &mut store).unwrap();
        assert!(!is_exported(&repo, &imported.cid));
        let dir = export_model(&store, &imported.cid, &repo).unwrap();
        assert_eq!(dir, exported_dir(&repo, &imported.cid));
        assert_eq!(std::fs::read(dir.join("config.json")).unwrap(), b"{\"a\": 1}");
        assert!(is_exported(&repo, &imported.cid));
        // The second call finds the finished copy.
        assert_eq!(export_model(&store, &imported.cid, &repo).unwrap(), dir);
    }
}
