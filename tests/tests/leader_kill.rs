//! Clients hold and confirm random seats while the leader is killed with SIGKILL. Every
//! acknowledged confirm survives on every node, including the killed one after a restart,
//! and no seat is ever booked twice.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use holdfast_tests::{confirm_body, event_body, hold_body, ProcessCluster};
use serde_json::Value;
use tokio::sync::Mutex;

const CLIENTS: usize = 8;
const SEATS_PER_SECTION_ROW: u32 = 25;

async fn buyer(
    cluster: Arc<ProcessCluster>,
    client: usize,
    stop: Instant,
    confirmed: Arc<Mutex<Vec<(String, String)>>>,
) {
    let mut attempt = 0u64;
    while Instant::now() < stop {
        attempt += 1;
        let seat = format!(
            "A-{}-{}",
            (client + attempt as usize) % 4 + 1,
            (client * 7 + attempt as usize * 3) % SEATS_PER_SECTION_ROW as usize + 1
        );
        let node = (client + attempt as usize) % 3;
        let key = format!("k-{client}-{attempt}");
        let Ok(hold) = cluster
            .post(
                node,
                "/booking/hold",
                hold_body("kill", &format!("c{client}"), &[&seat], 600),
                Some(&format!("{key}-h")),
            )
            .await
        else {
            continue;
        };
        if hold.status != 201 {
            continue;
        }
        let hold_id = hold.body["hold_id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        // Retry the confirm with the same key through other nodes until it has an answer.
        for retry in 0..20 {
            let node = (node + retry) % 3;
            let body = confirm_body(&hold_id, "tok_visa");
            match cluster
                .post(node, "/booking/confirm", body, Some(&format!("{key}-c")))
                .await
            {
                Ok(answer) if answer.status == 200 => {
                    let booking = answer.body["booking_id"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string();
                    confirmed.lock().await.push((booking, seat.clone()));
                    break;
                }
                Ok(answer) if answer.status < 500 => break,
                _ => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }
}

fn booked_seats(page: &Value) -> BTreeSet<String> {
    page["seats"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["status"] == "BOOKED")
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_confirms_survive_a_leader_kill() -> anyhow::Result<()> {
    let cluster = ProcessCluster::start(3).await?;
    assert_eq!(
        cluster
            .post(
                0,
                "/admin/events",
                event_body("kill", 4, SEATS_PER_SECTION_ROW, 10),
                None
            )
            .await?
            .status,
        201
    );
    let leader = cluster.wait_for_leader().await?;

    let confirmed = Arc::new(Mutex::new(Vec::new()));
    let shared = Arc::new(cluster);
    let stop = Instant::now() + Duration::from_secs(6);
    let buyers: Vec<_> = (0..CLIENTS)
        .map(|client| tokio::spawn(buyer(shared.clone(), client, stop, confirmed.clone())))
        .collect();
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Kill the leader in the middle of the load. The cluster is shared with the buyers, so
    // signal the process directly.
    let pid = shared.pid(leader).expect("leader runs");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )?;
    for buyer in buyers {
        buyer.await?;
    }
    let mut cluster = Arc::into_inner(shared).expect("buyers are done");
    cluster.kill(leader);
    cluster.wait_for_leader().await?;

    let confirmed = confirmed.lock().await.clone();
    assert!(
        !confirmed.is_empty(),
        "some confirms must succeed around the leader change"
    );
    let mut seats_seen = BTreeMap::new();
    for (booking, seat) in &confirmed {
        assert!(
            seats_seen.insert(seat.clone(), booking.clone()).is_none(),
            "seat {seat} confirmed twice"
        );
    }

    cluster.restart(leader).await?;
    for node in 0..3 {
        // Wait for the restarted node to catch up to the leader's index.
        let status = cluster
            .get(cluster.wait_for_leader().await?, "/cluster/status")
            .await?;
        let index = status.body["applied_index"].as_u64().unwrap_or(0);
        let page = cluster
            .get(
                node,
                &format!("/availability?event_id=kill&limit=5000&min_index={index}"),
            )
            .await?;
        assert_eq!(page.status, 200, "{:?}", page.body);
        let booked = booked_seats(&page.body);
        for (booking, seat) in &confirmed {
            assert!(
                booked.contains(seat),
                "node {node} lost booking {booking} of seat {seat}"
            );
            let view = cluster
                .get(node, &format!("/bookings/{booking}?min_index={index}"))
                .await?;
            assert_eq!(view.body["status"], "CONFIRMED", "{:?}", view.body);
        }
        assert_eq!(
            page.body["summary"]["seats_booked"].as_u64().unwrap() as usize,
            booked.len()
        );
    }
    Ok(())
}
