//! A node whose disk starts refusing writes (the test-only fault switch) stops: Raft
//! stops on the storage error, the node says why, leaves the cluster's way and exits
//! non-zero for its supervisor — it does not go on answering from a state that no longer
//! moves. The other two nodes keep taking bookings, and every acknowledged booking is
//! there.

use std::time::{Duration, Instant};

use holdfast_tests::{event_body, hold_body, ProcessCluster};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_disk_refuses_writes_stops_and_the_cluster_goes_on() {
    let mut cluster = ProcessCluster::start(3).await.expect("cluster");
    let leader = cluster.wait_for_leader().await.unwrap();
    cluster
        .create_event(leader, event_body("disk", 4, 10, 10))
        .await
        .unwrap();
    let victim = (leader + 1) % 3;
    let switched = cluster
        .post(
            victim,
            "/debug/faults",
            json!({"disk_refuses_writes": true}),
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        switched.body["disk_refuses_writes"], true,
        "{:?}",
        switched.body
    );
    assert_eq!(switched.body["isolated"], false);

    // Bookings go on through the leader; the victim's next append fails.
    let mut held = Vec::new();
    for n in 1..=10 {
        let hold = cluster
            .post(
                leader,
                "/booking/hold",
                hold_body("disk", &format!("c-{n}"), &[&format!("A-1-{n}")], 600),
                Some(&format!("disk-{n}")),
            )
            .await
            .unwrap();
        assert_eq!(hold.status, 201, "{:?}", hold.body);
        held.push(format!("A-1-{n}"));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = cluster.exit_status(victim) {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the node with the failing disk is still running:\n{}",
            cluster.log_tail(victim)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(!status.success(), "it exited with {status}");
    let log = cluster.log(victim);
    assert!(
        log.contains("raft stopped on a fatal error") && log.contains("refused the write"),
        "{}",
        cluster.log_tail(victim)
    );

    // The two others go on, and every acknowledged hold is there.
    let leader = cluster.wait_for_leader().await.unwrap();
    let more = cluster
        .post(
            leader,
            "/booking/hold",
            hold_body("disk", "c-after", &["B-1-1"], 600),
            Some("disk-after"),
        )
        .await
        .unwrap();
    assert_eq!(more.status, 201, "{:?}", more.body);
    let page = cluster
        .get(
            leader,
            "/availability?event_id=disk&section=A&consistency=linearizable",
        )
        .await
        .unwrap();
    for seat in &held {
        assert_eq!(
            holdfast_tests::seat_status(&page.body, seat).as_deref(),
            Some("HELD"),
            "{seat}"
        );
    }
}
