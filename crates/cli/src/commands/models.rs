//! `ipfs-accelerate models`: named models in the local block store — add a
//! directory or pull one from the Hugging Face Hub, list, remove,
//! export/import CARs and write copies to disk.
//!
//! Names live in `<repo>/registry.json` (see
//! [`ipfs_accelerate_ipfs::registry`]); every named root is pinned, so
//! `ipfs gc` keeps its blocks until `models rm`.

use crate::commands::ipfs::{total_bytes, RepoArgs};
use crate::config::FetchArgs;
use crate::progress::{bytes_bar, ProgressSink};
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use ipfs_accelerate_ipfs::block::DAG_PB;
use ipfs_accelerate_ipfs::car::{export_car, import_car};
use ipfs_accelerate_ipfs::registry::{validate_name, Registry};
use ipfs_accelerate_ipfs::{dagpb, export_to, import_path, parse_cid, Cid, FsBlockstore, ImportOptions, Imported};
use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Named models in the local block store.
#[derive(Subcommand)]
pub enum ModelsCommand {
    Add(AddArgs),
    Ls(LsArgs),
    Rm(KeyArgs),
    Export(ExportArgs),
    Import(ImportArgs),
    Get(GetArgs),
    Pull(PullArgs),
}

/// Add a model directory (or file) to the block store, pin it and name it;
/// prints the root CID (CIDv1, raw leaves: the same as `ipfs add -r --cid-version 1`).
#[derive(Args)]
#[command(after_help = "Examples:
  ipfs-accelerate models add ./all-MiniLM-L6-v2                 # named all-MiniLM-L6-v2
  ipfs-accelerate models add ./model --name minilm
  ipfs-accelerate embed --model minilm 'hello world'")]
pub struct AddArgs {
    /// Directory or file to add.
    path: PathBuf,
    /// Name to record [default: the directory's or file's name].
    #[arg(long)]
    name: Option<String>,
    #[command(flatten)]
    repo: RepoArgs,
}

/// List named models: name, root CID, size in bytes, and whether it is pinned.
#[derive(Args)]
#[command(after_help = "Examples:
  ipfs-accelerate models ls
  ipfs-accelerate models ls --json | jq '.[].cid'")]
pub struct LsArgs {
    /// Print a JSON array of {name, cid, size, added_at, pinned}.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    repo: RepoArgs,
}

/// Forget a model's name and unpin its root (its blocks go on `ipfs gc`).
#[derive(Args)]
#[command(after_help = "Examples:
  ipfs-accelerate models rm minilm && ipfs-accelerate ipfs gc")]
pub struct KeyArgs {
    /// Model name or root CID.
    key: String,
    #[command(flatten)]
    repo: RepoArgs,
}

/// Write a model's whole DAG to a CAR v1 file, verifying every block.
#[derive(Args)]
#[command(after_help = "Examples:
  ipfs-accelerate models export minilm minilm.car")]
pub struct ExportArgs {
    /// Model name or root CID.
    key: String,
    /// The CAR file to write.
    out: PathBuf,
    #[command(flatten)]
    repo: RepoArgs,
}

/// Import a CAR file; the root is pinned (and named) only once every block
/// has been verified and the DAG is complete. Prints the root CID.
#[derive(Args)]
#[command(after_help = "Examples:
  ipfs-accelerate models import minilm.car --name minilm")]
pub struct ImportArgs {
    /// The CAR v1 file (one root).
    car: PathBuf,
    /// Name to record for the root [default: none; the root is only pinned].
    #[arg(long)]
    name: Option<String>,
    #[command(flatten)]
    repo: RepoArgs,
}

/// Write a model's files to a new directory, verifying every block; a CID
/// that is not stored is first fetched from the gateways and pinned.
#[derive(Args)]
#[command(after_help = "Examples:
  ipfs-accelerate models get minilm ./minilm-copy
  ipfs-accelerate models get bafybei... ./model --gateway http://127.0.0.1:8080")]
pub struct GetArgs {
    /// Model name or root CID.
    key: String,
    /// Directory to create; must not exist yet.
    dir: PathBuf,
    #[command(flatten)]
    fetch: FetchArgs,
}

/// Download a model from the Hugging Face Hub (config.json, tokenizer.json,
/// model.safetensors and the sentence-transformers files when present), add
/// it like `models add`, and print its root CID. Honors HF_ENDPOINT (a
/// mirror), HF_HOME (the download cache) and HF_TOKEN.
#[derive(Args)]
#[command(after_help = "Examples:
  ipfs-accelerate models pull sentence-transformers/all-MiniLM-L6-v2     # named all-MiniLM-L6-v2
  HF_ENDPOINT=https://hf-mirror.example ipfs-accelerate models pull org/model --revision v1.0 --name m")]
pub struct PullArgs {
    /// Hugging Face model id, such as sentence-transformers/all-MiniLM-L6-v2.
    hf_id: String,
    /// Branch, tag or commit to download.
    #[arg(long, default_value = "main")]
    revision: String,
    /// Name to record [default: the part of the id after the last `/`].
    #[arg(long)]
    name: Option<String>,
    #[command(flatten)]
    repo: RepoArgs,
}

/// Runs one `models` subcommand.
pub fn run(cmd: ModelsCommand) -> Result<()> {
    match cmd {
        ModelsCommand::Add(args) => add(args),
        ModelsCommand::Ls(args) => ls(args),
        ModelsCommand::Rm(args) => rm(args),
        ModelsCommand::Export(args) => {
            let repo = args.repo.dir()?;
            let cid = resolve_key(&repo, &args.key)?;
            let store = FsBlockstore::open(&repo)?;
            let file = std::fs::File::create(&args.out)
                .with_context(|| format!("cannot create {} (does its directory exist?)", args.out.display()))?;
            let out = export_car(&store, &cid, std::io::BufWriter::new(file))
                .with_context(|| format!("cannot export {cid}"))?;
            out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
            println!("exported {cid} to {}", args.out.display());
            Ok(())
        }
        ModelsCommand::Import(args) => import(args),
        ModelsCommand::Pull(args) => pull(args),
        ModelsCommand::Get(args) => {
            let repo = args.fetch.repo.dir()?;
            let cid = resolve_key(&repo, &args.key)?;
            let store = FsBlockstore::open(&repo)?;
            if crate::model_ref::ensure_stored(&cid, &store, &args.fetch, &repo)? {
                store.pin(&cid).with_context(|| format!("cannot pin {cid}"))?;
            }
            export_to(&store, &cid, &args.dir)?;
            println!("saved {cid} to {}", args.dir.display());
            Ok(())
        }
    }
}

/// A name in the registry, else a CID (optionally written /ipfs/CID).
pub fn resolve_key(repo: &Path, key: &str) -> Result<Cid> {
    if let Some(cid) = Registry::open(repo)?.resolve(key) {
        return Ok(cid);
    }
    parse_cid(key.strip_prefix("/ipfs/").unwrap_or(key))
        .map_err(|_| anyhow::anyhow!("{key:?} is neither a model name nor a CID (see `ipfs-accelerate models ls`)"))
}

/// Bytes of the distinct blocks of the DAG under `root`.
fn dag_size(store: &FsBlockstore, root: &Cid) -> Result<u64> {
    let mut seen = HashSet::new();
    let mut stack = vec![*root];
    let mut total = 0u64;
    while let Some(cid) = stack.pop() {
        if !seen.insert(cid) {
            continue;
        }
        let data = store.get(&cid)?;
        total += data.len() as u64;
        if cid.codec() == DAG_PB {
            stack.extend(dagpb::decode(&cid, &data)?.links.iter().map(|l| l.cid));
        }
    }
    Ok(total)
}

fn add(args: AddArgs) -> Result<()> {
    let name = match args.name {
        Some(name) => name,
        None => default_name(&args.path)?,
    };
    validate_name(&name)?;
    std::fs::metadata(&args.path).with_context(|| format!("cannot read {}", args.path.display()))?;
    let repo = args.repo.dir()?;
    let store = FsBlockstore::open(&repo)?;
    let root = add_with_progress(&args.path, &store).with_context(|| format!("cannot add {}", args.path.display()))?;
    record(&repo, &store, &root.cid, Some(&name), None)?;
    println!("{}", root.cid);
    Ok(())
}

/// Imports `path` with the default options, drawing a progress bar.
fn add_with_progress(path: &Path, store: &FsBlockstore) -> Result<Imported> {
    let bar = bytes_bar(total_bytes(path), "adding");
    let root = store.write_parallel(|blocks| {
        let mut sink = ProgressSink { store: Some(blocks), bar: bar.clone() };
        import_path(path, &ImportOptions::default(), &mut sink)
    });
    bar.finish_and_clear();
    Ok(root?)
}

/// The default name: the path's last component (after resolving `.`).
fn default_name(path: &Path) -> Result<String> {
    let full = path.canonicalize().with_context(|| format!("cannot read {}", path.display()))?;
    full.file_name()
        .and_then(|n| n.to_str())
        .map(str::to_string)
        .with_context(|| format!("cannot derive a name from {}: pass --name NAME", path.display()))
}

/// Pins `root` (which checks the whole DAG is stored) and records `name`,
/// with where the model came from when it was downloaded.
fn record(repo: &Path, store: &FsBlockstore, root: &Cid, name: Option<&str>, source: Option<&str>) -> Result<()> {
    store.pin(root).with_context(|| format!("cannot pin {root}"))?;
    if let Some(name) = name {
        let size = dag_size(store, root)?;
        Registry::open(repo)?.insert_from(name, root, size, source)?;
    }
    Ok(())
}

/// How the registry records a model downloaded from the Hub.
pub fn hf_source(hf_id: &str, revision: &str) -> String {
    format!("hf:{hf_id}@{revision}")
}

fn pull(args: PullArgs) -> Result<()> {
    let name = args.name.unwrap_or_else(|| args.hf_id.rsplit('/').next().unwrap_or_default().to_string());
    let repo = args.repo.dir()?;
    println!("{}", pull_model(&repo, &args.hf_id, &args.revision, &name)?);
    Ok(())
}

/// Downloads `hf_id` at `revision`, adds it, pins it, names it `name`, and
/// returns its root CID.
pub fn pull_model(repo: &Path, hf_id: &str, revision: &str, name: &str) -> Result<Cid> {
    validate_name(name)?;
    std::fs::create_dir_all(repo).with_context(|| format!("cannot create {}", repo.display()))?;
    // Gather the files in a scratch directory inside the repository (same
    // file system as a typical HF cache, so hard links usually work).
    let scratch = tempfile::Builder::new()
        .prefix(".pull-")
        .tempdir_in(repo)
        .with_context(|| format!("cannot create a scratch directory in {}", repo.display()))?;
    let staging = scratch.path().join("model");
    super::pull::download(hf_id, revision, &staging)?;
    let store = FsBlockstore::open(repo)?;
    let root = add_with_progress(&staging, &store).with_context(|| format!("cannot add the files of {hf_id}"))?;
    record(repo, &store, &root.cid, Some(name), Some(&hf_source(hf_id, revision)))?;
    Ok(root.cid)
}

fn import(args: ImportArgs) -> Result<()> {
    if let Some(name) = &args.name {
        validate_name(name)?;
    }
    let repo = args.repo.dir()?;
    let mut store = FsBlockstore::open(&repo)?;
    let file = std::fs::File::open(&args.car).with_context(|| format!("cannot open {}", args.car.display()))?;
    let roots = import_car(std::io::BufReader::new(file), &mut store)
        .with_context(|| format!("cannot import {} (nothing was pinned)", args.car.display()))?;
    let [root] = roots[..] else {
        bail!("{} has {} roots; models import needs exactly one", args.car.display(), roots.len());
    };
    record(&repo, &store, &root, args.name.as_deref(), None)
        .with_context(|| format!("{} is incomplete (nothing was pinned)", args.car.display()))?;
    println!("{root}");
    Ok(())
}

fn ls(args: LsArgs) -> Result<()> {
    let repo = args.repo.dir()?;
    let registry = Registry::open(&repo)?;
    let store = FsBlockstore::open(&repo)?;
    let pinned = |cid: &str| cid.parse::<Cid>().map(|c| store.is_pinned(&c)).unwrap_or(false);
    let mut out = std::io::stdout().lock();
    if args.json {
        let rows: Vec<_> = registry
            .entries()
            .map(|(name, e)| {
                serde_json::json!({"name": name, "cid": e.cid, "size": e.size, "added_at": e.added_at, "pinned": pinned(&e.cid)})
            })
            .collect();
        writeln!(out, "{}", serde_json::to_string_pretty(&rows)?)?;
        return Ok(());
    }
    for (name, e) in registry.entries() {
        let pin = if pinned(&e.cid) { "pinned" } else { "unpinned" };
        writeln!(out, "{name}\t{}\t{}\t{pin}", e.cid, e.size)?;
    }
    Ok(())
}

fn rm(args: KeyArgs) -> Result<()> {
    let repo = args.repo.dir()?;
    let mut registry = Registry::open(&repo)?;
    let store = FsBlockstore::open(&repo)?;
    let removed = registry.remove(&args.key)?;
    for (name, entry) in removed {
        // Keep the pin while another name still refers to the same root.
        let still_named = registry.entries().any(|(_, e)| e.cid == entry.cid);
        if let (false, Ok(cid)) = (still_named, entry.cid.parse::<Cid>()) {
            store.unpin(&cid)?;
        }
        println!("removed {name} ({})", entry.cid);
    }
    Ok(())
}
