//! Leader loss: the leader crashes while clients write; a new leader is elected and
//! accepts writes, and no acknowledged write is lost.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use holdfast_raft::testing::{workload, Cluster, ClusterOptions};
use holdfast_raft::{Batch, RaftNode};
use holdfast_statemachine::Outcome;

const TIMEOUT: Duration = Duration::from_secs(60);
const PROPOSERS: usize = 8;
const WRITES_AFTER_LOSS: usize = 200;

struct Acknowledged {
    hold_ids: Mutex<Vec<String>>,
    count: AtomicU64,
}

/// Proposes to whichever node accepts, until `stop` is set. Only answered proposals count
/// as acknowledged; each attempt uses a fresh customer, so an unanswered one that did
/// commit cannot be confused with an acknowledged one.
async fn proposer(
    nodes: Vec<Arc<RaftNode>>,
    next: Arc<AtomicU64>,
    acknowledged: Arc<Acknowledged>,
    stop: Arc<AtomicU64>,
) {
    let mut position = 0;
    while stop.load(Ordering::Relaxed) == 0 {
        let sequence = next.fetch_add(1, Ordering::Relaxed);
        let node = &nodes[position % nodes.len()];
        let attempt = tokio::time::timeout(
            Duration::from_secs(5),
            node.propose(Batch::single(workload::hold(sequence))),
        )
        .await;
        match attempt {
            Ok(Ok(result)) => match &result.outcomes[..] {
                [Outcome::Held(view)] => {
                    acknowledged
                        .hold_ids
                        .lock()
                        .unwrap()
                        .push(view.hold_id.to_string());
                    acknowledged.count.fetch_add(1, Ordering::Relaxed);
                }
                other => panic!("unexpected outcome {other:?}"),
            },
            Ok(Err(_)) | Err(_) => {
                position += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_leader_takes_over_without_losing_acknowledged_writes() {
    let mut cluster = Cluster::start(ClusterOptions::default())
        .await
        .expect("cluster starts");
    cluster
        .propose(Batch::single(workload::create_event(1_000_000)), TIMEOUT)
        .await
        .expect("event created");

    let nodes: Vec<Arc<RaftNode>> = cluster
        .live_ids()
        .into_iter()
        .map(|id| cluster.node(id))
        .collect();
    let next = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicU64::new(0));
    let acknowledged = Arc::new(Acknowledged {
        hold_ids: Mutex::new(Vec::new()),
        count: AtomicU64::new(0),
    });
    let proposers: Vec<_> = (0..PROPOSERS)
        .map(|_| {
            tokio::spawn(proposer(
                nodes.clone(),
                Arc::clone(&next),
                Arc::clone(&acknowledged),
                Arc::clone(&stop),
            ))
        })
        .collect();
    drop(nodes);

    let wait_for_count = |target: u64| {
        let acknowledged = Arc::clone(&acknowledged);
        async move {
            tokio::time::timeout(TIMEOUT, async {
                while acknowledged.count.load(Ordering::Relaxed) < target {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            })
            .await
            .expect("writes acknowledged in time");
        }
    };
    wait_for_count(200).await;

    let old_leader = cluster.leader(TIMEOUT).await.expect("leader");
    cluster.crash(old_leader).await;
    let before_loss = acknowledged.count.load(Ordering::Relaxed);
    let new_leader = cluster.leader(TIMEOUT).await.expect("a new leader");
    assert_ne!(new_leader, old_leader);
    wait_for_count(before_loss + WRITES_AFTER_LOSS as u64).await;

    stop.store(1, Ordering::Relaxed);
    for task in proposers {
        task.await.expect("proposer");
    }
    let hold_ids = acknowledged.hold_ids.lock().unwrap().clone();
    let leader = cluster.node(cluster.leader(TIMEOUT).await.expect("leader"));
    leader
        .read_linearizable(|state| {
            for hold_id in &hold_ids {
                assert!(
                    state.machine.hold_by_id(hold_id).is_some(),
                    "acknowledged hold {hold_id} lost"
                );
            }
        })
        .await
        .expect("linearizable read");

    // The old leader comes back as a follower and catches up with the same state.
    cluster
        .restart(old_leader)
        .await
        .expect("old leader restarts");
    let result = cluster
        .propose(Batch::single(workload::hold(10_000_000)), TIMEOUT)
        .await
        .expect("write");
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
