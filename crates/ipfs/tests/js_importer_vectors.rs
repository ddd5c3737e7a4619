//! CIDs from a second, independent implementation: the JavaScript importer
//! Helia uses (npm `ipfs-unixfs-importer` 17.1.1, Node 20), configured for
//! Kubo's layout (`profile: 'unixfs-v0-2015'`, fixed-size chunker, balanced
//! layout with 174 children). These cover what Kubo's published vectors do
//! not: multi-chunk files, full and overflowing 174-link nodes, deeper trees,
//! and a nested directory. Content is `(i * 31 + 7) % 251` for byte `i`.
//!
//! The script that produced them:
//! ```js
//! for await (const e of importer([{ content }], blockstore, {
//!   profile: 'unixfs-v0-2015', cidVersion, rawLeaves,
//!   chunker: fixedSize({ chunkSize }), layout: balanced({ maxChildrenPerNode: 174 }),
//! })) last = e
//! ```

use ipfs_accelerate_ipfs::{import_file, import_path, Cid, ImportOptions, Result};

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| ((i * 31 + 7) % 251) as u8).collect()
}

fn opts(mode: &str, chunk_size: usize) -> ImportOptions {
    let base = match mode {
        "v1" => ImportOptions::default(),
        "v0" => ImportOptions::v0(),
        "v1pb" => ImportOptions { raw_leaves: false, ..ImportOptions::default() },
        _ => unreachable!(),
    };
    ImportOptions { chunk_size, ..base }
}

const C: usize = 262144;

/// (mode, length, chunk size, root CID, cumulative size of the DAG).
const FILES: &[(&str, usize, usize, &str, u64)] = &[
    ("v1", 0, C, "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku", 0),
    ("v1", 1, C, "bafkreigkgwdvr5wspzwpiutssn4xpj2i7wedshnwphhnu7ohx4pqaxxipe", 1),
    ("v1", C, C, "bafkreieiuj5mzeuqor24l4lmo2yumm6665yv4gq7ozzp2nrfmqrjyboosy", 262144),
    ("v1", C + 1, C, "bafybeich6cqd6yabw3cku6edwmz4rvwe275nx2l6ootvc2bpbt5bdvarua", 262249),
    ("v1", 174 * C, C, "bafybeiafkae3md3zfgdgpk2ztpkul5dzotu4bgbnvuinadceqrqa2rz7bi", 45621766),
    ("v1", 174 * C + 1, C, "bafybeibo5yjphmmdq6aigqtgrijost25l5lmv5l37von7hrjv7sagnx4sy", 45621926),
    ("v1", 200000, 1000, "bafybeiatukatakxn77t2n7gyyo2mpapt6pherffv5aedhq2izdxswnjrta", 209725),
    ("v1", (174 * 174 + 5) * 10, 10, "bafybeifrk5fst7twbt6eoztzwq53dc6o5qlr426ee5vuby5byidmfu54ma", 1705653),
    ("v0", 0, C, "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH", 6),
    ("v0", 1, C, "QmXC9WjuLo7EfydBdbWyvpGif62nrxbDCX2vcz9ZqLTQvV", 9),
    ("v0", C, C, "QmNjsPT1urL55WXngMVgvZrn2apSux229uFBoAgmKTtjAd", 262158),
    ("v0", C + 1, C, "QmP8yTqWQcb3qVoBcdE4pTUzxh9kazndg5ELrbXBmdj17M", 262267),
    ("v0", 174 * C, C, "QmRB34vbxhA7iAUc12cVtYAyfBoQsUR7vqUvBfNKVTcYSC", 45623854),
    ("v0", 174 * C + 1, C, "QmPq9MH6i6cgAMc9uYJe8xYeVstRr2D2mSpLVDYbYMLPta", 45624016),
    ("v0", 200000, 1000, "QmTxJKzpjkZdTQp8hAYwcmVEyyA11226od65LAHzwmUcsp", 211521),
    ("v0", (174 * 174 + 5) * 10, 10, "QmXMg6HMcHdFeLJhSz4KMsuPvdH8GDxALZKm4JL9ncTqjq", 1886985),
    ("v1pb", 0, C, "bafybeif7ztnhq65lumvvtr4ekcwd2ifwgm3awq4zfr3srh462rwyinlb4y", 6),
    ("v1pb", 1, C, "bafybeiedrodbz2jurqdnrqz6dc7w55d3f5bi7anusfiqoh7xlcxz3dihti", 9),
    ("v1pb", C, C, "bafybeiaf6ky2ynwfwnefwjerpwn5keakqydcp7bewi7ussqteepn5tasny", 262158),
    ("v1pb", C + 1, C, "bafybeicc3wze2dhix6s4s2d7tns24dkrnjbso5oxcheiobndssqv54rfga", 262271),
    ("v1pb", 174 * C, C, "bafybeicg4y3ssdxwg7ezy3ca7rg7w3pqxyaoue3nk7jli5svhhdk7itkoy", 45624202),
    ("v1pb", 174 * C + 1, C, "bafybeic7icvifsabmxkdr3k4j5d2dxkki54gffdie5se5emi36zqvxmjdi", 45624370),
    ("v1pb", 200000, 1000, "bafybeihwt2yj3iw64vamziker5domqhax2c6muawz4nxcg6njasds3liq4", 211925),
    ("v1pb", (174 * 174 + 5) * 10, 10, "bafybeie26edxraqrkkgzuozh7o7cprrdi7gehjjsdlrn7oyvjeqrdxmc5a", 1947901),
];

#[test]
fn files_match_the_js_importer() {
    let mut failures = Vec::new();
    for &(mode, len, chunk, want, want_size) in FILES {
        let data = pattern(len);
        let got =
            import_file(&data[..], &opts(mode, chunk), &mut |_: &Cid, _: &[u8]| -> Result<()> { Ok(()) }).unwrap();
        if got.cid.to_string() != want || got.tsize != want_size {
            failures.push(format!(
                "{mode} len={len} chunk={chunk}: got {} ({}), want {want} ({want_size})",
                got.cid, got.tsize
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn nested_directory_matches_the_js_importer() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    for (path, len) in [("a.txt", 10), ("sub/b.bin", 300000), ("sub/deeper/c", 0), ("z", 1), ("B", 2)] {
        let p = tree.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, pattern(len)).unwrap();
    }
    for (mode, want) in [
        ("v1", "bafybeibjsdl54rdkfeknyibxoqmnb57mzfmewinzrayn7zxzzqihvynoju"),
        ("v0", "QmTDfGNSf4hhLkmWtpnj1kZ4GA5C1fFumZk7aS4Pcy5qhA"),
        ("v1pb", "bafybeigx66lcrvowlz5gfylihsf23hrhh4hg5qfp5wo4a6xq73dr6h3yli"),
    ] {
        let got = import_path(&tree, &opts(mode, C), &mut |_: &Cid, _: &[u8]| -> Result<()> { Ok(()) }).unwrap();
        assert_eq!(got.cid.to_string(), want, "{mode}");
    }
}

/// 200-byte names, so a few more than 1,110 entries cross Kubo's 256 KiB
/// sharding threshold (name bytes + CID bytes).
fn write_big_dir(root: &std::path::Path, n: usize, with_sub: bool) {
    std::fs::create_dir_all(root).unwrap();
    for i in 0..n {
        let name = format!("{:x<200}", format!("entry-{i}-"));
        let content: Vec<u8> = (0..i % 50).map(|j| ((j * 31 + 7 + i) % 251) as u8).collect();
        std::fs::write(root.join(name), content).unwrap();
    }
    if with_sub {
        std::fs::create_dir(root.join("sub")).unwrap();
        std::fs::write(root.join("sub/inner.txt"), pattern(5)).unwrap();
    }
}

#[test]
fn large_directories_shard_exactly_like_the_js_importer() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (1110, false, "v1", "bafybeiffljofxtrft4d6hq2gd5grlex5kyau4h55unhjtt7lhtzjh42ypi", 300059),
        (1200, false, "v1", "bafybeigrsamav673cql2abfnttnhzwsc64a7gd3kmxi6bewuqizlwojq2y", 348207),
        (1200, true, "v1", "bafybeiduo2lkqulpsojqu2b5znzg4te2gvfposhkany3wmplt4kga35bry", 348318),
        (1110, false, "v0", "QmbgMT19mEVquCBRnFUzPpVFR8fz2wCLcLMuZtJp7CSxmk", 306673),
        (1200, false, "v0", "QmemjFxJqpJF2rqkPmeZABXtWXtTrvG6nBCA4NAhcNeo7S", 354857),
        (1200, true, "v0", "QmcGbuSk3Ms1RNj11Sk7QEFBgj6i4N4EcKVeoZeTbX1ChE", 354972),
    ];
    for (n, with_sub, mode, want, want_size) in cases {
        let root = dir.path().join(format!("big-{n}-{with_sub}"));
        if !root.exists() {
            write_big_dir(&root, n, with_sub);
        }
        let got = import_path(&root, &opts(mode, C), &mut |_: &Cid, _: &[u8]| -> Result<()> { Ok(()) }).unwrap();
        assert_eq!((got.cid.to_string().as_str(), got.tsize), (want, want_size), "{n} entries, sub={with_sub}, {mode}");
    }
}
