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
