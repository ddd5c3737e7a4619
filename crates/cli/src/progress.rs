//! Progress bars for imports and downloads, drawn on stderr (indicatif hides
//! them when stderr is not a terminal, so scripts see clean output).

use indicatif::{ProgressBar, ProgressStyle};
use ipfs_accelerate_ipfs::gateway::GatewayStore;
use ipfs_accelerate_ipfs::{BlockSink, BlockSource, Cid, FsBlockstore};

/// A bar for `total` bytes, labelled with what is happening (`adding`).
pub fn bytes_bar(total: u64, verb: &str) -> ProgressBar {
    let bar = ProgressBar::new(total);
    let template = format!("{{spinner}} {verb} {{bytes}}/{{total_bytes}} ({{bytes_per_sec}}, {{eta}})");
    bar.set_style(ProgressStyle::with_template(&template).expect("valid progress template"));
    bar
}

/// A counter of bytes for transfers of unknown size (`fetching`).
pub fn bytes_spinner(verb: &str) -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    let template = format!("{{spinner}} {verb} {{bytes}} ({{bytes_per_sec}})");
    bar.set_style(ProgressStyle::with_template(&template).expect("valid progress template"));
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    bar
}

/// Stores imported blocks (unless hashing only) and advances a bar.
pub struct ProgressSink<'a> {
    /// Where blocks go; `None` computes CIDs only.
    pub store: Option<&'a mut dyn BlockSink>,
    /// The bar to advance by each block's size (a handle; clones share it).
    pub bar: ProgressBar,
}

impl BlockSink for ProgressSink<'_> {
    fn put_block(&mut self, cid: &Cid, data: &[u8]) -> ipfs_accelerate_ipfs::Result<()> {
        if let Some(store) = self.store.as_mut() {
            store.put_block(cid, data)?;
        }
        // Block bytes slightly exceed file bytes (node headers); clamp.
        let len = self.bar.length().unwrap_or(0);
        self.bar.set_position((self.bar.position() + data.len() as u64).min(len));
        Ok(())
    }
}

/// A block store that counts the bytes a gateway fetch stores.
#[derive(Clone)]
pub struct FetchProgress {
    /// The store blocks go to.
    pub store: FsBlockstore,
    /// Advanced by every stored block's size.
    pub bar: ProgressBar,
}

impl BlockSource for FetchProgress {
    fn get_block(&self, cid: &Cid) -> ipfs_accelerate_ipfs::Result<Vec<u8>> {
        self.store.get(cid)
    }
}

impl GatewayStore for FetchProgress {
    fn contains(&self, cid: &Cid) -> bool {
        self.store.has(cid)
    }

    fn store(&self, cid: &Cid, data: &[u8]) -> ipfs_accelerate_ipfs::Result<()> {
        self.store.put(cid, data)?;
        self.bar.inc(data.len() as u64);
        Ok(())
    }
}
