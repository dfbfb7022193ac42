//! Crash and restart: nodes are dropped without shutdown and reopened on their data
//! directories. Every acknowledged entry is still there, and a restarted node catches up.

use std::time::Duration;

use holdfast_raft::testing::{workload, Cluster, ClusterOptions};
use holdfast_raft::Batch;
use holdfast_statemachine::Outcome;

const TIMEOUT: Duration = Duration::from_secs(60);

/// Proposes holds `range` one batch of `batch_size` at a time and returns the acknowledged
/// hold ids and the last acknowledged log index.
async fn propose_holds(
    cluster: &Cluster,
    range: std::ops::Range<u64>,
    batch_size: u64,
) -> (Vec<String>, u64) {
    let mut hold_ids = Vec::new();
    let mut last_index = 0;
    let mut sequence = range.start;
    while sequence < range.end {
        let end = (sequence + batch_size).min(range.end);
        let batch = Batch::new((sequence..end).map(workload::hold).collect());
        let result = cluster
            .propose(batch, TIMEOUT)
            .await
            .expect("proposal commits");
        for outcome in result.outcomes {
            match outcome {
                Outcome::Held(view) => hold_ids.push(view.hold_id.to_string()),
                other => panic!("unexpected outcome {other:?}"),
            }
        }
        last_index = result.log_id.index;
        sequence = end;
    }
    (hold_ids, last_index)
}

fn assert_holds_present(cluster: &Cluster, hold_ids: &[String]) {
    for node_id in cluster.live_ids() {
        let node = cluster.node(node_id);
        node.state().read(|state| {
            for hold_id in hold_ids {
                assert!(
                    state.machine.hold_by_id(hold_id).is_some(),
                    "node {node_id} lost acknowledged hold {hold_id}"
                );
            }
        });
    }
}

async fn assert_identical_state(cluster: &Cluster) {
    // One more write, so every node's applied index has a common target.
    let result = cluster
        .propose(Batch::single(workload::hold(1_000_000)), TIMEOUT)
        .await
        .expect("final write");
    cluster
        .wait_all_applied(result.log_id.index, TIMEOUT)
        .await
        .expect("all nodes applied");
    let reference = cluster
        .node(cluster.live_ids()[0])
        .state()
        .state_snapshot_bytes();
    for node_id in cluster.live_ids() {
        assert!(
            cluster.node(node_id).state().state_snapshot_bytes() == reference,
            "node {node_id} differs"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_entries_survive_crashes_and_restarted_nodes_catch_up() {
    let mut cluster = Cluster::start(ClusterOptions::default())
        .await
        .expect("cluster starts");
    cluster
        .propose(Batch::single(workload::create_event(1_000_000)), TIMEOUT)
        .await
        .expect("event created");
    let (mut acknowledged, _) = propose_holds(&cluster, 0..300, 10).await;

    // A follower crashes, the others go on, the follower comes back and catches up.
    let leader = cluster.leader(TIMEOUT).await.expect("leader");
    let follower = cluster
        .live_ids()
        .into_iter()
        .find(|id| *id != leader)
        .expect("a follower");
    cluster.crash(follower).await;
    let (more, _) = propose_holds(&cluster, 300..500, 10).await;
    acknowledged.extend(more);
    cluster.restart(follower).await.expect("follower restarts");
    assert_identical_state(&cluster).await;
    assert_holds_present(&cluster, &acknowledged);

    // Every node crashes at once (a power loss), then all restart on their directories.
    let (more, last_acknowledged) = propose_holds(&cluster, 500..700, 10).await;
    acknowledged.extend(more);
    for node_id in cluster.live_ids() {
        cluster.crash(node_id).await;
    }
    let mut logs_reaching_acknowledged = 0;
    for node_id in 1..=3 {
        let node = cluster.restart(node_id).await.expect("node restarts");
        // Read from the reopened directory before any peer could have sent anything new.
        let mut metrics = node.metrics();
        let reported = tokio::time::timeout(
            Duration::from_secs(5),
            metrics.wait_for(|metrics| metrics.last_log_index.is_some()),
        )
        .await;
        let last_log_index = match reported {
            Ok(Ok(metrics)) => metrics.last_log_index.unwrap_or(0),
            _ => 0,
        };
        if last_log_index >= last_acknowledged {
            logs_reaching_acknowledged += 1;
        }
    }
    // Acknowledged means fsynced on a majority: at least two of three logs reach it.
    assert!(
        logs_reaching_acknowledged >= 2,
        "{logs_reaching_acknowledged} logs hold the last acknowledged entry"
    );
    cluster
        .leader(TIMEOUT)
        .await
        .expect("a leader after restart");
    assert_identical_state(&cluster).await;
    assert_holds_present(&cluster, &acknowledged);

    cluster.shutdown().await.expect("shutdown");
}

/// A voter whose data directory is wiped has forgotten its votes and the entries it
/// acknowledged. It comes back under its old id with another incarnation, and the cluster
/// refuses it (it must never vote or count towards a quorum again under that id): it
/// receives nothing, while the others go on committing. Without the incarnation check the
/// leader would simply replicate the log into it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_voter_whose_data_directory_was_wiped_is_refused_under_its_old_id() {
    let mut cluster = Cluster::start(ClusterOptions::default())
        .await
        .expect("cluster starts");
    cluster
        .propose(Batch::single(workload::create_event(1_000_000)), TIMEOUT)
        .await
        .expect("event created");
    propose_holds(&cluster, 0..50, 10).await;
    let leader_id = cluster.leader(TIMEOUT).await.expect("leader");
    let leader = cluster.node(leader_id);
    let mut followers = cluster.live_ids().into_iter().filter(|id| *id != leader_id);
    let (victim, survivor) = (followers.next().unwrap(), followers.next().unwrap());
    let recorded = |node_id| {
        leader
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .get_node(&node_id)
            .map(|node| node.incarnation)
    };
    let old_incarnation = cluster.node(victim).incarnation();
    assert_ne!(old_incarnation, 0);
    assert_eq!(recorded(victim), Some(old_incarnation));

    cluster.crash(victim).await;
    std::fs::remove_dir_all(cluster.data_dir(victim)).expect("wipe the directory");
    let wiped = cluster
        .restart(victim)
        .await
        .expect("the wiped node starts");
    assert_ne!(wiped.incarnation(), old_incarnation);

    // The leader and the survivor go on without it (proposed to the leader directly: the
    // harness's `propose` waits for every member to agree on a leader, and the wiped node
    // never will).
    let mut last = 0;
    for sequence in 100..110 {
        let result = leader
            .propose(Batch::single(workload::hold(sequence)))
            .await
            .expect("a majority of intact voters commits");
        last = result.log_id.index;
    }
    assert!(cluster
        .node(survivor)
        .wait_applied(last, TIMEOUT)
        .await
        .expect("the survivor applies"));
    // Several heartbeats later the wiped node has still been given nothing.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let metrics = wiped.metrics().borrow().clone();
    assert_eq!(metrics.last_log_index, None, "{metrics:?}");
    assert_eq!(metrics.last_applied, None, "{metrics:?}");
    assert_eq!(metrics.membership_config.membership().nodes().count(), 0);
    assert_eq!(recorded(victim), Some(old_incarnation));
    cluster.shutdown().await.expect("shutdown");
}

/// A task waiting for an index this node will never apply learns that Raft stopped soon
/// after it does, not at the end of its own (here ten-minute) wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_for_an_index_ends_when_raft_stops() {
    let cluster = Cluster::start(ClusterOptions::default())
        .await
        .expect("cluster starts");
    let leader_id = cluster.leader(TIMEOUT).await.expect("leader");
    let node = cluster.node(leader_id);
    let waiting = tokio::spawn({
        let node = std::sync::Arc::clone(&node);
        async move {
            node.wait_applied(u64::MAX / 2, Duration::from_secs(600))
                .await
        }
    });
    node.shutdown().await.expect("raft stops");
    let answer = tokio::time::timeout(TIMEOUT, waiting)
        .await
        .expect("the wait ended long before its own timeout")
        .expect("the waiting task did not panic");
    assert!(
        matches!(answer, Err(holdfast_raft::Error::Fatal { .. })),
        "{answer:?}"
    );
}
