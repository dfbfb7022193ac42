//! Self-bootstrap (issue 18): real `holdfast serve` processes started with one
//! `--bootstrap-members` file, as a StatefulSet's pods are, form their cluster with no
//! `POST /cluster/init`; peers dial each other by name (`localhost`, as pods dial DNS
//! names); a node started later with the same file joins as a voter; and the first node,
//! its disk lost and restarted empty, neither starts a second cluster beside the first nor
//! rejoins under its old id (issue 15: its data directory is another incarnation), until
//! the operator removes it and starts it under a new id.

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
    // second cluster, nor campaign with a membership of its own; and it must not rejoin
    // under its old id either (it has forgotten its votes and the entries it acknowledged):
    // its data directory is another incarnation, which its peers refuse. The cluster goes
    // on, undisturbed.
    cluster.stop(0).unwrap();
    cluster.wait_for_leader().await.unwrap();
    let term_before = cluster.get(1, "/cluster/status").await.unwrap().body["term"].clone();
    let recorded = cluster.get(1, "/cluster/status").await.unwrap().body["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|member| member["id"] == 1)
        .map(|member| member["incarnation"].clone())
        .unwrap();
    assert!(recorded.is_string(), "{recorded:?}");
    cluster.wipe(0).unwrap();
    cluster.restart(0).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cluster.log(0).contains("wiped or replaced") {
        assert!(
            Instant::now() < deadline,
            "the wiped node never said why it cannot rejoin:\n{}",
            cluster.log_tail(0)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let wiped = cluster.get(0, "/cluster/status").await.unwrap().body;
    assert_eq!(wiped["role"], "uninitialized", "{wiped:?}");
    assert_ne!(wiped["incarnation"], recorded, "{wiped:?}");
    let leader = cluster.wait_for_leader_without(0).await.unwrap();
    let hold = cluster
        .post(
            leader,
            "/booking/hold",
            hold_body("boot", "c-2", &["A-1-2"], 600),
            Some("boot-2"),
        )
        .await
        .unwrap();
    assert_eq!(hold.status, 201, "{:?}", hold.body);
    let status = cluster.get(1, "/cluster/status").await.unwrap().body;
    assert_eq!(
        status["term"], term_before,
        "the wiped node disturbed the cluster"
    );
    let wiped = cluster.get(0, "/cluster/status").await.unwrap().body;
    assert_eq!(wiped["applied_index"], 0, "{wiped:?}");

    // The operator's way back: remove the lost member, and start the node under a new id.
    // With the same members file it joins by itself and serves the data written before.
    cluster.stop(0).unwrap();
    let removed = cluster
        .client
        .delete(cluster.nodes[leader].url("/cluster/nodes/1"))
        .send()
        .await
        .unwrap();
    assert_eq!(removed.status().as_u16(), 200);
    let fifth = cluster.spawn_new_node().unwrap();
    cluster.wait_healthy(fifth).await.unwrap();
    for position in [1, 2, 3, fifth] {
        wait_voters(&cluster, position, &[2, 3, 4, 5]).await;
    }
    let leader = cluster.wait_for_leader().await.unwrap();
    let index = cluster.get(leader, "/cluster/status").await.unwrap().body["applied_index"]
        .as_u64()
        .unwrap();
    let seats = cluster
        .get(
            fifth,
            &format!("/availability?event_id=boot&section=A&min_index={index}"),
        )
        .await
        .unwrap();
    assert_eq!(seats.status, 200, "{:?}", seats.body);
    for seat in ["A-1-1", "A-1-2"] {
        assert_eq!(
            holdfast_tests::seat_status(&seats.body, seat).as_deref(),
            Some("HELD"),
            "{seat}"
        );
    }
}
