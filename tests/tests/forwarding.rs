//! Writes sent to a follower reach the leader in few large groups, not a call each.

use futures::future::join_all;
use holdfast_tests::{event_body, hold_body, ProcessCluster};

/// The value of an unlabelled counter in a Prometheus text page (0 when absent).
fn counter(metrics: &str, name: &str) -> u64 {
    metrics
        .lines()
        .find_map(|line| {
            line.strip_prefix(name)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_gathers_concurrent_writes_into_few_forwards() -> anyhow::Result<()> {
    let cluster = ProcessCluster::start(3).await?;
    let leader = cluster.wait_for_leader().await?;
    let follower = (0..3).find(|&node| node != leader).expect("a follower");
    let created = cluster
        .post(leader, "/admin/events", event_body("fwd", 15, 20, 10), None)
        .await?;
    assert_eq!(created.status, 201, "{:?}", created.body);

    // 300 holds at once, each on a seat of its own, all through the follower.
    let holds = (0..300usize).map(|client| {
        let cluster = &cluster;
        async move {
            let seat = format!("A-{}-{}", client / 20 + 1, client % 20 + 1);
            let body = hold_body("fwd", &format!("c-{client}"), &[seat.as_str()], 600);
            cluster
                .post(
                    follower,
                    "/booking/hold",
                    body,
                    Some(&format!("fwd-{client}")),
                )
                .await
        }
    });
    let started = std::time::Instant::now();
    let answers = join_all(holds).await;
    eprintln!("300 holds answered in {:?}", started.elapsed());
    for answer in answers {
        let answer = answer?;
        assert_eq!(answer.status, 201, "{:?}", answer.body);
    }

    // Each was forwarded once, and they went in groups: one call per forward, not per
    // hold. (Nagle's rule: while one group is out, the next gathers until it returns or
    // 128 commands wait.)
    let metrics = cluster.metrics(follower).await?;
    let forwards = counter(&metrics, "holdfast_forwards_total");
    let commands = counter(&metrics, "holdfast_forwarded_commands_total");
    eprintln!("{forwards} forwards carried {commands} commands");
    assert_eq!(commands, 300, "{metrics}");
    assert!(
        forwards * 4 <= commands,
        "{forwards} forwards carried {commands} commands: too few per forward"
    );
    // The leader forwarded nothing.
    let leader_metrics = cluster.metrics(leader).await?;
    assert_eq!(counter(&leader_metrics, "holdfast_forwards_total"), 0);
    Ok(())
}
