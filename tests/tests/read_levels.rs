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
