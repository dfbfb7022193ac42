//! A planned leader transfer on three real processes while buyers hold seats through every
//! node: `POST /cluster/leader` through a follower moves leadership to the voter asked
//! for, writes answer only 2xx or 503 through it (and every acknowledged hold is on the new
//! leader afterwards), invalid targets are refused with stable codes, and
//! `holdfastctl leader transfer` moves it back. The pause in writes is printed, not
//! asserted (the machines are shared and noisy).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use holdfast_tests::cluster::holdfastctl;
use holdfast_tests::{event_body, hold_body, seat_status, ProcessCluster};
use serde_json::json;

const EVENT: &str = "handover";
const ROWS: usize = 20;
const PER_ROW: u32 = 50;

fn seat_name(number: usize) -> String {
    format!(
        "A-{}-{}",
        number / PER_ROW as usize + 1,
        number % PER_ROW as usize + 1
    )
}

/// Holds one seat after another through node `position`, each with its own key, retrying
/// a 503 or a lost answer with the same key. Records each acknowledged seat with its time,
/// and any answer that is neither 2xx nor 503.
async fn buyer(
    cluster: Arc<ProcessCluster>,
    position: usize,
    next_seat: Arc<AtomicUsize>,
    acks: Arc<Mutex<Vec<(String, Instant)>>>,
    odd: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
) {
    while !stop.load(Ordering::Relaxed) {
        let number = next_seat.fetch_add(1, Ordering::Relaxed);
        if number >= ROWS * PER_ROW as usize {
            return;
        }
        let seat = seat_name(number);
        let key = format!("handover-{seat}");
        loop {
            let body = hold_body(EVENT, &format!("c{number}"), &[seat.as_str()], 600);
            match cluster
                .post(position, "/booking/hold", body, Some(&key))
                .await
            {
                Ok(answer) if answer.status == 200 || answer.status == 201 => {
                    acks.lock().unwrap().push((seat.clone(), Instant::now()));
                    break;
                }
                Ok(answer) if answer.status == 503 => {}
                Ok(answer) => odd
                    .lock()
                    .unwrap()
                    .push(format!("{} {}", answer.status, answer.body)),
                Err(_) => {}
            }
            if stop.load(Ordering::Relaxed) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn leader_id_seen_by(cluster: &ProcessCluster, position: usize) -> Option<u64> {
    let status = cluster.get(position, "/cluster/status").await.ok()?;
    status.body["leader_id"].as_u64()
}

/// Waits until every node names `leader` as the leader.
async fn wait_all_see(cluster: &ProcessCluster, leader: u64) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut all = true;
        for position in 0..cluster.nodes.len() {
            all &= leader_id_seen_by(cluster, position).await == Some(leader);
        }
        if all {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "not every node sees leader {leader}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leadership_moves_to_the_voter_asked_for_while_bookings_flow() -> anyhow::Result<()> {
    let cluster = Arc::new(ProcessCluster::start(3).await?);
    cluster
        .create_event(0, event_body(EVENT, ROWS, PER_ROW, 10))
        .await?;
    let leader = cluster.wait_for_leader().await?;
    let old_leader_id = cluster.nodes[leader].id;
    let target = (leader + 1) % 3;
    let target_id = cluster.nodes[target].id;
    let other = (leader + 2) % 3;

    // Invalid targets are refused with stable codes, and nothing moves.
    let unknown = cluster
        .post(other, "/cluster/leader", json!({"node_id": 99}), None)
        .await?;
    assert_eq!(unknown.status, 409, "{:?}", unknown.body);
    assert_eq!(unknown.code(), "MEMBERSHIP_REFUSED");
    let zero = cluster
        .post(other, "/cluster/leader", json!({"node_id": 0}), None)
        .await?;
    assert_eq!(zero.status, 400, "{:?}", zero.body);
    assert_eq!(zero.code(), "INVALID_FIELD");
    let extra = cluster
        .post(
            other,
            "/cluster/leader",
            json!({"node_id": 2, "now": true}),
            None,
        )
        .await?;
    assert_eq!(extra.status, 400, "{:?}", extra.body);
    // To the leader itself: nothing to do.
    let itself = cluster
        .post(
            other,
            "/cluster/leader",
            json!({"node_id": old_leader_id}),
            None,
        )
        .await?;
    assert_eq!(itself.status, 200, "{:?}", itself.body);
    assert_eq!(itself.body["leader_id"], old_leader_id);

    let next_seat = Arc::new(AtomicUsize::new(0));
    let acks = Arc::new(Mutex::new(Vec::new()));
    let odd = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut buyers = Vec::new();
    for position in [0, 1, 2, 0, 1, 2] {
        buyers.push(tokio::spawn(buyer(
            cluster.clone(),
            position,
            next_seat.clone(),
            acks.clone(),
            odd.clone(),
            stop.clone(),
        )));
    }
    let flowing = Instant::now() + Duration::from_secs(60);
    while acks.lock().unwrap().len() < 20 {
        anyhow::ensure!(Instant::now() < flowing, "no bookings before the transfer");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Through the follower that is not the target: it passes the call to the leader.
    let started = Instant::now();
    let moved = cluster
        .post(
            other,
            "/cluster/leader",
            json!({"node_id": target_id}),
            None,
        )
        .await?;
    let took = started.elapsed();
    assert_eq!(moved.status, 200, "{:?}", moved.body);
    wait_all_see(&cluster, target_id).await?;

    // Bookings go on through every node, the old leader included.
    let before = acks.lock().unwrap().len();
    let resumed = Instant::now() + Duration::from_secs(30);
    while acks.lock().unwrap().len() < before + 30 {
        anyhow::ensure!(Instant::now() < resumed, "bookings did not resume");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let after_old = cluster
        .post(
            leader,
            "/booking/hold",
            hold_body(EVENT, "late", &["B-1-1"], 600),
            Some("handover-late"),
        )
        .await?;
    assert_eq!(after_old.status, 201, "{:?}", after_old.body);

    // Back to the old leader with holdfastctl.
    let endpoints: Vec<String> = cluster
        .nodes
        .iter()
        .map(|node| format!("http://{}", node.http_addr))
        .collect();
    let transfer = holdfastctl(
        &endpoints.join(","),
        &["leader", "transfer", &old_leader_id.to_string()],
    )
    .await;
    assert_eq!(transfer.code, 0, "{}{}", transfer.stdout, transfer.stderr);
    assert!(
        transfer
            .stdout
            .contains(&format!("to node {old_leader_id}")),
        "{}",
        transfer.stdout
    );
    wait_all_see(&cluster, old_leader_id).await?;

    stop.store(true, Ordering::Relaxed);
    for buyer in buyers {
        buyer.await?;
    }
    let odd = odd.lock().unwrap().clone();
    assert!(odd.is_empty(), "answers other than 2xx and 503: {odd:?}");

    // The longest pause between two acknowledged holds around the first transfer.
    let mut times: Vec<Instant> = acks.lock().unwrap().iter().map(|(_, at)| *at).collect();
    times.sort();
    let pause = times
        .windows(2)
        .filter(|pair| pair[1] >= started && pair[0] <= started + took)
        .map(|pair| pair[1] - pair[0])
        .max()
        .unwrap_or_default();
    println!(
        "leader transfer: answered after {} ms; longest pause in acknowledged holds {} ms",
        took.as_millis(),
        pause.as_millis()
    );

    // Every acknowledged hold is on the leader.
    let page = cluster
        .get(
            leader,
            &format!(
                "/availability?event_id={EVENT}&view=full&limit=2000&consistency=linearizable"
            ),
        )
        .await?;
    assert_eq!(page.status, 200, "{:?}", page.body);
    let acks = acks.lock().unwrap().clone();
    for (seat, _) in &acks {
        assert_eq!(
            seat_status(&page.body, seat).as_deref(),
            Some("HELD"),
            "acknowledged seat {seat}"
        );
    }
    Ok(())
}
