//! The journal's inferences as a time series — what the dashboard draws:
//! per time bucket, how many inferences ran, how many failed, their mean and
//! worst latency, and the items they processed.

use super::{Journal, Result};
use rusqlite::params;
use serde::{Deserialize, Serialize};

/// One time bucket of inferences.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TimelinePoint {
    /// The bucket's start (ms since the epoch).
    pub start_ms: i64,
    /// Inferences recorded in it.
    pub count: u64,
    /// Those that did not end `ok`.
    pub errors: u64,
    /// Mean latency of the successful ones, ms.
    pub mean_ms: Option<f64>,
    /// Worst latency of the successful ones, ms.
    pub max_ms: Option<f64>,
    /// Items the successful ones processed.
    pub items: u64,
}

impl Journal {
    /// Inferences since `since_ms`, in buckets of `bucket_ms` (at least 1),
    /// oldest first; buckets without inferences are left out. One grouped
    /// query over the `at` index, so it stays cheap however busy the server.
    pub fn timeline(&self, since_ms: i64, bucket_ms: i64) -> Result<Vec<TimelinePoint>> {
        let bucket = bucket_ms.max(1);
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "SELECT (at / ?2) * ?2 AS start, count(*),
                        sum(status != 'ok'),
                        avg(CASE WHEN status = 'ok' THEN latency_ms END),
                        max(CASE WHEN status = 'ok' THEN latency_ms END),
                        coalesce(sum(CASE WHEN status = 'ok' THEN items END), 0)
                 FROM inferences WHERE at >= ?1 GROUP BY start ORDER BY start",
            )
            .map_err(|e| self.sql(e))?;
        let rows = stmt
            .query_map(params![since_ms, bucket], |r| {
                Ok(TimelinePoint {
                    start_ms: r.get(0)?,
                    count: r.get::<_, i64>(1)?.max(0) as u64,
                    errors: r.get::<_, i64>(2)?.max(0) as u64,
                    mean_ms: r.get(3)?,
                    max_ms: r.get(4)?,
                    items: r.get::<_, i64>(5)?.max(0) as u64,
                })
            })
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(|e| self.sql(e))?;
        Ok(rows)
    }
}
