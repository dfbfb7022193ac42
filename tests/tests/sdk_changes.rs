//! The SDK's change stream (`Client::watch_changes`) against a real three-node cluster: it
//! yields the outbox's events in order as typed changes, carries on from another node
//! without a gap or a repeat when the node it streams from is killed, and a new stream
//! opened at `next_index` after the old one was dropped continues where it stopped.

use std::time::Duration;

use futures::StreamExt;
use holdfast_client::{
    Change, ChangeData, ChangeStream, Client, ConfirmRequest, ErrorCode, HoldRequest,
};
use holdfast_tests::{event_body, ProcessCluster};

/// Long enough for an election and a retry or two on a loaded machine.
const CALL_DEADLINE: Duration = Duration::from_secs(40);
/// The longest wait for one change: a bound so that a broken stream fails the test instead
/// of hanging it (not a timing assertion: a healthy stream answers at once).
const CHANGE_WAIT_MAX: Duration = Duration::from_secs(60);

/// The next change, which must be the one at `index`.
async fn expect_change(changes: &mut ChangeStream, index: u64) -> Change {
    let next = tokio::time::timeout(CHANGE_WAIT_MAX, changes.next())
        .await
        .unwrap_or_else(|_| panic!("no change {index} within {CHANGE_WAIT_MAX:?}"))
        .unwrap_or_else(|| panic!("the stream ended before change {index}"))
        .unwrap_or_else(|error| panic!("change {index}: {error}"));
    assert_eq!(
        next.index, index,
        "changes arrive in order, without gap or repeat"
    );
    assert_eq!(next.id, format!("evt_{index}"));
    assert_eq!(changes.next_index(), index + 1);
    next
}

/// Places a hold on seat `A-1-{seat}` for `customer` and confirms it: two events,
/// `hold.placed` and `booking.confirmed`.
async fn book(client: &Client, seat: u32, customer: &str) -> String {
    let hold = client
        .hold(HoldRequest::seats(
            "changes",
            customer,
            [format!("A-1-{seat}")],
        ))
        .await
        .expect("hold");
    client
        .confirm(ConfirmRequest::new(&hold.hold_id, "tok_visa"))
        .await
        .expect("confirm");
    hold.hold_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_change_stream_resumes_after_its_node_is_killed_and_after_a_drop() {
    let mut cluster = ProcessCluster::start(3).await.expect("cluster");
    cluster
        .create_event(0, event_body("changes", 1, 20, 10))
        .await
        .expect("event");
    let endpoints: Vec<String> = cluster
        .nodes
        .iter()
        .map(|node| node.http_addr.clone())
        .collect();
    let client = Client::builder(endpoints)
        .timeout(CALL_DEADLINE)
        .connect()
        .await
        .expect("connect");

    // -- Typed events in order from the oldest. --------------------------------------------
    let first_hold = book(&client, 1, "c-1").await;
    let mut changes = client.watch_changes(1);
    let placed = expect_change(&mut changes, 1).await;
    assert_eq!(placed.event_type, "hold.placed");
    match &placed.data {
        ChangeData::HoldPlaced {
            hold_id,
            event_id,
            customer_id,
            currency,
            ..
        } => {
            assert_eq!(hold_id, &first_hold);
            assert_eq!(event_id, "changes");
            assert_eq!(customer_id, "c-1");
            assert_eq!(currency, "EUR");
        }
        other => panic!("event 1 is {other:?}"),
    }
    let confirmed = expect_change(&mut changes, 2).await;
    assert!(
        matches!(&confirmed.data, ChangeData::BookingConfirmed { hold_id, .. } if *hold_id == first_hold),
        "{confirmed:?}"
    );

    // -- The node it streams from is killed: it carries on from another. ------------------
    let streaming_from = changes.node_id();
    let position = cluster
        .nodes
        .iter()
        .position(|node| node.id == streaming_from)
        .expect("the stream names the node it reads from");
    cluster.kill(position);
    for seat in 2..=4 {
        book(&client, seat, "c-2").await;
    }
    for index in 3..=8 {
        expect_change(&mut changes, index).await;
    }
    assert_ne!(
        changes.node_id(),
        streaming_from,
        "the stream moved to a node that is up"
    );

    // -- Dropped by its owner, resumed at next_index by a new one. -------------------------
    let resume_at = changes.next_index();
    assert_eq!(resume_at, 9);
    drop(changes);
    for seat in 5..=6 {
        book(&client, seat, "c-3").await;
    }
    let mut resumed = client.watch_changes(resume_at);
    for index in 9..=12 {
        let change = expect_change(&mut resumed, index).await;
        let expected = if index % 2 == 1 {
            "hold.placed"
        } else {
            "booking.confirmed"
        };
        assert_eq!(change.event_type, expected);
    }

    // -- A resume point the outbox no longer holds is refused, not skipped. Adding a
    //    webhook trims every event before it. --------------------------------------------
    drop(resumed);
    let running = cluster.running()[0];
    let added = cluster
        .post(
            running,
            "/admin/webhooks",
            serde_json::json!({"url": "http://127.0.0.1:9/hook", "secret": "whsec_test"}),
            Some("sdk-changes-webhook"),
        )
        .await
        .expect("add a webhook");
    assert_eq!(added.status, 201, "{}", added.body);
    // On the node that answered, which applied the webhook (another may not have yet).
    let on_that_node = client
        .only(&cluster.nodes[running].http_addr)
        .expect("a client of one node");
    let mut trimmed = on_that_node.watch_changes(2);
    let refusal = tokio::time::timeout(CHANGE_WAIT_MAX, trimmed.next())
        .await
        .expect("an answer in time")
        .expect("an item")
        .expect_err("a trimmed resume point is refused");
    assert_eq!(refusal.code(), Some(&ErrorCode::InvalidField), "{refusal}");
    assert!(
        trimmed.next().await.is_none(),
        "the stream ends after a refusal"
    );
}
