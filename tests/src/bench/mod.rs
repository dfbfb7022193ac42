//! `holdfast-bench`: the load generator. Starts a local cluster of real `holdfast serve`
//! processes (or targets given endpoints), sets up inventory, runs a named scenario in
//! closed or open loop, checks at the end that nothing was sold twice, and reports
//! throughput and latency percentiles as a table and as JSON.
//!
//! Every list flag (`--nodes`, `--seats`, `--clients`, `--levels`, `--views`) is a sweep:
//! one phase per combination, which is how the cost curves are measured.

pub mod http;
pub mod load;
pub mod report;
pub mod scenarios;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::json;

use crate::cluster::{Launch, ProcessCluster};
use http::Http;
use load::{drive, Mode, Phase};
use report::PhaseReport;
use scenarios::{Browse, Check, FlashSale, Hotel, Level, Mixed, Venue, View};

/// What to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// Single-seat holds on one venue, hot and random seats, a share confirmed.
    FlashSale,
    /// Availability reads across every node, per read level and view.
    Browse,
    /// Multi-night holds over room-type pools.
    Hotel,
    /// 95 % stale reads, 5 % holds and confirms.
    Mixed,
    /// A big venue under load, a snapshot built, then a new node caught up by snapshot;
    /// reports the times and every node's resident memory.
    CatchUp,
}

/// `holdfast-bench` flags.
#[derive(clap::Parser, Debug, Clone)]
#[command(
    name = "holdfast-bench",
    version,
    about = "Load generator and benchmark harness for a Holdfast cluster"
)]
pub struct Options {
    /// The scenario.
    #[arg(value_enum)]
    pub scenario: Scenario,
    /// Nodes of the local cluster to start (a list sweeps: 1,3 shows the cost of replication).
    #[arg(long, value_delimiter = ',', default_value = "3")]
    pub nodes: Vec<usize>,
    /// Target a running cluster instead (HTTP base URLs, comma separated); nothing is started.
    #[arg(long, value_delimiter = ',')]
    pub endpoints: Vec<String>,
    /// Seats of the venue (a list sweeps).
    #[arg(long, value_delimiter = ',', default_value = "100000")]
    pub seats: Vec<u64>,
    /// Concurrent clients in closed loop, or the most requests in flight in open loop (a
    /// list sweeps).
    #[arg(long, value_delimiter = ',', default_value = "64")]
    pub clients: Vec<usize>,
    /// Open loop: requests started per second, whatever the answers do. Without it the
    /// clients run closed loop.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Share of holds that go for the hot seats.
    #[arg(long, default_value_t = 0.1)]
    pub hot_fraction: f64,
    /// How many seats are hot (the first ones of the venue).
    #[arg(long, default_value_t = 100)]
    pub hot_seats: u64,
    /// Share of successful holds that are then confirmed (0: holds only).
    #[arg(long, default_value_t = 0.0)]
    pub confirm_ratio: f64,
    /// Send holds without an Idempotency-Key (the SDK always sends one).
    #[arg(long)]
    pub no_keys: bool,
    /// Read levels of `browse` (a list sweeps).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "stale,bounded,linearizable"
    )]
    pub levels: Vec<Level>,
    /// Views of `browse`: the summary, or the full view of a 400-seat section.
    #[arg(long, value_delimiter = ',', default_value = "summary,section")]
    pub views: Vec<View>,
    /// Room types of `hotel`.
    #[arg(long, default_value_t = 3)]
    pub room_types: u32,
    /// Nights of `hotel`.
    #[arg(long, default_value_t = 30)]
    pub nights: u32,
    /// Rooms per type and night of `hotel`.
    #[arg(long, default_value_t = 200)]
    pub rooms: u64,
    /// Measured seconds per phase.
    #[arg(long, default_value_t = 20.0)]
    pub duration: f64,
    /// Warm-up seconds per phase (run, not recorded).
    #[arg(long, default_value_t = 3.0)]
    pub warmup: f64,
    /// Write the results as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Where the local cluster keeps its data (a temporary directory inside it). Use a real
    /// disk: fsync on tmpfs costs nothing.
    #[arg(long, default_value = "/var/tmp")]
    pub data_dir: PathBuf,
    /// `RUST_LOG` of the local nodes.
    #[arg(long, default_value = "warn")]
    pub node_log: String,
    /// More settings for the local nodes, `NAME=VALUE` (e.g. HOLDFAST_BATCH_ENTRIES_MAX=256).
    #[arg(long = "node-env", value_delimiter = ',')]
    pub node_env: Vec<String>,
    /// Send every request to the leader of the local cluster (no forwarding by followers),
    /// to see what forwarding costs.
    #[arg(long)]
    pub leader_only: bool,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
    /// `flash-sale` and `mixed`: holds and confirms through the Rust SDK (gRPC, leader
    /// tracking, keyed retries and automatic batching of concurrent calls) instead of one
    /// HTTP request each.
    #[arg(long)]
    pub sdk: bool,
    /// With `--sdk`: batches the SDK keeps in flight at once (its default when not given).
    #[arg(long)]
    pub sdk_batches_in_flight: Option<usize>,
    /// With `--sdk`: most operations in one of the SDK's batches (its default when not
    /// given).
    #[arg(long)]
    pub sdk_max_batch: Option<usize>,
}

/// Runs the benchmark the options describe and prints its report.
pub async fn main(options: Options) -> Result<()> {
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let mut reports = Vec::new();
    let node_counts = if options.endpoints.is_empty() {
        options.nodes.clone()
    } else {
        vec![options.endpoints.len()]
    };
    for &nodes in &node_counts {
        let mut cluster = if options.endpoints.is_empty() {
            eprintln!("starting a local cluster of {nodes} node(s) ...");
            Some(start_cluster(&options, nodes).await?)
        } else {
            None
        };
        let urls = match &cluster {
            Some(cluster) if options.leader_only => {
                let leader = cluster.wait_for_leader().await?;
                vec![format!("http://{}", cluster.nodes[leader].http_addr)]
            }
            Some(cluster) => cluster
                .nodes
                .iter()
                .map(|node| format!("http://{}", node.http_addr))
                .collect(),
            None => options.endpoints.clone(),
        };
        let connections = options.clients.iter().copied().max().unwrap_or(64);
        let http = Http::new(urls, connections)?;
        for &seats in &options.seats {
            let phases = match options.scenario {
                Scenario::CatchUp => {
                    let Some(cluster) = cluster.as_mut() else {
                        bail!("catch-up starts its own cluster; it cannot use --endpoints");
                    };
                    vec![catch_up(&options, cluster, &http, seats).await?]
                }
                _ => run_phases(&options, &http, cluster.as_ref(), nodes, seats).await?,
            };
            for report in phases {
                report.print_one();
                reports.push(report);
            }
        }
        drop(cluster);
    }
    report::print_table(&reports);
    if let Some(path) = &options.json {
        let document = json!({
            "command": command,
            "date": report::utc_now(),
            "machine": report::machine(),
            "phases": reports,
        });
        std::fs::write(path, serde_json::to_vec_pretty(&document)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("results written to {}", path.display());
    }
    if reports.iter().any(|report| !report.check.passed()) {
        bail!("an end-of-run check failed (see the report)");
    }
    Ok(())
}

async fn start_cluster(options: &Options, nodes: usize) -> Result<ProcessCluster> {
    let mut env = Vec::new();
    for setting in &options.node_env {
        let Some((name, value)) = setting.split_once('=') else {
            bail!("--node-env takes NAME=VALUE, not {setting:?}");
        };
        env.push((name.to_string(), value.to_string()));
    }
    let launch = Launch {
        log_filter: options.node_log.clone(),
        test_faults: false,
        env,
        root_in: Some(options.data_dir.clone()),
        peer_tls: true,
        ..Launch::default()
    };
    ProcessCluster::start_with(nodes, launch).await
}

fn phase(options: &Options, clients: usize, label: String) -> Phase {
    let mode = match options.rate {
        Some(rate) => Mode::Open {
            rate,
            in_flight_max: clients,
        },
        None => Mode::Closed { clients },
    };
    Phase {
        warmup: Duration::from_secs_f64(options.warmup.max(0.0)),
        duration: Duration::from_secs_f64(options.duration.max(0.1)),
        mode,
        progress: !options.quiet,
        label,
    }
}

/// The phases of the load scenarios for one cluster and one venue size.
async fn run_phases(
    options: &Options,
    http: &Http,
    cluster: Option<&ProcessCluster>,
    nodes: usize,
    seats: u64,
) -> Result<Vec<PhaseReport>> {
    let venue = Venue::new(seats);
    let mut reports = Vec::new();
    let base = |clients: usize| PhaseReport::new(options, nodes, venue.seats, clients);
    // Browse reads one venue through every phase.
    let browse_event = format!("browse-{}", scenarios::run_tag());
    if options.scenario == Scenario::Browse {
        scenarios::create_venue(http, &browse_event, venue).await?;
    }
    for &clients in &options.clients {
        let tag = scenarios::run_tag();
        let label = format!(
            "{:?} n={nodes} seats={} c={clients}",
            options.scenario, venue.seats
        );
        match options.scenario {
            Scenario::FlashSale | Scenario::Mixed => {
                let event_id = format!("flash-{tag}");
                scenarios::create_venue(http, &event_id, venue).await?;
                let mut sale = FlashSale::new(http.clone(), event_id, venue, options, tag);
                if options.sdk {
                    let mut builder = holdfast_client::Client::builder(&http.nodes);
                    if let Some(batches) = options.sdk_batches_in_flight {
                        builder = builder.max_in_flight_batches(batches);
                    }
                    if let Some(operations) = options.sdk_max_batch {
                        builder = builder.max_batch(operations);
                    }
                    sale.sdk = Some(builder.connect().await?);
                }
                let (result, check) = if options.scenario == Scenario::Mixed {
                    let mixed = Arc::new(Mixed { sale });
                    let result = drive(mixed.clone(), &phase(options, clients, label)).await;
                    let check = mixed.sale.check().await;
                    (result, check)
                } else {
                    let sale = Arc::new(sale);
                    let result = drive(sale.clone(), &phase(options, clients, label)).await;
                    let check = sale.check().await;
                    (result, check)
                };
                reports.push(base(clients).finish(result, check, cluster));
            }
            Scenario::Hotel => {
                let hotel = Arc::new(Hotel::new(
                    http.clone(),
                    format!("hotel-{tag}"),
                    options,
                    tag,
                ));
                hotel.create().await?;
                let result = drive(hotel.clone(), &phase(options, clients, label)).await;
                let check = hotel.check().await;
                reports.push(base(clients).finish(result, check, cluster));
            }
            Scenario::Browse => {
                for &level in &options.levels {
                    for &view in &options.views {
                        let browse = Arc::new(Browse {
                            http: http.clone(),
                            event_id: browse_event.clone(),
                            venue,
                            view,
                            level,
                        });
                        let label = format!("{label} {level:?} {view:?}");
                        let result = drive(browse, &phase(options, clients, label)).await;
                        let mut report = base(clients);
                        report.level = Some(level);
                        report.view = Some(view);
                        reports.push(report.finish(result, Check::none(), cluster));
                    }
                }
            }
            Scenario::CatchUp => unreachable!("handled by catch_up"),
        }
    }
    Ok(reports)
}

/// `catch-up`: a venue of `seats` under a flash sale, then a snapshot and a new learner.
async fn catch_up(
    options: &Options,
    cluster: &mut ProcessCluster,
    http: &Http,
    seats: u64,
) -> Result<PhaseReport> {
    let venue = Venue::new(seats);
    let tag = scenarios::run_tag();
    let event_id = format!("flash-{tag}");
    let created = Instant::now();
    scenarios::create_venue(http, &event_id, venue).await?;
    let create_ms = created.elapsed().as_secs_f64() * 1e3;
    let clients = options.clients.first().copied().unwrap_or(64);
    let sale = Arc::new(FlashSale::new(http.clone(), event_id, venue, options, tag));
    let label = format!("catch-up seats={} c={clients}", venue.seats);
    let result = drive(sale.clone(), &phase(options, clients, label)).await;
    let check = sale.check().await;
    let mut report = PhaseReport::new(options, cluster.nodes.len(), venue.seats, clients);

    // A snapshot on the leader, timed by the node itself.
    let leader = cluster.wait_for_leader().await?;
    let snapshot = http
        .post(leader, "/cluster/snapshot", None, "{}".into())
        .await
        .map_err(|class| anyhow::anyhow!("snapshot request failed: {class:?}"))?;
    if snapshot.status != 200 {
        bail!(
            "POST /cluster/snapshot answered {}: {}",
            snapshot.status,
            String::from_utf8_lossy(&snapshot.body)
        );
    }
    report
        .extra
        .insert("event_create_ms".into(), json!(create_ms));
    report.extra.insert("snapshot".into(), snapshot.json());

    // A new node, added as a learner: the call returns once it has caught up, which it
    // can only do by installing the snapshot (the log behind it is purged).
    let position = cluster.spawn_new_node()?;
    cluster.wait_healthy(position).await?;
    let node = &cluster.nodes[position];
    let member = json!({"id": node.id, "raft_addr": node.raft_addr, "http_addr": node.http_addr,
                        "region": "local"});
    let patient = reqwest::Client::builder()
        .timeout(Duration::from_secs(300))
        .build()?;
    let started = Instant::now();
    let added = patient
        .post(cluster.nodes[leader].url("/cluster/learners"))
        .json(&member)
        .send()
        .await?;
    let added_ms = started.elapsed().as_secs_f64() * 1e3;
    let added_status = added.status();
    let added_body = added.text().await?;
    if !added_status.is_success() {
        bail!("adding the learner answered {added_status}: {added_body}");
    }
    // Caught up: the new node has applied what the leader had applied when it was added.
    let target = cluster.get(leader, "/cluster/status").await?.body["applied_index"]
        .as_u64()
        .unwrap_or(0);
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let status = cluster.get(position, "/cluster/status").await?;
        if status.body["applied_index"].as_u64().unwrap_or(0) >= target {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "the new node did not catch up within 300 s: {}",
                status.body
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let catch_up_ms = started.elapsed().as_secs_f64() * 1e3;
    report
        .extra
        .insert("add_learner_answer".into(), json!(added_body));
    let summary_query = scenarios::linearizable_summary_query(&sale.event_id);
    let leader_summary = cluster.get(leader, &summary_query).await?;
    let learner_summary = cluster.get(position, &summary_query).await?;
    let mut check = check;
    if leader_summary.body["summary"] != learner_summary.body["summary"] {
        check.problems.push(format!(
            "the new node's summary ({} {}) differs from the leader's {}",
            learner_summary.status, learner_summary.body, leader_summary.body["summary"]
        ));
    }
    report
        .extra
        .insert("add_learner_answered_ms".into(), json!(added_ms));
    report
        .extra
        .insert("new_node_caught_up_ms".into(), json!(catch_up_ms));
    Ok(report.finish(result, check, Some(cluster)))
}
