//! What `--model` may name: a model directory, a name recorded by `models
//! add|import`, or the CID of a model directory in the local block store.

use crate::commands::ipfs::repo_dir;
use anyhow::{Context, Result};
use ipfs_accelerate_ipfs::registry::{validate_name, Registry};
use ipfs_accelerate_ipfs::{export_to, parse_cid, FsBlockstore};
use std::path::{Path, PathBuf};

/// The directory to load for `--model`.
///
/// An existing directory is used as is; a registry name (`models ls`) stands
/// for its root CID. A CID is exported once from the local
/// block store (`$IPFS_ACCELERATE_REPO`; every block's hash is checked on the
/// way out) into `<repo>/models/<cid>`, and later loads memory-map that
/// verified copy instead of re-hashing the blocks. Anything else is returned
/// unchanged, so the loader reports the missing directory.
pub fn resolve(model: &Path) -> Result<PathBuf> {
    if model.is_dir() {
        return Ok(model.to_path_buf());
    }
    // A registry name is looked up only when a block store can be found, so
    // a mistyped path still reports the missing directory.
    let repo = repo_dir(None);
    let named = match (model.to_str(), repo.as_ref()) {
        (Some(name), Ok(repo)) if validate_name(name).is_ok() => Registry::open(repo)?.resolve(name),
        _ => None,
    };
    let Some(cid) = named.or_else(|| model.to_str().and_then(|s| parse_cid(s).ok())) else {
        return Ok(model.to_path_buf());
    };
    let repo = repo?;
    let cache = repo.join("models");
    let target = cache.join(cid.to_string());
    if target.join(".complete").exists() {
        return Ok(target);
    }
    let store = FsBlockstore::open(&repo)?;
    if !store.has(&cid) {
        anyhow::bail!(
            "model {cid} is not in the local block store {}: add its directory with `ipfs-accelerate ipfs add -r DIR` first",
            repo.display()
        );
    }
    std::fs::create_dir_all(&cache).with_context(|| format!("cannot create {}", cache.display()))?;
    // Export beside the target, then rename: a killed export never leaves a
    // half-written model where a later load would find it.
    let staging = cache.join(format!(".export-{}-{cid}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    export_to(&store, &cid, &staging).with_context(|| format!("cannot export model {cid} from {}", repo.display()))?;
    std::fs::write(staging.join(".complete"), b"").context("cannot mark the exported model complete")?;
    if std::fs::rename(&staging, &target).is_err() {
        // Another process finished the same export first; use its copy.
        let _ = std::fs::remove_dir_all(&staging);
    }
    Ok(target)
}
