//! The benchmark's report: one row per phase and request kind, as a table and as JSON,
//! with the machine it ran on.

use serde::Serialize;
use serde_json::{Map, Value};

use super::load::{KindStats, OpKind, PhaseResult};
use super::scenarios::{Check, Level, View};
use super::{Options, Scenario};
use crate::cluster::ProcessCluster;

/// The figures of one request kind in one phase.
#[derive(Clone, Debug, Serialize)]
pub struct KindReport {
    /// The kind of request.
    pub kind: OpKind,
    /// Requests recorded (after the warm-up).
    pub requests: u64,
    /// Requests answered per second (ok, conflicts and errors).
    pub per_second: f64,
    /// Requests that got the answer they asked for.
    pub ok: u64,
    /// Requests refused with `409`: the seat or pool was taken.
    pub conflicts: u64,
    /// The other requests, by class (`http_503_OVERLOADED`, `timeout`, `sdk_deadline`, ...).
    pub errors: std::collections::BTreeMap<String, u64>,
    /// Median latency, in milliseconds (from the intended start in open loop).
    pub p50_ms: f64,
    /// 99th percentile latency, in milliseconds.
    pub p99_ms: f64,
    /// 99.9th percentile latency, in milliseconds.
    pub p999_ms: f64,
    /// Highest latency, in milliseconds (latencies over 120 s are recorded as 120 s).
    pub max_ms: f64,
}

impl KindReport {
    fn new(kind: OpKind, stats: &KindStats, seconds: f64) -> KindReport {
        let ms = |quantile: f64| stats.latency_us.value_at_quantile(quantile) as f64 / 1e3;
        KindReport {
            kind,
            requests: stats.count(),
            per_second: stats.count() as f64 / seconds.max(1e-9),
            ok: stats.ok,
            conflicts: stats.conflicts,
            errors: stats.errors.clone(),
            p50_ms: ms(0.5),
            p99_ms: ms(0.99),
            p999_ms: ms(0.999),
            max_ms: stats.latency_us.max() as f64 / 1e3,
        }
    }
}

/// One phase: its parameters, figures, end-of-run check and the nodes' memory.
#[derive(Clone, Debug, Serialize)]
pub struct PhaseReport {
    /// The scenario run.
    pub scenario: Scenario,
    /// Nodes of the cluster: the local cluster's size, or the number of `--endpoints`.
    pub nodes: usize,
    /// Seats of the venue, rounded up to whole rows of 20 (not used by `hotel`).
    pub seats: u64,
    /// Clients in closed loop, or the most requests in flight in open loop.
    pub clients: usize,
    /// `closed`, or `open` at `rate` per second.
    pub mode: String,
    /// Requests started per second in open loop; `None` in closed loop.
    pub rate: Option<f64>,
    /// The read level of a `browse` phase.
    pub level: Option<Level>,
    /// The view of a `browse` phase.
    pub view: Option<View>,
    /// Seconds measured, from the end of the warm-up to the stop.
    pub measured_seconds: f64,
    /// One row per kind of request recorded, in the order hold, confirm, read.
    pub kinds: Vec<KindReport>,
    /// The end-of-run check ([`Check::none`] for read-only phases).
    pub check: Check,
    /// Resident memory of each local node at the end of the phase, MiB.
    pub node_rss_mib: Vec<Option<f64>>,
    /// Scenario-specific figures (`catch-up`'s snapshot and catch-up times).
    pub extra: Map<String, Value>,
}

impl PhaseReport {
    /// A phase's parameters, before it runs: the figures are empty until
    /// [`PhaseReport::finish`].
    pub fn new(options: &Options, nodes: usize, seats: u64, clients: usize) -> PhaseReport {
        PhaseReport {
            scenario: options.scenario,
            nodes,
            seats,
            clients,
            mode: if options.rate.is_some() {
                "open"
            } else {
                "closed"
            }
            .into(),
            rate: options.rate,
            level: None,
            view: None,
            measured_seconds: 0.0,
            kinds: Vec::new(),
            check: Check::none(),
            node_rss_mib: Vec::new(),
            extra: Map::new(),
        }
    }

    /// Fills in the measured figures.
    pub fn finish(
        mut self,
        result: PhaseResult,
        check: Check,
        cluster: Option<&ProcessCluster>,
    ) -> PhaseReport {
        let seconds = result.measured.as_secs_f64();
        self.measured_seconds = seconds;
        self.kinds = result
            .recorder
            .kinds
            .iter()
            .map(|(kind, stats)| KindReport::new(*kind, stats, seconds))
            .collect();
        self.check = check;
        if let Some(cluster) = cluster {
            self.node_rss_mib = (0..cluster.nodes.len())
                .map(|position| rss_mib(cluster.pid(position)))
                .collect();
        }
        self
    }

    fn label(&self) -> String {
        let mut label = format!(
            "{:?} n={} seats={} c={}",
            self.scenario, self.nodes, self.seats, self.clients
        );
        if let Some(rate) = self.rate {
            label.push_str(&format!(" rate={rate}"));
        }
        if let (Some(level), Some(view)) = (self.level, self.view) {
            label.push_str(&format!(" {level:?}/{view:?}"));
        }
        label
    }

    /// Prints this phase as soon as it is done.
    pub fn print_one(&self) {
        for kind in &self.kinds {
            eprintln!(
                "{}: {} {:.0}/s p50 {:.2} ms p99 {:.2} ms ({} ok, {} conflicts, {} errors)",
                self.label(),
                kind.kind.as_str(),
                kind.per_second,
                kind.p50_ms,
                kind.p99_ms,
                kind.ok,
                kind.conflicts,
                kind.errors.values().sum::<u64>()
            );
        }
        let verdict = if self.check.passed() {
            "passed"
        } else {
            "FAILED"
        };
        eprintln!("  check {verdict}: {}", self.check.description);
        for problem in &self.check.problems {
            eprintln!("  problem: {problem}");
        }
        if !self.extra.is_empty() {
            eprintln!("  {}", Value::Object(self.extra.clone()));
        }
    }
}

impl Check {
    /// No end-of-run check (read-only phases).
    pub fn none() -> Check {
        Check {
            description: "read only".into(),
            problems: Vec::new(),
        }
    }
}

/// Prints every phase as one table on stdout.
pub fn print_table(reports: &[PhaseReport]) {
    println!(
        "| phase | kind | req/s | ok | conflicts | errors | p50 ms | p99 ms | p99.9 ms | max ms | check | node RSS MiB |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|");
    for report in reports {
        let rss: Vec<String> = report
            .node_rss_mib
            .iter()
            .map(|rss| rss.map_or("-".into(), |mib| format!("{mib:.0}")))
            .collect();
        for kind in &report.kinds {
            let errors: u64 = kind.errors.values().sum();
            let error_detail = if errors == 0 {
                "0".to_string()
            } else {
                let named: Vec<String> = kind
                    .errors
                    .iter()
                    .map(|(code, count)| format!("{code}: {count}"))
                    .collect();
                format!("{errors} ({})", named.join(", "))
            };
            println!(
                "| {} | {} | {:.0} | {} | {} | {} | {:.2} | {:.2} | {:.2} | {:.1} | {} | {} |",
                report.label(),
                kind.kind.as_str(),
                kind.per_second,
                kind.ok,
                kind.conflicts,
                error_detail,
                kind.p50_ms,
                kind.p99_ms,
                kind.p999_ms,
                kind.max_ms,
                if report.check.passed() {
                    "ok"
                } else {
                    "FAILED"
                },
                rss.join("/")
            );
        }
    }
}

/// Resident memory of a process, MiB (Linux `/proc`).
pub fn rss_mib(pid: Option<u32>) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid?)).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// The machine: CPU model, cores, memory, kernel.
pub fn machine() -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|line| line.starts_with("model name"))
        .and_then(|line| line.split(':').nth(1))
        .map_or("unknown".to_string(), |model| model.trim().to_string());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory_gib = meminfo
        .lines()
        .find(|line| line.starts_with("MemTotal:"))
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|kib| kib.parse::<f64>().ok())
        .map(|kib| kib / 1024.0 / 1024.0);
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    serde_json::json!({"cpu": model, "cores": cores, "memory_gib": memory_gib,
                       "kernel": kernel.trim()})
}

/// The current UTC time as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn utc_now() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}
