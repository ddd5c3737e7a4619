//! A per-worker circuit breaker: closed → open → half-open → closed.
//!
//! The pool keeps one [`CircuitBreaker`] per worker. While the circuit is
//! **closed** every request goes through and outcomes are counted. Enough
//! failures — [`CircuitConfig::failure_threshold`] in a row, or a failure rate
//! over a sliding window ([`CircuitConfig::failure_rate`]) — **open** it: for
//! [`CircuitConfig::open_for`] every [`CircuitBreaker::try_acquire`] is
//! [`Rejected`] with the time left and the cause, so the scheduler places the
//! request elsewhere at once instead of waiting on a sick worker. When that
//! time is up the circuit is **half-open**: at most
//! [`CircuitConfig::half_open_probes`] trial requests run at the same time;
//! [`CircuitConfig::success_to_close`] successes close it again, and one
//! failure re-opens it for longer (the open time is multiplied by
//! [`CircuitConfig::backoff_factor`] on each re-open without a close in
//! between, up to [`CircuitConfig::max_open_for`]).
//!
//! Time comes from an injected [`Clock`]: [`SystemClock`] in production,
//! [`ManualClock`] in tests and simulations, so every transition can be tested
//! without sleeping.
//!
//! A request is accounted through the [`Permit`] that `try_acquire` returns:
//! call [`Permit::success`] or [`Permit::failure`] when the worker answered.
//! **A permit dropped without a verdict counts as a failure** (the request was
//! lost: a panic, a dropped future, a forgotten branch); call
//! [`Permit::cancel`] when the request never reached the worker and says
//! nothing about its health. Outcomes seen without a permit (a health-check
//! ping, say) go to [`CircuitBreaker::record_success`] and
//! [`CircuitBreaker::record_failure`].
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use ipfs_accelerate_pool::circuit::{CircuitBreaker, CircuitConfig, ManualClock};
//!
//! let clock = Arc::new(ManualClock::new());
//! let breaker = CircuitBreaker::new(CircuitConfig::default(), clock.clone());
//! for _ in 0..3 {
//!     breaker.try_acquire().unwrap().failure();
//! }
//! let rejected = breaker.try_acquire().unwrap_err();
//! assert_eq!(
//!     rejected.to_string(),
//!     "worker circuit open for another 10.0 s after 3 consecutive failures"
//! );
//! clock.advance(Duration::from_secs(10));
//! breaker.try_acquire().unwrap().success(); // the half-open probe succeeds
//! assert_eq!(breaker.snapshot().state.to_string(), "closed");
//! ```
//!
//! The breaker is thread-safe (one mutex around a small state, held only for a
//! few comparisons) and never panics, even if a thread panicked while holding
//! its lock.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize, Serializer};

// ---------------------------------------------------------------------------
// Clocks
// ---------------------------------------------------------------------------

/// A source of monotonic time for circuit breakers.
pub trait Clock: Send + Sync {
    /// The current instant.
    fn now(&self) -> Instant;
}

/// The real monotonic clock ([`Instant::now`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// The test and simulation clock: time stands still until
/// [`advance`](ManualClock::advance) moves it.
///
/// Share it through an `Arc` between the breaker (as `Arc<dyn Clock>`) and the
/// test that drives it.
#[derive(Debug)]
pub struct ManualClock {
    start: Instant,
    elapsed: Mutex<Duration>,
}

impl ManualClock {
    /// A clock standing at the moment it was created.
    pub fn new() -> Self {
        ManualClock { start: Instant::now(), elapsed: Mutex::new(Duration::ZERO) }
    }

    /// Moves time forward by `by`.
    pub fn advance(&self, by: Duration) {
        let mut elapsed = self.elapsed.lock().unwrap_or_else(|e| e.into_inner());
        *elapsed = elapsed.saturating_add(by);
    }

    /// How far the clock has been advanced since it was created.
    pub fn elapsed(&self) -> Duration {
        *self.elapsed.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        let elapsed = self.elapsed();
        // Only an absurd advance (centuries) can overflow; stay at the latest
        // representable point instead of panicking.
        self.start.checked_add(elapsed).unwrap_or(self.start)
    }
}

// ---------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------

/// Thresholds of a circuit breaker, usually read from the pool config file.
///
/// In TOML every duration is a number of seconds (fractions allowed) and every
/// field may be left out to keep its default:
///
/// ```toml
/// [circuit]
/// failure_threshold = 3      # consecutive failures that open it (0: rule off)
/// open_for = 10.0            # seconds open before the first half-open probe
/// half_open_probes = 1       # trial requests allowed at once when half-open
/// success_to_close = 1       # trial successes needed to close
/// backoff_factor = 2.0       # open_for multiplier on each re-open
/// max_open_for = 300.0       # cap on the open time, in seconds
/// failure_rate = { rate = 0.5, min_requests = 10, window = 20 }  # optional
/// ```
///
/// Deserializing checks the values ([`CircuitConfig::validate`]); a config
/// built in code and never validated is made sane by
/// [`CircuitBreaker::new`] (zero counts become one, a factor below one becomes
/// one, and so on).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "CircuitConfigFile")]
pub struct CircuitConfig {
    /// Consecutive failures (while closed) that open the circuit; 0 turns
    /// this rule off.
    pub failure_threshold: u32,
    /// Also open when the failure rate over the last outcomes reaches a
    /// threshold; `None` (the default) turns this rule off.
    pub failure_rate: Option<FailureRate>,
    /// How long the circuit stays open before it lets a trial request
    /// through (half-open). Default 10 s.
    #[serde(serialize_with = "serialize_secs")]
    pub open_for: Duration,
    /// How many trial requests may be in flight at once while half-open.
    /// Default 1.
    pub half_open_probes: u32,
    /// Successful trial requests needed to close a half-open circuit.
    /// Default 1.
    pub success_to_close: u32,
    /// Each re-open without a close in between multiplies the open time by
    /// this factor (1.0: no backoff). Default 2.
    pub backoff_factor: f64,
    /// The longest the circuit stays open, whatever the backoff. Default
    /// 5 minutes.
    #[serde(serialize_with = "serialize_secs")]
    pub max_open_for: Duration,
}

/// The failure-rate rule: open when at least `min_requests` outcomes are in
/// the window of the last `window` outcomes and the fraction of failures
/// among them is `rate` or more.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailureRate {
    /// Failure fraction, in (0, 1], that opens the circuit.
    pub rate: f64,
    /// Outcomes needed in the window before the rate is judged.
    pub min_requests: u32,
    /// How many of the latest outcomes the window keeps (at least
    /// `min_requests`). Default 20.
    #[serde(default = "default_window")]
    pub window: u32,
}

fn default_window() -> u32 {
    20
}

impl Default for CircuitConfig {
    fn default() -> Self {
        CircuitConfig {
            failure_threshold: 3,
            failure_rate: None,
            open_for: Duration::from_secs(10),
            half_open_probes: 1,
            success_to_close: 1,
            backoff_factor: 2.0,
            max_open_for: Duration::from_secs(300),
        }
    }
}

/// A circuit-breaker setting that makes no sense.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid circuit breaker setting `{field}`: {problem}")]
pub struct CircuitConfigError {
    /// The offending field, as spelled in the config file.
    pub field: &'static str,
    /// What is wrong with it and what is allowed.
    pub problem: String,
}

fn config_error(field: &'static str, problem: impl Into<String>) -> CircuitConfigError {
    CircuitConfigError { field, problem: problem.into() }
}

impl CircuitConfig {
    /// Checks that the settings are usable, naming the first bad one.
    pub fn validate(&self) -> Result<(), CircuitConfigError> {
        if self.failure_threshold == 0 && self.failure_rate.is_none() {
            return Err(config_error(
                "failure_threshold",
                "is 0 and no failure_rate is set, so the circuit could never open",
            ));
        }
        if let Some(fr) = &self.failure_rate {
            if !(fr.rate > 0.0 && fr.rate <= 1.0) {
                return Err(config_error("failure_rate.rate", format!("{} is not a fraction in (0, 1]", fr.rate)));
            }
            if fr.min_requests == 0 {
                return Err(config_error("failure_rate.min_requests", "must be at least 1"));
            }
            if fr.window < fr.min_requests {
                return Err(config_error(
                    "failure_rate.window",
                    format!(
                        "{} is smaller than min_requests ({}), so the rate would never be judged",
                        fr.window, fr.min_requests
                    ),
                ));
            }
        }
        if self.half_open_probes == 0 {
            return Err(config_error("half_open_probes", "must be at least 1"));
        }
        if self.success_to_close == 0 {
            return Err(config_error("success_to_close", "must be at least 1"));
        }
        if !(self.backoff_factor.is_finite() && self.backoff_factor >= 1.0) {
            return Err(config_error(
                "backoff_factor",
                format!("{} must be a finite number >= 1", self.backoff_factor),
            ));
        }
        if self.max_open_for < self.open_for {
            return Err(config_error(
                "max_open_for",
                format!(
                    "{:.1} s is shorter than open_for ({:.1} s)",
                    self.max_open_for.as_secs_f64(),
                    self.open_for.as_secs_f64()
                ),
            ));
        }
        Ok(())
    }

    /// The same settings with every nonsensical value replaced by the
    /// nearest sane one (what [`CircuitBreaker::new`] runs on).
    fn sanitized(mut self) -> Self {
        if let Some(fr) = &mut self.failure_rate {
            if fr.rate.is_nan() || fr.rate <= 0.0 {
                fr.rate = f64::MIN_POSITIVE;
            }
            fr.rate = fr.rate.min(1.0);
            fr.min_requests = fr.min_requests.max(1);
            fr.window = fr.window.max(fr.min_requests);
        }
        self.half_open_probes = self.half_open_probes.max(1);
        self.success_to_close = self.success_to_close.max(1);
        if !(self.backoff_factor.is_finite() && self.backoff_factor >= 1.0) {
            self.backoff_factor = 1.0;
        }
        self.max_open_for = self.max_open_for.max(self.open_for);
        self
    }
}

/// The config-file form: every field optional, durations in seconds.
#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
struct CircuitConfigFile {
    failure_threshold: u32,
    failure_rate: Option<FailureRate>,
    open_for: f64,
    half_open_probes: u32,
    success_to_close: u32,
    backoff_factor: f64,
    max_open_for: f64,
}

impl Default for CircuitConfigFile {
    fn default() -> Self {
        let d = CircuitConfig::default();
        CircuitConfigFile {
            failure_threshold: d.failure_threshold,
            failure_rate: d.failure_rate,
            open_for: d.open_for.as_secs_f64(),
            half_open_probes: d.half_open_probes,
            success_to_close: d.success_to_close,
            backoff_factor: d.backoff_factor,
            max_open_for: d.max_open_for.as_secs_f64(),
        }
    }
}

fn secs(field: &'static str, value: f64) -> Result<Duration, CircuitConfigError> {
    Duration::try_from_secs_f64(value).map_err(|_| {
        config_error(field, format!("{value} is not a usable number of seconds (it must be finite and >= 0)"))
    })
}

impl TryFrom<CircuitConfigFile> for CircuitConfig {
    type Error = CircuitConfigError;

    fn try_from(file: CircuitConfigFile) -> Result<Self, Self::Error> {
        let config = CircuitConfig {
            failure_threshold: file.failure_threshold,
            failure_rate: file.failure_rate,
            open_for: secs("open_for", file.open_for)?,
            half_open_probes: file.half_open_probes,
            success_to_close: file.success_to_close,
            backoff_factor: file.backoff_factor,
            max_open_for: secs("max_open_for", file.max_open_for)?,
        };
        config.validate()?;
        Ok(config)
    }
}

fn serialize_secs<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

fn serialize_opt_secs<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_some(&d.as_secs_f64()),
        None => s.serialize_none(),
    }
}

// ---------------------------------------------------------------------------
// States, causes, rejections
// ---------------------------------------------------------------------------

/// Where a circuit stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitState {
    /// Requests flow; failures are counted.
    Closed,
    /// Requests are rejected until `until`.
    Open {
        /// When the circuit turns half-open.
        until: Instant,
    },
    /// A limited number of trial requests decide whether to close or re-open.
    HalfOpen,
}

impl CircuitState {
    /// The state without its data, for display.
    pub fn name(&self) -> CircuitStateName {
        match self {
            CircuitState::Closed => CircuitStateName::Closed,
            CircuitState::Open { .. } => CircuitStateName::Open,
            CircuitState::HalfOpen => CircuitStateName::HalfOpen,
        }
    }
}

/// The name of a circuit state: `closed`, `open` or `half-open`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CircuitStateName {
    /// See [`CircuitState::Closed`].
    Closed,
    /// See [`CircuitState::Open`].
    Open,
    /// See [`CircuitState::HalfOpen`].
    HalfOpen,
}

impl fmt::Display for CircuitStateName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CircuitStateName::Closed => "closed",
            CircuitStateName::Open => "open",
            CircuitStateName::HalfOpen => "half-open",
        })
    }
}

/// Why a circuit opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenCause {
    /// This many failures in a row while closed.
    ConsecutiveFailures(u32),
    /// `failures` of the last `requests` outcomes failed.
    FailureRate {
        /// Failures in the window.
        failures: u32,
        /// Outcomes in the window.
        requests: u32,
    },
    /// A trial request failed while half-open.
    ProbeFailed,
    /// Forced open by [`CircuitBreaker::trip`], with the caller's reason.
    Tripped(String),
}

impl fmt::Display for OpenCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenCause::ConsecutiveFailures(1) => write!(f, "after 1 failure"),
            OpenCause::ConsecutiveFailures(n) => write!(f, "after {n} consecutive failures"),
            OpenCause::FailureRate { failures, requests } => {
                write!(f, "after {failures} of the last {requests} requests failed")
            }
            OpenCause::ProbeFailed => write!(f, "after a trial request failed while half-open"),
            OpenCause::Tripped(reason) => write!(f, "because it was tripped: {reason}"),
        }
    }
}

/// Why [`CircuitBreaker::try_acquire`] refused a request, and when to retry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    /// The circuit is open.
    #[error("worker circuit open for another {:.1} s {cause}", retry_in.as_secs_f64())]
    Open {
        /// Time left until the circuit turns half-open.
        retry_in: Duration,
        /// Why it opened.
        cause: OpenCause,
    },
    /// The circuit is half-open and all its trial slots are taken.
    #[error(
        "worker circuit half-open: {in_flight} trial request(s) already in flight; \
         retry when they finish"
    )]
    HalfOpenBusy {
        /// Trial requests running now.
        in_flight: u32,
    },
}

impl Rejected {
    /// How long until a retry may be accepted: the open time left, or `None`
    /// when it depends on trial requests in flight.
    pub fn retry_in(&self) -> Option<Duration> {
        match self {
            Rejected::Open { retry_in, .. } => Some(*retry_in),
            Rejected::HalfOpenBusy { .. } => None,
        }
    }
}

/// A point-in-time view of a breaker, for `pool status` (serializes with
/// durations in seconds).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CircuitSnapshot {
    /// `closed`, `open` or `half-open`.
    pub state: CircuitStateName,
    /// Failures in a row since the last success (or close).
    pub consecutive_failures: u32,
    /// How many times the circuit has opened since it was created.
    pub opened_count: u64,
    /// Time until an open circuit turns half-open; `None` unless open.
    #[serde(serialize_with = "serialize_opt_secs")]
    pub next_retry_in: Option<Duration>,
    /// Why the circuit last opened, as a phrase ("after 3 consecutive
    /// failures"); `None` if it never opened or was reset.
    pub last_open_cause: Option<String>,
    /// How long the next open period lasts (grows with backoff).
    #[serde(serialize_with = "serialize_secs")]
    pub open_for: Duration,
    /// Trial requests in flight (half-open only).
    pub probes_in_flight: u32,
    /// Failures among the outcomes in the failure-rate window.
    pub recent_failures: u32,
    /// Outcomes in the failure-rate window (0 without a failure-rate rule).
    pub recent_requests: u32,
}

// ---------------------------------------------------------------------------
// The breaker
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Closed,
    Open { until: Instant },
    HalfOpen { in_flight: u32, successes: u32 },
}

#[derive(Debug)]
struct Inner {
    phase: Phase,
    /// Bumped on every transition; a permit's verdict counts only in the
    /// epoch it was issued in.
    epoch: u64,
    consecutive_failures: u32,
    /// Latest outcomes while closed, `true` = failure (failure-rate rule).
    window: VecDeque<bool>,
    opened_count: u64,
    /// Re-opens since the last close: the backoff exponent.
    reopens: u32,
    last_cause: Option<OpenCause>,
}

struct Shared {
    config: CircuitConfig,
    clock: Arc<dyn Clock>,
    inner: Mutex<Inner>,
}

/// A circuit breaker for one worker. Cheap to clone; clones share the state.
#[derive(Clone)]
pub struct CircuitBreaker {
    shared: Arc<Shared>,
}

impl fmt::Debug for CircuitBreaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("config", &self.shared.config)
            .field("snapshot", &self.snapshot())
            .finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Success,
    Failure,
    Cancel,
}

impl CircuitBreaker {
    /// A closed breaker. Nonsensical settings are replaced by the nearest
    /// sane ones (see [`CircuitConfig`]); call [`CircuitConfig::validate`]
    /// first to report them instead.
    pub fn new(config: CircuitConfig, clock: Arc<dyn Clock>) -> Self {
        CircuitBreaker {
            shared: Arc::new(Shared {
                config: config.sanitized(),
                clock,
                inner: Mutex::new(Inner {
                    phase: Phase::Closed,
                    epoch: 0,
                    consecutive_failures: 0,
                    window: VecDeque::new(),
                    opened_count: 0,
                    reopens: 0,
                    last_cause: None,
                }),
            }),
        }
    }

    /// A closed breaker on the real clock.
    pub fn with_system_clock(config: CircuitConfig) -> Self {
        Self::new(config, Arc::new(SystemClock))
    }

    /// The settings in force.
    pub fn config(&self) -> &CircuitConfig {
        &self.shared.config
    }

    /// The current state (an open circuit whose time is up reads half-open).
    pub fn state(&self) -> CircuitState {
        let (inner, _) = self.lock();
        match inner.phase {
            Phase::Closed => CircuitState::Closed,
            Phase::Open { until } => CircuitState::Open { until },
            Phase::HalfOpen { .. } => CircuitState::HalfOpen,
        }
    }

    /// Asks to send one request to the worker.
    ///
    /// Closed: always granted. Open: rejected with the time left. Half-open:
    /// granted while fewer than [`CircuitConfig::half_open_probes`] trial
    /// requests are in flight. Report the outcome through the returned
    /// [`Permit`]; dropping it without a verdict counts as a failure.
    pub fn try_acquire(&self) -> Result<Permit, Rejected> {
        let (mut inner, now) = self.lock();
        match &mut inner.phase {
            Phase::Closed => {}
            Phase::Open { until } => {
                return Err(Rejected::Open {
                    retry_in: until.saturating_duration_since(now),
                    cause: inner.last_cause.clone().unwrap_or(OpenCause::Tripped("unknown".into())),
                });
            }
            Phase::HalfOpen { in_flight, .. } => {
                if *in_flight >= self.shared.config.half_open_probes {
                    return Err(Rejected::HalfOpenBusy { in_flight: *in_flight });
                }
                *in_flight += 1;
            }
        }
        Ok(Permit { shared: Arc::clone(&self.shared), epoch: inner.epoch, done: false })
    }

    /// Records a success observed without a permit (a health-check answer,
    /// say). Closed: clears the failure streak. Half-open: counts toward
    /// closing. Open: ignored.
    pub fn record_success(&self) {
        let (mut inner, now) = self.lock();
        inner.outcome(&self.shared.config, now, Verdict::Success, false);
    }

    /// Records a failure observed without a permit (a missed health check,
    /// say). Closed: may open the circuit. Half-open: re-opens it, with
    /// backoff. Open: ignored.
    pub fn record_failure(&self) {
        let (mut inner, now) = self.lock();
        inner.outcome(&self.shared.config, now, Verdict::Failure, false);
    }

    /// Forces the circuit open now (the worker died, was disconnected, sent
    /// garbage). From half-open this counts as a re-open (backoff grows);
    /// from open it restarts the open time.
    pub fn trip(&self, reason: impl Into<String>) {
        let (mut inner, now) = self.lock();
        let reopen = matches!(inner.phase, Phase::HalfOpen { .. });
        inner.open(&self.shared.config, now, OpenCause::Tripped(reason.into()), reopen);
    }

    /// Closes the circuit and forgets failures and backoff (the worker was
    /// restarted or replaced). `opened_count` is kept: it is history.
    pub fn reset(&self) {
        let (mut inner, _) = self.lock();
        inner.close();
        inner.last_cause = None;
    }

    /// A point-in-time view for `pool status`.
    pub fn snapshot(&self) -> CircuitSnapshot {
        let (inner, now) = self.lock();
        let config = &self.shared.config;
        let (next_retry_in, probes_in_flight) = match inner.phase {
            Phase::Closed => (None, 0),
            Phase::Open { until } => (Some(until.saturating_duration_since(now)), 0),
            Phase::HalfOpen { in_flight, .. } => (None, in_flight),
        };
        let recent_failures = inner.window.iter().filter(|f| **f).count();
        CircuitSnapshot {
            state: match inner.phase {
                Phase::Closed => CircuitStateName::Closed,
                Phase::Open { .. } => CircuitStateName::Open,
                Phase::HalfOpen { .. } => CircuitStateName::HalfOpen,
            },
            consecutive_failures: inner.consecutive_failures,
            opened_count: inner.opened_count,
            next_retry_in,
            last_open_cause: inner.last_cause.as_ref().map(|c| c.to_string()),
            open_for: open_duration(config, inner.next_reopens()),
            probes_in_flight,
            recent_failures: u32::try_from(recent_failures).unwrap_or(u32::MAX),
            recent_requests: u32::try_from(inner.window.len()).unwrap_or(u32::MAX),
        }
    }

    /// Locks the state and brings it up to date with the clock (an open
    /// circuit whose time is up becomes half-open).
    fn lock(&self) -> (MutexGuard<'_, Inner>, Instant) {
        lock_shared(&self.shared)
    }
}

fn lock_shared(shared: &Shared) -> (MutexGuard<'_, Inner>, Instant) {
    let mut inner = shared.inner.lock().unwrap_or_else(|e| e.into_inner());
    let now = shared.clock.now();
    if matches!(inner.phase, Phase::Open { until } if now >= until) {
        inner.phase = Phase::HalfOpen { in_flight: 0, successes: 0 };
        inner.epoch = inner.epoch.wrapping_add(1);
    }
    (inner, now)
}

/// `open_for * backoff_factor^reopens`, capped at `max_open_for`.
fn open_duration(config: &CircuitConfig, reopens: u32) -> Duration {
    let factor = config.backoff_factor.powi(i32::try_from(reopens).unwrap_or(i32::MAX));
    let secs = config.open_for.as_secs_f64() * factor;
    let max = config.max_open_for;
    if secs.is_finite() && secs < max.as_secs_f64() {
        Duration::try_from_secs_f64(secs).unwrap_or(max)
    } else {
        max
    }
}

impl Inner {
    /// The backoff exponent the next open will use, seen from now.
    fn next_reopens(&self) -> u32 {
        match self.phase {
            Phase::Closed => 0,
            // An open or half-open circuit re-opens one step further.
            Phase::Open { .. } | Phase::HalfOpen { .. } => self.reopens.saturating_add(1),
        }
    }

    fn outcome(&mut self, config: &CircuitConfig, now: Instant, verdict: Verdict, probe: bool) {
        match &mut self.phase {
            Phase::Open { .. } => {}
            Phase::Closed => match verdict {
                Verdict::Cancel => {}
                Verdict::Success => {
                    self.consecutive_failures = 0;
                    self.push_window(config, false);
                }
                Verdict::Failure => {
                    self.consecutive_failures = self.consecutive_failures.saturating_add(1);
                    self.push_window(config, true);
                    if config.failure_threshold > 0 && self.consecutive_failures >= config.failure_threshold {
                        let cause = OpenCause::ConsecutiveFailures(self.consecutive_failures);
                        self.open(config, now, cause, false);
                    } else if let Some(cause) = self.rate_exceeded(config) {
                        self.open(config, now, cause, false);
                    }
                }
            },
            Phase::HalfOpen { in_flight, successes } => {
                if probe {
                    *in_flight = in_flight.saturating_sub(1);
                }
                match verdict {
                    Verdict::Cancel => {}
                    Verdict::Success => {
                        self.consecutive_failures = 0;
                        *successes = successes.saturating_add(1);
                        if *successes >= config.success_to_close {
                            self.close();
                        }
                    }
                    Verdict::Failure => {
                        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
                        self.open(config, now, OpenCause::ProbeFailed, true);
                    }
                }
            }
        }
    }

    fn push_window(&mut self, config: &CircuitConfig, failed: bool) {
        if let Some(fr) = &config.failure_rate {
            self.window.push_back(failed);
            while self.window.len() > fr.window as usize {
                self.window.pop_front();
            }
        }
    }

    fn rate_exceeded(&self, config: &CircuitConfig) -> Option<OpenCause> {
        let fr = config.failure_rate.as_ref()?;
        let requests = self.window.len();
        if requests < fr.min_requests as usize {
            return None;
        }
        let failures = self.window.iter().filter(|f| **f).count();
        if failures as f64 >= fr.rate * requests as f64 {
            Some(OpenCause::FailureRate {
                failures: u32::try_from(failures).unwrap_or(u32::MAX),
                requests: u32::try_from(requests).unwrap_or(u32::MAX),
            })
        } else {
            None
        }
    }

    fn open(&mut self, config: &CircuitConfig, now: Instant, cause: OpenCause, reopen: bool) {
        if reopen {
            self.reopens = self.reopens.saturating_add(1);
        }
        let duration = open_duration(config, self.reopens);
        let until = now.checked_add(duration).or_else(|| now.checked_add(Duration::from_secs(86_400))).unwrap_or(now);
        tracing::debug!(%cause, open_for_s = duration.as_secs_f64(), "worker circuit opened");
        self.phase = Phase::Open { until };
        self.epoch = self.epoch.wrapping_add(1);
        self.opened_count = self.opened_count.saturating_add(1);
        self.last_cause = Some(cause);
        self.window.clear();
    }

    fn close(&mut self) {
        self.phase = Phase::Closed;
        self.epoch = self.epoch.wrapping_add(1);
        self.consecutive_failures = 0;
        self.reopens = 0;
        self.window.clear();
    }
}

// ---------------------------------------------------------------------------
// Permits
// ---------------------------------------------------------------------------

/// Leave to send one request, granted by [`CircuitBreaker::try_acquire`].
///
/// Consume it with [`success`](Permit::success),
/// [`failure`](Permit::failure) or [`cancel`](Permit::cancel). **Dropping it
/// without a verdict counts as a failure.** A verdict arriving after the
/// circuit changed state since the permit was granted (it opened, turned
/// half-open, closed or was reset) is ignored: it describes a worker state
/// that is already judged.
#[must_use = "report the outcome with success() or failure(); dropping a permit counts as a failure"]
pub struct Permit {
    shared: Arc<Shared>,
    epoch: u64,
    done: bool,
}

impl fmt::Debug for Permit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit").field("epoch", &self.epoch).finish()
    }
}

impl Permit {
    /// The worker answered correctly.
    pub fn success(mut self) {
        self.finish(Verdict::Success);
    }

    /// The worker failed the request (error, timeout, garbage, death).
    pub fn failure(mut self) {
        self.finish(Verdict::Failure);
    }

    /// The request never reached the worker (the caller gave up first, or
    /// another worker took it); it says nothing about the worker's health.
    /// A half-open trial slot is freed.
    pub fn cancel(mut self) {
        self.finish(Verdict::Cancel);
    }

    fn finish(&mut self, verdict: Verdict) {
        if self.done {
            return;
        }
        self.done = true;
        let (mut inner, now) = lock_shared(&self.shared);
        if inner.epoch == self.epoch {
            let probe = matches!(inner.phase, Phase::HalfOpen { .. });
            inner.outcome(&self.shared.config, now, verdict, probe);
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.finish(Verdict::Failure);
    }
}
