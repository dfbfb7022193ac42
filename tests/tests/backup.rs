//! `holdfastctl backup FILE` from one real three-node cluster and `restore FILE` into a
//! fresh one (issue 16): the restored cluster serves the same availability, holds and
//! bookings on every node, answers a retried request as the first cluster did, and goes
//! on taking holds. A damaged file is refused before anything is sent (exit 2), and a
//! cluster that holds data refuses a restore (exit 3) and keeps its data.

use holdfast_tests::cluster::holdfastctl;
use holdfast_tests::{confirm_body, event_body, hold_body, ProcessCluster};
use serde_json::Value;

const EVENT: &str = "bk";

/// Every node's HTTP address, comma-separated, a follower's first.
fn endpoints(cluster: &ProcessCluster, leader: usize) -> String {
    let mut nodes: Vec<String> = cluster
        .nodes
        .iter()
        .enumerate()
        .filter(|(position, _)| *position != leader)
        .map(|(_, node)| node.http_addr.clone())
        .collect();
    nodes.push(cluster.nodes[leader].http_addr.clone());
    nodes.join(",")
}

/// `value` without `applied_index` fields (where a read was served, not what it read).
fn without_applied_index(mut value: Value) -> Value {
    match &mut value {
        Value::Object(object) => {
            object.remove("applied_index");
            for field in object.values_mut() {
                *field = without_applied_index(field.take());
            }
        }
        Value::Array(items) => {
            for item in items {
                *item = without_applied_index(item.take());
            }
        }
        _ => {}
    }
    value
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_restored_into_a_fresh_cluster_serves_the_same_bookings() {
    let source = ProcessCluster::start(3).await.expect("source cluster");
    let leader = source.wait_for_leader().await.expect("a leader");
    source
        .create_event(leader, event_body(EVENT, 2, 10, 50))
        .await
        .expect("event");
    let mut hold_ids = Vec::new();
    for (n, seats) in [["A-1-1", "A-1-2"], ["A-2-1", "A-2-2"], ["B-1-1", "B-1-2"]]
        .iter()
        .enumerate()
    {
        let hold = source
            .post(
                leader,
                "/booking/hold",
                hold_body(EVENT, &format!("c-{n}"), seats, 3600),
                Some(&format!("hold-{n}")),
            )
            .await
            .expect("hold");
        assert_eq!(hold.status, 201, "{:?}", hold.body);
        hold_ids.push(hold.body["hold_id"].as_str().unwrap().to_string());
    }
    let mut booking_ids = Vec::new();
    for (n, hold_id) in hold_ids.iter().take(2).enumerate() {
        let confirm = source
            .post(
                leader,
                "/booking/confirm",
                confirm_body(hold_id, "tok_visa"),
                Some(&format!("confirm-{n}")),
            )
            .await
            .expect("confirm");
        assert_eq!(confirm.status, 200, "{:?}", confirm.body);
        booking_ids.push(confirm.body["booking_id"].as_str().unwrap().to_string());
    }
    let cancel = source
        .post(
            leader,
            "/booking/cancel",
            serde_json::json!({"booking_id": booking_ids[1], "reason": "test"}),
            Some("cancel-1"),
        )
        .await
        .expect("cancel");
    assert_eq!(cancel.status, 200, "{:?}", cancel.body);
    // The leader's refund worker pays the refund: wait for it, so that the source does not
    // change after the backup.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let booking = source
            .get(
                leader,
                &format!("/bookings/{}?consistency=linearizable", booking_ids[1]),
            )
            .await
            .expect("booking");
        if booking.body["refund"]["status"] == "REFUNDED" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the refund was not paid: {:?}",
            booking.body
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    // The backup, through a follower.
    let directory = tempfile::tempdir().expect("a directory");
    let file = directory.path().join("cluster.backup");
    let file_name = file.to_str().unwrap();
    let backup = holdfastctl(
        &endpoints(&source, leader),
        &["-o", "json", "backup", file_name],
    )
    .await;
    assert_eq!(backup.code, 0, "{}{}", backup.stdout, backup.stderr);
    let written = backup.json();
    let bytes = std::fs::read(&file).expect("the backup file");
    assert_eq!(written["bytes"].as_u64(), Some(bytes.len() as u64 - 60));
    assert_eq!(written["sha256"].as_str().map(str::len), Some(64));
    assert!(written["index"].as_u64().unwrap() > 0);

    // A damaged copy is refused before anything is sent.
    let damaged = directory.path().join("damaged.backup");
    let mut flipped = bytes.clone();
    *flipped.last_mut().unwrap() ^= 0xff;
    std::fs::write(&damaged, &flipped).unwrap();
    let target = ProcessCluster::start(3).await.expect("target cluster");
    let target_leader = target.wait_for_leader().await.expect("a leader");
    let target_endpoints = endpoints(&target, target_leader);
    let refused = holdfastctl(&target_endpoints, &["restore", damaged.to_str().unwrap()]).await;
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(refused.stderr.contains("SHA-256"), "{}", refused.stderr);

    // Into the source, which holds data: refused by the cluster, nothing changed.
    let before = source
        .get(leader, "/availability?event_id=bk&consistency=linearizable")
        .await
        .unwrap();
    let refused = holdfastctl(&endpoints(&source, leader), &["restore", file_name]).await;
    assert_eq!(refused.code, 3, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("RESTORE_REFUSED"),
        "{}",
        refused.stderr
    );
    let after = source
        .get(leader, "/availability?event_id=bk&consistency=linearizable")
        .await
        .unwrap();
    assert_eq!(after.body["seats"], before.body["seats"]);

    // Into the fresh cluster.
    let restore = holdfastctl(&target_endpoints, &["-o", "json", "restore", file_name]).await;
    assert_eq!(restore.code, 0, "{}{}", restore.stdout, restore.stderr);
    let restored = restore.json();
    assert_eq!(restored["bytes"], written["bytes"]);
    assert_eq!(restored["sha256"], written["sha256"]);
    let restored_index = restored["index"].as_u64().unwrap();

    // Every node of the target answers what the source's leader answers.
    let mut paths = vec![
        format!("/availability?event_id={EVENT}"),
        format!("/events/{EVENT}"),
        "/customers/c-0/bookings".to_string(),
    ];
    paths.extend(hold_ids.iter().map(|id| format!("/holds/{id}")));
    paths.extend(booking_ids.iter().map(|id| format!("/bookings/{id}")));
    for path in &paths {
        let separator = if path.contains('?') { '&' } else { '?' };
        let expected = source.get(leader, path).await.unwrap();
        assert_eq!(expected.status, 200, "{path}: {:?}", expected.body);
        for node in 0..3 {
            let fresh = format!("{path}{separator}min_index={restored_index}");
            let answer = target.get(node, &fresh).await.unwrap();
            assert_eq!(answer.status, 200, "{fresh} on {node}: {:?}", answer.body);
            assert_eq!(
                without_applied_index(answer.body),
                without_applied_index(expected.body.clone()),
                "{path} on node {node}"
            );
        }
    }

    // A retried hold is answered as the source answered it; seats stay taken; ids go on.
    let replay = target
        .post(
            target_leader,
            "/booking/hold",
            hold_body(EVENT, "c-0", &["A-1-1", "A-1-2"], 3600),
            Some("hold-0"),
        )
        .await
        .unwrap();
    assert_eq!(
        replay.body["hold_id"],
        hold_ids[0].as_str(),
        "{:?}",
        replay.body
    );
    let taken = target
        .post(
            target_leader,
            "/booking/hold",
            hold_body(EVENT, "c-9", &["A-1-1"], 60),
            Some("taken"),
        )
        .await
        .unwrap();
    assert_eq!(taken.code(), "SEAT_UNAVAILABLE", "{:?}", taken.body);
    let fresh = target
        .post(
            target_leader,
            "/booking/hold",
            hold_body(EVENT, "c-9", &["B-2-9"], 60),
            Some("fresh"),
        )
        .await
        .unwrap();
    assert_eq!(fresh.status, 201, "{:?}", fresh.body);
    assert!(!hold_ids.contains(&fresh.body["hold_id"].as_str().unwrap().to_string()));

    // A second restore into the now restored cluster is refused.
    let again = holdfastctl(&target_endpoints, &["restore", file_name]).await;
    assert_eq!(again.code, 3, "{}", again.stderr);
}
