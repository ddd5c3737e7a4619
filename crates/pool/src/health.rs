//! The health thread: every [`crate::PoolConfig::health_interval`] (and at
//! once when a request fails) it pings each running worker; one that does
//! not answer is taken out of scheduling and recovered (reconnected, its
//! browser restarted) on a thread of its own, with backoff while that
//! fails. It also closes browsers idle past the timeout (keeping the
//! configured minimum warm), and keeps the journal current: worker states,
//! model placements and the measured latencies.

use crate::pool::{Inner, Slot, DOWN, READY, RECOVERING};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// How often the latencies are saved and placements synced, at most.
const JOURNAL_SYNC_EVERY: Duration = Duration::from_secs(5);

/// The longest wait between two recovery attempts of a worker.
const MAX_RECOVERY_BACKOFF: Duration = Duration::from_secs(30);

pub(crate) fn health_loop(inner: &Arc<Inner>, wake: mpsc::Receiver<()>) {
    let mut last_sync = Instant::now();
    loop {
        match wake.recv_timeout(inner.config.health_interval) {
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
            // Woken by a failure or the interval: either way, check now.
            Ok(()) | Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        // Several failures may have queued several wake-ups: one check does.
        while wake.try_recv().is_ok() {}
        if inner.closing.load(Ordering::SeqCst) {
            return;
        }
        check_workers(inner);
        close_idle_browsers(inner);
        if last_sync.elapsed() >= JOURNAL_SYNC_EVERY {
            save_latencies(inner);
            sync_journal(inner);
            last_sync = Instant::now();
        }
    }
}

/// Pings every ready, running worker; starts recovering those that fail.
fn check_workers(inner: &Arc<Inner>) {
    for slot in inner.slots() {
        if slot.health.load(Ordering::SeqCst) != READY {
            continue;
        }
        if slot.needs_recovery.swap(false, Ordering::SeqCst) {
            start_recovery(inner, slot, "it answered with garbage".into());
            continue;
        }
        if !slot.worker.is_warm() {
            continue;
        }
        match slot.worker.health(inner.config.health_timeout) {
            Ok(()) => slot.health_failures.store(0, Ordering::SeqCst),
            Err(e) => {
                let failures = slot.health_failures.fetch_add(1, Ordering::SeqCst) + 1;
                // A busy page may miss a ping; a dead one is restarted at once.
                if slot.worker.is_down() || failures >= inner.config.health_failures.max(1) {
                    tracing::warn!(worker = slot.worker.id(), error = %e, failures, "health check failed; recovering the worker");
                    slot.health_failures.store(0, Ordering::SeqCst);
                    start_recovery(inner, slot, e.message);
                } else {
                    tracing::info!(worker = slot.worker.id(), error = %e, failures, "health check failed; checking again");
                }
            }
        }
    }
}

/// Takes the worker out of scheduling and recovers it on its own thread.
fn start_recovery(inner: &Arc<Inner>, slot: Arc<Slot>, why: String) {
    if slot.health.compare_exchange(READY, RECOVERING, Ordering::SeqCst, Ordering::SeqCst).is_err() {
        return;
    }
    slot.breaker.trip(format!("health check failed: {why}"));
    set_journal_state(inner, &slot);
    let thread_inner = inner.clone();
    let handle = std::thread::Builder::new()
        .name(format!("pool-recover-{}", slot.worker.id()))
        .spawn(move || recover(&thread_inner, &slot))
        .expect("the OS starts a thread");
    let mut recoveries = inner.recoveries.lock().unwrap_or_else(|p| p.into_inner());
    recoveries.retain(|h| !h.is_finished());
    recoveries.push(handle);
}

fn recover(inner: &Inner, slot: &Slot) {
    let mut backoff = Duration::from_millis(500);
    loop {
        if inner.closing.load(Ordering::SeqCst) {
            return;
        }
        match slot.worker.recover() {
            Ok(()) => {
                slot.breaker.reset();
                slot.recoveries.fetch_add(1, Ordering::Relaxed);
                slot.health.store(READY, Ordering::SeqCst);
                tracing::info!(worker = slot.worker.id(), "worker recovered");
                // Its browser and capabilities may have changed.
                inner.register(slot);
                return;
            }
            Err(e) => {
                tracing::warn!(worker = slot.worker.id(), error = %e, retry_in = ?backoff, "recovery failed");
                slot.health.store(DOWN, Ordering::SeqCst);
                set_journal_state(inner, slot);
                // Sleep in short steps so a closing pool is not held up.
                let until = Instant::now() + backoff;
                while Instant::now() < until && !inner.closing.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(50));
                }
                backoff = (backoff * 2).min(MAX_RECOVERY_BACKOFF);
            }
        }
    }
}

/// Closes browsers idle past the timeout, keeping the configured minimum warm.
fn close_idle_browsers(inner: &Inner) {
    let browsers: Vec<Arc<Slot>> = inner.slots().into_iter().filter(|s| s.worker.kind().is_browser()).collect();
    let mut warm = browsers.iter().filter(|s| s.worker.is_warm()).count();
    // The last added close first, so the same browsers stay warm.
    for slot in browsers.iter().rev() {
        if warm <= inner.config.min_warm_browsers {
            break;
        }
        if slot.health.load(Ordering::SeqCst) == READY
            && slot.worker.is_warm()
            && slot.worker.close_if_idle(inner.config.browser_idle_timeout)
        {
            tracing::info!(worker = slot.worker.id(), "closed an idle browser");
            warm -= 1;
            set_journal_state(inner, slot);
        }
    }
}

/// Writes a worker's state to the journal when it changed.
fn set_journal_state(inner: &Inner, slot: &Slot) {
    if inner.journal.is_none() {
        return;
    }
    let state = slot.status().state();
    let mut last = slot.journal_state.lock().unwrap_or_else(|p| p.into_inner());
    if *last != state && inner.journal("a worker state", |j| j.set_worker_state(slot.worker.id(), state)).is_some() {
        *last = state.to_string();
    }
}

/// Saves the latencies measured since the last save.
pub(crate) fn save_latencies(inner: &Inner) {
    if inner.journal.is_none() {
        return;
    }
    let changes = inner.latency.lock().unwrap_or_else(|p| p.into_inner()).take_changes();
    if let Some(rows) = changes {
        inner.journal("the latencies", |j| j.save_latencies(&rows));
    }
}

/// Brings the journal's worker states and placements up to date.
pub(crate) fn sync_journal(inner: &Inner) {
    if inner.journal.is_none() {
        return;
    }
    for slot in inner.slots() {
        set_journal_state(inner, &slot);
        sync_placements(inner, &slot);
    }
}

/// Records models loaded on the worker since the last sync, and unloaded ones.
pub(crate) fn sync_placements(inner: &Inner, slot: &Slot) {
    let now: BTreeSet<PathBuf> = slot.worker.loaded_models().into_iter().collect();
    let mut placed = slot.placed.lock().unwrap_or_else(|p| p.into_inner());
    if *placed == now {
        return;
    }
    let id = slot.worker.id();
    for gone in placed.difference(&now) {
        let model = gone.display().to_string();
        inner.journal("an unloaded model", |j| j.unplace(id, &model));
    }
    for new in now.difference(&placed) {
        let model = new.display().to_string();
        inner.journal("a loaded model", |j| j.place(id, &model, None));
    }
    *placed = now;
}
