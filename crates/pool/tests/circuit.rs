//! Circuit-breaker behaviour, driven by a manual clock (no sleeping).

use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use ipfs_accelerate_pool::circuit::{
    CircuitBreaker, CircuitConfig, CircuitState, CircuitStateName, FailureRate, ManualClock, OpenCause, Rejected,
};

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

fn breaker(config: CircuitConfig) -> (CircuitBreaker, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new());
    (CircuitBreaker::new(config, clock.clone()), clock)
}

fn fail(b: &CircuitBreaker, n: usize) {
    for _ in 0..n {
        b.try_acquire().expect("closed circuit grants").failure();
    }
}

fn name(b: &CircuitBreaker) -> CircuitStateName {
    b.state().name()
}

#[test]
fn opens_after_consecutive_failures() {
    let (b, _clock) = breaker(CircuitConfig::default());
    fail(&b, 2);
    assert_eq!(b.state(), CircuitState::Closed);
    // A success breaks the streak.
    b.try_acquire().unwrap().success();
    fail(&b, 2);
    assert_eq!(name(&b), CircuitStateName::Closed);
    assert_eq!(b.snapshot().consecutive_failures, 2);
    fail(&b, 1);
    assert_eq!(name(&b), CircuitStateName::Open);
    let err = b.try_acquire().unwrap_err();
    assert_eq!(err, Rejected::Open { retry_in: secs(10.0), cause: OpenCause::ConsecutiveFailures(3) });
}

#[test]
fn open_rejects_until_open_for_elapses() {
    let (b, clock) = breaker(CircuitConfig::default());
    fail(&b, 3);
    clock.advance(secs(2.8));
    let err = b.try_acquire().unwrap_err();
    assert_eq!(err.to_string(), "worker circuit open for another 7.2 s after 3 consecutive failures");
    assert_eq!(err.retry_in(), Some(secs(7.2)));
    clock.advance(secs(7.1));
    assert!(b.try_acquire().is_err());
    assert_eq!(name(&b), CircuitStateName::Open);
    clock.advance(secs(0.1));
    assert_eq!(b.state(), CircuitState::HalfOpen);
    b.try_acquire().expect("half-open lets a probe through").success();
    assert_eq!(b.state(), CircuitState::Closed);
}

#[test]
fn open_state_reports_until() {
    let clock = Arc::new(ManualClock::new());
    let b = CircuitBreaker::new(CircuitConfig::default(), clock.clone());
    let start = clock_now(&clock);
    fail(&b, 3);
    assert_eq!(b.state(), CircuitState::Open { until: start + secs(10.0) });
}

fn clock_now(clock: &ManualClock) -> std::time::Instant {
    use ipfs_accelerate_pool::circuit::Clock;
    clock.now()
}

#[test]
fn half_open_limits_concurrent_probes() {
    let config = CircuitConfig { half_open_probes: 2, success_to_close: 3, ..CircuitConfig::default() };
    let (b, clock) = breaker(config);
    fail(&b, 3);
    clock.advance(secs(10.0));
    let p1 = b.try_acquire().unwrap();
    let p2 = b.try_acquire().unwrap();
    let err = b.try_acquire().unwrap_err();
    assert_eq!(err, Rejected::HalfOpenBusy { in_flight: 2 });
    assert_eq!(err.retry_in(), None);
    assert!(err.to_string().contains("half-open"), "{err}");
    assert_eq!(b.snapshot().probes_in_flight, 2);
    // A finished probe frees its slot; three successes are needed to close.
    p1.success();
    assert_eq!(name(&b), CircuitStateName::HalfOpen);
    let p3 = b.try_acquire().unwrap();
    assert!(b.try_acquire().is_err());
    p2.success();
    assert_eq!(name(&b), CircuitStateName::HalfOpen);
    p3.success();
    assert_eq!(name(&b), CircuitStateName::Closed);
    // Closed again: unlimited.
    let permits: Vec<_> = (0..10).map(|_| b.try_acquire().unwrap()).collect();
    permits.into_iter().for_each(|p| p.success());
}

#[test]
fn cancelled_probe_frees_its_slot_without_a_verdict() {
    let (b, clock) = breaker(CircuitConfig::default());
    fail(&b, 3);
    clock.advance(secs(10.0));
    let p = b.try_acquire().unwrap();
    assert!(b.try_acquire().is_err());
    p.cancel();
    assert_eq!(name(&b), CircuitStateName::HalfOpen);
    b.try_acquire().unwrap().success();
    assert_eq!(name(&b), CircuitStateName::Closed);
}

#[test]
fn half_open_failure_reopens_with_capped_backoff() {
    let config = CircuitConfig { open_for: secs(10.0), max_open_for: secs(35.0), ..CircuitConfig::default() };
    let (b, clock) = breaker(config);
    fail(&b, 3);
    assert_eq!(b.snapshot().next_retry_in, Some(secs(10.0)));
    // Each failed probe doubles the open time: 20, then 35 (capped), then 35.
    for expected in [20.0, 35.0, 35.0] {
        let retry = b.snapshot().next_retry_in.unwrap();
        clock.advance(retry);
        assert_eq!(name(&b), CircuitStateName::HalfOpen);
        b.try_acquire().unwrap().failure();
        let snap = b.snapshot();
        assert_eq!(snap.state, CircuitStateName::Open);
        assert_eq!(snap.next_retry_in, Some(secs(expected)));
        assert_eq!(
            b.try_acquire().unwrap_err(),
            Rejected::Open { retry_in: secs(expected), cause: OpenCause::ProbeFailed }
        );
    }
    assert_eq!(b.snapshot().opened_count, 4);
    // A close resets the backoff: the next open is back to 10 s.
    clock.advance(secs(35.0));
    b.try_acquire().unwrap().success();
    assert_eq!(name(&b), CircuitStateName::Closed);
    fail(&b, 3);
    assert_eq!(b.snapshot().next_retry_in, Some(secs(10.0)));
}

#[test]
fn failure_rate_opens_after_min_requests() {
    let config = CircuitConfig {
        failure_threshold: 0, // rate rule only
        failure_rate: Some(FailureRate { rate: 0.5, min_requests: 6, window: 10 }),
        ..CircuitConfig::default()
    };
    let (b, _clock) = breaker(config);
    // 3 failures of 4 is over the rate, but too few requests to judge.
    for ok in [false, false, true, false] {
        let p = b.try_acquire().unwrap();
        if ok {
            p.success()
        } else {
            p.failure()
        }
    }
    assert_eq!(name(&b), CircuitStateName::Closed);
    let snap = b.snapshot();
    assert_eq!((snap.recent_failures, snap.recent_requests), (3, 4));
    b.try_acquire().unwrap().success(); // 3 of 5
    assert_eq!(name(&b), CircuitStateName::Closed);
    b.try_acquire().unwrap().failure(); // 4 of 6 >= 50 %
    assert_eq!(name(&b), CircuitStateName::Open);
    let err = b.try_acquire().unwrap_err();
    assert_eq!(err.to_string(), "worker circuit open for another 10.0 s after 4 of the last 6 requests failed");
}

#[test]
fn failure_rate_window_slides() {
    let config = CircuitConfig {
        failure_threshold: 0,
        failure_rate: Some(FailureRate { rate: 0.5, min_requests: 4, window: 4 }),
        ..CircuitConfig::default()
    };
    let (b, _clock) = breaker(config);
    // One failure in every four keeps the rate at 25 %, under the 50 % bar,
    // however long it goes on: old outcomes leave the window.
    for _ in 0..10 {
        b.try_acquire().unwrap().success();
    }
    for _ in 0..20 {
        b.try_acquire().unwrap().success();
        b.try_acquire().unwrap().success();
        b.try_acquire().unwrap().success();
        b.try_acquire().unwrap().failure(); // 1 of 4 = 25 %
    }
    assert_eq!(name(&b), CircuitStateName::Closed);
    assert_eq!(b.snapshot().recent_requests, 4);
    b.try_acquire().unwrap().failure(); // last 4: s s f f = 50 %
    assert_eq!(name(&b), CircuitStateName::Open);
}

#[test]
fn dropped_permit_counts_as_failure() {
    let (b, clock) = breaker(CircuitConfig::default());
    for _ in 0..3 {
        let permit = b.try_acquire().unwrap();
        drop(permit);
    }
    assert_eq!(name(&b), CircuitStateName::Open);
    // A dropped half-open probe re-opens the circuit too.
    clock.advance(secs(10.0));
    {
        let _probe = b.try_acquire().unwrap();
    }
    assert_eq!(b.try_acquire().unwrap_err(), Rejected::Open { retry_in: secs(20.0), cause: OpenCause::ProbeFailed });
}

#[test]
fn stale_permits_do_not_judge_a_later_state() {
    let (b, clock) = breaker(CircuitConfig::default());
    let slow = b.try_acquire().unwrap(); // granted while closed
    fail(&b, 3);
    clock.advance(secs(10.0));
    let probe = b.try_acquire().unwrap();
    // The slow request from before the circuit opened finally fails; that
    // says nothing new and must not re-open the half-open circuit.
    slow.failure();
    assert_eq!(name(&b), CircuitStateName::HalfOpen);
    probe.success();
    assert_eq!(name(&b), CircuitStateName::Closed);
}

#[test]
fn trip_and_reset() {
    let (b, clock) = breaker(CircuitConfig::default());
    b.trip("worker died (browser tab crashed)");
    let snap = b.snapshot();
    assert_eq!(snap.state, CircuitStateName::Open);
    assert_eq!(snap.opened_count, 1);
    assert_eq!(
        b.try_acquire().unwrap_err().to_string(),
        "worker circuit open for another 10.0 s because it was tripped: \
         worker died (browser tab crashed)"
    );
    // Tripping a half-open circuit is a re-open: backoff grows.
    clock.advance(secs(10.0));
    assert_eq!(name(&b), CircuitStateName::HalfOpen);
    b.trip("worker died again");
    assert_eq!(b.snapshot().next_retry_in, Some(secs(20.0)));
    // Reset closes at once and forgets the failures and the backoff.
    b.reset();
    let snap = b.snapshot();
    assert_eq!(snap.state, CircuitStateName::Closed);
    assert_eq!(snap.consecutive_failures, 0);
    assert_eq!(snap.opened_count, 2);
    assert_eq!(snap.last_open_cause, None);
    b.try_acquire().unwrap().success();
    fail(&b, 3);
    assert_eq!(b.snapshot().next_retry_in, Some(secs(10.0)));
}

#[test]
fn record_without_permit() {
    let (b, clock) = breaker(CircuitConfig::default());
    b.record_failure();
    b.record_failure();
    b.record_success();
    b.record_failure();
    b.record_failure();
    assert_eq!(name(&b), CircuitStateName::Closed);
    b.record_failure();
    assert_eq!(name(&b), CircuitStateName::Open);
    b.record_success(); // ignored while open
    assert_eq!(name(&b), CircuitStateName::Open);
    clock.advance(secs(10.0));
    b.record_success(); // a health check passed while half-open
    assert_eq!(name(&b), CircuitStateName::Closed);
}

#[test]
fn snapshot_fields_and_json() {
    let (b, clock) = breaker(CircuitConfig::default());
    let snap = b.snapshot();
    assert_eq!(snap.state, CircuitStateName::Closed);
    assert_eq!(snap.next_retry_in, None);
    assert_eq!(snap.opened_count, 0);
    assert_eq!(snap.open_for, secs(10.0));
    fail(&b, 3);
    clock.advance(secs(4.5));
    let snap = b.snapshot();
    assert_eq!(snap.state, CircuitStateName::Open);
    assert_eq!(snap.consecutive_failures, 3);
    assert_eq!(snap.opened_count, 1);
    assert_eq!(snap.next_retry_in, Some(secs(5.5)));
    assert_eq!(snap.last_open_cause.as_deref(), Some("after 3 consecutive failures"));
    // While open, the next open period (after a failed probe) is doubled.
    assert_eq!(snap.open_for, secs(20.0));
    let json = serde_json::to_value(&snap).unwrap();
    assert_eq!(json["state"], "open");
    assert_eq!(json["next_retry_in"], 5.5);
    assert_eq!(json["opened_count"], 1);
    assert_eq!(snap.state.to_string(), "open");
    clock.advance(secs(5.5));
    let snap = b.snapshot();
    assert_eq!(snap.state.to_string(), "half-open");
    assert_eq!(snap.next_retry_in, None);
}

#[test]
fn concurrent_half_open_grants_exactly_the_probe_count() {
    const PROBES: u32 = 3;
    const THREADS: usize = 32;
    let config = CircuitConfig { half_open_probes: PROBES, success_to_close: PROBES, ..CircuitConfig::default() };
    let (b, clock) = breaker(config);
    fail(&b, 3);
    clock.advance(secs(10.0));
    let barrier = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|_| {
            let b = b.clone();
            let barrier = barrier.clone();
            thread::spawn(move || {
                barrier.wait();
                b.try_acquire().ok()
            })
        })
        .collect();
    let permits: Vec<_> = handles.into_iter().filter_map(|h| h.join().unwrap()).collect();
    assert_eq!(permits.len(), PROBES as usize);
    assert_eq!(b.snapshot().probes_in_flight, PROBES);
    // Permits are Send: finish them on other threads.
    let handles: Vec<_> = permits.into_iter().map(|p| thread::spawn(move || p.success())).collect();
    handles.into_iter().for_each(|h| h.join().unwrap());
    assert_eq!(name(&b), CircuitStateName::Closed);
}

#[test]
fn config_from_file_uses_seconds_and_defaults() {
    let config: CircuitConfig =
        serde_json::from_str(r#"{"open_for": 2.5, "failure_rate": {"rate": 0.25, "min_requests": 8}}"#).unwrap();
    assert_eq!(config.open_for, secs(2.5));
    assert_eq!(config.failure_threshold, 3);
    assert_eq!(config.max_open_for, secs(300.0));
    assert_eq!(config.backoff_factor, 2.0);
    assert_eq!(config.failure_rate, Some(FailureRate { rate: 0.25, min_requests: 8, window: 20 }));
    let empty: CircuitConfig = serde_json::from_str("{}").unwrap();
    assert_eq!(empty, CircuitConfig::default());
    let json = serde_json::to_value(&empty).unwrap();
    assert_eq!(json["open_for"], 10.0);
}

#[test]
fn config_rejects_nonsense_with_the_field_name() {
    for (text, field) in [
        (r#"{"open_for": -1}"#, "open_for"),
        (r#"{"half_open_probes": 0}"#, "half_open_probes"),
        (r#"{"success_to_close": 0}"#, "success_to_close"),
        (r#"{"backoff_factor": 0.5}"#, "backoff_factor"),
        (r#"{"failure_threshold": 0}"#, "failure_threshold"),
        (r#"{"open_for": 60, "max_open_for": 30}"#, "max_open_for"),
        (r#"{"failure_rate": {"rate": 1.5, "min_requests": 5}}"#, "failure_rate.rate"),
        (r#"{"failure_rate": {"rate": 0.5, "min_requests": 30}}"#, "failure_rate.window"),
    ] {
        let err = serde_json::from_str::<CircuitConfig>(text).unwrap_err();
        assert!(err.to_string().contains(&format!("`{field}`")), "{text}: {err}");
    }
    assert!(serde_json::from_str::<CircuitConfig>(r#"{"open_fro": 1}"#).is_err());
}

#[test]
fn nonsense_config_built_in_code_is_made_sane() {
    let config = CircuitConfig {
        half_open_probes: 0,
        success_to_close: 0,
        backoff_factor: f64::NAN,
        max_open_for: Duration::ZERO,
        ..CircuitConfig::default()
    };
    assert!(config.validate().is_err());
    let (b, clock) = breaker(config);
    fail(&b, 3);
    assert_eq!(b.snapshot().next_retry_in, Some(secs(10.0)));
    clock.advance(secs(10.0));
    let p = b.try_acquire().unwrap(); // one probe at least
    assert!(b.try_acquire().is_err());
    p.failure();
    // No backoff (factor made 1), cap raised to open_for.
    assert_eq!(b.snapshot().next_retry_in, Some(secs(10.0)));
}
