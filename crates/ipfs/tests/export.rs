//! Import → export round trips, tree layout, and refusal of bad DAGs.

mod common;

use common::bytes;
use ipfs_accelerate_ipfs::block::{cid_for, CidVersion, DAG_PB, RAW};
use ipfs_accelerate_ipfs::exporter::cat_to_vec;
use ipfs_accelerate_ipfs::unixfs::UnixFsData;
use ipfs_accelerate_ipfs::{dagpb, export_to, import_file, import_path, Cid, Error, ImportOptions, MemoryStore};

fn modes() -> Vec<ImportOptions> {
    vec![
        ImportOptions::default(),
        ImportOptions::v0(),
        ImportOptions { raw_leaves: false, ..Default::default() },
        ImportOptions { raw_leaves: true, ..ImportOptions::v0() },
    ]
}

#[test]
fn round_trips_at_chunk_boundaries_in_every_mode() {
    let c = 256 * 1024;
    for opts in modes() {
        for len in [0, 1, c - 1, c, c + 1, 3 * c + 17] {
            let data = bytes(len, len as u64 + 7);
            let mut store = MemoryStore::new();
            let root = import_file(&data[..], &opts, &mut store).unwrap();
            assert_eq!(root.file_size, len as u64);
            assert_eq!(cat_to_vec(&store, &root.cid).unwrap(), data, "len {len} {opts:?}");
            let total: u64 = store.iter().map(|(_, b)| b.len() as u64).sum();
            assert_eq!(root.tsize, total, "tsize counts every block once for len {len}");
        }
    }
}

#[test]
fn deep_trees_round_trip_with_small_chunks_and_links() {
    for opts in modes() {
        let opts = ImportOptions { chunk_size: 7, max_links: 3, ..opts };
        let data = bytes(7 * 40 + 3, 99);
        let mut store = MemoryStore::new();
        let root = import_file(&data[..], &opts, &mut store).unwrap();
        assert_eq!(cat_to_vec(&store, &root.cid).unwrap(), data);
    }
}

/// Children of a file node, with their recorded blocksizes.
fn children(store: &MemoryStore, cid: &Cid) -> Vec<(Cid, u64)> {
    let block = store.iter().find(|(c, _)| *c == cid).unwrap().1;
    let (links, fs) = dagpb::decode_unixfs(cid, block).unwrap();
    links.iter().map(|l| l.cid).zip(fs.blocksizes).collect()
}

#[test]
fn balanced_layout_fills_left_subtrees_first() {
    // 10 one-byte chunks, at most 3 links: boxo's balanced layout gives a
    // depth-3 root whose first child is a full depth-2 tree (9 leaves) and
    // whose second child holds the 10th leaf one level down.
    let opts = ImportOptions { chunk_size: 1, max_links: 3, ..Default::default() };
    let mut store = MemoryStore::new();
    let data = b"0123456789";
    let root = import_file(&data[..], &opts, &mut store).unwrap();
    let top = children(&store, &root.cid);
    assert_eq!(top.iter().map(|c| c.1).collect::<Vec<_>>(), [9, 1]);
    let full = children(&store, &top[0].0);
    assert_eq!(full.iter().map(|c| c.1).collect::<Vec<_>>(), [3, 3, 3]);
    assert!(full.iter().all(|(c, _)| c.codec() == DAG_PB));
    let tail = children(&store, &top[1].0);
    assert_eq!(tail.len(), 1);
    let tail_leaf_parent = children(&store, &tail[0].0);
    assert_eq!(tail_leaf_parent, [(cid_for(CidVersion::V1, RAW, b"9"), 1)]);

    // Exactly max_links chunks stay one level deep; one more adds a level.
    let three = import_file(&b"abc"[..], &opts, &mut store).unwrap();
    assert_eq!(children(&store, &three.cid).len(), 3);
    assert!(children(&store, &three.cid).iter().all(|(c, _)| c.codec() == RAW));
    let four = import_file(&b"abcd"[..], &opts, &mut store).unwrap();
    assert_eq!(children(&store, &four.cid).iter().map(|c| c.1).collect::<Vec<_>>(), [3, 1]);
}

#[test]
fn default_layout_uses_174_links() {
    let opts = ImportOptions { chunk_size: 1, ..Default::default() };
    let mut store = MemoryStore::new();
    let one_level = import_file(&bytes(174, 1)[..], &opts, &mut store).unwrap();
    assert_eq!(children(&store, &one_level.cid).len(), 174);
    let two_levels = import_file(&bytes(175, 1)[..], &opts, &mut store).unwrap();
    assert_eq!(children(&store, &two_levels.cid).iter().map(|c| c.1).collect::<Vec<_>>(), [174, 1]);
}

#[test]
fn corrupt_and_missing_blocks_are_errors() {
    let opts = ImportOptions { chunk_size: 4, ..Default::default() };
    let mut store = MemoryStore::new();
    let root = import_file(&b"hello world!"[..], &opts, &mut store).unwrap();
    let leaf = cid_for(CidVersion::V1, RAW, b"o wo");
    let mut corrupt = store.clone();
    corrupt.insert_unchecked(leaf, b"o wX".to_vec());
    match cat_to_vec(&corrupt, &root.cid) {
        Err(Error::HashMismatch { cid }) => assert_eq!(*cid, leaf),
        other => panic!("expected hash mismatch, got {other:?}"),
    }
    let missing = MemoryStore::new();
    assert!(matches!(cat_to_vec(&missing, &root.cid), Err(Error::BlockNotFound { .. })));
}

#[test]
fn lying_size_fields_are_refused() {
    let mut store = MemoryStore::new();
    let leaf = cid_for(CidVersion::V1, RAW, b"abc");
    store.insert_unchecked(leaf, b"abc".to_vec());
    for blocksizes in [vec![4u64], vec![2], vec![3, 3]] {
        let data = UnixFsData::file(None, blocksizes.clone()).encode();
        let node = dagpb::encode(vec![dagpb::link(leaf, "", 3)], Some(data));
        let cid = cid_for(CidVersion::V1, DAG_PB, &node);
        store.insert_unchecked(cid, node);
        let err = cat_to_vec(&store, &cid).unwrap_err();
        assert!(matches!(err, Error::InconsistentFile { .. }), "{blocksizes:?}: {err}");
    }
}

#[test]
fn directories_round_trip_to_disk() {
    let src = tempfile::tempdir().unwrap();
    let files =
        [("a.txt", bytes(10, 1)), ("sub/b.bin", bytes(300_000, 2)), ("sub/deeper/c", vec![]), ("z", bytes(1, 3))];
    for (p, d) in &files {
        let p = src.path().join(p);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, d).unwrap();
    }
    std::fs::create_dir(src.path().join("empty")).unwrap();
    for opts in modes() {
        let mut store = MemoryStore::new();
        let root = import_path(src.path(), &opts, &mut store).unwrap();
        let out = tempfile::tempdir().unwrap();
        let dest = out.path().join("export");
        export_to(&store, &root.cid, &dest).unwrap();
        for (p, d) in &files {
            assert_eq!(&std::fs::read(dest.join(p)).unwrap(), d, "{p}");
        }
        assert!(dest.join("empty").is_dir());
        // Exporting again onto an existing path is refused, not merged.
        assert!(matches!(export_to(&store, &root.cid, &dest), Err(Error::Io { .. })));
        // Re-importing the export gives the same root.
        let again = import_path(&dest, &opts, &mut MemoryStore::new()).unwrap();
        assert_eq!(again.cid, root.cid);
    }
}

/// A directory node with the given entries, all pointing at one small file.
fn hostile_dir(store: &mut MemoryStore, names: &[&str]) -> Cid {
    let file = cid_for(CidVersion::V1, RAW, b"pwned");
    store.insert_unchecked(file, b"pwned".to_vec());
    let links = names.iter().map(|n| dagpb::link(file, n, 5)).collect();
    let node = dagpb::encode(links, Some(UnixFsData::directory().encode()));
    let cid = cid_for(CidVersion::V1, DAG_PB, &node);
    store.insert_unchecked(cid, node);
    cid
}

#[test]
fn escaping_entry_names_are_refused_and_nothing_is_written() {
    for bad in ["", ".", "..", "../escape", "a/b", "/abs", "..\\escape", "a\\b", "nul\0"] {
        let mut store = MemoryStore::new();
        let root = hostile_dir(&mut store, &["fine", bad]);
        let out = tempfile::tempdir().unwrap();
        let dest = out.path().join("d");
        let err = export_to(&store, &root, &dest).unwrap_err();
        assert!(matches!(err, Error::UnsafeEntryName { .. }), "{bad:?}: {err}");
        assert!(!dest.exists(), "{bad:?}: names are checked before anything is created");
        assert_eq!(std::fs::read_dir(out.path()).unwrap().count(), 0);
    }
    // A nested directory with a bad name is also refused.
    let mut store = MemoryStore::new();
    let inner = hostile_dir(&mut store, &[".."]);
    let node = dagpb::encode(vec![dagpb::link(inner, "inner", 1)], Some(UnixFsData::directory().encode()));
    let outer = cid_for(CidVersion::V1, DAG_PB, &node);
    store.insert_unchecked(outer, node);
    let out = tempfile::tempdir().unwrap();
    let err = export_to(&store, &outer, &out.path().join("d")).unwrap_err();
    assert!(matches!(err, Error::UnsafeEntryName { .. }), "{err}");
    assert!(!out.path().join("pwned").exists());
}

#[test]
fn duplicate_names_are_refused() {
    let mut store = MemoryStore::new();
    let root = hostile_dir(&mut store, &["same", "same"]);
    let out = tempfile::tempdir().unwrap();
    let err = export_to(&store, &root, &out.path().join("d")).unwrap_err();
    assert!(err.to_string().contains("twice"), "{err}");
}

#[test]
fn cat_of_a_directory_says_so() {
    let mut store = MemoryStore::new();
    let root = hostile_dir(&mut store, &["x"]);
    let err = cat_to_vec(&store, &root).unwrap_err();
    assert!(matches!(err, Error::WrongNodeType { found: "directory", .. }), "{err}");
}

#[test]
fn sharded_directories_round_trip_and_bad_shards_are_refused() {
    use ipfs_accelerate_ipfs::unixfs::NodeType;
    let src = tempfile::tempdir().unwrap();
    let root_dir = src.path().join("big");
    std::fs::create_dir_all(root_dir.join("sub")).unwrap();
    std::fs::write(root_dir.join("sub/inner"), b"inner").unwrap();
    // 1,300 entries of 200-byte names: well above Kubo's sharding threshold.
    for i in 0..1300u64 {
        std::fs::write(root_dir.join(format!("{:y<200}", i)), bytes(i as usize % 40, i)).unwrap();
    }
    let mut store = MemoryStore::new();
    let root = import_path(&root_dir, &ImportOptions::default(), &mut store).unwrap();
    let block = store.iter().find(|(c, _)| **c == root.cid).unwrap().1.clone();
    let (_, fs) = dagpb::decode_unixfs(&root.cid, &block).unwrap();
    assert_eq!(fs.node_type, NodeType::HamtShard);

    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("big");
    export_to(&store, &root.cid, &dest).unwrap();
    assert_eq!(std::fs::read_dir(&dest).unwrap().count(), 1301);
    assert_eq!(std::fs::read(dest.join(format!("{:y<200}", 7))).unwrap(), bytes(7, 7));
    assert_eq!(std::fs::read(dest.join("sub/inner")).unwrap(), b"inner");
    assert_eq!(import_path(&dest, &ImportOptions::default(), &mut MemoryStore::new()).unwrap().cid, root.cid);

    // Hand-made shards: a name without a slot prefix, an escaping name behind
    // a valid prefix, and a "sub-shard" that is really a file.
    let file = cid_for(CidVersion::V1, RAW, b"x");
    let mut hostile = MemoryStore::new();
    hostile.insert_unchecked(file, b"x".to_vec());
    let shard = |links: Vec<dagpb::PbLink>| {
        let data = UnixFsData {
            node_type: NodeType::HamtShard,
            data: Some(vec![0xff]),
            filesize: None,
            blocksizes: vec![],
            hash_type: Some(0x22),
            fanout: Some(256),
        };
        dagpb::encode(links, Some(data.encode()))
    };
    for (links, needle) in [
        (vec![dagpb::link(file, "zz-name", 1)], "slot index"),
        (vec![dagpb::link(file, "0A..", 1)], "refusing directory entry"),
        (vec![dagpb::link(file, "0A", 1)], "sub-shard"),
    ] {
        let node = shard(links);
        let cid = cid_for(CidVersion::V1, DAG_PB, &node);
        hostile.insert_unchecked(cid, node);
        let out = tempfile::tempdir().unwrap();
        let err = export_to(&hostile, &cid, &out.path().join("d")).unwrap_err();
        assert!(err.to_string().contains(needle), "{needle}: {err}");
        assert!(!out.path().join("d").exists());
    }
}

#[cfg(unix)]
#[test]
fn symlinks_import_but_are_never_exported() {
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("real"), b"data").unwrap();
    std::os::unix::fs::symlink("/etc/passwd", src.path().join("link")).unwrap();
    let mut store = MemoryStore::new();
    let root = import_path(src.path(), &ImportOptions::default(), &mut store).unwrap();
    let out = tempfile::tempdir().unwrap();
    let err = export_to(&store, &root.cid, &out.path().join("d")).unwrap_err();
    assert!(matches!(err, Error::WrongNodeType { found: "symlink", .. }), "{err}");
}
