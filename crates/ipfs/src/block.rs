//! CIDs and hashing: how block bytes become a CID, and how a CID is checked.

use crate::error::{Error, Result};
use cid::Cid;
use multihash_codetable::{Code, MultihashDigest};

/// Multicodec code of raw binary blocks.
pub const RAW: u64 = 0x55;
/// Multicodec code of dag-pb blocks (UnixFS files and directories).
pub const DAG_PB: u64 = 0x70;
/// Multicodec code of dag-cbor (used by CAR headers).
pub const DAG_CBOR: u64 = 0x71;
/// Multihash code of sha2-256, the only hash `ipfs add` uses by default.
pub const SHA2_256: u64 = 0x12;

/// Which CID version to produce, as `ipfs add --cid-version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CidVersion {
    /// Base58 `Qm…` CIDs; only dag-pb with sha2-256 can be expressed.
    V0,
    /// Multibase CIDs (`bafy…` / `bafk…`).
    V1,
}

/// Computes the CID of `data` under `codec` with sha2-256.
///
/// A raw block cannot be named by a CIDv0, so it always gets a CIDv1, as Kubo
/// does when `--raw-leaves` is combined with `--cid-version 0`.
pub fn cid_for(version: CidVersion, codec: u64, data: &[u8]) -> Cid {
    let hash = Code::Sha2_256.digest(data);
    match version {
        CidVersion::V0 if codec == DAG_PB => Cid::new_v0(hash).expect("sha2-256 fits CIDv0"),
        _ => Cid::new_v1(codec, hash),
    }
}

/// Checks that `data` hashes to `cid`.
///
/// Returns [`Error::HashMismatch`] when it does not and
/// [`Error::UnsupportedHash`] when the CID's hash function is not sha2-256.
pub fn verify(cid: &Cid, data: &[u8]) -> Result<()> {
    let mh = cid.hash();
    if mh.code() != SHA2_256 {
        return Err(Error::UnsupportedHash { cid: Box::new(*cid), code: mh.code() });
    }
    let actual = Code::Sha2_256.digest(data);
    if actual.digest() == mh.digest() && mh.size() == 32 {
        Ok(())
    } else {
        Err(Error::HashMismatch { cid: Box::new(*cid) })
    }
}

/// Parses a CID string (v0 base58 or any multibase v1).
pub fn parse_cid(s: &str) -> Result<Cid> {
    let s = s.trim();
    s.parse::<Cid>().map_err(|e| Error::InvalidCid { input: s.to_string(), reason: e.to_string() })
}

/// Formats a CID as Kubo prints it: base58btc for v0, base32 lower for v1.
pub fn cid_to_string(cid: &Cid) -> String {
    // `Cid`'s Display already follows this convention; the function documents it.
    cid.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_raw_block_has_the_published_cid() {
        let cid = cid_for(CidVersion::V1, RAW, b"");
        assert_eq!(cid.to_string(), "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku");
        verify(&cid, b"").unwrap();
    }

    #[test]
    fn raw_block_never_gets_cid_v0() {
        let cid = cid_for(CidVersion::V0, RAW, b"x");
        assert_eq!(cid.version(), cid::Version::V1);
        assert_eq!(cid.codec(), RAW);
    }

    #[test]
    fn verify_rejects_other_bytes() {
        let cid = cid_for(CidVersion::V1, RAW, b"abc");
        assert!(matches!(verify(&cid, b"abd"), Err(Error::HashMismatch { .. })));
    }

    #[test]
    fn verify_rejects_unknown_hash() {
        let mh = multihash::Multihash::<64>::wrap(0x1e, &[0u8; 32]).unwrap();
        let cid = Cid::new_v1(RAW, mh);
        assert!(matches!(verify(&cid, b""), Err(Error::UnsupportedHash { code: 0x1e, .. })));
    }

    #[test]
    fn parse_cid_reports_bad_input() {
        let err = parse_cid("not-a-cid").unwrap_err();
        assert!(err.to_string().contains("not-a-cid"), "{err}");
        let cid = parse_cid(" QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn\n").unwrap();
        assert_eq!(cid.version(), cid::Version::V0);
    }
}
