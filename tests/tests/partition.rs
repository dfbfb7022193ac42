//! A leader cut off from its peers: a `linearizable` read through it is refused with
//! `503 NO_QUORUM`, never answered with stale data, while `stale` reads keep answering.
//! The majority elects a new leader and takes writes; after healing, the old leader
//! catches up and serves them.

use std::time::{Duration, Instant};

use holdfast_tests::{event_body, hold_body, ProcessCluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linearizable_read_through_a_partitioned_leader_is_refused() -> anyhow::Result<()> {
    let cluster = ProcessCluster::start(3).await?;
    cluster
        .create_event(0, event_body("part", 1, 10, 10))
        .await?;
    let old_leader = cluster.wait_for_leader().await?;

    cluster.set_isolated(old_leader, true).await?;
    let new_leader = cluster.wait_for_leader_without(old_leader).await?;
    // The majority side takes writes.
    let hold = cluster
        .post(
            new_leader,
            "/booking/hold",
            hold_body("part", "p", &["A-1-1"], 600),
            Some("p1"),
        )
        .await?;
    assert_eq!(hold.status, 201, "{:?}", hold.body);

    // The old leader cannot confirm its leadership: refused within the bounded wait.
    let started = Instant::now();
    let read = cluster
        .get(
            old_leader,
            "/availability?event_id=part&consistency=linearizable",
        )
        .await?;
    assert_eq!(
        (read.status, read.code()),
        (503, "NO_QUORUM"),
        "{:?}",
        read.body
    );
    assert!(read.header("retry-after").is_some());
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the refusal must come within the bounded wait"
    );
    // A write through it is refused too (no leader it can reach), not silently lost.
    let write = cluster
        .post(
            old_leader,
            "/booking/hold",
            hold_body("part", "q", &["A-1-2"], 600),
            None,
        )
        .await?;
    assert_eq!(write.status, 503, "{:?}", write.body);
    // Stale reads still answer, from the old leader's own (stale) state.
    let stale = cluster
        .get(old_leader, "/availability?event_id=part&view=summary")
        .await?;
    assert_eq!(stale.status, 200, "{:?}", stale.body);
    assert_eq!(stale.body["summary"]["seats_held"], 0);

    // Heal: the old leader rejoins, catches up and serves the write it missed.
    cluster.set_isolated(old_leader, false).await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let read = cluster
            .get(
                old_leader,
                "/availability?event_id=part&view=summary&consistency=linearizable",
            )
            .await?;
        if read.status == 200 && read.body["summary"]["seats_held"] == 1 {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the healed node never caught up: {:?}",
            read.body
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}
