//! Import options mirroring `ipfs add` flags.

use crate::block::CidVersion;
use crate::error::{Error, Result};

/// Kubo's default chunk size (`size-262144`).
pub const DEFAULT_CHUNK_SIZE: usize = 256 * 1024;
/// Kubo's default maximum links per file node in the balanced layout.
pub const DEFAULT_MAX_LINKS: usize = 174;
/// The largest chunk accepted: Kubo refuses leaves above 1 MiB
/// (`BlockSizeLimit` in boxo's importer helpers).
pub const MAX_CHUNK_SIZE: usize = 1024 * 1024;

/// How to import; [`Default`] is `ipfs add --cid-version 1` (raw leaves).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportOptions {
    /// CID version of dag-pb nodes.
    pub cid_version: CidVersion,
    /// Store file chunks as raw blocks instead of UnixFS dag-pb leaves.
    pub raw_leaves: bool,
    /// Fixed chunk size in bytes.
    pub chunk_size: usize,
    /// Maximum links per file node.
    pub max_links: usize,
    /// Include entries whose names start with `.` (Kubo's `--hidden`).
    pub hidden: bool,
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions {
            cid_version: CidVersion::V1,
            raw_leaves: true,
            chunk_size: DEFAULT_CHUNK_SIZE,
            max_links: DEFAULT_MAX_LINKS,
            hidden: false,
        }
    }
}

impl ImportOptions {
    /// Kubo's legacy default: `ipfs add` with CIDv0 and dag-pb leaves.
    pub fn v0() -> Self {
        ImportOptions { cid_version: CidVersion::V0, raw_leaves: false, ..Self::default() }
    }

    /// Sets the chunker from Kubo's syntax, `size-N` (only fixed-size
    /// chunking is supported).
    pub fn with_chunker(mut self, spec: &str) -> Result<Self> {
        self.chunk_size = parse_chunker(spec)?;
        Ok(self)
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if self.chunk_size == 0 || self.chunk_size > MAX_CHUNK_SIZE {
            return Err(Error::InvalidOption(format!(
                "chunk size {} must be between 1 and {MAX_CHUNK_SIZE} bytes",
                self.chunk_size
            )));
        }
        if self.max_links < 2 {
            return Err(Error::InvalidOption(format!("max links per node {} must be at least 2", self.max_links)));
        }
        Ok(())
    }
}

/// Parses `size-N` into N.
pub fn parse_chunker(spec: &str) -> Result<usize> {
    let bad = |why: &str| {
        Error::InvalidOption(format!(
            "chunker {spec:?}: {why} (use size-N with 1 <= N <= {MAX_CHUNK_SIZE}, e.g. size-262144)"
        ))
    };
    let n = spec.strip_prefix("size-").ok_or_else(|| bad("only fixed-size chunking is supported"))?;
    let n: usize = n.parse().map_err(|_| bad("N is not a number"))?;
    if n == 0 || n > MAX_CHUNK_SIZE {
        return Err(bad("N is out of range"));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_size_chunker() {
        assert_eq!(parse_chunker("size-262144").unwrap(), 262144);
        assert_eq!(parse_chunker("size-1").unwrap(), 1);
        for bad in ["rabin", "size-", "size-0", "size-x", "size-1048577", "262144"] {
            let err = parse_chunker(bad).unwrap_err().to_string();
            assert!(err.contains("size-N"), "{bad}: {err}");
        }
    }

    #[test]
    fn validate_rejects_degenerate_layouts() {
        let o = ImportOptions { max_links: 1, ..Default::default() };
        assert!(o.validate().is_err());
        assert!(ImportOptions::default().validate().is_ok());
    }
}
