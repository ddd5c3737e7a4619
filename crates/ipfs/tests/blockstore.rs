//! The on-disk blockstore: verification, corruption, concurrency, pins, GC.

use ipfs_accelerate_ipfs::block::{cid_for, CidVersion, DAG_PB, RAW};
use ipfs_accelerate_ipfs::exporter::cat_to_vec;
use ipfs_accelerate_ipfs::{import_file, Error, FsBlockstore, ImportOptions};
use std::path::Path;

fn store() -> (tempfile::TempDir, FsBlockstore) {
    let dir = tempfile::tempdir().unwrap();
    let bs = FsBlockstore::open(dir.path().join("store")).unwrap();
    (dir, bs)
}

fn all_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![];
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(all_files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn put_get_round_trip_and_v0_v1_share_a_file() {
    let (_d, bs) = store();
    let data = b"some node bytes".to_vec();
    let v0 = cid_for(CidVersion::V0, DAG_PB, &data);
    let v1 = cid_for(CidVersion::V1, DAG_PB, &data);
    bs.put(&v0, &data).unwrap();
    assert!(bs.has(&v1));
    assert_eq!(bs.get(&v1).unwrap(), data);
    assert_eq!(bs.get(&v0).unwrap(), data);
    bs.put(&v1, &data).unwrap();
    assert_eq!(bs.list().unwrap(), vec![v1]);
    let files = all_files(&bs.root().join("blocks"));
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].file_name().unwrap().to_str().unwrap(), v1.to_string());
    assert!(files[0].parent().unwrap().ends_with(&v1.to_string()[v1.to_string().len() - 2..]));
}

#[test]
fn wrong_bytes_are_never_stored() {
    let (_d, bs) = store();
    let cid = cid_for(CidVersion::V1, RAW, b"right");
    assert!(matches!(bs.put(&cid, b"wrong"), Err(Error::HashMismatch { .. })));
    assert!(!bs.has(&cid));
    assert!(all_files(&bs.root().join("blocks")).is_empty());
}

#[test]
fn corrupt_file_is_reported_naming_the_cid() {
    let (_d, bs) = store();
    let cid = cid_for(CidVersion::V1, RAW, b"precious");
    bs.put(&cid, b"precious").unwrap();
    let path = all_files(&bs.root().join("blocks")).pop().unwrap();
    std::fs::write(&path, b"precioux").unwrap();
    let err = bs.get(&cid).unwrap_err();
    assert!(matches!(&err, Error::CorruptBlock { cid: c, .. } if **c == cid), "{err}");
    assert!(err.to_string().contains(&cid.to_string()), "{err}");
    // Storing the right bytes again repairs it.
    bs.put(&cid, b"precious").unwrap();
    assert_eq!(bs.get(&cid).unwrap(), b"precious");
    let missing = cid_for(CidVersion::V1, RAW, b"absent");
    assert!(matches!(bs.get(&missing), Err(Error::BlockNotFound { .. })));
}

#[test]
fn concurrent_writers_of_the_same_blocks_all_succeed() {
    let (_d, bs) = store();
    let blocks: Vec<Vec<u8>> = (0..20u8).map(|i| vec![i; 1000 + i as usize]).collect();
    std::thread::scope(|s| {
        for t in 0..8 {
            // Separate handles, as separate processes would have.
            let bs = FsBlockstore::open(bs.root()).unwrap();
            let blocks = &blocks;
            s.spawn(move || {
                for round in 0..10 {
                    for (i, b) in blocks.iter().enumerate() {
                        if (i + t + round) % 3 == 0 {
                            bs.put(&cid_for(CidVersion::V1, RAW, b), b).unwrap();
                        }
                    }
                }
            });
        }
    });
    for b in &blocks {
        assert_eq!(&bs.get(&cid_for(CidVersion::V1, RAW, b)).unwrap(), b);
    }
    // No temporary files are left behind.
    let files = all_files(&bs.root().join("blocks"));
    assert_eq!(files.len(), blocks.len(), "{files:?}");
}

#[test]
fn stray_temp_files_are_not_listed_and_old_ones_are_collected() {
    let (_d, bs) = store();
    let cid = cid_for(CidVersion::V1, RAW, b"x");
    bs.put(&cid, b"x").unwrap();
    let shard = all_files(&bs.root().join("blocks"))[0].parent().unwrap().to_path_buf();
    std::fs::write(shard.join(".tmp-crashed"), b"half").unwrap();
    std::fs::write(shard.join(".tmp-in-progress"), b"half").unwrap();
    assert_eq!(bs.list().unwrap(), vec![cid]);
    // GC removes only the old one: a young temp file may be a live write.
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(2 * 3600);
    std::fs::File::options().write(true).open(shard.join(".tmp-crashed")).unwrap().set_modified(old).unwrap();
    let report = bs.gc().unwrap();
    assert_eq!(report.removed_temp_files, 1);
    assert!(!shard.join(".tmp-crashed").exists());
    assert!(shard.join(".tmp-in-progress").exists());
}

#[test]
fn import_into_store_then_cat() {
    let (_d, mut bs) = store();
    let data: Vec<u8> = (0..600_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let root = import_file(&data[..], &ImportOptions::default(), &mut bs).unwrap();
    assert_eq!(cat_to_vec(&bs, &root.cid).unwrap(), data);
}

#[test]
fn pins_protect_whole_dags_from_gc() {
    let (_d, mut bs) = store();
    let opts = ImportOptions { chunk_size: 1000, ..Default::default() };
    let kept: Vec<u8> = (0..5000u32).map(|i| i as u8).collect();
    let dropped: Vec<u8> = (0..5000u32).map(|i| (i / 3) as u8).collect();
    let keep_root = import_file(&kept[..], &opts, &mut bs).unwrap();
    let drop_root = import_file(&dropped[..], &opts, &mut bs).unwrap();
    bs.pin(&keep_root.cid).unwrap();
    bs.pin(&drop_root.cid).unwrap();
    assert!(bs.is_pinned(&drop_root.cid));
    assert!(bs.unpin(&drop_root.cid).unwrap());
    assert!(!bs.unpin(&drop_root.cid).unwrap());
    assert_eq!(bs.pins().unwrap(), vec![keep_root.cid]);

    let report = bs.gc().unwrap();
    assert_eq!(report.kept_blocks, 6, "root + 5 leaves");
    assert_eq!(report.removed_blocks, 6);
    assert_eq!(cat_to_vec(&bs, &keep_root.cid).unwrap(), kept);
    assert!(!bs.has(&drop_root.cid));
    assert_eq!(bs.gc().unwrap().removed_blocks, 0);
}

#[test]
fn pin_needs_the_complete_dag_and_gc_refuses_broken_pins() {
    let (_d, mut bs) = store();
    let opts = ImportOptions { chunk_size: 10, ..Default::default() };
    let root = import_file(&[7u8; 35][..], &opts, &mut bs).unwrap();
    let spare = cid_for(CidVersion::V1, RAW, b"unpinned");
    bs.put(&spare, b"unpinned").unwrap();
    bs.pin(&root.cid).unwrap();
    // Remove a leaf under the pin: GC must delete nothing at all.
    let leaf = cid_for(CidVersion::V1, RAW, &[7u8; 5]);
    assert!(bs.delete(&leaf).unwrap());
    assert!(matches!(bs.gc(), Err(Error::BlockNotFound { .. })));
    assert!(bs.has(&spare));
    // And a new pin over an incomplete DAG is refused.
    bs.unpin(&root.cid).unwrap();
    assert!(matches!(bs.pin(&root.cid), Err(Error::BlockNotFound { .. })));
    assert!(!bs.is_pinned(&root.cid));
}

#[test]
fn gc_waits_for_a_writer_that_has_not_pinned_yet() {
    let (_d, writer) = store();
    // A second handle on the same directory stands for another process: its
    // lock file descriptor is separate, so the locks conflict as they would.
    let collector = FsBlockstore::open(writer.root()).unwrap();
    let cid = cid_for(CidVersion::V1, RAW, b"written, not pinned yet");
    writer.put(&cid, b"written, not pinned yet").unwrap();
    let busy = collector.gc_waiting(std::time::Duration::from_millis(200));
    assert!(matches!(busy, Err(Error::StoreBusy { .. })), "{busy:?}");
    assert!(busy.unwrap_err().to_string().contains("try again"));
    assert!(writer.has(&cid), "gc deleted a block of an unfinished import");
    // Once the writer is gone (its import finished without a pin), gc runs.
    drop(writer);
    assert_eq!(collector.gc().unwrap().removed_blocks, 1);
    assert!(!collector.has(&cid));
}

#[test]
fn gc_on_the_writing_handle_itself_does_not_deadlock() {
    let (_d, bs) = store();
    let cid = cid_for(CidVersion::V1, RAW, b"mine");
    bs.put(&cid, b"mine").unwrap();
    assert_eq!(bs.gc_waiting(std::time::Duration::from_secs(5)).unwrap().removed_blocks, 1);
    // And it can write again afterwards.
    bs.put(&cid, b"mine").unwrap();
    assert!(bs.has(&cid));
}

#[test]
fn parallel_writes_store_every_block_of_an_import() {
    let (_d, bs) = store();
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 13 % 251) as u8).collect();
    let expected =
        import_file(&data[..], &ImportOptions::default(), &mut ipfs_accelerate_ipfs::MemoryStore::new()).unwrap();
    let root = bs.write_parallel(|sink| import_file(&data[..], &ImportOptions::default(), sink)).unwrap();
    assert_eq!(root.cid, expected.cid);
    // Every block is durable once write_parallel returns: the pin walks the DAG.
    bs.pin(&root.cid).unwrap();
    assert_eq!(cat_to_vec(&bs, &root.cid).unwrap(), data);
}
