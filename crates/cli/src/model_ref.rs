//! What `--model` may name, and how it becomes a directory to load.
//!
//! In order: an existing directory; a name recorded by `models add|pull|import`;
//! a CID; a Hugging Face id (`org/name`). A name or CID is exported once,
//! verified, from the local block store (`$IPFS_ACCELERATE_REPO`) into
//! `<repo>/models/<cid>`, and later loads memory-map that copy instead of
//! re-hashing the blocks. A CID whose blocks are not all stored is first
//! fetched from the configured trustless gateways (every block verified) and
//! pinned. A Hugging Face id is downloaded once, added and named like
//! `models pull`; later uses find it in the registry without the network.

use crate::config::{gateway_config, FetchArgs};
use crate::progress::{bytes_spinner, FetchProgress};
use anyhow::{bail, Context, Result};
use clap::Args;
use ipfs_accelerate_ipfs::gateway::GatewayClient;
use ipfs_accelerate_ipfs::model_cache;
use ipfs_accelerate_ipfs::registry::{validate_name, Registry};
use ipfs_accelerate_ipfs::{parse_cid, Cid, FsBlockstore};
use std::path::{Path, PathBuf};

/// The `--model` option and where to find what it names.
#[derive(Args, Clone)]
pub struct ModelArgs {
    /// Model: a directory (config.json, tokenizer.json, model.safetensors, sentence-transformers files);
    /// a name from `models ls`; a CID (fetched from --gateway when not stored); or a Hugging Face id
    /// such as sentence-transformers/all-MiniLM-L6-v2 (downloaded and added once).
    #[arg(long)]
    pub model: String,
    #[command(flatten)]
    pub fetch: FetchArgs,
}

/// The directory to load for `--model`.
pub fn resolve(args: &ModelArgs) -> Result<PathBuf> {
    let model = args.model.as_str();
    let path = Path::new(model);
    if path.is_dir() {
        return Ok(path.to_path_buf());
    }
    // The store is consulted only when one can be found, so a mistyped path
    // still reports the missing directory.
    let Ok(repo) = args.fetch.repo.dir() else { return Ok(path.to_path_buf()) };
    let named = if validate_name(model).is_ok() { Registry::open(&repo)?.resolve(model) } else { None };
    let cid = match named.or_else(|| parse_cid(model.strip_prefix("/ipfs/").unwrap_or(model)).ok()) {
        Some(cid) => cid,
        None if is_hf_id(model) && !path.exists() => from_hub(model, &repo, args.fetch.offline)?,
        None => return Ok(path.to_path_buf()),
    };
    exported(&cid, &repo, &args.fetch)
}

/// True for `org/name` with the characters the Hub allows.
pub fn is_hf_id(text: &str) -> bool {
    let part = |p: &str| {
        !p.is_empty()
            && p.len() <= 96
            && !p.starts_with(['.', '-'])
            && !p.contains("..")
            && p.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    matches!(text.split_once('/'), Some((org, name)) if part(org) && part(name))
}

/// The root CID of Hugging Face model `hf_id` (branch main): the one an
/// earlier download recorded, else a new download.
fn from_hub(hf_id: &str, repo: &Path, offline: bool) -> Result<Cid> {
    const REVISION: &str = "main";
    let source = crate::commands::models::hf_source(hf_id, REVISION);
    if let Some(cid) = Registry::open(repo)?.find_source(&source) {
        if FsBlockstore::open(repo)?.is_pinned(&cid) {
            return Ok(cid);
        }
    }
    if offline {
        bail!("{hf_id} is neither a directory nor a model in the local store, and --offline forbids downloading it from the Hugging Face Hub");
    }
    eprintln!("downloading {hf_id} from the Hugging Face Hub (once; later runs use the local copy)");
    let registry = Registry::open(repo)?;
    let tail = hf_id.rsplit('/').next().unwrap_or(hf_id);
    // Name it like `models pull` does, unless that name means another model.
    let name = match registry.get(tail) {
        Some(entry) if entry.source.as_deref() != Some(source.as_str()) => hf_id.replace('/', "--"),
        _ => tail.to_string(),
    };
    crate::commands::models::pull_model(repo, hf_id, REVISION, &name)
}

/// Exports `cid` to `<repo>/models/<cid>` (once), fetching what the store lacks.
fn exported(cid: &Cid, repo: &Path, fetch: &FetchArgs) -> Result<PathBuf> {
    if model_cache::is_exported(repo, cid) {
        return Ok(model_cache::exported_dir(repo, cid));
    }
    let store = FsBlockstore::open(repo)?;
    if ensure_stored(cid, &store, fetch, repo)? {
        // Keep what was downloaded: a fetched model survives `ipfs gc`.
        store.pin(cid).with_context(|| format!("cannot pin {cid}"))?;
    }
    model_cache::export_model(&store, cid, repo)
        .with_context(|| format!("cannot export model {cid} from {}", repo.display()))
}

/// Makes sure the whole DAG under `cid` is in `store`: with gateways
/// configured, fetches every missing block (verified); offline, only checks
/// that the root is there (the export then verifies every block). Returns
/// whether gateways were used.
pub fn ensure_stored(cid: &Cid, store: &FsBlockstore, fetch: &FetchArgs, repo: &Path) -> Result<bool> {
    if store.is_pinned(cid) {
        // A pin is only ever taken on a complete DAG.
        return Ok(false);
    }
    let config = gateway_config(fetch, repo)?;
    if config.gateways.is_empty() {
        if !store.has(cid) {
            bail!(
                "{cid} is not in the local block store {}: fetch it with --gateway URL (or set \
                 IPFS_ACCELERATE_GATEWAYS, or [gateways] in {}), or add it with `ipfs-accelerate models add DIR`",
                repo.display(),
                repo.join(crate::config::CONFIG_FILE).display()
            );
        }
        return Ok(false);
    }
    let client = GatewayClient::new(config)?;
    let bar = bytes_spinner(&format!("fetching {cid}"));
    let progress = FetchProgress { store: store.clone(), bar: bar.clone() };
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().context("cannot start the async runtime")?;
    let report = runtime.block_on(client.fetch_dag(cid, &progress));
    bar.finish_and_clear();
    let report = report.with_context(|| format!("cannot fetch {cid} from {}", client.gateways().join(", ")))?;
    if report.blocks_fetched > 0 {
        eprintln!(
            "fetched {} blocks ({} bytes) of {cid}, every one verified",
            report.blocks_fetched, report.bytes_fetched
        );
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::is_hf_id;

    #[test]
    fn hf_ids_are_org_slash_name() {
        assert!(is_hf_id("sentence-transformers/all-MiniLM-L6-v2"));
        assert!(is_hf_id("BAAI/bge-small-en-v1.5"));
        for not in ["all-MiniLM-L6-v2", "./model", "a/b/c", "/abs", "org/", "../x", "org/..", "org/na me", ""] {
            assert!(!is_hf_id(not), "{not:?}");
        }
    }
}
