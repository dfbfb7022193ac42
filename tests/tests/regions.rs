//! Regions on real processes: leadership moves by itself to the most preferred region
//! (`--leader-regions`), the cluster status shows regions, lag and placement, and a
//! membership change that would lose the survival of a region's loss is refused under
//! `--placement refuse`.

use std::time::{Duration, Instant};

use holdfast_tests::cluster::Launch;
use holdfast_tests::{event_body, hold_body, ProcessCluster};
use serde_json::json;

/// Waits until node `position` reports `leader` as the leader.
async fn wait_leader_is(
    cluster: &ProcessCluster,
    position: usize,
    leader: u64,
    within: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    loop {
        let status = cluster.get(position, "/cluster/status").await?;
        if status.body["leader_id"] == leader {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "leader is still {} (want {leader})",
            status.body["leader_id"]
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leadership_goes_to_the_preferred_region_and_placement_is_kept() -> anyhow::Result<()> {
    // Node 1 (the first leader: it initialises the cluster) is in the least preferred
    // region; node 3 is in the preferred one.
    let mut launch = Launch {
        regions: ["ap", "us", "eu", "eu"].map(String::from).to_vec(),
        ..Launch::default()
    };
    launch.env.extend([
        ("HOLDFAST_LEADER_REGIONS".to_owned(), "eu,us".to_owned()),
        (
            "HOLDFAST_LEADER_PREFERENCE_DELAY_MS".to_owned(),
            "1000".to_owned(),
        ),
        ("HOLDFAST_PLACEMENT".to_owned(), "refuse".to_owned()),
    ]);
    let mut cluster = ProcessCluster::start_with(3, launch).await?;
    cluster
        .create_event(0, event_body("regions", 2, 10, 10))
        .await?;

    // The leader moves to node 3 (eu) by itself, and stays there.
    wait_leader_is(&cluster, 0, 3, Duration::from_secs(60)).await?;
    let status = cluster.get(2, "/cluster/status").await?;
    assert_eq!(status.body["role"], "leader", "{}", status.body);
    let regions: Vec<(u64, String)> = status.body["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|member| {
            (
                member["id"].as_u64().unwrap(),
                member["region"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        regions,
        vec![(1, "ap".into()), (2, "us".into()), (3, "eu".into())]
    );
    // The leader knows every member's lag and last contact; 1-1-1 survives the loss of
    // any one region.
    let contact_ms = |body: &serde_json::Value| -> Vec<Option<u64>> {
        body["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|member| member["last_contact_ms"].as_u64())
            .collect()
    };
    assert!(
        status.body["members"]
            .as_array()
            .unwrap()
            .iter()
            .all(|member| member["lag"].is_u64()),
        "{}",
        status.body
    );
    assert!(
        contact_ms(&status.body)
            .iter()
            .all(|ms| ms.is_some_and(|ms| ms < 10_000)),
        "{}",
        status.body
    );
    assert!(
        status.body.get("placement_warning").is_none(),
        "{}",
        status.body
    );
    let held = cluster
        .post(
            0,
            "/booking/hold",
            hold_body("regions", "c1", &["A-1-1"], 600),
            Some("regions-1"),
        )
        .await?;
    assert_eq!(held.status, 201, "{}", held.body);
    tokio::time::sleep(Duration::from_secs(3)).await;
    wait_leader_is(&cluster, 1, 3, Duration::from_secs(1)).await?;

    // A fourth node in eu joins; voters {us, eu, eu} would not survive losing eu, while
    // {ap, us, eu} does: refused.
    let new = cluster.spawn_new_node()?;
    cluster.wait_healthy(new).await?;
    let node = &cluster.nodes[new];
    let learner = json!({"id": node.id, "raft_addr": node.raft_addr, "http_addr": node.http_addr, "region": node.region});
    let added = cluster.post(0, "/cluster/learners", learner, None).await?;
    assert_eq!(added.status, 200, "{}", added.body);
    let refused = cluster
        .post(0, "/cluster/membership", json!({"voters": [2, 3, 4]}), None)
        .await?;
    assert_eq!(refused.status, 409, "{}", refused.body);
    assert_eq!(refused.code(), "MEMBERSHIP_REFUSED");
    assert!(
        refused.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("region"),
        "{}",
        refused.body
    );
    // Four voters 1-1-2 survive no region's loss either (losing eu leaves 2 of 4): refused.
    let refused = cluster
        .post(
            0,
            "/cluster/membership",
            json!({"voters": [1, 2, 3, 4]}),
            None,
        )
        .await?;
    assert_eq!(refused.status, 409, "{}", refused.body);
    let status = cluster.get(2, "/cluster/status").await?;
    let voters = status.body["members"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|member| member["voter"] == true)
        .count();
    assert_eq!(voters, 3, "{}", status.body);
    Ok(())
}
