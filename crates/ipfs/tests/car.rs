//! CAR v1 writing and reading, including hostile input.

use ipfs_accelerate_ipfs::block::{cid_for, CidVersion, RAW};
use ipfs_accelerate_ipfs::car::{export_car, import_car, CarReader, CarWriter, MAX_SECTION_SIZE};
use ipfs_accelerate_ipfs::exporter::cat_to_vec;
use ipfs_accelerate_ipfs::{
    export_to, import_file, import_path, varint, Error, FsBlockstore, ImportOptions, MemoryStore,
};

fn sample() -> (MemoryStore, ipfs_accelerate_ipfs::Cid, Vec<u8>) {
    let data: Vec<u8> = (0..5000u32).map(|i| (i % 253) as u8).collect();
    let mut store = MemoryStore::new();
    let opts = ImportOptions { chunk_size: 1024, ..Default::default() };
    let root = import_file(&data[..], &opts, &mut store).unwrap();
    (store, root.cid, data)
}

fn sample_car() -> Vec<u8> {
    let (store, root, _) = sample();
    export_car(&store, &root, Vec::new()).unwrap()
}

fn read_all(bytes: &[u8]) -> Result<Vec<ipfs_accelerate_ipfs::Cid>, Error> {
    let mut reader = CarReader::new(bytes)?;
    let mut cids = vec![];
    while let Some((cid, _)) = reader.next_block()? {
        cids.push(cid);
    }
    Ok(cids)
}

#[test]
fn header_is_the_spec_dag_cbor_map() {
    let root = cid_for(CidVersion::V1, RAW, b"root");
    let car = CarWriter::new(Vec::new(), &[root]).unwrap().finish().unwrap();
    let (len, n) = varint::decode(&car).unwrap();
    let header = &car[n..];
    assert_eq!(header.len() as u64, len);
    // {"roots": [tag 42(bytes 0x00 ‖ cid)], "version": 1}, keys in dag-cbor order.
    let mut want = vec![0xa2, 0x65];
    want.extend_from_slice(b"roots");
    want.extend_from_slice(&[0x81, 0xd8, 0x2a, 0x58, 37, 0x00]);
    want.extend_from_slice(&root.to_bytes());
    want.push(0x67);
    want.extend_from_slice(b"version");
    want.push(0x01);
    assert_eq!(header, &want[..]);
}

#[test]
fn export_then_import_round_trips() {
    let (_, root, data) = sample();
    let car = sample_car();
    let mut copy = MemoryStore::new();
    let roots = import_car(&car[..], &mut copy).unwrap();
    assert_eq!(roots, vec![root]);
    assert_eq!(cat_to_vec(&copy, &root).unwrap(), data);
    // The root block comes first, as streaming consumers expect.
    assert_eq!(read_all(&car).unwrap()[0], root);
}

#[test]
fn directory_car_into_disk_store_then_out_to_disk() {
    let src = tempfile::tempdir().unwrap();
    std::fs::create_dir(src.path().join("d")).unwrap();
    std::fs::write(src.path().join("d/config.json"), b"{}").unwrap();
    std::fs::write(src.path().join("weights.bin"), vec![3u8; 70_000]).unwrap();
    let mut mem = MemoryStore::new();
    let root = import_path(src.path(), &ImportOptions::default(), &mut mem).unwrap();
    let car = export_car(&mem, &root.cid, Vec::new()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let mut bs = FsBlockstore::open(tmp.path().join("store")).unwrap();
    let roots = import_car(&car[..], &mut bs).unwrap();
    bs.pin(&roots[0]).unwrap();
    let out = tmp.path().join("out");
    export_to(&bs, &roots[0], &out).unwrap();
    assert_eq!(std::fs::read(out.join("weights.bin")).unwrap(), vec![3u8; 70_000]);
    assert_eq!(std::fs::read(out.join("d/config.json")).unwrap(), b"{}");
}

#[test]
fn truncated_car_is_rejected_and_nothing_is_pinned() {
    let car = sample_car();
    let tmp = tempfile::tempdir().unwrap();
    let mut bs = FsBlockstore::open(tmp.path()).unwrap();
    let err = import_car(&car[..car.len() - 10], &mut bs).unwrap_err();
    assert!(err.to_string().contains("truncated"), "{err}");
    assert!(bs.pins().unwrap().is_empty());
    assert_eq!(bs.gc().unwrap().kept_blocks, 0);
    assert!(bs.list().unwrap().is_empty());
}

fn expect_invalid(bytes: &[u8], needle: &str) {
    match read_all(bytes) {
        Err(Error::InvalidCar { reason, .. }) => assert!(reason.contains(needle), "{reason:?} lacks {needle:?}"),
        other => panic!("expected InvalidCar containing {needle:?}, got {other:?}"),
    }
}

fn with_header(fields: &[(&str, u64)]) -> Vec<u8> {
    // A hand-built dag-cbor map of small unsigned integers.
    let mut h = vec![0xa0 | fields.len() as u8];
    for (k, v) in fields {
        h.push(0x60 | k.len() as u8);
        h.extend_from_slice(k.as_bytes());
        h.push(*v as u8);
    }
    let mut out = vec![];
    varint::encode(h.len() as u64, &mut out);
    out.extend(h);
    out
}

#[test]
fn bad_headers_are_rejected() {
    expect_invalid(b"", "empty input");
    expect_invalid(&[0x00], "header length 0");
    expect_invalid(&[0x05, 0xa2, 0x65], "truncated");
    expect_invalid(&with_header(&[("version", 2)]), "CAR v2");
    expect_invalid(&with_header(&[("version", 7)]), "version 7");
    expect_invalid(&with_header(&[("version", 1)]), "no `roots`");
    expect_invalid(&[0x03, 0x01, 0x02, 0x03], "dag-cbor");
    // A header length above the cap is refused before anything is read.
    let mut huge = vec![];
    varint::encode(1 << 40, &mut huge);
    expect_invalid(&huge, "outside");
}

#[test]
fn bad_sections_are_rejected() {
    let car = sample_car();
    let (hlen, n) = varint::decode(&car).unwrap();
    let body = n + hlen as usize;
    let header = &car[..body];

    // Oversized varint: 11 continuation bytes.
    let mut bad = header.to_vec();
    bad.extend_from_slice(&[0xff; 11]);
    expect_invalid(&bad, "longer than 64 bits");

    // Non-minimal varint.
    let mut bad = header.to_vec();
    bad.extend_from_slice(&[0x85, 0x00]);
    expect_invalid(&bad, "minimally");

    // A length that claims more than the cap: refused without allocating.
    let mut bad = header.to_vec();
    varint::encode(u64::MAX, &mut bad);
    expect_invalid(&bad, "outside");
    let mut bad = header.to_vec();
    varint::encode(MAX_SECTION_SIZE + 1, &mut bad);
    expect_invalid(&bad, "outside");

    // Zero-length section.
    let mut bad = header.to_vec();
    bad.push(0);
    expect_invalid(&bad, "outside");

    // A length that lies upward: the stream ends first.
    let (slen, sn) = varint::decode(&car[body..]).unwrap();
    let mut bad = header.to_vec();
    varint::encode(slen + 5, &mut bad);
    bad.extend_from_slice(&car[body + sn..body + sn + slen as usize]);
    expect_invalid(&bad, "truncated");

    // A length that lies downward cuts the block: the hash no longer matches
    // (or, cut inside the CID, the CID is unreadable).
    let mut bad = header.to_vec();
    varint::encode(slen - 1, &mut bad);
    bad.extend_from_slice(&car[body + sn..]);
    assert!(read_all(&bad).is_err());
    let mut bad = header.to_vec();
    varint::encode(10, &mut bad);
    bad.extend_from_slice(&car[body + sn..body + sn + 10]);
    expect_invalid(&bad, "bad CID");

    // A flipped byte in a block's data.
    let mut bad = car.clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    assert!(matches!(read_all(&bad), Err(Error::HashMismatch { .. })));
}
