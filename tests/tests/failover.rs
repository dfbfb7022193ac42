//! Failover with a whole region cut off: five nodes as three regions (2-2-1), buyers
//! holding seats through every node, then the leader's region (the leader and one more
//! node) is cut from its peers through the test-only fault switch. Bookings go on through
//! the surviving regions after a new election, nothing acknowledged is lost, the cut
//! nodes refuse writes (503, retriable) and serve stale reads, and after the heal they
//! catch up.
//!
//! The test prints the failover time: from the cut to the first hold acknowledged through
//! a surviving node among the requests first sent after the cut (BENCHMARKS.md records
//! it). No timing is asserted: the machines these tests run on are shared and noisy.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use holdfast_tests::cluster::Launch;
use holdfast_tests::{event_body, hold_body, seat_status, ProcessCluster};

const EVENT: &str = "failover";
const ROWS: usize = 40;
const PER_ROW: u32 = 50;

/// One acknowledged hold.
struct Ack {
    seat: String,
    position: usize,
    first_sent: Instant,
    acked: Instant,
}

fn seat_name(number: usize) -> String {
    let per_row = PER_ROW as usize;
    let (section, number) = if number < ROWS * per_row {
        ("A", number)
    } else {
        ("B", number - ROWS * per_row)
    };
    format!(
        "{section}-{}-{}",
        number / per_row + 1,
        number % per_row + 1
    )
}

/// Holds seats through node `position` until `stop`, each with its own idempotency key,
/// retrying a refused or unanswered hold with the same key after a short pause.
async fn buyer(
    cluster: Arc<ProcessCluster>,
    position: usize,
    next_seat: Arc<AtomicUsize>,
    acks: Arc<Mutex<Vec<Ack>>>,
    odd: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
) {
    while !stop.load(Ordering::Relaxed) {
        let number = next_seat.fetch_add(1, Ordering::Relaxed);
        if number >= 2 * ROWS * PER_ROW as usize {
            return;
        }
        let seat = seat_name(number);
        let key = format!("failover-{seat}");
        let first_sent = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            let answer = cluster
                .post(
                    position,
                    "/booking/hold",
                    hold_body(EVENT, &format!("c{number}"), &[seat.as_str()], 600),
                    Some(&key),
                )
                .await;
            match answer {
                Ok(answer) if answer.status == 201 || answer.status == 200 => {
                    acks.lock().unwrap().push(Ack {
                        seat: seat.clone(),
                        position,
                        first_sent,
                        acked: Instant::now(),
                    });
                    break;
                }
                Ok(answer) if answer.status == 503 => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Ok(answer) => {
                    // Not a 503: a write whose outcome is unknown must never be answered
                    // otherwise. Noted, and retried with the same key (safe).
                    odd.lock()
                        .unwrap()
                        .push(format!("{} {}", answer.status, answer.body));
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bookings_resume_through_the_surviving_regions_when_the_leaders_region_is_cut(
) -> anyhow::Result<()> {
    region_cut(Launch::default(), "no added latency").await
}

/// The same with every peer link 30–80 ms round trip (a delay proxy in front of each
/// node's peer port: 15–40 ms each way), as between regions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bookings_resume_after_a_region_cut_with_30_to_80_ms_between_nodes() -> anyhow::Result<()> {
    let launch = Launch {
        peer_delay: Some((Duration::from_millis(15), Duration::from_millis(25))),
        ..Launch::default()
    };
    region_cut(launch, "30-80 ms round trips between nodes").await
}

async fn region_cut(launch: Launch, label: &str) -> anyhow::Result<()> {
    let cluster = Arc::new(ProcessCluster::start_with(5, launch).await?);
    cluster
        .create_event(0, event_body(EVENT, ROWS, PER_ROW, 10))
        .await?;
    let leader = cluster.wait_for_leader().await?;
    // Regions (2-2-1): the leader's region holds the leader and the next node.
    let cut: Vec<usize> = vec![leader, (leader + 1) % 5];
    let surviving: Vec<usize> = (0..5).filter(|p| !cut.contains(p)).collect();

    let next_seat = Arc::new(AtomicUsize::new(0));
    let acks = Arc::new(Mutex::new(Vec::new()));
    let odd = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    // Eight buyers through every node: two on each surviving node, one on each cut one.
    let mut buyers = Vec::new();
    for position in surviving
        .iter()
        .flat_map(|&p| [p, p])
        .chain(cut.iter().copied())
    {
        buyers.push(tokio::spawn(buyer(
            cluster.clone(),
            position,
            next_seat.clone(),
            acks.clone(),
            odd.clone(),
            stop.clone(),
        )));
    }
    // Bookings flow before the cut.
    let flowing = Instant::now() + Duration::from_secs(60);
    while acks.lock().unwrap().len() < 20 {
        anyhow::ensure!(Instant::now() < flowing, "no bookings before the cut");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    let cut_at = Instant::now();
    let cut_wall_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis();
    let mut latencies: Vec<Duration> = acks
        .lock()
        .unwrap()
        .iter()
        .map(|ack| ack.acked - ack.first_sent)
        .collect();
    latencies.sort();
    let percentile = |p: usize| latencies[(latencies.len() * p / 100).min(latencies.len() - 1)];
    println!(
        "failover ({label}): hold latency before the cut over {} holds: p50 {} ms, p99 {} ms",
        latencies.len(),
        percentile(50).as_millis(),
        percentile(99).as_millis()
    );
    for &position in &cut {
        cluster.set_isolated(position, true).await?;
    }
    let cut_done = Instant::now();

    // The first hold first sent after the cut and acknowledged through a surviving node.
    let resumed = Instant::now() + Duration::from_secs(60);
    let first = loop {
        let first = acks
            .lock()
            .unwrap()
            .iter()
            .filter(|ack| ack.first_sent >= cut_done && surviving.contains(&ack.position))
            .map(|ack| ack.acked)
            .min();
        if let Some(first) = first {
            break first;
        }
        anyhow::ensure!(
            Instant::now() < resumed,
            "bookings never resumed after the cut"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    println!(
        "failover ({label}): first booking through a surviving region {} ms after the cut (cut took {} ms)",
        (first - cut_at).as_millis(),
        (cut_done - cut_at).as_millis()
    );
    // Bookings go on for a while, then the buyers stop.
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    for buyer in buyers {
        buyer.await?;
    }
    let odd = odd.lock().unwrap().clone();
    assert!(
        odd.is_empty(),
        "answers other than 2xx and 503 during the failover: {odd:?}"
    );

    // The cut nodes refuse writes (retriable) and serve stale reads.
    for &position in &cut {
        let write = cluster
            .post(
                position,
                "/booking/hold",
                hold_body(EVENT, "late", &["B-40-50"], 600),
                None,
            )
            .await?;
        assert_eq!(write.status, 503, "{:?}", write.body);
        assert!(write.header("retry-after").is_some(), "{:?}", write.body);
        let stale = cluster
            .get(
                position,
                &format!("/availability?event_id={EVENT}&view=summary"),
            )
            .await?;
        assert_eq!(stale.status, 200, "{:?}", stale.body);
    }

    if let Ok(dir) = std::env::var("FAILOVER_KEEP_LOGS") {
        for position in 0..5 {
            std::fs::write(format!("{dir}/node-{position}.log"), cluster.log(position))?;
        }
        println!(
            "failover ({label}): cut positions {cut:?} at unix ms {cut_wall_ms}; logs in {dir}"
        );
    }
    // Heal: every node catches up and every acknowledged hold is there.
    for &position in &cut {
        cluster.set_isolated(position, false).await?;
    }
    let acked: BTreeSet<String> = acks
        .lock()
        .unwrap()
        .iter()
        .map(|ack| ack.seat.clone())
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    for position in 0..5 {
        loop {
            let page = cluster
                .get(
                    position,
                    &format!("/availability?event_id={EVENT}&consistency=linearizable&limit=5000"),
                )
                .await?;
            let missing: Vec<&String> = if page.status == 200 {
                acked
                    .iter()
                    .filter(|seat| seat_status(&page.body, seat).as_deref() != Some("HELD"))
                    .collect()
            } else {
                acked.iter().collect()
            };
            if missing.is_empty() {
                break;
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "node {position} lacks acknowledged holds {:?} ({})",
                &missing[..missing.len().min(5)],
                page.status
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Ok(())
}
