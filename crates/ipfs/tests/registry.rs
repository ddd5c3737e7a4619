//! The model registry: names round-trip through `registry.json`, bad names
//! and corrupt files give clear errors, and removal works by name or CID.

use ipfs_accelerate_ipfs::registry::{validate_name, Registry, RegistryError};
use ipfs_accelerate_ipfs::Cid;

const CID: &str = "bafkreieyfpmvuxeupeprndlgh5m2hrztl2gjko5l4l4olzolfpux2anyoa";

#[test]
fn names_persist_and_are_removed_by_name_or_cid() {
    let tmp = tempfile::tempdir().unwrap();
    let cid: Cid = CID.parse().unwrap();
    let mut reg = Registry::open(tmp.path()).unwrap();
    assert_eq!(reg.entries().count(), 0);
    reg.insert("mini", &cid, 42).unwrap();
    reg.insert("other", &cid, 42).unwrap();

    let reg = Registry::open(tmp.path()).unwrap();
    assert_eq!(reg.resolve("mini"), Some(cid));
    assert_eq!(reg.get("mini").unwrap().size, 42);
    assert!(reg.get("mini").unwrap().added_at > 0);
    assert_eq!(reg.entries().map(|(n, _)| n).collect::<Vec<_>>(), ["mini", "other"]);

    let mut reg = Registry::open(tmp.path()).unwrap();
    assert_eq!(reg.remove("mini").unwrap().len(), 1);
    assert_eq!(reg.remove(CID).unwrap()[0].0, "other");
    assert!(matches!(reg.remove("mini"), Err(RegistryError::NotFound(_))));
    assert_eq!(Registry::open(tmp.path()).unwrap().entries().count(), 0);
    // Only the registry itself is left: no temporary files.
    let files: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(files, ["registry.json"]);
}

#[test]
fn bad_names_are_refused_with_the_reason() {
    for bad in ["", "a/b", "a\\b", "a\0b", ".", "..", "tab\there"] {
        let err = validate_name(bad).unwrap_err().to_string();
        assert!(err.starts_with("invalid model name"), "{bad:?}: {err}");
    }
    for good in ["all-MiniLM-L6-v2", "my model", CID, "v1.2"] {
        validate_name(good).unwrap();
    }
}

#[test]
fn a_corrupt_registry_says_what_to_do() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("registry.json"), "{not json").unwrap();
    let err = Registry::open(tmp.path()).unwrap_err().to_string();
    assert!(err.contains("corrupt") && err.contains("delete"), "{err}");
}
