//! Settings kept beside the block store, in `<repo>/config.toml`, and the
//! `--gateway`/`--offline` options that override them.
//!
//! Today the file holds one section, `[gateways]`: the trustless gateways
//! that CIDs missing from the local store are fetched from. The default is
//! offline (no gateways); the template written on first use lists the
//! public gateways commented out, so going online is a deliberate choice.

use crate::commands::ipfs::RepoArgs;
use anyhow::{Context, Result};
use clap::Args;
use ipfs_accelerate_ipfs::gateway::{GatewayConfig, DEFAULT_TIMEOUT, PUBLIC_GATEWAYS};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// File name of the settings inside the repository directory.
pub const CONFIG_FILE: &str = "config.toml";

/// Environment variable with comma-separated gateway URLs; set but empty
/// means offline.
pub const GATEWAYS_ENV: &str = "IPFS_ACCELERATE_GATEWAYS";

/// Where to fetch content that is not in the local block store.
#[derive(Args, Clone, Default)]
pub struct FetchArgs {
    /// Trustless gateway to fetch CIDs that are not in the local store from
    /// (every block is verified); repeat for several, tried in order
    /// [default: $IPFS_ACCELERATE_GATEWAYS, else `[gateways] urls` in <repo>/config.toml, which is empty: offline].
    #[arg(long = "gateway", value_name = "URL")]
    pub gateways: Vec<String>,
    /// Use only what is stored locally: no gateway, no Hugging Face download.
    #[arg(long)]
    pub offline: bool,
    #[command(flatten)]
    pub repo: RepoArgs,
}

/// `<repo>/config.toml` as written by users.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    #[serde(default)]
    gateways: GatewaysSection,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct GatewaysSection {
    #[serde(default)]
    urls: Vec<String>,
    timeout_secs: Option<u64>,
}

/// The gateways to use: `--offline` gives none; else `--gateway` flags,
/// else `$IPFS_ACCELERATE_GATEWAYS`, else the config file (created from the
/// template when missing).
pub fn gateway_config(args: &FetchArgs, repo: &Path) -> Result<GatewayConfig> {
    let file = load(repo)?;
    let timeout = file.gateways.timeout_secs.map(Duration::from_secs).unwrap_or(DEFAULT_TIMEOUT);
    let gateways = if args.offline {
        Vec::new()
    } else if !args.gateways.is_empty() {
        args.gateways.clone()
    } else if let Some(list) = std::env::var_os(GATEWAYS_ENV) {
        let list = list.to_string_lossy().into_owned();
        list.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect()
    } else {
        file.gateways.urls
    };
    Ok(GatewayConfig { gateways, timeout })
}

/// Reads `<repo>/config.toml`, writing the commented template first when
/// the file does not exist (best effort: a read-only repo still works).
fn load(repo: &Path) -> Result<ConfigFile> {
    let path = repo.join(CONFIG_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if std::fs::create_dir_all(repo).is_ok() {
                let _ = write_template(&path);
            }
            return Ok(ConfigFile::default());
        }
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    toml::from_str(&text).map_err(|e| {
        // toml's own Display draws a multi-line snippet; keep one line.
        let line = e.span().map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
        anyhow::anyhow!(
            "{}{} is not a valid configuration: {} (fix it, or delete it to get the default template)",
            path.display(),
            line.map(|l| format!(" line {l}")).unwrap_or_default(),
            e.message().trim()
        )
    })
}

/// The default settings, with the public gateways commented out.
pub fn template() -> String {
    let public: Vec<String> = PUBLIC_GATEWAYS.iter().map(|g| format!("{g:?}")).collect();
    format!(
        "# ipfs-accelerate settings for the block store in this directory (README: Configuration).\n\
         \n\
         [gateways]\n\
         # IPFS trustless gateways, tried in order, for CIDs that are not in the\n\
         # local store. Every block they send is verified against its CID.\n\
         # Empty means offline. --gateway URL and $IPFS_ACCELERATE_GATEWAYS override this.\n\
         urls = []\n\
         # Public gateways run by the IPFS community; uncomment to use them:\n\
         # urls = [{}]\n\
         # Seconds to wait for one gateway before trying the next.\n\
         timeout_secs = {}\n",
        public.join(", "),
        DEFAULT_TIMEOUT.as_secs()
    )
}

fn write_template(path: &PathBuf) -> std::io::Result<()> {
    // create_new: never overwrite a file another process just wrote.
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).open(path)?;
    file.write_all(template().as_bytes())
}
