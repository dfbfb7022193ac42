//! Three nodes over loopback gRPC: a leader is elected, 10,000 commands replicate, and
//! every node ends with the same state, byte for byte.
//!
//! Leadership may move while the proposers run (a loaded CI machine can starve heartbeats
//! past the election timeout), so proposals go through [`Cluster::propose`], which follows
//! the leader, and every hold carries a request id: a retry of a proposal that did commit
//! is answered from the idempotency table instead of holding twice.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use holdfast_raft::testing::{workload, Cluster, ClusterOptions};
use holdfast_raft::Batch;
use holdfast_statemachine::Outcome;

const COMMANDS: u64 = 10_000;
const PROPOSERS: usize = 32;
const TIMEOUT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_commands_replicate_to_identical_state() {
    let cluster = Arc::new(
        Cluster::start(ClusterOptions::default())
            .await
            .expect("cluster starts"),
    );
    let created = cluster
        .propose(Batch::single(workload::create_event(COMMANDS * 2)), TIMEOUT)
        .await
        .expect("event created");
    assert!(matches!(created.outcomes[..], [Outcome::EventCreated(_)]));

    let next = Arc::new(AtomicU64::new(0));
    let last_index = Arc::new(AtomicU64::new(0));
    let mut proposers = Vec::new();
    for _ in 0..PROPOSERS {
        let cluster = Arc::clone(&cluster);
        let next = Arc::clone(&next);
        let last_index = Arc::clone(&last_index);
        proposers.push(tokio::spawn(async move {
            loop {
                let sequence = next.fetch_add(1, Ordering::Relaxed);
                if sequence >= COMMANDS {
                    return;
                }
                let mut entry = workload::hold(sequence);
                entry.request_id = Some(format!("hold-{sequence}"));
                let result = cluster
                    .propose(Batch::single(entry), TIMEOUT)
                    .await
                    .expect("proposal commits");
                assert!(
                    matches!(result.outcomes[..], [Outcome::Held(_)]),
                    "{:?}",
                    result.outcomes
                );
                last_index.fetch_max(result.log_id.index, Ordering::Relaxed);
            }
        }));
    }
    for proposer in proposers {
        proposer.await.expect("proposer");
    }

    let last_index = last_index.load(Ordering::Relaxed);
    cluster
        .wait_all_applied(last_index, TIMEOUT)
        .await
        .expect("all applied");
    let leader = cluster.node(cluster.leader(TIMEOUT).await.expect("leader"));
    let expected = leader.state().state_snapshot_bytes();
    assert_eq!(
        leader.state().read(|state| state.machine.active_holds()),
        COMMANDS as usize
    );
    for node_id in cluster.live_ids() {
        let node = cluster.node(node_id);
        assert_eq!(node.state().applied_index(), last_index, "node {node_id}");
        assert!(
            node.state().state_snapshot_bytes() == expected,
            "node {node_id} differs from the leader"
        );
    }
    Arc::into_inner(cluster)
        .expect("sole owner")
        .shutdown()
        .await
        .expect("shutdown");
}
