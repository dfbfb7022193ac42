//! The load driver: closed loop (N clients as fast as they can) or open loop (a fixed
//! arrival rate, latency measured from each request's intended start so that a stalled
//! server cannot hide behind the load generator: no coordinated omission), per-kind
//! HdrHistograms merged at the end, and a progress bar.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

/// Highest latency recorded, in microseconds (longer ones are clamped to it).
const LATENCY_US_MAX: u64 = 120_000_000;
/// Significant digits of the latency histograms.
const LATENCY_DIGITS: u8 = 2;
/// Recorders the closed-loop clients of a phase share.
const RECORDER_SHARDS: usize = 8;

/// What one request was.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OpKind {
    /// A hold (`POST /booking/hold`, or the SDK's hold).
    Hold,
    /// A confirm of a hold just made (`POST /booking/confirm`, or the SDK's confirm).
    Confirm,
    /// An availability read (`GET /availability`).
    Read,
}

impl OpKind {
    /// The kind's name in reports: `hold`, `confirm` or `read`.
    pub fn as_str(self) -> &'static str {
        match self {
            OpKind::Hold => "hold",
            OpKind::Confirm => "confirm",
            OpKind::Read => "read",
        }
    }
}

/// How a request ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Class {
    /// The answer the request asked for (201 held, 200 confirmed or read).
    Ok,
    /// A domain refusal that is part of the workload (409: the seat or the pool was taken).
    Conflict,
    /// Anything else, by its code (`http_503_OVERLOADED`, `transport`, ...).
    Error(String),
}

/// The numbers of one kind of request.
pub struct KindStats {
    /// Latency of every recorded request, in microseconds: 1 µs to 120 s with two
    /// significant digits (within 1 %), longer ones clamped to 120 s. (Three digits, and a
    /// histogram per client, made a thousand histograms of 136 KiB each: every record was
    /// a cache miss, and recording took 8 % of the benchmark process's CPU beside the
    /// nodes.)
    pub latency_us: Histogram<u64>,
    /// Requests that got the answer they asked for ([`Class::Ok`]).
    pub ok: u64,
    /// Requests refused with `409` ([`Class::Conflict`]).
    pub conflicts: u64,
    /// The other requests, by their [`Class::Error`] name.
    pub errors: BTreeMap<String, u64>,
}

impl KindStats {
    fn new() -> KindStats {
        KindStats {
            latency_us: Histogram::new_with_bounds(1, LATENCY_US_MAX, LATENCY_DIGITS)
                .expect("valid bounds"),
            ok: 0,
            conflicts: 0,
            errors: BTreeMap::new(),
        }
    }

    fn merge(&mut self, other: &KindStats) {
        self.latency_us.add(&other.latency_us).expect("same bounds");
        self.ok += other.ok;
        self.conflicts += other.conflicts;
        for (code, count) in &other.errors {
            *self.errors.entry(code.clone()).or_default() += count;
        }
    }

    /// Every recorded request: ok, conflicts and errors.
    pub fn count(&self) -> u64 {
        self.ok + self.conflicts + self.errors.values().sum::<u64>()
    }
}

/// What a client records; merged into the run's totals when it stops.
#[derive(Default)]
pub struct Recorder {
    /// The figures of each kind of request recorded so far.
    pub kinds: BTreeMap<OpKind, KindStats>,
}

impl Recorder {
    /// Records one request that took `latency` (from its intended start in open loop).
    pub fn record(&mut self, kind: OpKind, latency: Duration, class: Class) {
        let stats = self.kinds.entry(kind).or_insert_with(KindStats::new);
        let micros = (latency.as_micros() as u64).clamp(1, LATENCY_US_MAX);
        stats
            .latency_us
            .record(micros)
            .expect("clamped into bounds");
        match class {
            Class::Ok => stats.ok += 1,
            Class::Conflict => stats.conflicts += 1,
            Class::Error(code) => *stats.errors.entry(code).or_default() += 1,
        }
    }

    fn merge(&mut self, other: &Recorder) {
        for (kind, stats) in &other.kinds {
            self.kinds
                .entry(*kind)
                .or_insert_with(KindStats::new)
                .merge(stats);
        }
    }
}

/// How load is offered.
#[derive(Clone, Copy, Debug)]
pub enum Mode {
    /// `clients` loops, each sending its next request when the last one is answered.
    Closed {
        /// Client loops running at once.
        clients: usize,
    },
    /// Requests start at `rate` per second whatever the answers do, at most `in_flight_max`
    /// at once (a request that waits for a slot counts its wait as latency).
    Open {
        /// Requests started per second; a rate below 0.001 counts as 0.001.
        rate: f64,
        /// Most requests under way at once; also how many client indexes the requests are
        /// spread over. Must be at least 1.
        in_flight_max: usize,
    },
}

/// One measured phase.
pub struct Phase {
    /// Run first, not recorded (zero: recording from the start).
    pub warmup: Duration,
    /// Measured, after the warm-up.
    pub duration: Duration,
    /// Closed or open loop.
    pub mode: Mode,
    /// Whether to draw a progress bar (on stderr).
    pub progress: bool,
    /// The phase's name on the progress bar.
    pub label: String,
}

/// Shared by every client of a phase.
pub struct Run {
    recording: AtomicBool,
    stopping: AtomicBool,
    completed: AtomicU64,
    totals: Mutex<Recorder>,
}

impl Run {
    /// Whether measurements count yet (the warm-up is over).
    pub fn recording(&self) -> bool {
        self.recording.load(Ordering::Relaxed)
    }

    fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
    }

    /// Counts a finished request for the progress bar.
    pub fn tick(&self) {
        self.completed.fetch_add(1, Ordering::Relaxed);
    }
}

/// A workload: `step` runs one unit of work for client `client` (a hold, a hold and its
/// confirm, a read), recording every request it makes, with `started` as the time the
/// unit was meant to begin.
pub trait Workload: Send + Sync + 'static {
    /// Runs one unit of work: the `sequence`th of `client` in closed loop, the `sequence`th
    /// of the phase in open loop. It records each request in `recorder` only while
    /// [`Run::recording`], with its latency measured from `started`, and counts each
    /// finished request with [`Run::tick`].
    fn step(
        self: Arc<Self>,
        client: usize,
        sequence: u64,
        started: Instant,
        recorder: Arc<Mutex<Recorder>>,
        run: Arc<Run>,
    ) -> impl Future<Output = ()> + Send;
}

/// The phase's totals and how long it measured.
pub struct PhaseResult {
    /// Every client's figures, merged.
    pub recorder: Recorder,
    /// From the end of the warm-up to the stop. Requests under way at the stop still
    /// finish and are recorded.
    pub measured: Duration,
}

/// Runs `workload` for the phase: warm-up (not recorded), then the measured duration.
pub async fn drive<W: Workload>(workload: Arc<W>, phase: &Phase) -> PhaseResult {
    let run = Arc::new(Run {
        recording: AtomicBool::new(phase.warmup.is_zero()),
        stopping: AtomicBool::new(false),
        completed: AtomicU64::new(0),
        totals: Mutex::new(Recorder::default()),
    });
    let bar = progress_bar(phase);
    // Closed-loop clients share a few recorders (client i the (i mod n)th): a recorder
    // per client made a thousand histograms, and every record a cache miss.
    let shards: Vec<Arc<Mutex<Recorder>>> = (0..RECORDER_SHARDS)
        .map(|_| Arc::new(Mutex::new(Recorder::default())))
        .collect();
    let tasks = match phase.mode {
        Mode::Closed { clients } => (0..clients)
            .map(|client| {
                let recorder = shards[client % RECORDER_SHARDS].clone();
                tokio::spawn(closed_client(
                    workload.clone(),
                    client,
                    recorder,
                    run.clone(),
                ))
            })
            .collect::<Vec<_>>(),
        Mode::Open {
            rate,
            in_flight_max,
        } => vec![tokio::spawn(open_dispatcher(
            workload.clone(),
            rate,
            in_flight_max,
            run.clone(),
        ))],
    };

    let total = phase.warmup + phase.duration;
    let begun = Instant::now();
    let mut measure_start = begun;
    let mut last = (begun, 0u64);
    while begun.elapsed() < total {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if !run.recording() && begun.elapsed() >= phase.warmup {
            run.recording.store(true, Ordering::Relaxed);
            measure_start = Instant::now();
        }
        let completed = run.completed.load(Ordering::Relaxed);
        let now = Instant::now();
        let rate = (completed - last.1) as f64 / (now - last.0).as_secs_f64().max(1e-9);
        last = (now, completed);
        bar.set_position(begun.elapsed().as_millis().min(total.as_millis()) as u64);
        bar.set_message(format!(
            "{} {:>9.0} req/s{}",
            phase.label,
            rate,
            if run.recording() { "" } else { " (warm-up)" }
        ));
    }
    run.stopping.store(true, Ordering::Relaxed);
    let measured = measure_start.elapsed();
    // Requests under way finish (bounded by the client timeout) and are recorded.
    for task in tasks {
        let _ = task.await;
    }
    for shard in &shards {
        merge_into_totals(shard, &run);
    }
    bar.finish_and_clear();
    let recorder = std::mem::take(&mut *run.totals.lock().expect("totals lock"));
    PhaseResult { recorder, measured }
}

fn progress_bar(phase: &Phase) -> ProgressBar {
    let total = (phase.warmup + phase.duration).as_millis() as u64;
    if !phase.progress {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{elapsed:>4} [{bar:30}] {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar
}

async fn closed_client<W: Workload>(
    workload: Arc<W>,
    client: usize,
    recorder: Arc<Mutex<Recorder>>,
    run: Arc<Run>,
) {
    let mut sequence = 0;
    while !run.stopping() {
        workload
            .clone()
            .step(
                client,
                sequence,
                Instant::now(),
                recorder.clone(),
                run.clone(),
            )
            .await;
        sequence += 1;
    }
}

async fn open_dispatcher<W: Workload>(
    workload: Arc<W>,
    rate: f64,
    in_flight_max: usize,
    run: Arc<Run>,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(in_flight_max.max(1)));
    let interval = Duration::from_secs_f64(1.0 / rate.max(0.001));
    let begun = Instant::now();
    let recorder = Arc::new(Mutex::new(Recorder::default()));
    let mut sequence: u64 = 0;
    while !run.stopping() {
        let intended = begun + interval.mul_f64(sequence as f64);
        let now = Instant::now();
        if intended > now {
            tokio::time::sleep(intended - now).await;
        }
        let Ok(slot) = slots.clone().acquire_owned().await else {
            break;
        };
        let task = workload.clone().step(
            (sequence % in_flight_max as u64) as usize,
            sequence,
            intended,
            recorder.clone(),
            run.clone(),
        );
        tokio::spawn(async move {
            task.await;
            drop(slot);
        });
        sequence += 1;
    }
    // Wait for the requests under way.
    let _ = slots.acquire_many(in_flight_max.max(1) as u32).await;
    merge_into_totals(&recorder, &run);
}

fn merge_into_totals(recorder: &Mutex<Recorder>, run: &Run) {
    let recorder = recorder.lock().expect("recorder lock");
    run.totals.lock().expect("totals lock").merge(&recorder);
}
