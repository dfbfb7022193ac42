//! Snapshot and purge: after the leader compacts its log, a new learner and a node that was
//! down the whole time can only catch up by snapshot install; both end with the leader's
//! state.

use std::time::Duration;

use holdfast_raft::testing::{workload, Cluster, ClusterOptions};
use holdfast_raft::{Batch, RaftNode};

const TIMEOUT: Duration = Duration::from_secs(60);

async fn wait_for_purge(node: &RaftNode, index: u64) {
    let mut metrics = node.metrics();
    tokio::time::timeout(
        TIMEOUT,
        metrics.wait_for(|metrics| metrics.purged.is_some_and(|purged| purged.index >= index)),
    )
    .await
    .expect("log purged in time")
    .expect("raft running");
}

/// Whether `node` installed a snapshot of `index` or later. openraft publishes the
/// snapshot in its metrics after the state store has installed it (and woken whoever waits
/// for the index in `wait_applied`), so this waits for the metrics, bounded.
async fn installed_snapshot(node: &RaftNode, index: u64) -> bool {
    let mut metrics = node.metrics();
    tokio::time::timeout(
        TIMEOUT,
        metrics.wait_for(|metrics| metrics.snapshot.is_some_and(|log_id| log_id.index >= index)),
    )
    .await
    .is_ok_and(|waited| waited.is_ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lagging_nodes_catch_up_by_snapshot_after_purge() {
    let mut cluster = Cluster::start(ClusterOptions::default())
        .await
        .expect("cluster starts");
    cluster
        .propose(Batch::single(workload::create_event(1_000_000)), TIMEOUT)
        .await
        .expect("event created");
    let leader_id = cluster.leader(TIMEOUT).await.expect("leader");
    let long_down = cluster
        .live_ids()
        .into_iter()
        .find(|id| *id != leader_id)
        .expect("a follower");
    cluster.crash(long_down).await;

    let mut last_index = 0;
    for first in (0..2_000).step_by(20) {
        let batch = Batch::new((first..first + 20).map(workload::hold).collect());
        last_index = cluster
            .propose(batch, TIMEOUT)
            .await
            .expect("commits")
            .log_id
            .index;
    }
    let leader = cluster.node(cluster.leader(TIMEOUT).await.expect("leader"));
    leader.trigger_snapshot().await.expect("snapshot triggered");
    wait_for_purge(&leader, last_index).await;
    assert!(installed_snapshot(&leader, last_index).await);

    // A new learner: the log it would need is gone, so it gets the snapshot.
    let learner = cluster.add_learner(4).await.expect("learner added");
    assert!(
        learner
            .wait_applied(last_index, TIMEOUT)
            .await
            .expect("raft running"),
        "learner caught up"
    );
    assert!(
        installed_snapshot(&learner, last_index).await,
        "learner installed a snapshot"
    );

    // The node that was down through all of it.
    let returned = cluster.restart(long_down).await.expect("node restarts");
    assert!(
        returned
            .wait_applied(last_index, TIMEOUT)
            .await
            .expect("raft running"),
        "returning node caught up"
    );
    assert!(
        installed_snapshot(&returned, last_index).await,
        "returning node installed a snapshot"
    );

    let reference = leader.state().state_snapshot_bytes();
    assert!(
        learner.state().state_snapshot_bytes() == reference,
        "learner equals leader"
    );
    assert!(
        returned.state().state_snapshot_bytes() == reference,
        "returning node equals leader"
    );

    // Writes still replicate to both after the install.
    let result = cluster
        .propose(Batch::single(workload::hold(1_000_000)), TIMEOUT)
        .await
        .expect("write after install");
    cluster
        .wait_all_applied(result.log_id.index, TIMEOUT)
        .await
        .expect("all applied");
    let reference = leader.state().state_snapshot_bytes();
    for node_id in cluster.live_ids() {
        assert!(
            cluster.node(node_id).state().state_snapshot_bytes() == reference,
            "node {node_id}"
        );
    }
    cluster.shutdown().await.expect("shutdown");
}
