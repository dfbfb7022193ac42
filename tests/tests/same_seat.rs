//! Fifty clients race for one seat through random nodes: exactly one wins.

use futures::future::join_all;
use holdfast_tests::{event_body, hold_body, ProcessCluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_clients_one_seat_exactly_one_hold() -> anyhow::Result<()> {
    let cluster = ProcessCluster::start(3).await?;
    let created = cluster
        .post(0, "/admin/events", event_body("race", 2, 10, 10), None)
        .await?;
    assert_eq!(created.status, 201, "{:?}", created.body);

    let attempts = (0..50).map(|client| {
        let cluster = &cluster;
        async move {
            let node = client % 3;
            let body = hold_body("race", &format!("c-{client}"), &["A-1-5"], 600);
            cluster
                .post(node, "/booking/hold", body, Some(&format!("race-{client}")))
                .await
        }
    });
    let answers = join_all(attempts).await;
    let mut won = 0;
    for answer in answers {
        let answer = answer?;
        match answer.status {
            201 => won += 1,
            409 => assert_eq!(answer.code(), "SEAT_UNAVAILABLE", "{:?}", answer.body),
            other => panic!("unexpected answer {other}: {:?}", answer.body),
        }
    }
    assert_eq!(won, 1, "exactly one client holds the seat");

    // Every node agrees once it has applied everything the leader has.
    for node in 0..3 {
        let status = cluster
            .get(
                node,
                "/availability?event_id=race&view=summary&consistency=linearizable",
            )
            .await?;
        assert_eq!(status.status, 200, "{:?}", status.body);
        assert_eq!(status.body["summary"]["seats_held"], 1);
    }

    // The leader's metrics count the outcomes and report each follower's replication lag.
    let leader = cluster.wait_for_leader().await?;
    let metrics = cluster.metrics(leader).await?;
    assert!(metrics.contains("holdfast_holds_total"), "{metrics}");
    assert!(
        metrics.contains("holdfast_replication_lag_entries"),
        "{metrics}"
    );
    assert!(metrics.contains("holdfast_term"), "{metrics}");
    // The storage stages' histograms: the leader appended and applied the holds.
    for stage in ["holdfast_log_append_seconds", "holdfast_apply_seconds"] {
        let count = metrics
            .lines()
            .find_map(|line| line.strip_prefix(&format!("{stage}_count ")))
            .and_then(|count| count.trim().parse::<u64>().ok());
        assert!(count.is_some_and(|count| count > 0), "{stage}: {metrics}");
    }
    assert!(
        metrics.contains("holdfast_log_append_seconds_bucket{le=\"0.0001\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("holdfast_event_pool_units{event_id=\"race\",state=\"available\"} 10"),
        "{metrics}"
    );
    Ok(())
}
