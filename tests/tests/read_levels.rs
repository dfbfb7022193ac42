//! Read levels: a `min_index` read on a follower sees the write just made on the leader.

use holdfast_tests::{event_body, hold_body, seat_status, ProcessCluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn min_index_read_on_a_follower_sees_the_write() -> anyhow::Result<()> {
    let cluster = ProcessCluster::start(3).await?;
    cluster
        .create_event(0, event_body("ryw", 1, 10, 10))
        .await?;
    let leader = cluster.wait_for_leader().await?;
    let follower = (0..3).find(|&node| node != leader).unwrap();
    for round in 0..5 {
        let seat = format!("A-1-{}", round + 1);
        let hold = cluster
            .post(
                leader,
                "/booking/hold",
                hold_body("ryw", "r", &[&seat], 600),
                None,
            )
            .await?;
        assert_eq!(hold.status, 201, "{:?}", hold.body);
        let index = hold.body["applied_index"]
            .as_u64()
            .expect("applied_index in the answer");
        let read = cluster
            .get(
                follower,
                &format!("/availability?event_id=ryw&min_index={index}"),
            )
            .await?;
        assert_eq!(read.status, 200, "{:?}", read.body);
        assert!(read.applied_index().unwrap() >= index);
        let status = seat_status(&read.body, &seat).expect("the page lists the seat");
        assert_eq!(status, "HELD");
    }
    // An index far ahead is refused within the bounded wait, not answered stale.
    let ahead = cluster
        .get(follower, "/availability?event_id=ryw&min_index=100000000")
        .await?;
    assert_eq!(
        (ahead.status, ahead.code()),
        (503, "INDEX_NOT_REACHED"),
        "{:?}",
        ahead.body
    );
    assert!(ahead.header("retry-after").is_some());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bounded_reads_are_served_by_a_fresh_follower_and_refused_by_a_cut_off_one(
) -> anyhow::Result<()> {
    let cluster = ProcessCluster::start(3).await?;
    cluster
        .create_event(0, event_body("fresh", 1, 10, 10))
        .await?;
    let leader = cluster.wait_for_leader().await?;
    let follower = (0..3).find(|&node| node != leader).unwrap();
    let follower_id = cluster.nodes[follower].id.to_string();
    let bounded =
        "/availability?event_id=fresh&view=summary&consistency=bounded&max_staleness_ms=500";

    // Bounded staleness is about contact with the leader, not read-your-writes: wait until
    // the follower has applied the event before reading it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while cluster
        .get(follower, "/availability?event_id=fresh&view=summary")
        .await?
        .status
        != 200
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the follower never applied the event"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    // In contact with the leader: the follower answers itself.
    let read = cluster.get(follower, bounded).await?;
    assert_eq!(read.status, 200, "{:?}", read.body);
    assert_eq!(read.header("x-holdfast-node"), Some(follower_id.as_str()));

    // Cut off for longer than the bound: no stale answer at the bounded level, while a
    // stale read still answers from what the node has.
    cluster.set_isolated(follower, true).await?;
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
    let refused = cluster.get(follower, bounded).await?;
    assert_eq!(refused.status, 503, "{:?}", refused.body);
    assert_eq!(refused.code(), "NO_QUORUM", "{:?}", refused.body);
    let stale = cluster
        .get(
            follower,
            "/availability?event_id=fresh&view=summary&consistency=stale",
        )
        .await?;
    assert_eq!(stale.status, 200);

    cluster.set_isolated(follower, false).await?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let read = cluster.get(follower, bounded).await?;
        if read.status == 200 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never fresh again: {:?}",
            read.body
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    Ok(())
}
