//! Self-bootstrap (issue 18): real `holdfast serve` processes started with one
//! `--bootstrap-members` file, as a StatefulSet's pods are, form their cluster with no
//! `POST /cluster/init`; peers dial each other by name (`localhost`, as pods dial DNS
//! names); a node started later with the same file joins as a voter; and the first node,
//! its disk lost and restarted empty, does not start a second cluster beside the first: it
//! is caught up by the leader it had and serves the data written before.

use std::time::{Duration, Instant};

use holdfast_tests::cluster::Launch;
use holdfast_tests::{event_body, hold_body, ProcessCluster};

/// Waits until node `position` lists `voters` as the voters of the cluster.
async fn wait_voters(cluster: &ProcessCluster, position: usize, voters: &[u64]) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = cluster.get(position, "/cluster/status").await;
        if let Ok(status) = &status {
            let mut found: Vec<u64> = status.body["members"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|member| member["voter"] == true)
                .filter_map(|member| member["id"].as_u64())
                .collect();
            found.sort_unstable();
            if found == voters {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "node at {position} never listed voters {voters:?}: {:?}\n{}",
            status.map(|status| status.body),
            cluster.log_tail(position)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_form_their_cluster_by_themselves_and_a_new_one_joins() {
    let launch = Launch {
        advertise_host: Some("localhost".into()),
        ..Launch::default()
    };
    let mut cluster = ProcessCluster::start_bootstrapped(3, launch)
        .await
        .expect("a cluster that bootstraps itself");
    for position in 0..3 {
        wait_voters(&cluster, position, &[1, 2, 3]).await;
    }
    let leader = cluster.wait_for_leader().await.unwrap();
    cluster
        .create_event(leader, event_body("boot", 2, 10, 10))
        .await
        .expect("event");
    let hold = cluster
        .post(
            leader,
            "/booking/hold",
            hold_body("boot", "c-1", &["A-1-1"], 600),
            Some("boot-1"),
        )
        .await
        .unwrap();
    assert_eq!(hold.status, 201, "{:?}", hold.body);

    // A fourth node with the same members file joins, and becomes a voter.
    let fourth = cluster.spawn_new_node().unwrap();
    cluster.wait_healthy(fourth).await.unwrap();
    for position in 0..4 {
        wait_voters(&cluster, position, &[1, 2, 3, 4]).await;
    }

    // The first listed node loses its disk and starts empty: it must not initialise a
    // second cluster, nor campaign with a membership of its own; the cluster it belongs
    // to catches it up, with no election.
    cluster.stop(0).unwrap();
    cluster.wait_for_leader().await.unwrap();
    let term_before = cluster.get(1, "/cluster/status").await.unwrap().body["term"].clone();
    cluster.wipe(0).unwrap();
    cluster.restart(0).await.unwrap();
    wait_voters(&cluster, 0, &[1, 2, 3, 4]).await;
    let leader = cluster.wait_for_leader().await.unwrap();
    let index = cluster.get(leader, "/cluster/status").await.unwrap().body["applied_index"]
        .as_u64()
        .unwrap();
    let seat = cluster
        .get(
            0,
            &format!("/availability?event_id=boot&section=A&min_index={index}"),
        )
        .await
        .unwrap();
    assert_eq!(seat.status, 200, "{:?}\n{}", seat.body, cluster.log_tail(0));
    assert_eq!(
        holdfast_tests::seat_status(&seat.body, "A-1-1").as_deref(),
        Some("HELD")
    );
    // One cluster: every node names the same leader and term.
    let mut terms = Vec::new();
    for position in 0..4 {
        let status = cluster.get(position, "/cluster/status").await.unwrap();
        terms.push((
            status.body["leader_id"].clone(),
            status.body["term"].clone(),
        ));
    }
    assert!(terms.windows(2).all(|pair| pair[0] == pair[1]), "{terms:?}");
    assert_eq!(
        terms[1].1, term_before,
        "the empty first node disturbed the cluster"
    );
}
