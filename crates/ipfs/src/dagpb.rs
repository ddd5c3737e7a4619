//! dag-pb nodes via the `ipld-dagpb` crate, plus the UnixFS view of them.
//!
//! `ipld-dagpb` produces Kubo's exact bytes: Links (field 2) before Data
//! (field 1), links stably sorted by name bytes, and an empty Name written
//! as a present-but-empty field (`12 00`), which Kubo also writes for the
//! unnamed links of file nodes.

use crate::block::DAG_PB;
use crate::error::{Error, Result};
use crate::unixfs::UnixFsData;
use cid::Cid;
pub use ipld_dagpb::{PbLink, PbNode};

/// Serializes a dag-pb node (links are sorted by name as the spec requires).
pub fn encode(links: Vec<PbLink>, data: Option<Vec<u8>>) -> Vec<u8> {
    PbNode { links, data: data.map(Into::into) }.into_bytes()
}

/// A link with a name and a cumulative size, as UnixFS writes every link.
pub fn link(cid: Cid, name: &str, tsize: u64) -> PbLink {
    PbLink { cid, name: Some(name.to_string()), size: Some(tsize) }
}

/// Decodes a dag-pb block; `cid` is only used to name it in errors.
pub fn decode(cid: &Cid, bytes: &[u8]) -> Result<PbNode> {
    if cid.codec() != DAG_PB {
        return Err(Error::UnsupportedCodec { cid: Box::new(*cid), codec: cid.codec(), expected: "dag-pb (0x70)" });
    }
    PbNode::from_bytes(bytes.to_vec().into())
        .map_err(|e| Error::InvalidDagPb { cid: Box::new(*cid), reason: e.to_string() })
}

/// Decodes a dag-pb block and its UnixFS Data.
pub fn decode_unixfs(cid: &Cid, bytes: &[u8]) -> Result<(Vec<PbLink>, UnixFsData)> {
    let node = decode(cid, bytes)?;
    let data = node
        .data
        .ok_or_else(|| Error::InvalidUnixFs { cid: Box::new(*cid), reason: "dag-pb node has no Data field".into() })?;
    let fs = UnixFsData::decode(&data).map_err(|reason| Error::InvalidUnixFs { cid: Box::new(*cid), reason })?;
    Ok((node.links, fs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::{cid_for, CidVersion};

    #[test]
    fn empty_directory_bytes_and_cids_match_kubo() {
        let bytes = encode(vec![], Some(UnixFsData::directory().encode()));
        assert_eq!(bytes, [0x0a, 0x02, 0x08, 0x01]);
        assert_eq!(
            cid_for(CidVersion::V0, DAG_PB, &bytes).to_string(),
            "QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn"
        );
        assert_eq!(
            cid_for(CidVersion::V1, DAG_PB, &bytes).to_string(),
            "bafybeiczsscdsbs7ffqz55asqdf3smv6klcw3gofszvwlyarci47bgf354"
        );
    }

    #[test]
    fn links_come_first_sorted_with_empty_names_kept() {
        let a = cid_for(CidVersion::V1, crate::block::RAW, b"a");
        let b = cid_for(CidVersion::V1, crate::block::RAW, b"b");
        let bytes = encode(vec![link(a, "z", 1), link(b, "", 1)], Some(vec![0x08, 0x01]));
        let node = decode(&cid_for(CidVersion::V1, DAG_PB, &bytes), &bytes).unwrap();
        assert_eq!(node.links[0].name.as_deref(), Some(""));
        assert_eq!(node.links[1].name.as_deref(), Some("z"));
        // First byte: field 2 (Links), length-delimited.
        assert_eq!(bytes[0], 0x12);
        // The empty name is encoded as a present field of length 0.
        let link_len = bytes[1] as usize;
        let first_link = &bytes[2..2 + link_len];
        assert!(first_link.windows(2).any(|w| w == [0x12, 0x00]));
    }

    #[test]
    fn decode_rejects_wrong_codec_and_garbage() {
        let raw = cid_for(CidVersion::V1, crate::block::RAW, b"x");
        assert!(matches!(decode(&raw, b""), Err(Error::UnsupportedCodec { .. })));
        let pb = cid_for(CidVersion::V1, DAG_PB, b"\xff");
        assert!(matches!(decode(&pb, b"\xff"), Err(Error::InvalidDagPb { .. })));
        let no_data = cid_for(CidVersion::V1, DAG_PB, b"");
        assert!(matches!(decode_unixfs(&no_data, b""), Err(Error::InvalidUnixFs { .. })));
    }
}
