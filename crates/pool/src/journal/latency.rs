//! The measured-latency table: the pool's moving average per (model,
//! worker kind, browser), saved so that a restarted pool schedules on what
//! it measured before instead of starting from the static priors again.

use super::{now_ms, Journal, Result};
use rusqlite::params;
use serde::{Deserialize, Serialize};

/// One moving average of the latency table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LatencyRow {
    /// The model.
    pub model: String,
    /// The worker kind (`native-cpu`, `browser-webgpu`, …).
    pub worker_kind: String,
    /// The browser, or empty for workers that are not browsers.
    pub browser: String,
    /// The moving average, in milliseconds.
    pub ms: f64,
    /// Inferences measured into it.
    pub samples: u64,
    /// When it was last saved (ms since the epoch).
    pub updated_at: i64,
}

impl Journal {
    /// Saves moving averages, replacing the stored ones with the same key,
    /// in one transaction. `updated_at` is stamped now.
    pub fn save_latencies(&self, rows: &[LatencyRow]) -> Result<()> {
        self.write(|tx| {
            let now = now_ms();
            for row in rows {
                tx.execute(
                    "INSERT INTO latency (model, worker_kind, browser, ms, samples, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT(model, worker_kind, browser) DO UPDATE SET
                         ms = excluded.ms, samples = excluded.samples, updated_at = excluded.updated_at",
                    params![row.model, row.worker_kind, row.browser, row.ms, row.samples as i64, now],
                )
                .map_err(|e| self.sql(e))?;
            }
            Ok(())
        })
    }

    /// The saved moving averages, by model, kind and browser.
    pub fn latencies(&self) -> Result<Vec<LatencyRow>> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "SELECT model, worker_kind, browser, ms, samples, updated_at FROM latency
                 ORDER BY model, worker_kind, browser",
            )
            .map_err(|e| self.sql(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(LatencyRow {
                    model: r.get(0)?,
                    worker_kind: r.get(1)?,
                    browser: r.get(2)?,
                    ms: r.get(3)?,
                    samples: r.get::<_, i64>(4)?.max(0) as u64,
                    updated_at: r.get(5)?,
                })
            })
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(|e| self.sql(e))?;
        Ok(rows)
    }
}
