//! Holds expire by cluster time without any client action, also across a leader change.

use std::time::{Duration, Instant};

use holdfast_tests::{event_body, hold_body, seat_status, ProcessCluster};

async fn wait_seat_status(
    cluster: &ProcessCluster,
    node: usize,
    seat: &str,
    want: &str,
    within: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    loop {
        let page = cluster
            .get(node, "/availability?event_id=exp&consistency=linearizable")
            .await;
        if let Ok(page) = page {
            if seat_status(&page.body, seat).as_deref() == Some(want) {
                return Ok(());
            }
        }
        anyhow::ensure!(Instant::now() < deadline, "seat {seat} never became {want}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holds_expire_without_client_action_even_after_a_leader_change() -> anyhow::Result<()> {
    let mut cluster = ProcessCluster::start(3).await?;
    cluster
        .create_event(0, event_body("exp", 1, 10, 10))
        .await?;

    let hold = cluster
        .post(
            0,
            "/booking/hold",
            hold_body("exp", "a", &["A-1-1"], 2),
            None,
        )
        .await?;
    assert_eq!(hold.status, 201, "{:?}", hold.body);
    wait_seat_status(&cluster, 1, "A-1-1", "HELD", Duration::from_secs(5)).await?;
    wait_seat_status(&cluster, 1, "A-1-1", "AVAILABLE", Duration::from_secs(20)).await?;
    let hold_id = hold.body["hold_id"].as_str().unwrap();
    let view = cluster
        .get(2, &format!("/holds/{hold_id}?consistency=linearizable"))
        .await?;
    assert_eq!(view.body["status"], "EXPIRED", "{:?}", view.body);

    // A hold made under one leader expires under the next.
    let hold = cluster
        .post(
            1,
            "/booking/hold",
            hold_body("exp", "b", &["A-1-2"], 4),
            None,
        )
        .await?;
    assert_eq!(hold.status, 201, "{:?}", hold.body);
    let leader = cluster.wait_for_leader().await?;
    cluster.kill(leader);
    let survivor = cluster.running()[0];
    cluster.wait_for_leader().await?;
    wait_seat_status(
        &cluster,
        survivor,
        "A-1-2",
        "AVAILABLE",
        Duration::from_secs(30),
    )
    .await?;
    Ok(())
}
