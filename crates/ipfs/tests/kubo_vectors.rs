//! Published CIDs that `ipfs add` produces; each must match exactly.

use ipfs_accelerate_ipfs::{import_file, import_path, Cid, ImportOptions, Result};

fn add(data: &[u8], opts: &ImportOptions) -> String {
    let mut sink = |_: &Cid, _: &[u8]| -> Result<()> { Ok(()) };
    import_file(data, opts, &mut sink).unwrap().cid.to_string()
}

#[test]
fn hello_ipfs_probe_v1_raw_leaves() {
    assert_eq!(
        add(b"hello ipfs probe\n", &ImportOptions::default()),
        "bafkreieyfpmvuxeupeprndlgh5m2hrztl2gjko5l4l4olzolfpux2anyoa"
    );
}

#[test]
fn hello_ipfs_probe_v0() {
    assert_eq!(add(b"hello ipfs probe\n", &ImportOptions::v0()), "QmTjLMez5bxVZHMS5giDPHJoSKRS7P986ff1ZN5XUcunNf");
}

#[test]
fn empty_file_v1_raw_leaves() {
    assert_eq!(add(b"", &ImportOptions::default()), "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku");
}

#[test]
fn empty_directory_v0_and_v1() {
    let dir = tempfile::tempdir().unwrap();
    let mut sink = |_: &Cid, _: &[u8]| -> Result<()> { Ok(()) };
    let v0 = import_path(dir.path(), &ImportOptions::v0(), &mut sink).unwrap();
    assert_eq!(v0.cid.to_string(), "QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn");
    let v1 = import_path(dir.path(), &ImportOptions::default(), &mut sink).unwrap();
    assert_eq!(v1.cid.to_string(), "bafybeiczsscdsbs7ffqz55asqdf3smv6klcw3gofszvwlyarci47bgf354");
    // Hidden entries are skipped by default, so this is still the empty dir.
    std::fs::write(dir.path().join(".hidden"), b"x").unwrap();
    let again = import_path(dir.path(), &ImportOptions::default(), &mut sink).unwrap();
    assert_eq!(again.cid, v1.cid);
    let with_hidden = ImportOptions { hidden: true, ..Default::default() };
    assert_ne!(import_path(dir.path(), &with_hidden, &mut sink).unwrap().cid, v1.cid);
}

// The vectors below come from Kubo's own test suite,
// test/sharness/t0040-add-and-cat.sh (ipfs/kubo).

#[test]
fn kubo_sharness_small_files_v0() {
    let v0 = ImportOptions::v0();
    assert_eq!(add(b"Hello Worlds!\n", &v0), "QmVr26fY1tKyspEJBniVhqxQeEjhF78XerGiqWAwraVLQH");
    assert_eq!(
        add(b"Hello Worlds!\n", &v0.clone().with_chunker("size-64").unwrap()),
        "QmVr26fY1tKyspEJBniVhqxQeEjhF78XerGiqWAwraVLQH"
    );
    assert_eq!(add(b"Helloo Worlds!\n", &v0), "Qmf35k66MZNW2GijohUmXQEWKZU4cCGTCwK6idfnt152wJ");
    assert_eq!(add(b"", &v0), "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH");
    assert_eq!(add(b"IPFS\n", &v0), "QmdFyxZXsFiP4csgfM5uPu99AvFiKH62CSPDw5TP92nr7w");
    assert_eq!(add(b"Hello Venus!\n", &v0), "QmU5kp3BH3B8tnWUU2Pikdb2maksBNkb92FHRr56hyghh4");
    assert_eq!(add(b"Hello Jupiter!\n", &v0), "QmUnvPcBctVTAcJpigv6KMqDvmDewksPWrNVoy1E1WP5fh");
    assert_eq!(add(b"Hello Neptune!\nHello Pluton!", &v0), "QmZDhWpi8NvKrekaYYhxKCdNVGWsFFe1CREnAjP1QbPaB3");
}

#[test]
fn kubo_sharness_v0_dag_printed_as_base32() {
    // `ipfs add --cid-base=base32` upgrades the v0 CID to v1 in the output.
    let mut sink = |_: &Cid, _: &[u8]| -> Result<()> { Ok(()) };
    let v0 = import_file(&b"base32 test\n"[..], &ImportOptions::v0(), &mut sink).unwrap();
    let v1 = Cid::new_v1(v0.cid.codec(), *v0.cid.hash());
    assert_eq!(v1.to_string(), "bafybeibyosqxljd2eptb4ebbtvk7pb4aoxzqa6ttdsflty6rsslz5y6i34");
}

fn write_tree(root: &std::path::Path, files: &[(&str, &str)]) {
    for (path, content) in files {
        let p = root.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }
}

#[test]
fn kubo_sharness_planets_directory_in_every_mode() {
    let dir = tempfile::tempdir().unwrap();
    let planets = dir.path().join("planets");
    write_tree(&planets, &[("mars.txt", "Hello Mars!\n"), ("venus.txt", "Hello Venus!\n")]);
    let v1_pb_leaves = ImportOptions { raw_leaves: false, ..Default::default() };
    let v0_raw_leaves = ImportOptions { raw_leaves: true, ..ImportOptions::v0() };
    let cases = [
        (
            ImportOptions::v0(),
            "QmWSgS32xQEcXMeqd3YPJLrNBLSdsfYCep2U7CFkyrjXwY",
            "QmPrrHqJzto9m7SyiRzarwkqPcCSsKR2EB1AyqJfe8L8tN",
        ),
        (
            v0_raw_leaves,
            "QmfWfQfKCY5Ukv9peBbxM5vqWM9BzmqUSXvdCgjT2wsiBT",
            "bafkreibmlvvgdyihetgocpof6xk64kjjzdeq2e4c7hqs3krdheosk4tgj4",
        ),
        (
            ImportOptions::default(),
            "bafybeih7e5dmkyk25up5vxug4q3hrg2fxbzf23dfrac2fns5h7z4aa7ioi",
            "bafkreibmlvvgdyihetgocpof6xk64kjjzdeq2e4c7hqs3krdheosk4tgj4",
        ),
        (
            v1_pb_leaves,
            "bafybeif5tuep5ap2d7zyhbktucey75aoacxufgt6i3v4gebmixyipnyp7y",
            "bafybeiawta2ntdmsy24aro35w3homzl4ak7svr3si7l7gesvq4erglyye4",
        ),
    ];
    for (opts, want_dir, want_mars) in cases {
        let mut seen = Vec::new();
        let mut sink = |cid: &Cid, _: &[u8]| -> Result<()> {
            seen.push(cid.to_string());
            Ok(())
        };
        let root = import_path(&planets, &opts, &mut sink).unwrap();
        assert_eq!(root.cid.to_string(), want_dir, "{opts:?}");
        assert!(seen.contains(&want_mars.to_string()), "{opts:?}: mars.txt missing from {seen:?}");
        // Children reach the sink before their parent.
        assert_eq!(seen.last().unwrap(), want_dir);
    }
}

#[test]
fn kubo_sharness_nested_directories_v0() {
    let dir = tempfile::tempdir().unwrap();
    let moons = dir.path().join("moons");
    write_tree(
        &moons,
        &[
            ("jupiter/europa.txt", "Hello Europa!\n"),
            ("saturn/titan.txt", "Hello Titan!\n"),
            ("mercury.txt", "hey youre no moon!\n"),
        ],
    );
    let mut seen = Vec::new();
    let mut sink = |cid: &Cid, _: &[u8]| -> Result<()> {
        seen.push(cid.to_string());
        Ok(())
    };
    let root = import_path(&moons, &ImportOptions::v0(), &mut sink).unwrap();
    assert_eq!(root.cid.to_string(), "QmVKvomp91nMih5j6hYBA8KjbiaYvEetU2Q7KvtZkLe9nQ");
    for want in [
        "Qmbjg7zWdqdMaK2BucPncJQDxiALExph5k3NkQv5RHpccu",
        "QmS5mZddhFPLWFX3w6FzAy9QxyYkaxvUpsWCtZ3r7jub9J",
        "QmaMagZT4rTE7Nonw8KGSK4oe1bh533yhZrCo1HihSG8FK",
        "QmZzppb9WHn552rmRqpPfgU5FEiHH6gDwi3MrB9cTdPwdb",
        "QmUJjVtnN8YEeYcS8VmUeWffTWhnMQAkk5DzZdKnPhqUdK",
    ] {
        assert!(seen.iter().any(|s| s == want), "{want} not produced");
    }

    let other = dir.path().join("test_current_dir");
    write_tree(&other, &[("hey", "Hey\n"), ("hello/world", "World\n")]);
    let root = import_path(&other, &ImportOptions::v0(), &mut |_: &Cid, _: &[u8]| Ok(())).unwrap();
    assert_eq!(root.cid.to_string(), "QmZQWnfcqJ6hNkkPvrY9Q5X39GP3jUnUbAV4AbmbbR3Cb1");
}

#[test]
fn reporting_names_every_entry_relative_to_the_root() {
    use ipfs_accelerate_ipfs::importer::{import_path_reporting, EntryKind};
    let dir = tempfile::tempdir().unwrap();
    let moons = dir.path().join("moons");
    write_tree(&moons, &[("jupiter/europa.txt", "Hello Europa!\n"), ("mercury.txt", "hey youre no moon!\n")]);
    let mut seen = Vec::new();
    let mut report = |p: &std::path::Path, k: EntryKind, n: &ipfs_accelerate_ipfs::Imported| {
        seen.push((p.to_str().unwrap().to_string(), k, n.cid.to_string()))
    };
    import_path_reporting(&moons, &ImportOptions::v0(), &mut |_: &Cid, _: &[u8]| Ok(()), &mut report).unwrap();
    let names: Vec<&str> = seen.iter().map(|s| s.0.as_str()).collect();
    assert_eq!(names, ["jupiter/europa.txt", "jupiter", "mercury.txt", ""]);
    assert_eq!(seen[0].2, "Qmbjg7zWdqdMaK2BucPncJQDxiALExph5k3NkQv5RHpccu");
    assert_eq!(seen[0].1, EntryKind::File);
    assert_eq!(seen[1].1, EntryKind::Directory);
    assert_eq!(seen[2].2, "QmUJjVtnN8YEeYcS8VmUeWffTWhnMQAkk5DzZdKnPhqUdK");
}

// From Kubo's test/sharness/t0044-add-symlink.sh.
#[cfg(unix)]
#[test]
fn kubo_sharness_symlinks_are_stored_not_followed() {
    use std::os::unix::fs::symlink;
    let dir = tempfile::tempdir().unwrap();
    let files = dir.path().join("files");
    write_tree(&files, &[("foo/baz", "some text\n")]);
    std::fs::create_dir(files.join("bar")).unwrap();
    symlink("files/foo/baz", files.join("bar/baz")).unwrap();
    symlink("files/does/not/exist", files.join("bad")).unwrap();
    let mut sink = |_: &Cid, _: &[u8]| -> Result<()> { Ok(()) };
    let v0 = ImportOptions::v0();
    let good = import_path(&files.join("bar/baz"), &v0, &mut sink).unwrap();
    assert_eq!(good.cid.to_string(), "QmdocmZeF7qwPT9Z8SiVhMSyKA2KKoA2J7jToW6z6WBmxR");
    let bad = import_path(&files.join("bad"), &v0, &mut sink).unwrap();
    assert_eq!(bad.cid.to_string(), "QmWYN8SEXCgNT2PSjB6BnxAx6NJQtazWoBkTRH9GRfPFFQ");
    let root = import_path(&files, &v0, &mut sink).unwrap();
    assert_eq!(root.cid.to_string(), "QmWdiHKoeSW8G1u7ATCgpx4yMoUhYaJBQGkyPLkS9goYZ8");
}
