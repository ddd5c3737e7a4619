//! What the scheduler expects a request to cost on a worker: the measured
//! moving average per (model, worker kind, browser), or, before anything was
//! measured, a static prior from the pool config.
//!
//! Priors only break the tie of ignorance (the predecessor hard-coded Edge +
//! WebNN for text, Chrome + WebGPU for vision, Firefox + WebGPU for audio);
//! the first measurement replaces them.

use crate::journal::LatencyRow;
use crate::worker::WorkerKind;
use std::collections::HashMap;

/// A starting guess of a worker kind's latency, from the pool config.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Prior {
    /// The model type it applies to (`text-embedding`, …); `None`: any.
    #[serde(default)]
    pub model_type: Option<String>,
    /// The worker kind.
    pub kind: WorkerKind,
    /// The browser family (`chrome`, `edge`, `firefox`, …); `None`: any.
    #[serde(default)]
    pub browser: Option<String>,
    /// The expected latency of one request, in milliseconds.
    pub latency_ms: f64,
}

/// The moving average of one (model, kind, browser).
#[derive(Debug, Clone, Copy)]
struct Average {
    ms: f64,
    samples: u64,
}

/// The table the scheduler reads and the dispatchers update.
#[derive(Debug, Default)]
pub(crate) struct LatencyTable {
    /// By model, then (kind, browser family).
    averages: HashMap<String, HashMap<(WorkerKind, String), Average>>,
    priors: Vec<Prior>,
    /// Measurements since the last save.
    dirty: bool,
}

/// The browser family a worker's browser string starts with
/// (`"Chromium 148.0.1"` → `chromium`); empty for non-browsers.
pub(crate) fn browser_family(browser: Option<&str>) -> String {
    browser.and_then(|b| b.split_whitespace().next()).unwrap_or_default().to_ascii_lowercase()
}

impl LatencyTable {
    /// A table starting from `priors` and the averages saved in a journal.
    pub(crate) fn new(priors: Vec<Prior>, saved: Vec<LatencyRow>) -> Self {
        let mut table = LatencyTable { priors, ..Default::default() };
        for row in saved {
            let Some(kind) = WorkerKind::parse(&row.worker_kind) else { continue };
            if !row.ms.is_finite() || row.ms < 0.0 {
                continue;
            }
            table
                .averages
                .entry(row.model)
                .or_default()
                .insert((kind, row.browser), Average { ms: row.ms, samples: row.samples });
        }
        table
    }

    /// The expected latency in ms: measured, else the most specific prior
    /// (browser and model type named beat "any"), else `None`.
    pub(crate) fn expected(&self, model: &str, model_type: &str, kind: WorkerKind, browser: &str) -> Option<f64> {
        if let Some(avg) = self.averages.get(model).and_then(|m| m.get(&(kind, browser.to_string()))) {
            return Some(avg.ms);
        }
        self.priors
            .iter()
            .filter(|p| p.kind == kind)
            .filter(|p| p.browser.as_deref().is_none_or(|b| b.eq_ignore_ascii_case(browser)))
            .filter(|p| p.model_type.as_deref().is_none_or(|t| t == model_type))
            .max_by_key(|p| (p.browser.is_some() as u8) + (p.model_type.is_some() as u8))
            .map(|p| p.latency_ms)
    }

    /// Folds one measurement into the moving average (`alpha` weighs the newest).
    pub(crate) fn record(&mut self, model: &str, kind: WorkerKind, browser: &str, ms: f64, alpha: f64) {
        let by_worker = match self.averages.get_mut(model) {
            Some(m) => m,
            None => self.averages.entry(model.to_string()).or_default(),
        };
        let avg = by_worker.entry((kind, browser.to_string())).or_insert(Average { ms, samples: 0 });
        avg.ms = alpha * ms + (1.0 - alpha) * avg.ms;
        avg.samples += 1;
        self.dirty = true;
    }

    /// The averages to save, when something changed since the last call.
    pub(crate) fn take_changes(&mut self) -> Option<Vec<LatencyRow>> {
        if !std::mem::take(&mut self.dirty) {
            return None;
        }
        Some(self.rows())
    }

    /// Every average, as journal rows.
    pub(crate) fn rows(&self) -> Vec<LatencyRow> {
        let mut rows = Vec::new();
        for (model, by_worker) in &self.averages {
            for ((kind, browser), avg) in by_worker {
                rows.push(LatencyRow {
                    model: model.clone(),
                    worker_kind: kind.as_str().to_string(),
                    browser: browser.clone(),
                    ms: avg.ms,
                    samples: avg.samples,
                    updated_at: 0,
                });
            }
        }
        rows.sort_by(|a, b| (&a.model, &a.worker_kind, &a.browser).cmp(&(&b.model, &b.worker_kind, &b.browser)));
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prior(kind: WorkerKind, browser: Option<&str>, model_type: Option<&str>, ms: f64) -> Prior {
        Prior { kind, browser: browser.map(Into::into), model_type: model_type.map(Into::into), latency_ms: ms }
    }

    #[test]
    fn measurements_override_priors_and_specific_priors_win() {
        let mut t = LatencyTable::new(
            vec![
                prior(WorkerKind::BrowserWebnn, None, None, 50.0),
                prior(WorkerKind::BrowserWebnn, Some("edge"), Some("text-embedding"), 5.0),
            ],
            Vec::new(),
        );
        let k = WorkerKind::BrowserWebnn;
        assert_eq!(t.expected("m", "text-embedding", k, "edge"), Some(5.0));
        assert_eq!(t.expected("m", "vision", k, "edge"), Some(50.0));
        assert_eq!(t.expected("m", "text-embedding", k, "chrome"), Some(50.0));
        assert_eq!(t.expected("m", "text-embedding", WorkerKind::NativeCpu, ""), None);
        t.record("m", k, "edge", 30.0, 0.2);
        assert_eq!(t.expected("m", "text-embedding", k, "edge"), Some(30.0));
        t.record("m", k, "edge", 40.0, 0.5);
        assert_eq!(t.expected("m", "text-embedding", k, "edge"), Some(35.0));
    }

    #[test]
    fn saved_rows_round_trip_and_bad_rows_are_skipped() {
        let mut t = LatencyTable::new(Vec::new(), Vec::new());
        t.record("m", WorkerKind::NativeCpu, "", 7.0, 0.2);
        let rows = t.take_changes().expect("changed");
        assert!(t.take_changes().is_none());
        let mut saved = rows.clone();
        saved.push(LatencyRow { worker_kind: "teleporter".into(), ..rows[0].clone() });
        saved.push(LatencyRow { model: "n".into(), ms: f64::NAN, ..rows[0].clone() });
        let t = LatencyTable::new(Vec::new(), saved);
        assert_eq!(t.rows(), rows);
    }
}
