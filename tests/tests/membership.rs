//! Add a fourth node as a learner, promote it, remove an old voter; the new node serves reads.

use holdfast_tests::{event_body, ProcessCluster};
use serde_json::json;

/// Asks node `position` to add `learner` and checks that it is refused with
/// `409 MEMBERSHIP_REFUSED`, saying `why`.
async fn assert_learner_refused(
    cluster: &ProcessCluster,
    position: usize,
    learner: serde_json::Value,
    why: &str,
) -> anyhow::Result<()> {
    let refused = cluster
        .post(position, "/cluster/learners", learner, None)
        .await?;
    assert_eq!(
        (refused.status, refused.code()),
        (409, "MEMBERSHIP_REFUSED"),
        "{:?}",
        refused.body
    );
    let message = refused.body["error"]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(message.contains(why), "{message}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_promote_remove() -> anyhow::Result<()> {
    let mut cluster = ProcessCluster::start(3).await?;
    cluster
        .create_event(0, event_body("grow", 2, 10, 10))
        .await?;

    // Started without --cluster-id: `POST /cluster/init` gave the cluster a random id,
    // which every member took.
    let cluster_id = cluster.get(0, "/cluster/status").await?.body["cluster_id"].clone();
    let text = cluster_id.as_str().unwrap_or_default();
    assert!(
        text.len() == 19
            && text.starts_with("hf-")
            && text[3..].bytes().all(|byte| byte.is_ascii_hexdigit()),
        "{cluster_id:?}"
    );
    for position in 1..3 {
        let status = cluster.get(position, "/cluster/status").await?;
        assert_eq!(status.body["cluster_id"], cluster_id, "{:?}", status.body);
    }

    let new = cluster.spawn_new_node()?;
    cluster.wait_healthy(new).await?;
    // A fresh node belongs to no cluster until one reaches it.
    let fresh = cluster.get(new, "/cluster/status").await?;
    assert!(fresh.body.get("cluster_id").is_none(), "{:?}", fresh.body);
    let node = &cluster.nodes[new];
    let learner = json!({"id": node.id, "raft_addr": node.raft_addr, "http_addr": node.http_addr, "region": "local"});
    let added = cluster.post(0, "/cluster/learners", learner, None).await?;
    assert_eq!(added.status, 200, "{:?}", added.body);
    let joined = cluster.get(new, "/cluster/status").await?;
    assert_eq!(joined.body["cluster_id"], cluster_id, "{:?}", joined.body);

    // Another cluster initialised the same way has another id.
    let other = ProcessCluster::start(1).await?;
    let other_status = other.get(0, "/cluster/status").await?;
    assert!(other_status.body["cluster_id"].is_string());
    assert_ne!(other_status.body["cluster_id"], cluster_id);
    drop(other);

    let promoted = cluster
        .post(
            1,
            "/cluster/membership",
            json!({"voters": [1, 2, 3, 4]}),
            None,
        )
        .await?;
    assert_eq!(promoted.status, 200, "{:?}", promoted.body);

    // Remove a voter that is not the leader, so the test does not depend on re-election.
    let leader = cluster.wait_for_leader().await?;
    let victim = (0..3).find(|&position| position != leader).unwrap();
    let victim_id = cluster.nodes[victim].id;
    let removed = cluster
        .client
        .delete(cluster.nodes[leader].url(&format!("/cluster/nodes/{victim_id}")))
        .send()
        .await?;
    assert_eq!(removed.status().as_u16(), 200);
    cluster.stop(victim)?;

    let status = cluster.get(new, "/cluster/status").await?;
    let members = status.body["members"].as_array().unwrap();
    assert!(
        members
            .iter()
            .any(|m| m["id"] == cluster.nodes[new].id && m["voter"] == true),
        "{:?}",
        status.body
    );
    assert!(
        !members.iter().any(|m| m["id"] == victim_id),
        "{:?}",
        status.body
    );

    let page = cluster
        .get(
            new,
            "/availability?event_id=grow&view=summary&consistency=linearizable",
        )
        .await?;
    assert_eq!(page.status, 200, "{:?}", page.body);
    assert_eq!(page.body["summary"]["seats_total"], 40);
    let stale = cluster
        .get(new, "/availability?event_id=grow&view=summary")
        .await?;
    assert_eq!(stale.status, 200);

    // Removing an unknown node through a follower is a 404, as on the leader.
    let follower = (0..cluster.nodes.len())
        .find(|&position| position != leader && position != victim)
        .unwrap();
    let unknown_node = cluster
        .client
        .delete(cluster.nodes[follower].url("/cluster/nodes/99"))
        .send()
        .await?;
    assert_eq!(unknown_node.status().as_u16(), 404);

    // Refused before anything changes: a learner that does not answer at its peer address
    // (nothing listens there), on the leader and through a follower alike.
    let nobody = json!({"id": 77, "raft_addr": "127.0.0.1:1", "http_addr": "127.0.0.1:2", "region": "local"});
    for position in [leader, follower] {
        assert_learner_refused(&cluster, position, nobody.clone(), "did not answer").await?;
    }
    let status = cluster.get(leader, "/cluster/status").await?;
    assert!(
        !status.body["members"]
            .as_array()
            .unwrap()
            .iter()
            .any(|member| member["id"] == 77),
        "{:?}",
        status.body
    );

    // Refused: a change that keeps only a minority of the current voters (here one of three
    // current voters, with a new learner), which would hand the cluster to nodes that never
    // voted in it.
    let newer = cluster.spawn_new_node()?;
    cluster.wait_healthy(newer).await?;
    let node = &cluster.nodes[newer];
    let learner = json!({"id": node.id, "raft_addr": node.raft_addr, "http_addr": node.http_addr, "region": "local"});
    let added = cluster
        .post(leader, "/cluster/learners", learner, None)
        .await?;
    assert_eq!(added.status, 200, "{:?}", added.body);
    let takeover = json!({"voters": [cluster.nodes[new].id, cluster.nodes[newer].id]});
    let refused = cluster
        .post(leader, "/cluster/membership", takeover, None)
        .await?;
    assert_eq!(
        (refused.status, refused.code()),
        (409, "MEMBERSHIP_REFUSED"),
        "{:?}",
        refused.body
    );
    let status = cluster.get(leader, "/cluster/status").await?;
    let voters = status.body["members"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["voter"] == true)
        .count();
    assert_eq!(voters, 3, "{:?}", status.body);

    // Refused: adding again a member whose data directory was wiped (it answers with
    // another incarnation than the membership records); the status shows both.
    let recorded = status.body["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|member| member["id"] == cluster.nodes[newer].id)
        .map(|member| member["incarnation"].clone())
        .unwrap();
    assert!(recorded.is_string(), "{:?}", status.body);
    cluster.stop(newer)?;
    cluster.wipe(newer)?;
    cluster.restart(newer).await?;
    let node = &cluster.nodes[newer];
    let again = json!({"id": node.id, "raft_addr": node.raft_addr, "http_addr": node.http_addr, "region": "local"});
    assert_learner_refused(&cluster, leader, again, "wiped or replaced").await?;
    let own = cluster.get(newer, "/cluster/status").await?;
    assert_ne!(own.body["incarnation"], recorded, "{:?}", own.body);
    assert_eq!(own.body["applied_index"], 0, "{:?}", own.body);
    // holdfastctl tells the operator which node it is and what to do.
    let endpoints = format!(
        "{},{}",
        cluster.nodes[leader].http_addr, cluster.nodes[newer].http_addr
    );
    let ctl = holdfast_tests::cluster::holdfastctl(&endpoints, &["cluster", "status"]).await;
    assert!(
        ctl.stderr.contains(&format!(
            "node {} answers as data directory incarnation",
            cluster.nodes[newer].id
        )) && ctl.stderr.contains("wiped or replaced"),
        "{}",
        ctl.stderr
    );

    // Refused: voters that are not members, an empty voter set, and a removed id.
    let unknown = cluster
        .post(leader, "/cluster/membership", json!({"voters": [99]}), None)
        .await?;
    assert_eq!(
        (unknown.status, unknown.code()),
        (409, "MEMBERSHIP_REFUSED"),
        "{:?}",
        unknown.body
    );
    let empty = cluster
        .post(leader, "/cluster/membership", json!({"voters": []}), None)
        .await?;
    assert_eq!(empty.status, 400, "{:?}", empty.body);
    let victim = &cluster.nodes[victim];
    let again = json!({"id": victim_id, "raft_addr": victim.raft_addr, "http_addr": victim.http_addr, "region": "local"});
    let reused = cluster
        .post(leader, "/cluster/learners", again, None)
        .await?;
    assert_eq!(
        (reused.status, reused.code()),
        (409, "MEMBERSHIP_REFUSED"),
        "{:?}",
        reused.body
    );
    Ok(())
}
