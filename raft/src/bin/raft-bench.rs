//! `holdfast-raft-bench`: commits per second and commit latency of the in-process
//! three-node cluster (real loopback gRPC, RocksDB with fsync on every append and vote).
//!
//! ```text
//! cargo run --release -p holdfast-raft --bin holdfast-raft-bench -- --seconds 10 --concurrency 1,16,256
//! ```
//!
//! Each proposer sends one hold and waits for its answer before sending the next. Two modes
//! are measured:
//! - `raw`: every command is its own Raft entry (`Batch` of one); openraft itself gathers
//!   the entries that queue up while an append is being fsynced into its next append.
//! - `grouped`: a group-commit stage (what `holdfast-node` is meant to do) gathers the
//!   commands waiting at that moment, up to 256, into one `Batch`, so one fsync per node
//!   commits many commands. A "commit" is still one command answered.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use holdfast_raft::testing::{workload, Cluster, ClusterOptions};
use holdfast_raft::{Batch, Error, RaftNode};
use holdfast_statemachine::{Entry, Outcome};
use tokio::sync::{mpsc, oneshot};

/// Commands gathered into one Raft entry at most.
const GROUP_COMMANDS_MAX: usize = 256;
/// Group commits in flight at once.
const GROUPS_IN_FLIGHT_MAX: usize = 4;

type Pending = (Entry, oneshot::Sender<Result<Outcome, String>>);

/// Gathers queued commands into batches and answers each command with its outcome.
async fn group_commit(leader: Arc<RaftNode>, mut queue: mpsc::Receiver<Pending>) {
    let permits = Arc::new(tokio::sync::Semaphore::new(GROUPS_IN_FLIGHT_MAX));
    while let Some(first) = queue.recv().await {
        let permit = Arc::clone(&permits)
            .acquire_owned()
            .await
            .expect("semaphore open");
        let mut group = vec![first];
        while group.len() < GROUP_COMMANDS_MAX {
            match queue.try_recv() {
                Ok(pending) => group.push(pending),
                Err(_) => break,
            }
        }
        let leader = Arc::clone(&leader);
        tokio::spawn(async move {
            let (entries, replies): (Vec<_>, Vec<_>) = group.into_iter().unzip();
            match leader.propose(Batch::new(entries)).await {
                Ok(result) => {
                    for (reply, outcome) in replies.into_iter().zip(result.outcomes) {
                        let _ = reply.send(Ok(outcome));
                    }
                }
                Err(error) => {
                    for reply in replies {
                        let _ = reply.send(Err(error.to_string()));
                    }
                }
            }
            drop(permit);
        });
    }
}

#[derive(Clone, Copy, Debug)]
enum Mode {
    Raw,
    Grouped,
}

struct Arguments {
    seconds: u64,
    warmup_seconds: u64,
    concurrency: Vec<usize>,
}

fn parse_arguments() -> anyhow::Result<Arguments> {
    let mut arguments = Arguments {
        seconds: 10,
        warmup_seconds: 2,
        concurrency: vec![1, 16, 256],
    };
    let mut iterator = std::env::args().skip(1);
    while let Some(flag) = iterator.next() {
        let value = iterator
            .next()
            .with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--seconds" => arguments.seconds = value.parse()?,
            "--warmup-seconds" => arguments.warmup_seconds = value.parse()?,
            "--concurrency" => {
                arguments.concurrency =
                    value.split(',').map(str::parse).collect::<Result<_, _>>()?
            }
            other => bail!(
                "unknown flag {other}; use --seconds N --warmup-seconds N --concurrency 1,16,256"
            ),
        }
    }
    Ok(arguments)
}

struct Figures {
    commits: usize,
    elapsed: Duration,
    latencies_micros: Vec<u64>,
}

fn percentile(sorted: &[u64], fraction: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((sorted.len() as f64 * fraction).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

async fn run(
    mode: Mode,
    concurrency: usize,
    warmup: Duration,
    measured: Duration,
) -> anyhow::Result<Figures> {
    let cluster = Cluster::start(ClusterOptions::default()).await?;
    let leader = cluster.node(cluster.leader(Duration::from_secs(30)).await?);
    leader
        .propose(Batch::single(workload::create_event(100_000_000)))
        .await?;
    let (queue, pending) = mpsc::channel::<Pending>(concurrency.max(1) * 2);
    tokio::spawn(group_commit(Arc::clone(&leader), pending));
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for proposer in 0..concurrency {
        let leader = Arc::clone(&leader);
        let queue = queue.clone();
        let measuring = Arc::clone(&measuring);
        let stop = Arc::clone(&stop);
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut sequence = proposer as u64;
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                let entry = workload::hold(sequence);
                match mode {
                    Mode::Raw => {
                        leader.propose(Batch::single(entry)).await?;
                    }
                    Mode::Grouped => {
                        let (reply, answer) = oneshot::channel();
                        queue.send((entry, reply)).await.map_err(|_| Error::Fatal {
                            message: "group commit stopped".into(),
                        })?;
                        answer
                            .await
                            .map_err(|_| Error::Fatal {
                                message: "group commit dropped a command".into(),
                            })?
                            .map_err(|message| Error::Fatal { message })?;
                    }
                }
                if measuring.load(Ordering::Relaxed) && !stop.load(Ordering::Relaxed) {
                    latencies.push(started.elapsed().as_micros() as u64);
                }
                sequence += concurrency as u64;
            }
            Ok::<_, Error>(latencies)
        }));
    }
    drop(queue);
    tokio::time::sleep(warmup).await;
    measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(measured).await;
    stop.store(true, Ordering::Relaxed);
    let elapsed = started.elapsed();
    let mut latencies_micros = Vec::new();
    for task in tasks {
        latencies_micros.extend(task.await??);
    }
    latencies_micros.sort_unstable();
    cluster.shutdown().await?;
    Ok(Figures {
        commits: latencies_micros.len(),
        elapsed,
        latencies_micros,
    })
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let arguments = parse_arguments()?;
    println!("| mode | proposers | commits | commits/s | p50 ms | p99 ms |");
    println!("|---|---:|---:|---:|---:|---:|");
    for mode in [Mode::Raw, Mode::Grouped] {
        for &concurrency in &arguments.concurrency {
            let figures = run(
                mode,
                concurrency,
                Duration::from_secs(arguments.warmup_seconds),
                Duration::from_secs(arguments.seconds),
            )
            .await?;
            let per_second = figures.commits as f64 / figures.elapsed.as_secs_f64();
            println!(
                "| {} | {concurrency} | {} | {per_second:.0} | {:.2} | {:.2} |",
                format!("{mode:?}").to_lowercase(),
                figures.commits,
                percentile(&figures.latencies_micros, 0.50) as f64 / 1_000.0,
                percentile(&figures.latencies_micros, 0.99) as f64 / 1_000.0,
            );
        }
    }
    Ok(())
}
