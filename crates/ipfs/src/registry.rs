//! Names for models: `<repo>/registry.json`, a small JSON map from a
//! human-readable name to the root CID of a model directory.
//!
//! The file is rewritten whole on every change (temporary file, fsync,
//! rename), so a crash leaves either the old or the new registry, never a
//! torn one. Pins live in the block store; the registry only names roots.

use cid::Cid;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// File name of the registry inside the repository directory.
pub const REGISTRY_FILE: &str = "registry.json";

/// What the registry records for one name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Root CID of the model directory (or file), as text.
    pub cid: String,
    /// Bytes of the distinct blocks of the DAG under (and including) the root.
    pub size: u64,
    /// When the name was recorded, in seconds since the Unix epoch.
    pub added_at: u64,
    /// Where the model came from, when it was downloaded: such as
    /// `hf:sentence-transformers/all-MiniLM-L6-v2@main`. Lets a later
    /// `--model` with the same origin reuse the stored copy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// Errors from reading, changing or writing the registry.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The registry file could not be read or written.
    #[error("registry {path}: {source} (check that the repository directory exists and is writable)")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The registry file is not valid JSON of the expected shape.
    #[error("registry {path} is corrupt: {reason} (fix or delete the file; pinned blocks are unaffected)")]
    Corrupt {
        /// The file involved.
        path: PathBuf,
        /// What the parser reported.
        reason: String,
    },
    /// A name that cannot be recorded.
    #[error("invalid model name {name:?}: {reason}")]
    InvalidName {
        /// The rejected name.
        name: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// No entry has this name or CID.
    #[error("no model named {0:?} in the registry (see `ipfs-accelerate models ls`)")]
    NotFound(String),
}

/// Result type of this module.
pub type Result<T> = std::result::Result<T, RegistryError>;

/// Checks that `name` can be used as a model name: non-empty, at most 255
/// bytes, with no `/`, `\`, NUL or other control character, and not `.`/`..`.
pub fn validate_name(name: &str) -> Result<()> {
    let bad = |reason| Err(RegistryError::InvalidName { name: name.to_string(), reason });
    if name.is_empty() {
        return bad("it is empty");
    }
    if name.len() > 255 {
        return bad("it is longer than 255 bytes");
    }
    if name == "." || name == ".." {
        return bad("`.` and `..` are reserved");
    }
    if name.contains(['/', '\\']) {
        return bad("it contains `/` or `\\`; pick a name such as `all-MiniLM-L6-v2`");
    }
    if name.chars().any(char::is_control) {
        return bad("it contains NUL or another control character");
    }
    Ok(())
}

/// The name → entry map of one repository, loaded in memory.
#[derive(Debug)]
pub struct Registry {
    path: PathBuf,
    entries: BTreeMap<String, Entry>,
}

impl Registry {
    /// Loads `<repo>/registry.json`; a missing file is an empty registry.
    pub fn open(repo: &Path) -> Result<Self> {
        let path = repo.join(REGISTRY_FILE);
        let entries = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| RegistryError::Corrupt { path: path.clone(), reason: e.to_string() })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(source) => return Err(RegistryError::Io { path, source }),
        };
        Ok(Registry { path, entries })
    }

    /// Every entry, sorted by name.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &Entry)> {
        self.entries.iter().map(|(n, e)| (n.as_str(), e))
    }

    /// The entry called `name`.
    pub fn get(&self, name: &str) -> Option<&Entry> {
        self.entries.get(name)
    }

    /// The root CID a name stands for, if the name is recorded and its CID parses.
    pub fn resolve(&self, name: &str) -> Option<Cid> {
        self.get(name).and_then(|e| e.cid.parse().ok())
    }

    /// The root CID most recently recorded with this `source` (see [`Entry::source`]).
    pub fn find_source(&self, source: &str) -> Option<Cid> {
        self.entries
            .values()
            .filter(|e| e.source.as_deref() == Some(source))
            .max_by_key(|e| e.added_at)
            .and_then(|e| e.cid.parse().ok())
    }

    /// Records (or replaces) `name` → `cid` with the current time, and saves.
    pub fn insert(&mut self, name: &str, cid: &Cid, size: u64) -> Result<()> {
        self.insert_from(name, cid, size, None)
    }

    /// [`insert`](Self::insert), also recording where the model came from.
    pub fn insert_from(&mut self, name: &str, cid: &Cid, size: u64, source: Option<&str>) -> Result<()> {
        validate_name(name)?;
        let added_at =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let source = source.map(str::to_string);
        self.entries.insert(name.to_string(), Entry { cid: cid.to_string(), size, added_at, source });
        self.save()
    }

    /// Forgets every name that is `key` or whose CID is `key`, saves, and
    /// returns the forgotten (name, entry) pairs; none is an error.
    pub fn remove(&mut self, key: &str) -> Result<Vec<(String, Entry)>> {
        let names: Vec<String> =
            self.entries.iter().filter(|(n, e)| n.as_str() == key || e.cid == key).map(|(n, _)| n.clone()).collect();
        if names.is_empty() {
            return Err(RegistryError::NotFound(key.to_string()));
        }
        let removed = names.into_iter().map(|n| (n.clone(), self.entries.remove(&n).expect("listed"))).collect();
        self.save()?;
        Ok(removed)
    }

    /// Writes the registry atomically: a temporary file beside it, fsync,
    /// rename over the old file, fsync of the directory.
    fn save(&self) -> Result<()> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let io = |source| RegistryError::Io { path: self.path.clone(), source };
        std::fs::create_dir_all(dir).map_err(io)?;
        let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io)?;
        let json = serde_json::to_vec_pretty(&self.entries).expect("the registry serializes");
        tmp.write_all(&json).map_err(io)?;
        tmp.write_all(b"\n").map_err(io)?;
        tmp.as_file().sync_all().map_err(io)?;
        tmp.persist(&self.path).map_err(|e| io(e.error))?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }
}
