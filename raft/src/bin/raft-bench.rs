//! `holdfast-raft-bench`: commits per second and commit latency of the in-process
//! three-node cluster (real loopback gRPC, RocksDB with fsync on every append and vote).
//!
//! ```text
//! cargo run --release -p holdfast-raft --bin holdfast-raft-bench -- --seconds 10 --concurrency 1,16,256
//! ```
//!
//! Each proposer commits one hold per Raft entry (`Batch` of one command) and waits for
//! the answer before sending the next, so the figures measure Raft commit round trips,
//! not client-side batching.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use holdfast_raft::testing::{workload, Cluster, ClusterOptions};
use holdfast_raft::Batch;

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

async fn run(concurrency: usize, warmup: Duration, measured: Duration) -> anyhow::Result<Figures> {
    let cluster = Cluster::start(ClusterOptions::default()).await?;
    let leader = cluster.node(cluster.leader(Duration::from_secs(30)).await?);
    leader
        .propose(Batch::single(workload::create_event(100_000_000)))
        .await?;
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for proposer in 0..concurrency {
        let leader = Arc::clone(&leader);
        let measuring = Arc::clone(&measuring);
        let stop = Arc::clone(&stop);
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut sequence = proposer as u64;
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                leader
                    .propose(Batch::single(workload::hold(sequence)))
                    .await?;
                if measuring.load(Ordering::Relaxed) && !stop.load(Ordering::Relaxed) {
                    latencies.push(started.elapsed().as_micros() as u64);
                }
                sequence += concurrency as u64;
            }
            Ok::<_, holdfast_raft::Error>(latencies)
        }));
    }
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
    println!("| proposers | commits | commits/s | p50 ms | p99 ms |");
    println!("|---:|---:|---:|---:|---:|");
    for concurrency in arguments.concurrency {
        let figures = run(
            concurrency,
            Duration::from_secs(arguments.warmup_seconds),
            Duration::from_secs(arguments.seconds),
        )
        .await?;
        let per_second = figures.commits as f64 / figures.elapsed.as_secs_f64();
        println!(
            "| {concurrency} | {} | {per_second:.0} | {:.2} | {:.2} |",
            figures.commits,
            percentile(&figures.latencies_micros, 0.50) as f64 / 1_000.0,
            percentile(&figures.latencies_micros, 0.99) as f64 / 1_000.0,
        );
    }
    Ok(())
}
