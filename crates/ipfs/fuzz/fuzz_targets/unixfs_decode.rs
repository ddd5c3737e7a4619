//! Any bytes fed to the dag-pb/UnixFS decoder, and to the exporter as a
//! block with a valid hash, end in a value or an error.
#![no_main]

use ipfs_accelerate_ipfs::block::{cid_for, CidVersion, DAG_PB};
use ipfs_accelerate_ipfs::exporter::cat_to_vec;
use ipfs_accelerate_ipfs::{dagpb, MemoryStore};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let cid = cid_for(CidVersion::V1, DAG_PB, data);
    let _ = dagpb::decode_unixfs(&cid, data);
    let mut store = MemoryStore::new();
    store.insert_unchecked(cid, data.to_vec());
    let _ = cat_to_vec(&store, &cid);
});
