//! `holdfastctl` against a real three-node cluster: the command lines of the contract in
//! issue 16, their table and JSON output, their errors on stderr and their exit codes
//! (0 success, 2 bad arguments, 3 refused by the cluster, 4 cluster unreachable).

use holdfast_tests::cluster::{free_port, holdfastctl as ctl};
use holdfast_tests::{event_body, ProcessCluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holdfastctl_against_a_real_cluster() {
    let mut cluster = ProcessCluster::start(3).await.expect("cluster");
    cluster
        .create_event(0, event_body("cli", 2, 10, 50))
        .await
        .expect("event");
    let endpoints: Vec<String> = cluster
        .nodes
        .iter()
        .map(|node| node.http_addr.clone())
        .collect();
    let all = endpoints.join(",");
    // A dead endpoint first: any endpoint answering is enough.
    let dead = format!("127.0.0.1:{}", free_port().unwrap());
    let with_dead = format!("{dead},{}", endpoints[1]);

    // cluster status: JSON is every node's /cluster/status document.
    let status = ctl(&with_dead, &["-o", "json", "cluster", "status"]).await;
    assert_eq!(status.code, 0, "{}", status.stderr);
    let documents = status.json();
    let documents = documents.as_array().expect("an array");
    assert_eq!(documents.len(), 3, "{documents:?}");
    let leaders = documents
        .iter()
        .filter(|document| document["role"] == "leader")
        .count();
    assert_eq!(leaders, 1);
    for document in documents {
        assert!(document["node_id"].as_u64().is_some());
        assert!(document["term"].as_u64().is_some());
        assert!(document["applied_index"].as_u64().is_some());
        assert!(document["committed_index"].as_u64().is_some());
        assert_eq!(document["members"].as_array().unwrap().len(), 3);
        // One cluster, named by the random id its init gave it; each node's own
        // incarnation is the one the membership records for it.
        assert_eq!(document["cluster_id"], documents[0]["cluster_id"]);
        assert!(document["cluster_id"]
            .as_str()
            .is_some_and(|id| id.starts_with("hf-")));
        let node_id = document["node_id"].as_u64().unwrap().to_string();
        assert_eq!(
            document["incarnation"], documents[0]["recorded_incarnations"][&node_id],
            "{document}"
        );
    }
    let table = ctl(&all, &["cluster", "status"]).await;
    assert_eq!(table.code, 0, "{}", table.stderr);
    assert!(!table.stderr.contains("warning"), "{}", table.stderr);
    let lines: Vec<&str> = table.stdout.lines().collect();
    assert!(lines[0].starts_with("ID"), "{}", table.stdout);
    for column in ["ROLE", "TERM", "COMMITTED", "APPLIED", "LAG", "HEALTH"] {
        assert!(lines[0].contains(column), "{column} in {}", lines[0]);
    }
    assert_eq!(lines.len(), 4, "one row per node:\n{}", table.stdout);
    assert_eq!(table.stdout.matches("leader").count(), 1);
    assert_eq!(table.stdout.matches("ready").count(), 3);

    // member list and the safety checks.
    let members = ctl(&all, &["-o", "json", "member", "list"]).await;
    assert_eq!(members.code, 0, "{}", members.stderr);
    assert_eq!(members.json().as_array().unwrap().len(), 3);
    let unknown = ctl(&all, &["member", "remove", "99"]).await;
    assert_eq!(unknown.code, 3, "{}", unknown.stderr);
    assert!(
        unknown.stderr.contains("not a member"),
        "{}",
        unknown.stderr
    );
    let promote = ctl(&all, &["member", "promote", "42"]).await;
    assert_eq!(promote.code, 3);
    assert!(promote.stderr.contains("add it as a learner first"));

    // availability: the seat map and the API's JSON.
    let availability = ctl(&all, &["-o", "json", "availability", "cli"]).await;
    assert_eq!(availability.code, 0, "{}", availability.stderr);
    let page = availability.json();
    assert_eq!(page["event_id"], "cli");
    assert_eq!(page["summary"]["seats_total"], 40);
    assert_eq!(page["seats"].as_array().unwrap().len(), 40);
    assert_eq!(page["pools"][0]["id"], "GA");
    let map = ctl(&all, &["availability", "cli"]).await;
    assert_eq!(map.code, 0);
    assert!(map.stdout.contains("section A"), "{}", map.stdout);
    assert!(map.stdout.contains("oooooooooo"), "{}", map.stdout);

    // hold, confirm, booking, history, cancel.
    let hold = ctl(
        &all,
        &[
            "-o",
            "json",
            "hold",
            "cli",
            "--customer",
            "c-1",
            "--seat",
            "A-1-1",
            "--seat",
            "A-1-2",
            "--pool",
            "GA:2",
            "--ttl",
            "300",
        ],
    )
    .await;
    assert_eq!(hold.code, 0, "{}", hold.stderr);
    let hold = hold.json();
    assert_eq!(hold["status"], "HELD");
    assert_eq!(hold["seats"], serde_json::json!(["A-1-1", "A-1-2"]));
    assert_eq!(hold["pools"][0]["quantity"], 2);
    assert_eq!(hold["amount"], 4500 * 2 + 2500 * 2);
    let hold_id = hold["hold_id"].as_str().unwrap().to_string();

    let taken = ctl(
        &all,
        &["hold", "cli", "--customer", "c-2", "--seat", "A-1-1"],
    )
    .await;
    assert_eq!(taken.code, 3, "refused by the cluster");
    assert!(
        taken.stderr.contains("SEAT_UNAVAILABLE"),
        "{}",
        taken.stderr
    );
    assert!(taken.stdout.is_empty(), "errors go to stderr only");

    let map = ctl(&all, &["availability", "cli", "--section", "A"]).await;
    assert!(
        map.stdout.contains("hh"),
        "held seats shown:\n{}",
        map.stdout
    );

    let confirm = ctl(
        &all,
        &["-o", "json", "confirm", &hold_id, "--token", "tok_visa"],
    )
    .await;
    assert_eq!(confirm.code, 0, "{}", confirm.stderr);
    let booking = confirm.json();
    assert_eq!(booking["status"], "CONFIRMED");
    assert_eq!(booking["hold_id"], hold_id.as_str());
    let booking_id = booking["booking_id"].as_str().unwrap().to_string();

    let shown = ctl(&all, &["booking", &booking_id]).await;
    assert_eq!(shown.code, 0);
    assert!(shown.stdout.contains(&booking_id));
    assert!(shown.stdout.contains("CONFIRMED"));
    let history = ctl(
        &all,
        &[
            "-o",
            "json",
            "--consistency",
            "linearizable",
            "history",
            "c-1",
        ],
    )
    .await;
    assert_eq!(history.code, 0, "{}", history.stderr);
    assert_eq!(
        history.json()["bookings"][0]["booking_id"],
        booking_id.as_str()
    );

    let cancel = ctl(&all, &["-o", "json", "cancel", "--booking", &booking_id]).await;
    assert_eq!(cancel.code, 0, "{}", cancel.stderr);
    assert_eq!(cancel.json()["status"], "CANCELLED");
    assert!(cancel.json()["refund"].is_object());

    // A declined payment and a missing hold are refusals with their codes.
    let second = ctl(
        &all,
        &[
            "-o",
            "json",
            "hold",
            "cli",
            "--customer",
            "c-3",
            "--seat",
            "B-2-1",
        ],
    )
    .await;
    let second_id = second.json()["hold_id"].as_str().unwrap().to_string();
    let declined = ctl(&all, &["confirm", &second_id, "--token", "tok_declined"]).await;
    assert_eq!(declined.code, 3);
    assert!(
        declined.stderr.contains("PAYMENT_DECLINED"),
        "{}",
        declined.stderr
    );
    let released = ctl(&all, &["cancel", "--hold", &second_id]).await;
    assert_eq!(released.code, 0, "{}", released.stderr);
    assert!(released.stdout.contains("CANCELLED"));
    let missing = ctl(&all, &["hold-info", "h_missing"]).await;
    assert_eq!(missing.code, 3);
    assert!(
        missing.stderr.contains("HOLD_NOT_FOUND"),
        "{}",
        missing.stderr
    );

    // Bad arguments: exit 2, nothing sent.
    let no_customer = ctl(&all, &["hold", "cli", "--seat", "A-2-1"]).await;
    assert_eq!(no_customer.code, 2);
    let no_target = ctl(&all, &["cancel"]).await;
    assert_eq!(no_target.code, 2);
    let bad_pool = ctl(&all, &["hold", "cli", "--customer", "c", "--pool", "GA"]).await;
    assert_eq!(bad_pool.code, 2);
    let nothing = ctl(&all, &["hold", "cli", "--customer", "c"]).await;
    assert_eq!(nothing.code, 2, "{}", nothing.stderr);

    // Unreachable: exit 4 with a clear message.
    let unreachable = ctl(&dead, &["cluster", "status"]).await;
    assert_eq!(unreachable.code, 4, "{}", unreachable.stderr);
    assert!(
        unreachable.stderr.contains("cannot reach the cluster"),
        "{}",
        unreachable.stderr
    );
    let unreachable = ctl(&dead, &["availability", "cli"]).await;
    assert_eq!(unreachable.code, 4);

    // A fourth node: added as a learner, promoted (the majority shown), then removed.
    let fourth = cluster.spawn_new_node().expect("spawn");
    cluster.wait_healthy(fourth).await.expect("healthy");
    let (raft_addr, http_addr) = (
        cluster.nodes[fourth].raft_addr.clone(),
        cluster.nodes[fourth].http_addr.clone(),
    );
    let added = ctl(
        &all,
        &[
            "member",
            "add-learner",
            "--id",
            "4",
            "--raft-addr",
            &raft_addr,
            "--http-addr",
            &http_addr,
            "--region",
            "local",
        ],
    )
    .await;
    assert_eq!(added.code, 0, "{}", added.stderr);
    let list = ctl(&all, &["-o", "json", "member", "list"]).await;
    let learner = list
        .json()
        .as_array()
        .unwrap()
        .iter()
        .find(|member| member["id"] == 4)
        .cloned();
    assert_eq!(learner.expect("member 4")["voter"], false);
    let promoted = ctl(&all, &["member", "promote", "4"]).await;
    assert_eq!(promoted.code, 0, "{}", promoted.stderr);
    assert!(
        promoted
            .stderr
            .contains("[1, 2, 3] -> [1, 2, 3, 4]: majority 2 -> 3"),
        "{}",
        promoted.stderr
    );
    let status = ctl(&all, &["-o", "json", "cluster", "status"]).await;
    assert_eq!(
        status.json().as_array().unwrap().len(),
        4,
        "the learned member is asked too"
    );
    let removed = ctl(&all, &["member", "remove", "4"]).await;
    assert_eq!(removed.code, 0, "{}", removed.stderr);
    assert!(
        removed.stderr.contains("-> [1, 2, 3]"),
        "{}",
        removed.stderr
    );
    let list = ctl(&all, &["-o", "json", "member", "list"]).await;
    assert_eq!(list.json().as_array().unwrap().len(), 3);

    // health and completions.
    let health = ctl(&all, &["health"]).await;
    assert_eq!(health.code, 0, "{}", health.stderr);
    let completions = ctl(&all, &["completions", "bash"]).await;
    assert_eq!(completions.code, 0);
    assert!(completions.stdout.contains("holdfastctl"));
}
