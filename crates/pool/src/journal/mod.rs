//! The pool's journal: one SQLite file (through `rusqlite`, SQLite compiled
//! in) holding the workers, the model placements, every request accepted and
//! completed, and one row per inference — what `ipfs-accelerate stats`
//! summarizes and what a consistency check reads after a chaos test.
//!
//! # Location
//!
//! [`default_path`]: `$IPFS_ACCELERATE_DATA_DIR/journal.sqlite3`, else
//! `~/.local/share/ipfs-accelerate/journal.sqlite3`.
//!
//! # Safety of the file
//!
//! [`Journal::open`] creates the schema in a new or empty file and marks it
//! with [`APPLICATION_ID`] and [`SCHEMA_VERSION`] (`PRAGMA application_id`,
//! `PRAGMA user_version`). An existing file is only read until it is known to
//! be a journal: a file that is not SQLite, a SQLite file of another
//! application, or a journal written by a newer schema is refused with an
//! error naming the path and what to do, and is never modified.
//!
//! # Concurrency
//!
//! The file is in WAL mode with a busy timeout ([`BUSY_TIMEOUT`]), so several
//! processes (and several [`Journal`] handles) can write at once; each write
//! method is one `BEGIN IMMEDIATE` transaction. `synchronous = NORMAL`: a
//! killed process loses nothing committed; a power cut may lose the last
//! commits but never corrupts the file. A `Journal` is `Send + Sync`.
//!
//! # Times
//!
//! Every timestamp is milliseconds since the Unix epoch (UTC), stamped by the
//! journal when the method runs.
//!
//! # Percentiles
//!
//! [`Journal::stats`] uses the nearest-rank definition: the p-th percentile of
//! n sorted latencies is the value at rank ⌈p·n/100⌉ (1-based), so it is
//! always a measured latency; for the latencies 1, 2, …, 100 the p50 is 50 and
//! the p99 is 99. Percentiles, the mean and the throughput are over successful
//! inferences only; `errors` counts the others.
//!
//! ```no_run
//! use ipfs_accelerate_pool::journal::{InferenceRecord, Journal, Outcome, StatsFilter};
//! # fn main() -> Result<(), ipfs_accelerate_pool::journal::JournalError> {
//! let journal = Journal::open(ipfs_accelerate_pool::journal::default_path()?)?;
//! let request = journal.accept_request("all-MiniLM-L6-v2")?;
//! journal.record_inference(&InferenceRecord {
//!     request_id: Some(request),
//!     latency_ms: 12.5,
//!     items: 32,
//!     ..InferenceRecord::new("all-MiniLM-L6-v2", "cpu")
//! })?;
//! journal.complete_request(request, Outcome::Ok, None)?;
//! for row in journal.stats(&StatsFilter::default())? {
//!     println!("{} {} {} p50 {:?} ms", row.model, row.backend, row.count, row.p50_ms);
//! }
//! # Ok(()) }
//! ```

mod latency;
mod timeline;
pub use latency::LatencyRow;
pub use timeline::TimelinePoint;

use rusqlite::{params, Connection, ErrorCode, OptionalExtension, TransactionBehavior};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `PRAGMA application_id` of a journal: the bytes "IPAC".
pub const APPLICATION_ID: i32 = 0x4950_4143;

/// `PRAGMA user_version` of the schema this build writes and reads.
pub const SCHEMA_VERSION: i32 = 2;

/// How long a write waits for another process's transaction before failing.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The journal's file name inside the data directory.
pub const FILE_NAME: &str = "journal.sqlite3";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS workers (
    id            TEXT PRIMARY KEY,
    kind          TEXT NOT NULL,
    browser       TEXT,
    capabilities  TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(capabilities)),
    registered_at INTEGER NOT NULL,
    last_seen_at  INTEGER NOT NULL,
    state         TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS placements (
    id          INTEGER PRIMARY KEY,
    worker_id   TEXT NOT NULL REFERENCES workers(id),
    model       TEXT NOT NULL,
    cid         TEXT,
    loaded_at   INTEGER NOT NULL,
    unloaded_at INTEGER
);
CREATE UNIQUE INDEX IF NOT EXISTS placements_live
    ON placements(worker_id, model) WHERE unloaded_at IS NULL;
CREATE TABLE IF NOT EXISTS requests (
    id           INTEGER PRIMARY KEY,
    model        TEXT NOT NULL,
    accepted_at  INTEGER NOT NULL,
    completed_at INTEGER,
    status       TEXT CHECK (status IN ('ok', 'error', 'busy')),
    error        TEXT,
    CHECK ((completed_at IS NULL) = (status IS NULL))
);
CREATE INDEX IF NOT EXISTS requests_pending ON requests(id) WHERE completed_at IS NULL;
CREATE TABLE IF NOT EXISTS inferences (
    id         INTEGER PRIMARY KEY,
    request_id INTEGER REFERENCES requests(id),
    model      TEXT NOT NULL,
    cid        TEXT,
    worker_id  TEXT REFERENCES workers(id),
    backend    TEXT NOT NULL,
    browser    TEXT,
    precision  TEXT NOT NULL,
    latency_ms REAL NOT NULL,
    items      INTEGER NOT NULL,
    tokens     INTEGER,
    status     TEXT NOT NULL CHECK (status IN ('ok', 'error', 'busy')),
    error      TEXT,
    at         INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS inferences_model_backend ON inferences(model, backend);
CREATE INDEX IF NOT EXISTS inferences_backend ON inferences(backend);
CREATE INDEX IF NOT EXISTS inferences_at ON inferences(at);
CREATE INDEX IF NOT EXISTS inferences_request ON inferences(request_id);
CREATE TABLE IF NOT EXISTS latency (
    model       TEXT NOT NULL,
    worker_kind TEXT NOT NULL,
    browser     TEXT NOT NULL DEFAULT '',
    ms          REAL NOT NULL,
    samples     INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (model, worker_kind, browser)
);
";

/// What can go wrong with the journal. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// Neither `IPFS_ACCELERATE_DATA_DIR` nor `HOME` is set.
    #[error("cannot find a data directory for the journal: set IPFS_ACCELERATE_DATA_DIR or pass --journal")]
    NoDataDir,
    /// The directory that should hold the journal cannot be created.
    #[error("cannot create the journal directory {}: {source}", path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file exists but is not a SQLite database (or its header is corrupt).
    #[error(
        "{} is not a SQLite database (corrupt, or some other file); move it aside or pass another \
         --journal path: it is never overwritten",
        path.display()
    )]
    NotADatabase {
        /// The file.
        path: PathBuf,
    },
    /// The file is a SQLite database of some other application.
    #[error(
        "{} is a SQLite database but not an ipfs-accelerate journal ({reason}); move it aside or \
         pass another --journal path: it is never overwritten",
        path.display()
    )]
    Foreign {
        /// The file.
        path: PathBuf,
        /// What gave it away.
        reason: String,
    },
    /// The journal was written by a newer ipfs-accelerate.
    #[error(
        "{} is a journal of schema version {found}, newer than this ipfs-accelerate reads \
         ({supported}); upgrade ipfs-accelerate, or move the file aside: it is never overwritten",
        path.display()
    )]
    NewerSchema {
        /// The file.
        path: PathBuf,
        /// Its `user_version`.
        found: i32,
        /// [`SCHEMA_VERSION`].
        supported: i32,
    },
    /// No worker with this id was registered.
    #[error("journal {}: no worker {id:?} is registered", path.display())]
    UnknownWorker {
        /// The file.
        path: PathBuf,
        /// The worker id.
        id: String,
    },
    /// No request with this id was accepted.
    #[error("journal {}: no request {id} was accepted", path.display())]
    UnknownRequest {
        /// The file.
        path: PathBuf,
        /// The request id.
        id: i64,
    },
    /// The request was completed before: every request gets exactly one response.
    #[error("journal {}: request {id} was already completed", path.display())]
    AlreadyCompleted {
        /// The file.
        path: PathBuf,
        /// The request id.
        id: i64,
    },
    /// Any other SQLite failure (I/O, a full disk, a lock held too long, …).
    #[error("journal {}: {source}", path.display())]
    Sql {
        /// The file.
        path: PathBuf,
        /// The SQLite error.
        source: rusqlite::Error,
    },
}

/// The result type of this module.
pub type Result<T, E = JournalError> = std::result::Result<T, E>;

/// Where the journal lives unless told otherwise:
/// `$IPFS_ACCELERATE_DATA_DIR/journal.sqlite3`, else
/// `~/.local/share/ipfs-accelerate/journal.sqlite3`.
pub fn default_path() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("IPFS_ACCELERATE_DATA_DIR").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir).join(FILE_NAME));
    }
    let home = std::env::var_os("HOME").filter(|h| !h.is_empty()).ok_or(JournalError::NoDataDir)?;
    Ok(PathBuf::from(home).join(".local/share/ipfs-accelerate").join(FILE_NAME))
}

/// How a request or an inference ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Answered.
    Ok,
    /// Failed; the row's `error` says why.
    Error,
    /// Refused because the queue was full.
    Busy,
}

impl Outcome {
    /// The text stored in the journal: `ok`, `error` or `busy`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Error => "error",
            Outcome::Busy => "busy",
        }
    }

    fn parse(text: &str) -> Option<Outcome> {
        match text {
            "ok" => Some(Outcome::Ok),
            "error" => Some(Outcome::Error),
            "busy" => Some(Outcome::Busy),
            _ => None,
        }
    }
}

/// The id the journal gave an accepted request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RequestId(pub i64);

/// A worker as it registers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkerRecord {
    /// Unique id, kept across reconnects.
    pub id: String,
    /// `cpu`, `wgpu`, `browser-webgpu`, `browser-webnn`, `remote`, …
    pub kind: String,
    /// The browser, for browser workers.
    pub browser: Option<String>,
    /// What it can do (features, limits, ops), as JSON.
    pub capabilities: serde_json::Value,
    /// Its state (`ready`, `busy`, `dead`, …: the pool's words).
    pub state: String,
}

/// A worker as the journal holds it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkerRow {
    /// What was registered (with the latest state).
    #[serde(flatten)]
    pub worker: WorkerRecord,
    /// When it first registered (ms since the epoch).
    pub registered_at: i64,
    /// When it was last seen (ms since the epoch).
    pub last_seen_at: i64,
}

/// A model loaded on a worker.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    /// The worker.
    pub worker_id: String,
    /// The model.
    pub model: String,
    /// The weights' CID, when known.
    pub cid: Option<String>,
    /// When it was loaded (ms since the epoch).
    pub loaded_at: i64,
    /// When it was unloaded; `None` while loaded.
    pub unloaded_at: Option<i64>,
}

/// A request as the journal holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestRow {
    /// Its id.
    pub id: RequestId,
    /// The model asked for.
    pub model: String,
    /// When it was accepted (ms since the epoch).
    pub accepted_at: i64,
    /// When it was answered; `None` while pending.
    pub completed_at: Option<i64>,
    /// How it ended; `None` while pending.
    pub status: Option<Outcome>,
    /// The error it was answered with.
    pub error: Option<String>,
}

/// One inference, as the pool reports it. Build one with
/// [`InferenceRecord::new`] and struct update syntax.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InferenceRecord {
    /// The request it served, if it went through the queue.
    pub request_id: Option<RequestId>,
    /// The model.
    pub model: String,
    /// The weights' CID.
    pub cid: Option<String>,
    /// The worker that ran it (must be registered).
    pub worker_id: Option<String>,
    /// The backend: `cpu`, `wgpu`, `browser-webgpu`, `browser-webnn`, `remote`, …
    pub backend: String,
    /// The browser, for browser backends.
    pub browser: Option<String>,
    /// The precision it ran at (`f32`, `f16`, `q4_1`, …).
    pub precision: String,
    /// Wall time of the inference in milliseconds.
    pub latency_ms: f64,
    /// Items processed (texts embedded, images classified, …).
    pub items: u64,
    /// Tokens processed or generated, when that means something.
    pub tokens: Option<u64>,
    /// How it ended.
    pub status: Outcome,
    /// The error, when it failed.
    pub error: Option<String>,
}

impl InferenceRecord {
    /// A successful inference of one item at precision `f32`, latency 0, with
    /// nothing else known: fill in the rest with struct update syntax.
    pub fn new(model: impl Into<String>, backend: impl Into<String>) -> InferenceRecord {
        InferenceRecord {
            request_id: None,
            model: model.into(),
            cid: None,
            worker_id: None,
            backend: backend.into(),
            browser: None,
            precision: "f32".into(),
            latency_ms: 0.0,
            items: 1,
            tokens: None,
            status: Outcome::Ok,
            error: None,
        }
    }
}

/// An inference as the journal holds it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InferenceRow {
    /// Its id.
    pub id: i64,
    /// When it was recorded (ms since the epoch).
    pub at: i64,
    /// What was recorded.
    #[serde(flatten)]
    pub record: InferenceRecord,
}

/// Which inferences [`Journal::stats`] and [`Journal::inferences`] look at.
/// `None` means any.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsFilter {
    /// Only this model.
    pub model: Option<String>,
    /// Only this backend.
    pub backend: Option<String>,
    /// Only inferences recorded at or after this time (ms since the epoch).
    pub since: Option<i64>,
}

/// The summary of one (model, backend) pair.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StatsRow {
    /// The model.
    pub model: String,
    /// The backend.
    pub backend: String,
    /// Inferences recorded, failed ones included.
    pub count: u64,
    /// Inferences that did not end `ok`.
    pub errors: u64,
    /// Median latency of the successful ones (nearest rank), ms.
    pub p50_ms: Option<f64>,
    /// 99th percentile latency of the successful ones (nearest rank), ms.
    pub p99_ms: Option<f64>,
    /// Mean latency of the successful ones, ms.
    pub mean_ms: Option<f64>,
    /// Items per second of inference time: the successful ones' items over
    /// their summed latency.
    pub items_per_s: Option<f64>,
}

/// The nearest-rank `p`-th percentile (0 < p ≤ 100) of `sorted` (ascending):
/// the value at 1-based rank ⌈p·n/100⌉. `None` for an empty slice.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let n = sorted.len();
    // Round the product first so that 99·100/100 is exactly rank 99.
    let rank = ((p / 100.0 * n as f64 * 1e9).round() / 1e9).ceil() as usize;
    Some(sorted[rank.clamp(1, n) - 1])
}

/// An open journal. Cheap to share: `Send + Sync`, every method takes `&self`.
pub struct Journal {
    path: PathBuf,
    conn: Mutex<Connection>,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal").field("path", &self.path).finish_non_exhaustive()
    }
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

fn is_not_a_database(err: &rusqlite::Error) -> bool {
    matches!(err.sqlite_error_code(), Some(ErrorCode::NotADatabase))
}

impl Journal {
    /// Opens the journal at `path`, creating the file, its directory and the
    /// schema when there is none (or the file is empty). An existing file
    /// that is not a journal of this or an older schema is refused untouched.
    pub fn open(path: impl AsRef<Path>) -> Result<Journal> {
        let path = path.as_ref().to_path_buf();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|source| JournalError::CreateDir { path: dir.to_path_buf(), source })?;
        }
        let sql = |source: rusqlite::Error| {
            if is_not_a_database(&source) {
                JournalError::NotADatabase { path: path.clone() }
            } else {
                JournalError::Sql { path: path.clone(), source }
            }
        };
        let mut conn = Connection::open(&path).map_err(sql)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(sql)?;

        // Read-only checks first: nothing is written to a file until it is
        // known to be ours (or empty). They run in one read transaction so
        // the header and the table count come from the same snapshot (another
        // process may be creating the schema right now).
        let header = {
            let read = conn.transaction().map_err(sql)?;
            let header = Self::check(&read, &path).map_err(|e| match e {
                JournalError::Sql { source, .. } => sql(source),
                other => other,
            })?;
            read.commit().map_err(sql)?;
            header
        };
        let fresh = match header {
            Header::Journal(version) => version < SCHEMA_VERSION,
            Header::Empty => true,
        };
        if fresh {
            // Another process may be initializing the same file: decide again
            // under the write lock.
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(sql)?;
            // Older schemas only lack tables: the schema's CREATE ... IF NOT
            // EXISTS adds them and keeps every row.
            let current = matches!(Self::check(&tx, &path)?, Header::Journal(v) if v >= SCHEMA_VERSION);
            if !current {
                tx.execute_batch(SCHEMA).map_err(sql)?;
                tx.pragma_update(None, "application_id", APPLICATION_ID).map_err(sql)?;
                tx.pragma_update(None, "user_version", SCHEMA_VERSION).map_err(sql)?;
            }
            tx.commit().map_err(sql)?;
        }
        let mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0)).map_err(sql)?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(path = %path.display(), mode, "journal: WAL mode unavailable here; concurrent writers will wait longer");
        }
        conn.pragma_update(None, "synchronous", "NORMAL").map_err(sql)?;
        conn.pragma_update(None, "foreign_keys", true).map_err(sql)?;
        Ok(Journal { path, conn: Mutex::new(conn) })
    }

    /// Classifies the open file by its header and tables without writing.
    fn check(conn: &Connection, path: &Path) -> Result<Header> {
        let sql = |source| JournalError::Sql { path: path.to_path_buf(), source };
        let app: i32 = conn.pragma_query_value(None, "application_id", |r| r.get(0)).map_err(sql)?;
        let version: i32 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).map_err(sql)?;
        let objects: i64 = conn.query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0)).map_err(sql)?;
        let foreign = |reason: String| Err(JournalError::Foreign { path: path.to_path_buf(), reason });
        match (app, version, objects) {
            (0, _, 0) => Ok(Header::Empty),
            (APPLICATION_ID, 0, 0) => Ok(Header::Empty),
            (APPLICATION_ID, v, _) if v > SCHEMA_VERSION => {
                Err(JournalError::NewerSchema { path: path.to_path_buf(), found: v, supported: SCHEMA_VERSION })
            }
            (APPLICATION_ID, v, _) if v >= 1 => Ok(Header::Journal(v)),
            (APPLICATION_ID, v, n) => foreign(format!("schema version {v} with {n} tables and indexes")),
            (0, _, n) => foreign(format!("application_id 0 with {n} tables and indexes")),
            (other, _, _) => foreign(format!("application_id {other:#010x}, not {APPLICATION_ID:#010x}")),
        }
    }

    /// The file this journal writes.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves at most an open transaction,
        // which its drop rolled back: the connection is still good.
        self.conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn sql(&self, source: rusqlite::Error) -> JournalError {
        JournalError::Sql { path: self.path.clone(), source }
    }

    /// Runs `f` in one `BEGIN IMMEDIATE` transaction, committed when `f`
    /// returns `Ok`.
    pub(crate) fn write<T>(&self, f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T>) -> Result<T> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(|e| self.sql(e))?;
        let value = f(&tx)?;
        tx.commit().map_err(|e| self.sql(e))?;
        Ok(value)
    }

    /// Registers a worker, or re-registers one that reconnects (its kind,
    /// browser, capabilities and state are replaced; `registered_at` is kept).
    pub fn register_worker(&self, worker: &WorkerRecord) -> Result<()> {
        let caps = worker.capabilities.to_string();
        self.write(|tx| {
            let now = now_ms();
            tx.execute(
                "INSERT INTO workers (id, kind, browser, capabilities, registered_at, last_seen_at, state)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6)
                 ON CONFLICT(id) DO UPDATE SET kind = excluded.kind, browser = excluded.browser,
                     capabilities = excluded.capabilities, last_seen_at = excluded.last_seen_at,
                     state = excluded.state",
                params![worker.id, worker.kind, worker.browser, caps, now, worker.state],
            )
            .map_err(|e| self.sql(e))?;
            Ok(())
        })
    }

    fn update_worker(&self, id: &str, sql: &str, state: Option<&str>) -> Result<()> {
        self.write(|tx| {
            let n = match state {
                Some(state) => tx.execute(sql, params![id, now_ms(), state]),
                None => tx.execute(sql, params![id, now_ms()]),
            }
            .map_err(|e| self.sql(e))?;
            if n == 0 {
                return Err(JournalError::UnknownWorker { path: self.path.clone(), id: id.to_string() });
            }
            Ok(())
        })
    }

    /// Notes that a worker answered (a health check, a result).
    pub fn worker_seen(&self, id: &str) -> Result<()> {
        self.update_worker(id, "UPDATE workers SET last_seen_at = ?2 WHERE id = ?1", None)
    }

    /// Sets a worker's state (and marks it seen).
    pub fn set_worker_state(&self, id: &str, state: &str) -> Result<()> {
        self.update_worker(id, "UPDATE workers SET last_seen_at = ?2, state = ?3 WHERE id = ?1", Some(state))
    }

    /// Every worker ever registered, by id.
    pub fn workers(&self) -> Result<Vec<WorkerRow>> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "SELECT id, kind, browser, capabilities, registered_at, last_seen_at, state
                 FROM workers ORDER BY id",
            )
            .map_err(|e| self.sql(e))?;
        let rows = stmt
            .query_map([], |r| {
                let caps: String = r.get(3)?;
                Ok(WorkerRow {
                    worker: WorkerRecord {
                        id: r.get(0)?,
                        kind: r.get(1)?,
                        browser: r.get(2)?,
                        capabilities: serde_json::from_str(&caps).unwrap_or(serde_json::Value::Null),
                        state: r.get(6)?,
                    },
                    registered_at: r.get(4)?,
                    last_seen_at: r.get(5)?,
                })
            })
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(|e| self.sql(e))?;
        Ok(rows)
    }

    /// Records that `model` (weights `cid`) is loaded on `worker`. Returns
    /// `false` (and changes nothing) when it already was.
    pub fn place(&self, worker: &str, model: &str, cid: Option<&str>) -> Result<bool> {
        self.write(|tx| {
            self.require_worker(tx, worker)?;
            let n = tx
                .execute(
                    "INSERT OR IGNORE INTO placements (worker_id, model, cid, loaded_at) VALUES (?1, ?2, ?3, ?4)",
                    params![worker, model, cid, now_ms()],
                )
                .map_err(|e| self.sql(e))?;
            Ok(n == 1)
        })
    }

    /// Records that `model` was unloaded from `worker`. Returns `false` when
    /// it was not loaded there.
    pub fn unplace(&self, worker: &str, model: &str) -> Result<bool> {
        self.write(|tx| {
            let n = tx
                .execute(
                    "UPDATE placements SET unloaded_at = ?3
                     WHERE worker_id = ?1 AND model = ?2 AND unloaded_at IS NULL",
                    params![worker, model, now_ms()],
                )
                .map_err(|e| self.sql(e))?;
            Ok(n == 1)
        })
    }

    fn require_worker(&self, tx: &rusqlite::Transaction<'_>, id: &str) -> Result<()> {
        let known = tx
            .query_row("SELECT 1 FROM workers WHERE id = ?1", [id], |_| Ok(()))
            .optional()
            .map_err(|e| self.sql(e))?;
        known.ok_or_else(|| JournalError::UnknownWorker { path: self.path.clone(), id: id.to_string() })
    }

    /// The models loaded now, by worker then model.
    pub fn placements(&self) -> Result<Vec<Placement>> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "SELECT worker_id, model, cid, loaded_at, unloaded_at FROM placements
                 WHERE unloaded_at IS NULL ORDER BY worker_id, model",
            )
            .map_err(|e| self.sql(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(Placement {
                    worker_id: r.get(0)?,
                    model: r.get(1)?,
                    cid: r.get(2)?,
                    loaded_at: r.get(3)?,
                    unloaded_at: r.get(4)?,
                })
            })
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(|e| self.sql(e))?;
        Ok(rows)
    }

    /// Records a request the pool accepted, and returns its id.
    pub fn accept_request(&self, model: &str) -> Result<RequestId> {
        self.write(|tx| {
            tx.execute("INSERT INTO requests (model, accepted_at) VALUES (?1, ?2)", params![model, now_ms()])
                .map_err(|e| self.sql(e))?;
            Ok(RequestId(tx.last_insert_rowid()))
        })
    }

    /// Records the one answer to a request. A second completion of the same
    /// request is refused with [`JournalError::AlreadyCompleted`].
    pub fn complete_request(&self, id: RequestId, status: Outcome, error: Option<&str>) -> Result<()> {
        self.finish_request(id, status, error, &[])
    }

    fn requests_where(&self, condition: &str, param: Option<i64>) -> Result<Vec<RequestRow>> {
        let conn = self.conn();
        let sql = format!(
            "SELECT id, model, accepted_at, completed_at, status, error FROM requests WHERE {condition} ORDER BY id"
        );
        let mut stmt = conn.prepare(&sql).map_err(|e| self.sql(e))?;
        let map = |r: &rusqlite::Row<'_>| {
            let status: Option<String> = r.get(4)?;
            Ok(RequestRow {
                id: RequestId(r.get(0)?),
                model: r.get(1)?,
                accepted_at: r.get(2)?,
                completed_at: r.get(3)?,
                status: status.as_deref().and_then(Outcome::parse),
                error: r.get(5)?,
            })
        };
        let rows = match param {
            Some(p) => stmt.query_map([p], map),
            None => stmt.query_map([], map),
        }
        .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
        .map_err(|e| self.sql(e))?;
        Ok(rows)
    }

    /// One request, if it was accepted.
    pub fn request(&self, id: RequestId) -> Result<Option<RequestRow>> {
        Ok(self.requests_where("id = ?1", Some(id.0))?.pop())
    }

    /// Requests accepted and not yet completed, oldest first. After the pool
    /// has drained, this is empty: every request got its answer.
    pub fn pending_requests(&self) -> Result<Vec<RequestRow>> {
        self.requests_where("completed_at IS NULL", None)
    }

    /// Records one inference and returns its row id.
    pub fn record_inference(&self, record: &InferenceRecord) -> Result<i64> {
        self.write(|tx| self.insert_inference(tx, record))
    }

    fn insert_inference(&self, tx: &rusqlite::Transaction<'_>, record: &InferenceRecord) -> Result<i64> {
        tx.execute(
            "INSERT INTO inferences (request_id, model, cid, worker_id, backend, browser, precision,
                 latency_ms, items, tokens, status, error, at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
            params![
                record.request_id.map(|r| r.0),
                record.model,
                record.cid,
                record.worker_id,
                record.backend,
                record.browser,
                record.precision,
                record.latency_ms,
                record.items as i64,
                record.tokens.map(|t| t as i64),
                record.status.as_str(),
                record.error,
                now_ms(),
            ],
        )
        .map_err(|e| self.sql(e))?;
        Ok(tx.last_insert_rowid())
    }

    /// Records a request's inferences (one per worker tried) and its one
    /// answer in a single transaction: the pool's hot path commits once per
    /// request. Refused like [`Journal::complete_request`] when the request
    /// was completed before, and then nothing is written.
    pub fn finish_request(
        &self,
        id: RequestId,
        status: Outcome,
        error: Option<&str>,
        inferences: &[InferenceRecord],
    ) -> Result<()> {
        self.write(|tx| {
            let n = tx
                .execute(
                    "UPDATE requests SET completed_at = ?2, status = ?3, error = ?4
                     WHERE id = ?1 AND completed_at IS NULL",
                    params![id.0, now_ms(), status.as_str(), error],
                )
                .map_err(|e| self.sql(e))?;
            if n != 1 {
                let exists = tx
                    .query_row("SELECT 1 FROM requests WHERE id = ?1", [id.0], |_| Ok(()))
                    .optional()
                    .map_err(|e| self.sql(e))?;
                let path = self.path.clone();
                return Err(match exists {
                    Some(()) => JournalError::AlreadyCompleted { path, id: id.0 },
                    None => JournalError::UnknownRequest { path, id: id.0 },
                });
            }
            for record in inferences {
                self.insert_inference(tx, &InferenceRecord { request_id: Some(id), ..record.clone() })?;
            }
            Ok(())
        })
    }

    fn filter_sql(filter: &StatsFilter) -> (String, Vec<rusqlite::types::Value>) {
        use rusqlite::types::Value;
        let mut clauses = vec!["1".to_string()];
        let mut values = Vec::new();
        if let Some(model) = &filter.model {
            values.push(Value::Text(model.clone()));
            clauses.push(format!("model = ?{}", values.len()));
        }
        if let Some(backend) = &filter.backend {
            values.push(Value::Text(backend.clone()));
            clauses.push(format!("backend = ?{}", values.len()));
        }
        if let Some(since) = filter.since {
            values.push(Value::Integer(since));
            clauses.push(format!("at >= ?{}", values.len()));
        }
        (clauses.join(" AND "), values)
    }

    /// The inferences `filter` selects, oldest first.
    pub fn inferences(&self, filter: &StatsFilter) -> Result<Vec<InferenceRow>> {
        let (condition, values) = Self::filter_sql(filter);
        let conn = self.conn();
        let sql = format!(
            "SELECT id, at, request_id, model, cid, worker_id, backend, browser, precision, latency_ms,
                 items, tokens, status, error
             FROM inferences WHERE {condition} ORDER BY id"
        );
        let mut stmt = conn.prepare(&sql).map_err(|e| self.sql(e))?;
        let rows = stmt
            .query_map(rusqlite::params_from_iter(values), |r| {
                let status: String = r.get(12)?;
                let items: i64 = r.get(10)?;
                let tokens: Option<i64> = r.get(11)?;
                Ok(InferenceRow {
                    id: r.get(0)?,
                    at: r.get(1)?,
                    record: InferenceRecord {
                        request_id: r.get::<_, Option<i64>>(2)?.map(RequestId),
                        model: r.get(3)?,
                        cid: r.get(4)?,
                        worker_id: r.get(5)?,
                        backend: r.get(6)?,
                        browser: r.get(7)?,
                        precision: r.get(8)?,
                        latency_ms: r.get(9)?,
                        items: items.max(0) as u64,
                        tokens: tokens.map(|t| t.max(0) as u64),
                        status: Outcome::parse(&status).unwrap_or(Outcome::Error),
                        error: r.get(13)?,
                    },
                })
            })
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(|e| self.sql(e))?;
        Ok(rows)
    }

    /// Per (model, backend), sorted by model then backend: the count, the
    /// errors, and p50/p99/mean latency and items/s of the successful
    /// inferences (see the module doc for the percentile definition).
    pub fn stats(&self, filter: &StatsFilter) -> Result<Vec<StatsRow>> {
        let (condition, values) = Self::filter_sql(filter);
        #[derive(Default)]
        struct Group {
            count: u64,
            errors: u64,
            latencies: Vec<f64>,
            items: f64,
        }
        let mut groups: BTreeMap<(String, String), Group> = BTreeMap::new();
        {
            let conn = self.conn();
            let sql = format!("SELECT model, backend, status, latency_ms, items FROM inferences WHERE {condition}");
            let mut stmt = conn.prepare(&sql).map_err(|e| self.sql(e))?;
            let mut rows = stmt.query(rusqlite::params_from_iter(values)).map_err(|e| self.sql(e))?;
            while let Some(row) = rows.next().map_err(|e| self.sql(e))? {
                let read = || -> rusqlite::Result<_> {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, String>(2)?,
                        row.get::<_, f64>(3)?,
                        row.get::<_, i64>(4)?,
                    ))
                };
                let (model, backend, status, latency, items) = read().map_err(|e| self.sql(e))?;
                let group = groups.entry((model, backend)).or_default();
                group.count += 1;
                if status == "ok" {
                    group.latencies.push(latency);
                    group.items += items as f64;
                } else {
                    group.errors += 1;
                }
            }
        }
        Ok(groups
            .into_iter()
            .map(|((model, backend), mut g)| {
                g.latencies.sort_by(f64::total_cmp);
                let total_ms: f64 = g.latencies.iter().sum();
                let ok = g.latencies.len();
                StatsRow {
                    model,
                    backend,
                    count: g.count,
                    errors: g.errors,
                    p50_ms: percentile(&g.latencies, 50.0),
                    p99_ms: percentile(&g.latencies, 99.0),
                    mean_ms: (ok > 0).then(|| total_ms / ok as f64),
                    items_per_s: (total_ms > 0.0).then(|| g.items / (total_ms / 1000.0)),
                }
            })
            .collect())
    }
}

enum Header {
    /// No schema yet: safe to create one.
    Empty,
    /// A journal of this or an older schema (its `user_version`).
    Journal(i32),
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), Some(50.0));
        assert_eq!(percentile(&v, 99.0), Some(99.0));
        assert_eq!(percentile(&v, 100.0), Some(100.0));
        assert_eq!(percentile(&[7.0], 99.0), Some(7.0));
        assert_eq!(percentile(&[1.0, 2.0], 50.0), Some(1.0));
        assert_eq!(percentile(&[1.0, 2.0, 3.0], 50.0), Some(2.0));
        assert_eq!(percentile(&[], 50.0), None);
    }
}
