//! `ipfs-accelerate ipfs`: Kubo-compatible `add`, `cat`, `get`, `block get`,
//! `pin add|rm|ls` and `gc` over the local block store, producing the same
//! CIDs as `ipfs add`, and `serve-gateway`, a trustless HTTP gateway over it.

use crate::progress::{bytes_bar, ProgressSink};
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use ipfs_accelerate_ipfs::importer::{import_path_reporting, EntryKind};
use ipfs_accelerate_ipfs::{cat, export_to, parse_cid, Cid, CidVersion, FsBlockstore, ImportOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Content addressing compatible with Kubo's `ipfs` command.
#[derive(Subcommand)]
pub enum IpfsCommand {
    Add(AddArgs),
    Cat(CatArgs),
    Get(GetArgs),
    #[command(subcommand)]
    Block(BlockCommand),
    #[command(subcommand)]
    Pin(PinCommand),
    Gc(RepoArgs),
    ServeGateway(ServeGatewayArgs),
}

/// Serve the local block store as an IPFS trustless gateway: `GET
/// /ipfs/CID?format=raw` (one block) and `?format=car` (the whole DAG).
#[derive(Args)]
#[command(after_help = "Examples:
  ipfs-accelerate ipfs serve-gateway                       # http://127.0.0.1:8080
  ipfs-accelerate ipfs serve-gateway --addr 127.0.0.1:0    # any free port; the address is printed
  curl -H 'Accept: application/vnd.ipld.car' http://127.0.0.1:8080/ipfs/CID > dag.car")]
pub struct ServeGatewayArgs {
    /// Address to listen on. The default serves this machine only; an
    /// address such as 0.0.0.0:8080 shares the store with the network.
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: std::net::SocketAddr,
    #[command(flatten)]
    repo: RepoArgs,
}

/// The block store directory option, shared by every subcommand.
#[derive(Args, Clone, Default)]
pub struct RepoArgs {
    /// Block store directory [default: $IPFS_ACCELERATE_REPO or ~/.local/share/ipfs-accelerate/repo].
    #[arg(long)]
    repo: Option<PathBuf>,
}

impl RepoArgs {
    /// The block store directory this option names (see [`repo_dir`]).
    pub fn dir(&self) -> Result<PathBuf> {
        repo_dir(self.repo.clone())
    }
}

/// Write a file or directory tree from the local block store to disk; a CID
/// that is not stored is first fetched from the gateways (not pinned).
#[derive(Args)]
#[command(after_help = "Examples:
  ipfs-accelerate ipfs get bafybeiczsscdsbs7ffqz55asqdf3smv6klcw3gofszvwlyarci47bgf354 -o ./model
  ipfs-accelerate ipfs get bafybei... -o ./model --gateway https://trustless-gateway.link")]
pub struct GetArgs {
    /// CID of a file or directory (optionally written /ipfs/CID).
    cid: String,
    /// Where to write it; must not exist yet [default: the CID].
    #[arg(short, long)]
    output: Option<PathBuf>,
    #[command(flatten)]
    fetch: crate::config::FetchArgs,
}

/// Raw blocks.
#[derive(Subcommand)]
pub enum BlockCommand {
    /// Write one block's raw bytes to stdout (hash-checked).
    #[command(after_help = "Examples:
  ipfs-accelerate ipfs block get QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn | xxd")]
    Get {
        /// The block's CID.
        cid: String,
        #[command(flatten)]
        repo: RepoArgs,
    },
}

/// Pins: roots whose whole DAG garbage collection keeps.
#[derive(Subcommand)]
pub enum PinCommand {
    /// Pin a root recursively (every block under it must be stored).
    #[command(after_help = "Examples:
  ipfs-accelerate ipfs pin add bafybeiczsscdsbs7ffqz55asqdf3smv6klcw3gofszvwlyarci47bgf354")]
    Add {
        /// The root CID.
        cid: String,
        #[command(flatten)]
        repo: RepoArgs,
    },
    /// Remove a pin (blocks stay until `ipfs gc`).
    #[command(after_help = "Examples:
  ipfs-accelerate ipfs pin rm bafybeiczsscdsbs7ffqz55asqdf3smv6klcw3gofszvwlyarci47bgf354")]
    Rm {
        /// The root CID.
        cid: String,
        #[command(flatten)]
        repo: RepoArgs,
    },
    /// List pinned roots.
    #[command(after_help = "Examples:
  ipfs-accelerate ipfs pin ls")]
    Ls {
        #[command(flatten)]
        repo: RepoArgs,
    },
}

/// Add a file or directory to the local block store and print its CID
/// (the same CID `ipfs add` prints for the same options).
#[derive(Args)]
#[command(after_help = "Examples:
  ipfs-accelerate ipfs add model.safetensors
  ipfs-accelerate ipfs add -r -Q ./all-MiniLM-L6-v2
  ipfs-accelerate ipfs add --cid-version 0 notes.txt      # Kubo's legacy Qm… CIDs
  ipfs-accelerate ipfs add -n --chunker size-1048576 big.bin   # hash only")]
pub struct AddArgs {
    /// File or directory to add.
    path: PathBuf,
    /// Add a directory and everything in it.
    #[arg(short, long)]
    recursive: bool,
    /// Print only CIDs, one per line.
    #[arg(short, long)]
    quiet: bool,
    /// Print only the final root CID.
    #[arg(short = 'Q', long)]
    quieter: bool,
    /// CID version. 1 is the default here (Kubo's own default is 0).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(0..=1))]
    cid_version: u8,
    /// Store file data in raw blocks [default: true with --cid-version 1, false with 0].
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    raw_leaves: Option<bool>,
    /// Chunking: size-N splits files into N-byte leaves.
    #[arg(long, default_value = "size-262144")]
    chunker: String,
    /// Include files and directories whose names start with a dot.
    #[arg(short = 'H', long)]
    hidden: bool,
    /// Only compute CIDs; store nothing.
    #[arg(short = 'n', long)]
    only_hash: bool,
    /// Block store directory [default: $IPFS_ACCELERATE_REPO or ~/.local/share/ipfs-accelerate/repo].
    #[arg(long)]
    repo: Option<PathBuf>,
}

/// Write a file's content from the local block store to stdout, checking
/// every block's hash.
#[derive(Args)]
#[command(after_help = "Examples:
  ipfs-accelerate ipfs cat bafkreieyfpmvuxeupeprndlgh5m2hrztl2gjko5l4l4olzolfpux2anyoa
  ipfs-accelerate ipfs cat /ipfs/QmTjLMez5bxVZHMS5giDPHJoSKRS7P986ff1ZN5XUcunNf > out.txt")]
pub struct CatArgs {
    /// CID of a file (optionally written /ipfs/CID).
    cid: String,
    /// Block store directory [default: $IPFS_ACCELERATE_REPO or ~/.local/share/ipfs-accelerate/repo].
    #[arg(long)]
    repo: Option<PathBuf>,
}

pub fn run(cmd: IpfsCommand) -> Result<()> {
    match cmd {
        IpfsCommand::Add(args) => add(args),
        IpfsCommand::Cat(args) => cat_cmd(args),
        IpfsCommand::Get(args) => get_cmd(args),
        IpfsCommand::Block(BlockCommand::Get { cid, repo }) => {
            let store = open_store(repo)?;
            let data = store.get(&parse_path_cid(&cid)?)?;
            std::io::stdout().lock().write_all(&data)?;
            Ok(())
        }
        IpfsCommand::Pin(PinCommand::Add { cid, repo }) => {
            let cid = parse_path_cid(&cid)?;
            open_store(repo)?.pin(&cid)?;
            println!("pinned {cid} recursively");
            Ok(())
        }
        IpfsCommand::Pin(PinCommand::Rm { cid, repo }) => {
            let cid = parse_path_cid(&cid)?;
            if !open_store(repo)?.unpin(&cid)? {
                bail!("{cid} is not pinned (see `ipfs pin ls`)");
            }
            println!("unpinned {cid}");
            Ok(())
        }
        IpfsCommand::Pin(PinCommand::Ls { repo }) => {
            let mut pins = open_store(repo)?.pins()?;
            pins.sort_by_key(|c| c.to_string());
            for cid in pins {
                println!("{cid} recursive");
            }
            Ok(())
        }
        IpfsCommand::ServeGateway(args) => serve_gateway(args),
        IpfsCommand::Gc(repo) => {
            let report = open_store(repo)?.gc()?;
            println!(
                "removed {} blocks ({} bytes), kept {} pinned blocks",
                report.removed_blocks, report.removed_bytes, report.kept_blocks
            );
            Ok(())
        }
    }
}

fn open_store(repo: RepoArgs) -> Result<FsBlockstore> {
    Ok(FsBlockstore::open(repo.dir()?)?)
}

/// Parses `CID` or `/ipfs/CID`.
fn parse_path_cid(text: &str) -> Result<Cid> {
    Ok(parse_cid(text.strip_prefix("/ipfs/").unwrap_or(text))?)
}

fn get_cmd(args: GetArgs) -> Result<()> {
    let cid = parse_path_cid(&args.cid)?;
    let repo = args.fetch.repo.dir()?;
    let store = FsBlockstore::open(&repo)?;
    crate::model_ref::ensure_stored(&cid, &store, &args.fetch, &repo)?;
    let dest = args.output.unwrap_or_else(|| PathBuf::from(cid.to_string()));
    export_to(&store, &cid, &dest)?;
    println!("Saving file(s) to {}", dest.display());
    Ok(())
}

/// The block store directory: `--repo`, else `$IPFS_ACCELERATE_REPO`, else
/// `~/.local/share/ipfs-accelerate/repo`.
pub fn repo_dir(flag: Option<PathBuf>) -> Result<PathBuf> {
    if let Some(dir) = flag.or_else(|| std::env::var_os("IPFS_ACCELERATE_REPO").map(PathBuf::from)) {
        return Ok(dir);
    }
    let home = std::env::var_os("HOME").context("cannot find the block store: set --repo or IPFS_ACCELERATE_REPO")?;
    Ok(PathBuf::from(home).join(".local/share/ipfs-accelerate/repo"))
}

fn add(args: AddArgs) -> Result<()> {
    let version = if args.cid_version == 0 { CidVersion::V0 } else { CidVersion::V1 };
    let opts = ImportOptions {
        cid_version: version,
        raw_leaves: args.raw_leaves.unwrap_or(version == CidVersion::V1),
        hidden: args.hidden,
        ..ImportOptions::default()
    }
    .with_chunker(&args.chunker)?;
    let meta = std::fs::metadata(&args.path).with_context(|| format!("cannot read {}", args.path.display()))?;
    if meta.is_dir() && !args.recursive {
        bail!("{} is a directory: add -r to add it and everything in it", args.path.display());
    }
    // Kubo prints names relative to the argument's parent: `planets/mars.txt`.
    let base = args
        .path
        .canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| args.path.display().to_string());

    let bar = bytes_bar(total_bytes(&args.path), "adding");
    let store = if args.only_hash { None } else { Some(FsBlockstore::open(repo_dir(args.repo)?)?) };
    let mut files = Vec::new();
    let mut dirs = Vec::new();
    let mut import = |blocks: Option<&mut dyn ipfs_accelerate_ipfs::BlockSink>| {
        let mut sink = ProgressSink { store: blocks, bar: bar.clone() };
        import_path_reporting(&args.path, &opts, &mut sink, &mut |rel, kind, node| {
            let name = if rel.as_os_str().is_empty() { base.clone() } else { format!("{base}/{}", rel.display()) };
            match kind {
                EntryKind::File | EntryKind::Symlink => files.push((name, node.cid)),
                EntryKind::Directory => dirs.push((name, node.cid)),
            }
        })
    };
    let root = match &store {
        Some(store) => store.write_parallel(|blocks| import(Some(blocks)))?,
        None => import(None)?,
    };
    bar.finish_and_clear();
    if let Some(store) = &store {
        // Like Kubo, adding pins the root so garbage collection keeps it.
        store.pin(&root.cid)?;
    }
    // Kubo's order: every file, then the directories, the root last.
    let mut out = std::io::stdout().lock();
    if args.quieter {
        writeln!(out, "{}", root.cid)?;
        return Ok(());
    }
    if let Some(last) = dirs.pop() {
        dirs.sort();
        dirs.push(last);
    }
    for (name, cid) in files.iter().chain(&dirs) {
        if args.quiet {
            writeln!(out, "{cid}")?;
        } else {
            writeln!(out, "added {cid} {name}")?;
        }
    }
    Ok(())
}

/// Bytes of regular files under `path` (for the progress bar only).
pub fn total_bytes(path: &Path) -> u64 {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_file() => m.len(),
        Ok(m) if m.is_dir() => {
            std::fs::read_dir(path).map(|entries| entries.flatten().map(|e| total_bytes(&e.path())).sum()).unwrap_or(0)
        }
        _ => 0,
    }
}

fn cat_cmd(args: CatArgs) -> Result<()> {
    let cid = parse_path_cid(&args.cid)?;
    let store = FsBlockstore::open(repo_dir(args.repo)?)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    cat(&store, &cid, &mut out)?;
    out.flush()?;
    Ok(())
}

fn serve_gateway(args: ServeGatewayArgs) -> Result<()> {
    let store = open_store(args.repo)?;
    // One thread for the event loop is plenty: block reads run on tokio's
    // blocking pool, and a gateway is I/O bound.
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.addr)
            .await
            .with_context(|| format!("cannot listen on {} (is the port in use? try --addr 127.0.0.1:0)", args.addr))?;
        let addr = listener.local_addr()?;
        if !addr.ip().is_loopback() {
            eprintln!("warning: serving the block store to the network on {addr}");
        }
        // The first stdout line is the bound address, so scripts using
        // port 0 can find the server.
        println!("gateway listening on http://{addr}");
        std::io::stdout().flush()?;
        let app = ipfs_accelerate_ipfs::gateway::router(std::sync::Arc::new(store));
        axum::serve(listener, app).await.context("the gateway server stopped")
    })
}
