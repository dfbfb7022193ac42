//! Stop every node with SIGTERM, start them again: the state is intact.

use holdfast_tests::{confirm_body, event_body, hold_body, ProcessCluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_all_and_restart_keeps_state() -> anyhow::Result<()> {
    let mut cluster = ProcessCluster::start(3).await?;
    cluster
        .create_event(0, event_body("keep", 1, 10, 10))
        .await?;
    let hold = cluster
        .post(
            1,
            "/booking/hold",
            hold_body("keep", "alice", &["A-1-1", "A-1-2"], 3600),
            Some("h1"),
        )
        .await?;
    assert_eq!(hold.status, 201, "{:?}", hold.body);
    let hold_id = hold.body["hold_id"].as_str().unwrap().to_string();
    let confirm = cluster
        .post(
            2,
            "/booking/confirm",
            confirm_body(&hold_id, "tok_visa"),
            Some("c1"),
        )
        .await?;
    assert_eq!(confirm.status, 200, "{:?}", confirm.body);
    let booking_id = confirm.body["booking_id"].as_str().unwrap().to_string();
    let before = cluster
        .get(0, "/availability?event_id=keep&consistency=linearizable")
        .await?;

    for node in 0..3 {
        cluster.stop(node)?;
    }
    for node in 0..3 {
        cluster.restart(node).await?;
    }
    cluster.wait_for_leader().await?;

    for node in 0..3 {
        let booking = cluster
            .get(
                node,
                &format!("/bookings/{booking_id}?consistency=linearizable"),
            )
            .await?;
        assert_eq!(booking.status, 200, "{:?}", booking.body);
        assert_eq!(booking.body["status"], "CONFIRMED");
        let after = cluster
            .get(node, "/availability?event_id=keep&consistency=linearizable")
            .await?;
        assert_eq!(after.body["seats"], before.body["seats"]);
        assert_eq!(after.body["summary"]["seats_booked"], 2);
    }
    // The cluster still takes writes.
    let again = cluster
        .post(
            0,
            "/booking/hold",
            hold_body("keep", "bob", &["A-1-3"], 60),
            Some("h2"),
        )
        .await?;
    assert_eq!(again.status, 201, "{:?}", again.body);
    Ok(())
}
