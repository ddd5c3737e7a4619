//! `ipfs-accelerate ipfs add|cat` end to end: output identical to Kubo's for
//! the vectors in Kubo's own tests, round trips, and one clear error line for
//! bad input.

mod support;

use support::{assert_clear_error, run, stdout};

#[test]
fn add_prints_kubo_cids_and_cat_returns_the_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let file = tmp.path().join("probe.txt");
    std::fs::write(&file, "hello ipfs probe\n").unwrap();
    let f = file.to_str().unwrap();
    assert_eq!(
        stdout(&run(&repo, &["ipfs", "add", f])),
        "added bafkreieyfpmvuxeupeprndlgh5m2hrztl2gjko5l4l4olzolfpux2anyoa probe.txt\n"
    );
    assert_eq!(
        stdout(&run(&repo, &["ipfs", "add", "-Q", "--cid-version", "0", f])),
        "QmTjLMez5bxVZHMS5giDPHJoSKRS7P986ff1ZN5XUcunNf\n"
    );
    for cid in [
        "bafkreieyfpmvuxeupeprndlgh5m2hrztl2gjko5l4l4olzolfpux2anyoa",
        "/ipfs/QmTjLMez5bxVZHMS5giDPHJoSKRS7P986ff1ZN5XUcunNf",
    ] {
        assert_eq!(stdout(&run(&repo, &["ipfs", "cat", cid])), "hello ipfs probe\n");
    }
}

#[test]
fn recursive_add_matches_kubo_sharness_output() {
    // Expected lines from Kubo's test/sharness/t0040-add-and-cat.sh.
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let planets = tmp.path().join("planets");
    std::fs::create_dir(&planets).unwrap();
    std::fs::write(planets.join("mars.txt"), "Hello Mars!\n").unwrap();
    std::fs::write(planets.join("venus.txt"), "Hello Venus!\n").unwrap();
    let p = planets.to_str().unwrap();
    assert_eq!(
        stdout(&run(&repo, &["ipfs", "add", "-r", "--cid-version", "0", p])),
        "added QmPrrHqJzto9m7SyiRzarwkqPcCSsKR2EB1AyqJfe8L8tN planets/mars.txt\n\
         added QmU5kp3BH3B8tnWUU2Pikdb2maksBNkb92FHRr56hyghh4 planets/venus.txt\n\
         added QmWSgS32xQEcXMeqd3YPJLrNBLSdsfYCep2U7CFkyrjXwY planets\n"
    );
    assert_eq!(
        stdout(&run(&repo, &["ipfs", "add", "-r", "-Q", "--cid-version=0", "--raw-leaves", p])),
        "QmfWfQfKCY5Ukv9peBbxM5vqWM9BzmqUSXvdCgjT2wsiBT\n"
    );
    assert_eq!(
        stdout(&run(&repo, &["ipfs", "add", "-r", "-Q", "--raw-leaves=false", p])),
        "bafybeif5tuep5ap2d7zyhbktucey75aoacxufgt6i3v4gebmixyipnyp7y\n"
    );
    assert_eq!(
        stdout(&run(&repo, &["ipfs", "add", "-r", "-q", p])),
        "bafkreibmlvvgdyihetgocpof6xk64kjjzdeq2e4c7hqs3krdheosk4tgj4\n\
         bafkreihfsphazrk2ilejpekyltjeh5k4yvwgjuwg26ueafohqioeo3sdca\n\
         bafybeih7e5dmkyk25up5vxug4q3hrg2fxbzf23dfrac2fns5h7z4aa7ioi\n"
    );
    assert_eq!(
        stdout(&run(&repo, &["ipfs", "cat", "QmPrrHqJzto9m7SyiRzarwkqPcCSsKR2EB1AyqJfe8L8tN"])),
        "Hello Mars!\n"
    );
}

#[test]
fn only_hash_stores_nothing_and_large_files_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let file = tmp.path().join("big.bin");
    let data: Vec<u8> = (0..1_000_000u32).map(|i| (i.wrapping_mul(2654435761) >> 24) as u8).collect();
    std::fs::write(&file, &data).unwrap();
    let f = file.to_str().unwrap();
    let cid = stdout(&run(&repo, &["ipfs", "add", "-Q", "-n", f])).trim().to_string();
    assert!(!repo.exists(), "--only-hash must not create the store");
    assert_clear_error(&run(&repo, &["ipfs", "cat", &cid]), "not found");
    let stored = stdout(&run(&repo, &["ipfs", "add", "-Q", f])).trim().to_string();
    assert_eq!(stored, cid);
    let out = run(&repo, &["ipfs", "cat", &cid]);
    assert!(out.status.success());
    assert_eq!(out.stdout, data);
    let small_chunks = stdout(&run(&repo, &["ipfs", "add", "-Q", "--chunker", "size-1000", f])).trim().to_string();
    assert_ne!(small_chunks, cid);
    assert_eq!(run(&repo, &["ipfs", "cat", &small_chunks]).stdout, data);
}

#[test]
fn bad_input_gives_one_clear_error_line() {
    let tmp = tempfile::tempdir().unwrap();
    // The store lives outside the directory that is added below.
    let repo_dir = tempfile::tempdir().unwrap();
    let repo = repo_dir.path().join("repo");
    let dir = tmp.path().to_str().unwrap();
    assert_clear_error(&run(&repo, &["ipfs", "add", dir]), "add -r");
    assert_clear_error(&run(&repo, &["ipfs", "add", "/nonexistent/file"]), "/nonexistent/file");
    std::fs::write(tmp.path().join("f"), "x").unwrap();
    let f = tmp.path().join("f");
    let f = f.to_str().unwrap();
    assert_clear_error(&run(&repo, &["ipfs", "add", "--chunker", "rabin", f]), "size-N");
    assert_clear_error(&run(&repo, &["ipfs", "add", "--chunker", "size-0", f]), "size-N");
    assert_clear_error(&run(&repo, &["ipfs", "cat", "not-a-cid"]), "invalid CID");
    let out = run(&repo, &["ipfs", "add", "-Q", "-r", dir]);
    let root = stdout(&out);
    assert_clear_error(&run(&repo, &["ipfs", "cat", root.trim()]), "directory");
}

#[test]
fn get_block_pin_and_gc_manage_the_store() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let planets = tmp.path().join("planets");
    std::fs::create_dir(&planets).unwrap();
    std::fs::write(planets.join("mars.txt"), "Hello Mars!\n").unwrap();
    let other = tmp.path().join("other.txt");
    std::fs::write(&other, "temporary\n").unwrap();
    let dir_cid = stdout(&run(&repo, &["ipfs", "add", "-r", "-Q", planets.to_str().unwrap()])).trim().to_string();
    let other_cid = stdout(&run(&repo, &["ipfs", "add", "-Q", other.to_str().unwrap()])).trim().to_string();

    // get writes the tree; a second get onto the same path is refused.
    let out = tmp.path().join("out");
    let o = out.to_str().unwrap();
    stdout(&run(&repo, &["ipfs", "get", &dir_cid, "-o", o]));
    assert_eq!(std::fs::read_to_string(out.join("mars.txt")).unwrap(), "Hello Mars!\n");
    assert_clear_error(&run(&repo, &["ipfs", "get", &dir_cid, "-o", o]), "out");

    // block get returns the raw block (here a raw leaf: the file bytes).
    assert_eq!(stdout(&run(&repo, &["ipfs", "block", "get", &other_cid])), "temporary\n");

    // add pins; pin ls lists; pin rm + gc removes; the other root survives.
    let ls = stdout(&run(&repo, &["ipfs", "pin", "ls"]));
    assert!(ls.contains(&format!("{dir_cid} recursive")) && ls.contains(&format!("{other_cid} recursive")), "{ls}");
    assert_eq!(stdout(&run(&repo, &["ipfs", "pin", "rm", &other_cid])), format!("unpinned {other_cid}\n"));
    assert_clear_error(&run(&repo, &["ipfs", "pin", "rm", &other_cid]), "not pinned");
    let gc = stdout(&run(&repo, &["ipfs", "gc"]));
    assert!(gc.starts_with("removed 1 blocks"), "{gc}");
    assert_clear_error(&run(&repo, &["ipfs", "cat", &other_cid]), "not found");
    let mars = "bafkreibmlvvgdyihetgocpof6xk64kjjzdeq2e4c7hqs3krdheosk4tgj4";
    assert_eq!(stdout(&run(&repo, &["ipfs", "cat", mars])), "Hello Mars!\n");
    // Pinning a root whose blocks are gone is refused.
    assert_clear_error(&run(&repo, &["ipfs", "pin", "add", &other_cid]), "not found");
    assert_eq!(stdout(&run(&repo, &["ipfs", "pin", "add", &dir_cid])), format!("pinned {dir_cid} recursively\n"));
}
