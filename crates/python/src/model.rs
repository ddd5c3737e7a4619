//! What a model name may be in Python, and the directory it becomes.
//!
//! In order: an existing directory; a name recorded in the local model
//! registry (`ipfs-accelerate models add|pull|import`); a CID. A name or CID
//! is exported (verified) from the local block store into
//! `<repo>/models/<cid>` once, like the CLI does. Nothing is downloaded
//! here: a CID whose blocks are not all stored, or a Hugging Face id never
//! pulled, is an error telling the user which command fetches it.

use crate::errors::{Error, Result};
use ipfs_accelerate_ipfs::model_cache;
use ipfs_accelerate_ipfs::registry::{validate_name, Registry};
use ipfs_accelerate_ipfs::{parse_cid, Cid, FsBlockstore};
use std::path::{Path, PathBuf};

/// A model located on disk.
#[derive(Debug, Clone)]
pub struct ResolvedModel {
    /// The directory to load.
    pub dir: PathBuf,
    /// The root CID, when the model came from the block store.
    pub cid: Option<String>,
    /// True when every block was already in the local store (nothing was
    /// fetched; nothing ever is here, so any model found by CID is a hit).
    pub cache_hit: bool,
}

/// Resolves `name`; `enable_ipfs` false allows only directories.
pub fn resolve(name: &str, enable_ipfs: bool) -> Result<ResolvedModel> {
    if name.is_empty() {
        return Err(Error::InvalidInput("model_name is empty: pass a model directory, name or CID".into()));
    }
    let path = Path::new(name);
    if path.is_dir() {
        return Ok(from_directory(path));
    }
    if !enable_ipfs {
        return Err(Error::ModelNotFound(format!(
            "{name} is not a directory (this accelerator was made with enable_ipfs=False, so names and CIDs are not looked up)"
        )));
    }
    let repo = model_cache::default_repo().ok_or_else(|| {
        Error::ModelNotFound(format!(
            "{name} is not a directory, and no block store was found (set IPFS_ACCELERATE_REPO)"
        ))
    })?;
    let registry = Registry::open(&repo).map_err(|e| Error::ModelNotFound(e.to_string()))?;
    let named = if validate_name(name).is_ok() { registry.resolve(name) } else { None };
    let cid = named.or_else(|| parse_cid(name.strip_prefix("/ipfs/").unwrap_or(name)).ok());
    if let Some(cid) = cid {
        return from_store(&cid, &repo);
    }
    if is_hf_id(name) {
        if let Some(cid) = registry.find_source(&format!("hf:{name}@main")) {
            return from_store(&cid, &repo);
        }
        return Err(Error::ModelNotFound(format!(
            "{name} is not in the local model store {}: download it once with `ipfs-accelerate models pull {name}`, \
             then pass its name or CID",
            repo.display()
        )));
    }
    Err(Error::ModelNotFound(format!(
        "no model {name:?}: it is neither a directory, nor a name in {}, nor a CID \
         (`ipfs-accelerate models ls` lists the names)",
        repo.join("registry.json").display()
    )))
}

/// A plain directory: it has a CID only when it is an export of the store.
fn from_directory(path: &Path) -> ResolvedModel {
    let exported_cid = path
        .canonicalize()
        .ok()
        .filter(|dir| {
            path.join(".complete").exists() && dir.parent().and_then(Path::file_name) == Some("models".as_ref())
        })
        .and_then(|dir| dir.file_name().and_then(|n| n.to_str()).and_then(|n| parse_cid(n).ok()))
        .map(|cid| cid.to_string());
    ResolvedModel { dir: path.to_path_buf(), cache_hit: exported_cid.is_some(), cid: exported_cid }
}

/// A model in the block store, exported once.
fn from_store(cid: &Cid, repo: &Path) -> Result<ResolvedModel> {
    if !model_cache::is_exported(repo, cid) {
        let store = FsBlockstore::open(repo).map_err(|e| Error::ModelNotFound(e.to_string()))?;
        if !store.has(cid) {
            return Err(Error::ModelNotFound(format!(
                "{cid} is not in the local block store {}: fetch it with `ipfs-accelerate models pull` or \
                 `ipfs-accelerate embed --gateway URL --model {cid}`, or add it with `ipfs-accelerate models add DIR`",
                repo.display()
            )));
        }
        // Exporting reads (and verifies) every block; a missing one fails here.
        model_cache::export_model(&store, cid, repo)
            .map_err(|e| Error::ModelNotFound(format!("{cid} is not complete in the local block store: {e}")))?;
    }
    Ok(ResolvedModel { dir: model_cache::exported_dir(repo, cid), cid: Some(cid.to_string()), cache_hit: true })
}

/// True for `org/name` with the characters the Hugging Face Hub allows.
fn is_hf_id(text: &str) -> bool {
    let part = |p: &str| {
        !p.is_empty()
            && !p.starts_with(['.', '-'])
            && !p.contains("..")
            && p.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    matches!(text.split_once('/'), Some((org, name)) if part(org) && part(name))
}
