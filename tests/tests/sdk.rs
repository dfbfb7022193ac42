//! The Rust SDK against a real three-node cluster (one cluster for every scenario here):
//! session reads on a follower see their own writes, a confirm whose answer was lost is
//! retried with its key and applies once, a partitioned leader is left within the call's
//! deadline, and a sequence of holds and confirms completes through another node when the
//! node the SDK talks to is killed in the middle of it.

use std::collections::BTreeSet;
use std::time::Duration;

use holdfast_client::{
    BookingStatus, Client, ConfirmRequest, Consistency, ErrorCode, HoldRequest, NewEvent,
    ReadOptions, SeatBlock,
};
use holdfast_tests::{event_body, ProcessCluster};

/// Long enough for an election and a retry or two on a loaded machine.
const CALL_DEADLINE: Duration = Duration::from_secs(40);

fn endpoints(cluster: &ProcessCluster) -> Vec<String> {
    cluster
        .nodes
        .iter()
        .map(|node| node.http_addr.clone())
        .collect()
}

async fn booked_seats(client: &Client, event_id: &str) -> BTreeSet<String> {
    let page = client
        .with_read(ReadOptions::at(Consistency::Linearizable))
        .availability_with(holdfast_client::AvailabilityQuery::new(event_id).limit(5000))
        .await
        .expect("availability");
    page.seats
        .into_iter()
        .filter(|seat| seat.status == holdfast_client::SeatStatus::Booked)
        .map(|seat| seat.id)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_against_a_real_cluster() {
    let mut cluster = ProcessCluster::start(3).await.expect("cluster");
    cluster
        .create_event(0, event_body("sdk", 4, 25, 100))
        .await
        .expect("event");
    let client = Client::builder(endpoints(&cluster))
        .timeout(CALL_DEADLINE)
        .connect()
        .await
        .expect("connect");
    let leader = cluster.wait_for_leader().await.expect("leader");
    assert_eq!(
        client.cluster_status().await.unwrap().leader_id,
        Some(cluster.nodes[leader].id),
        "the SDK learned the leader"
    );

    // -- Session reads on a follower see their own writes. ---------------------------------
    let follower = (leader + 1) % 3;
    let on_follower = client
        .only(&cluster.nodes[follower].http_addr)
        .expect("follower client")
        .with_timeout(CALL_DEADLINE);
    let session = on_follower.session();
    for seat in 1..=5 {
        let hold = session
            .hold(HoldRequest::seats(
                "sdk",
                "c-session",
                [format!("A-1-{seat}")],
            ))
            .await
            .expect("hold through the follower");
        let index = session.session_index().unwrap();
        assert!(index > 0, "the session saw the write's index");
        // Served by the follower, which waits until it applied the hold.
        let seen = session.get_hold(&hold.hold_id).await.expect("own write");
        assert_eq!(seen.hold_id, hold.hold_id);
        assert_eq!(seen.seats, vec![format!("A-1-{seat}")]);
    }

    // -- Concurrent holds share few Batch calls. ------------------------------------------
    batching_scenario(&cluster).await;

    // -- A confirm whose answer was lost is retried with its key and applies once. --------
    let hold = client
        .hold(HoldRequest::seats("sdk", "c-lost", ["A-2-1"]))
        .await
        .expect("hold");
    let confirm = ConfirmRequest::new(&hold.hold_id, "tok_visa").idempotency_key("lost-confirm");
    let first = client.confirm(confirm.clone()).await.expect("confirm");
    // The caller never saw `first` (its answer was lost) and repeats the call, with the
    // same key, through another node.
    let other = client
        .only(&cluster.nodes[follower].http_addr)
        .unwrap()
        .with_timeout(CALL_DEADLINE);
    let again = other.confirm(confirm).await.expect("retried confirm");
    assert_eq!(again.booking_id, first.booking_id, "the original answer");
    assert_eq!(again.payment_id, first.payment_id, "charged once");
    let history = client
        .with_read(ReadOptions::at(Consistency::Linearizable))
        .history("c-lost", None, None)
        .await
        .expect("history");
    assert_eq!(history.bookings.len(), 1, "applied once: {history:?}");
    assert_eq!(history.bookings[0].status, BookingStatus::Confirmed);
    // A different key is a new request, refused because the hold is already confirmed.
    let refused = client
        .confirm(ConfirmRequest::new(&hold.hold_id, "tok_visa"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Some(&ErrorCode::HoldNotActive), "{refused}");

    // -- Typed refusals are not retried. ----------------------------------------------------
    let taken = client
        .hold(HoldRequest::seats("sdk", "c-other", ["A-1-1"]))
        .await
        .unwrap_err();
    assert_eq!(taken.code(), Some(&ErrorCode::SeatUnavailable), "{taken}");
    let declined_hold = client
        .hold(HoldRequest::seats("sdk", "c-declined", ["A-2-2"]))
        .await
        .unwrap();
    let declined = client
        .confirm(ConfirmRequest::new(&declined_hold.hold_id, "tok_declined"))
        .await
        .unwrap_err();
    assert_eq!(
        declined.code(),
        Some(&ErrorCode::PaymentDeclined),
        "{declined}"
    );

    // -- A partitioned leader is left within the call's deadline. -------------------------
    let old_leader = cluster.wait_for_leader().await.unwrap();
    cluster
        .set_isolated(old_leader, true)
        .await
        .expect("isolate");
    let during = client
        .hold(HoldRequest::seats("sdk", "c-partition", ["A-3-1"]))
        .await
        .expect("a hold completes through the majority side");
    assert_eq!(during.seats, vec!["A-3-1".to_string()]);
    let new_leader = cluster
        .wait_for_leader_without(old_leader)
        .await
        .expect("new leader");
    assert_ne!(new_leader, old_leader);
    cluster.set_isolated(old_leader, false).await.expect("heal");
    cluster.wait_for_leader().await.expect("healed");

    // -- The node the SDK talks to is killed mid-sequence; the sequence completes. --------
    let sequence_client = client.clone();
    let (killed_tx, killed_rx) = tokio::sync::oneshot::channel::<()>();
    let (halfway_tx, halfway_rx) = tokio::sync::oneshot::channel::<()>();
    let sequence = tokio::spawn(async move {
        let mut halfway = Some(halfway_tx);
        let mut killed = Some(killed_rx);
        let mut booked = Vec::new();
        for step in 1..=20u32 {
            if step == 11 {
                // Let the test kill the node, then go on as if nothing happened.
                let _ = halfway.take().unwrap().send(());
                let _ = killed.take().unwrap().await;
            }
            let seat = format!("B-1-{step}");
            let hold = sequence_client
                .hold(HoldRequest::seats(
                    "sdk",
                    format!("c-seq-{step}"),
                    [seat.clone()],
                ))
                .await
                .unwrap_or_else(|error| panic!("hold {step}: {error}"));
            let booking = sequence_client
                .confirm(ConfirmRequest::new(&hold.hold_id, "tok_visa"))
                .await
                .unwrap_or_else(|error| panic!("confirm {step}: {error}"));
            assert_eq!(booking.seats, vec![seat.clone()]);
            booked.push(seat);
        }
        booked
    });
    halfway_rx.await.expect("halfway");
    let current = cluster.wait_for_leader().await.unwrap();
    assert_eq!(
        client.leader_id(),
        Some(cluster.nodes[current].id),
        "the SDK writes to the leader, so killing it kills the node it talks to"
    );
    cluster.kill(current);
    killed_tx.send(()).unwrap();
    let booked = sequence.await.expect("the sequence completed");
    assert_eq!(booked.len(), 20);
    cluster.wait_for_leader_without(current).await.unwrap();
    let on_cluster = booked_seats(&client, "sdk").await;
    for seat in &booked {
        assert!(on_cluster.contains(seat), "{seat} booked once and kept");
    }
    // Exactly the confirmed seats of this test are booked: nothing applied twice.
    let mut expected: BTreeSet<String> = booked.into_iter().collect();
    expected.insert("A-2-1".into());
    assert_eq!(on_cluster, expected);
}

/// Many concurrent holds through one client travel in few `Batch` calls, each caller gets
/// its own answer, and one refused hold does not fail its neighbours.
async fn batching_scenario(cluster: &ProcessCluster) {
    const CALLERS: usize = 200;
    let client = Client::builder(endpoints(cluster))
        .timeout(CALL_DEADLINE)
        .connect()
        .await
        .expect("connect");
    client
        .create_event(NewEvent {
            seat_blocks: vec![SeatBlock {
                section: "C".into(),
                rows: (1..=8).map(|row| row.to_string()).collect(),
                seats_per_row: 25,
                price: 1000,
            }],
            ..NewEvent::new("batch", "Batching", "EUR")
        })
        .await
        .expect("event");
    let mut callers = Vec::new();
    for caller in 0..CALLERS {
        let client = client.clone();
        // Seats C-1-1 .. C-8-25; caller 199 asks for caller 0's seat.
        let index = if caller == CALLERS - 1 { 0 } else { caller };
        let seat = format!("C-{}-{}", index / 25 + 1, index % 25 + 1);
        callers.push(tokio::spawn(async move {
            let answer = client
                .hold(HoldRequest::seats(
                    "batch",
                    format!("c-b{caller}"),
                    [seat.clone()],
                ))
                .await;
            (seat, answer)
        }));
    }
    let mut held = BTreeSet::new();
    let mut refused = 0;
    for caller in callers {
        let (seat, answer) = caller.await.unwrap();
        match answer {
            Ok(hold) => {
                assert_eq!(hold.seats, vec![seat.clone()], "its own answer");
                assert!(held.insert(seat), "a seat held twice");
            }
            Err(error) => {
                assert_eq!(error.code(), Some(&ErrorCode::SeatUnavailable), "{error}");
                refused += 1;
            }
        }
    }
    assert_eq!((held.len(), refused), (CALLERS - 1, 1));
    let stats = client.stats();
    assert_eq!(stats.batched_operations, CALLERS as u64, "{stats:?}");
    assert!(
        stats.batch_rpcs * 4 <= CALLERS as u64,
        "{CALLERS} concurrent holds took {} Batch calls",
        stats.batch_rpcs
    );
}
