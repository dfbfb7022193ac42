//! The outbox's events and its bound: every hold is placed and ends in the outbox
//! (`hold.placed`, `hold.released`), a lagging webhook makes a full outbox refuse the writes
//! that would add events (`OUTBOX_FULL`, nothing changed, nothing remembered) while the
//! writes that end what was admitted go on, nothing a webhook has not acknowledged is ever
//! dropped, and without a webhook the outbox is a window of the newest events.

mod common;

use common::{cinema_event, code, hold_request, payment, Harness, START_MS};
use holdfast_statemachine::*;
use proptest::prelude::*;

fn with_webhook(outbox_events_max: usize) -> Harness {
    let mut harness = Harness::with_config(Config {
        outbox_events_max,
        ..Config::default()
    });
    harness.run(Command::CreateEvent(cinema_event("film")));
    let added = harness.run(Command::AddWebhook {
        url: "http://127.0.0.1:9/hook".into(),
        secret: "s".into(),
        events: vec![],
    });
    assert!(added.is_success(), "{added:?}");
    harness
}

fn ack(harness: &mut Harness, up_to: u64) {
    let outcome = harness.run(Command::AckWebhook {
        webhook_id: "wh_1".into(),
        up_to,
    });
    assert!(outcome.is_success(), "{outcome:?}");
}

fn kinds(harness: &Harness) -> Vec<&'static str> {
    harness
        .state
        .outbox_events(0, 1000)
        .iter()
        .map(|event| EventType::of(&event.kind).as_str())
        .collect()
}

#[test]
fn holds_are_placed_and_released_in_the_outbox() {
    let mut harness = Harness::cinema();
    let hold = harness.held("c1", &["S-A-1", "S-A-2"]);
    let events = harness.state.outbox_events(0, 10);
    assert_eq!(events.len(), 1);
    let OutboxKind::HoldPlaced {
        hold_id,
        event_id,
        customer_id,
        amount,
        currency,
        expires_at_ms,
    } = &events[0].kind
    else {
        panic!("{events:?}")
    };
    assert_eq!(
        (hold_id.as_str(), event_id.as_str(), customer_id.as_str()),
        ("h_1", "film", "c1")
    );
    assert_eq!((*amount, currency.as_str()), (hold.amount, "EUR"));
    assert_eq!(*expires_at_ms, hold.expires_at_ms);

    harness.run(Command::ReleaseHold {
        hold_id: hold.hold_id.to_string(),
    });
    harness.held("c2", &["S-B-1"]);
    let cancelled = harness.run(Command::CancelEvent {
        event_id: "film".into(),
        reason: "storm".into(),
    });
    assert!(cancelled.is_success(), "{cancelled:?}");
    assert_eq!(
        kinds(&harness),
        [
            "hold.placed",
            "hold.released",
            "hold.placed",
            "hold.released"
        ]
    );
    let last = harness.state.outbox_events(0, 10).pop().unwrap();
    assert!(
        matches!(last.kind, OutboxKind::HoldReleased { ref hold_id, .. } if hold_id == "h_2"),
        "{last:?}"
    );
    // The new types are types a webhook may ask for.
    for name in ["hold.placed", "hold.released"] {
        let event_type = EventType::parse(name).unwrap();
        assert_eq!(event_type.as_str(), name);
        assert!(EventType::ALL.contains(&event_type));
    }
    let bytes = harness.state.snapshot_bytes();
    assert_eq!(
        StateMachine::from_snapshot_bytes(&bytes)
            .unwrap()
            .snapshot_bytes(),
        bytes
    );
}

#[test]
fn a_lagging_webhook_makes_a_full_outbox_refuse_new_holds_and_change_nothing() {
    // Room for 8 claims: each hold takes two (its hold.placed and the promise of its end).
    let mut harness = with_webhook(8);
    let mut holds = Vec::new();
    for n in 1..=4 {
        holds.push(harness.held(&format!("c{n}"), &[&format!("S-A-{n}")]));
    }
    assert_eq!(harness.state.outbox_claims(), 8);
    assert!(harness.state.outbox_full());

    let before = harness.state.snapshot_bytes();
    let refused = harness.run_keyed(
        "k-full",
        Command::Hold(hold_request("film", "c9", &["S-B-1"], &[])),
    );
    assert_eq!(code(&refused), "OUTBOX_FULL", "{refused:?}");
    assert_eq!(ErrorCode::OutboxFull.http_status(), 503);
    assert!(matches!(
        refused.rejection(),
        Some(Rejection::OutboxFull { claims: 8, max: 8 })
    ));
    assert_eq!(harness.state.snapshot_bytes(), before, "state unchanged");
    assert!(
        !harness.state.remembers_request("k-full"),
        "a full outbox is not remembered for the key"
    );

    // What ends an admitted hold goes on: a confirm (whose payment is charged), a release,
    // an expiry. Each spends its promise, so the claims do not grow.
    let confirmed = harness.confirm(&holds[0]);
    assert_eq!(code(&confirmed), "OK", "{confirmed:?}");
    let released = harness.run(Command::ReleaseHold {
        hold_id: holds[1].hold_id.to_string(),
    });
    assert_eq!(code(&released), "OK");
    harness.now_ms = holds[3].expires_at_ms;
    let expired = harness.run(Command::ExpireHolds { max_holds: 10 });
    assert!(
        matches!(expired, Outcome::HoldsExpired { ref hold_ids } if hold_ids.len() == 2),
        "{expired:?}"
    );
    assert_eq!(harness.state.outbox_claims(), 8);
    assert_eq!(harness.state.outbox_status().pending, 8);
    // Cancelling the booking would add events: refused too.
    let cancel = harness.run(Command::CancelBooking {
        booking_id: "b_1".into(),
        reason: "r".into(),
    });
    assert_eq!(code(&cancel), "OUTBOX_FULL");
    assert_eq!(harness.state.outbox_status().dropped, 0, "nothing dropped");
    harness.state.check_invariants().unwrap();

    // The webhook catches up: the same key now applies afresh.
    ack(&mut harness, 4);
    assert_eq!(harness.state.outbox_status().pending, 4);
    let admitted = harness.run_keyed(
        "k-full",
        Command::Hold(hold_request("film", "c9", &["S-B-1"], &[])),
    );
    assert_eq!(code(&admitted), "OK", "{admitted:?}");
    assert!(harness.state.remembers_request("k-full"));
}

#[test]
fn an_event_cancellation_is_admitted_only_with_room_for_all_its_bookings() {
    let mut harness = with_webhook(12);
    harness.booked("c1", &["S-A-1"]);
    harness.booked("c2", &["S-A-2"]);
    // Four events held; cancelling needs 3 claims per booking: 4 + 6 <= 12.
    assert_eq!(harness.state.outbox_claims(), 4);
    harness.held("c3", &["S-A-3"]);
    // 6 claims now; 6 + 6 <= 12 still.
    let outcome = harness.run(Command::CancelEvent {
        event_id: "film".into(),
        reason: "storm".into(),
    });
    assert_eq!(code(&outcome), "OK", "{outcome:?}");
    assert!(harness.state.outbox_claims() <= 12);

    let mut harness = with_webhook(12);
    harness.booked("c1", &["S-A-1"]);
    harness.booked("c2", &["S-A-2"]);
    harness.held("c3", &["S-A-3"]);
    harness.held("c4", &["S-A-4"]);
    // 8 claims; 8 + 6 > 12.
    let before = harness.state.snapshot_bytes();
    let outcome = harness.run(Command::CancelEvent {
        event_id: "film".into(),
        reason: "storm".into(),
    });
    assert_eq!(code(&outcome), "OUTBOX_FULL", "{outcome:?}");
    assert_eq!(harness.state.snapshot_bytes(), before);
}

#[test]
fn without_a_webhook_nothing_is_refused_and_the_outbox_stays_a_window() {
    let mut harness = Harness::with_config(Config {
        outbox_events_max: 5,
        ..Config::default()
    });
    harness.run(Command::CreateEvent(cinema_event("film")));
    for n in 1..=10 {
        let hold = harness.held(&format!("c{n}"), &[&format!("S-A-{n}")]);
        harness.run(Command::ReleaseHold {
            hold_id: hold.hold_id.to_string(),
        });
    }
    let status = harness.state.outbox_status();
    assert_eq!(
        (status.pending, status.last_index, status.dropped),
        (5, 20, 15)
    );
    // The default keeps the window small whatever the bound.
    assert!(limits::OUTBOX_UNCLAIMED_EVENTS_MAX <= Config::default().outbox_events_max);

    // A webhook added now owns nothing of the past: the window is trimmed for it.
    harness.run(Command::AddWebhook {
        url: "http://127.0.0.1:9/".into(),
        secret: "s".into(),
        events: vec![EventType::HoldPlaced],
    });
    assert_eq!(harness.state.outbox_status().pending, 0);
}

#[test]
fn ack_outbox_never_trims_what_a_webhook_still_needs() {
    let mut harness = with_webhook(100);
    harness.held("c1", &["S-A-1"]);
    harness.held("c2", &["S-A-2"]);
    harness.run(Command::AckOutbox { up_to: 2 });
    assert_eq!(harness.state.outbox_status().pending, 2);
    ack(&mut harness, 1);
    assert_eq!(harness.state.outbox_status().pending, 1);
}

#[derive(Clone, Debug)]
enum Op {
    Hold { customer: usize, seat: usize },
    Release { hold: usize },
    Confirm { hold: usize },
    Cancel { booking: usize },
    Expire,
    Advance { seconds: u64 },
    Ack { fraction: u8 },
    RefundPaid { refund: usize },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (0usize..4, 0usize..20).prop_map(|(customer, seat)| Op::Hold { customer, seat }),
        2 => (0usize..32).prop_map(|hold| Op::Release { hold }),
        3 => (0usize..32).prop_map(|hold| Op::Confirm { hold }),
        2 => (0usize..16).prop_map(|booking| Op::Cancel { booking }),
        1 => Just(Op::Expire),
        1 => (1u64..400).prop_map(|seconds| Op::Advance { seconds }),
        2 => (0u8..=4).prop_map(|fraction| Op::Ack { fraction }),
        1 => (0usize..16).prop_map(|refund| Op::RefundPaid { refund }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// With a webhook that acknowledges now and then, whatever happens: the claims never
    /// pass the bound (except by the refund a confirm refused after its charge records),
    /// the outbox holds exactly the events after the webhook's mark (nothing dropped, no
    /// gaps), and a write refused as `OUTBOX_FULL` changes nothing.
    #[test]
    fn a_webhook_never_loses_an_event_and_the_claims_stay_bounded(
        outbox_events_max in 4usize..24,
        ops in prop::collection::vec(op(), 1..120),
    ) {
        let mut harness = with_webhook(outbox_events_max);
        let mut holds: Vec<HoldView> = Vec::new();
        let mut bookings: Vec<String> = Vec::new();
        let mut refunds: Vec<String> = Vec::new();
        let mut refunds_of_refused_confirms = 0u64;
        let mut mark = 0u64;
        for op in ops {
            // A refused command may move the clock (and prune what time ended): move it
            // first with a command that changes nothing else, then compare.
            harness.run(Command::AckOutbox { up_to: 0 });
            let before = harness.state.snapshot_bytes();
            let outcome = match op {
                Op::Hold { customer, seat } => harness.run(Command::Hold(hold_request(
                    "film",
                    &format!("c{customer}"),
                    &[&format!("S-{}-{}", if seat < 10 { "A" } else { "B" }, seat % 10 + 1)],
                    &[],
                ))),
                Op::Release { hold } => match holds.get(hold) {
                    Some(view) => harness.run(Command::ReleaseHold {
                        hold_id: view.hold_id.to_string(),
                    }),
                    None => continue,
                },
                Op::Confirm { hold } => match holds.get(hold) {
                    Some(view) => harness.run(Command::Confirm {
                        hold_id: view.hold_id.to_string(),
                        payment: payment(view.amount),
                    }),
                    None => continue,
                },
                Op::Cancel { booking } => match bookings.get(booking) {
                    Some(booking_id) => harness.run(Command::CancelBooking {
                        booking_id: booking_id.clone(),
                        reason: "r".into(),
                    }),
                    None => continue,
                },
                Op::Expire => harness.run(Command::ExpireHolds { max_holds: 100 }),
                Op::Advance { seconds } => {
                    harness.advance(seconds * 1000);
                    continue;
                }
                Op::Ack { fraction } => {
                    let last = harness.state.outbox_status().last_index;
                    let up_to = mark + (last - mark) * u64::from(fraction) / 4;
                    ack(&mut harness, up_to);
                    mark = mark.max(up_to);
                    continue;
                }
                Op::RefundPaid { refund } => match refunds.get(refund) {
                    Some(refund_id) => harness.run(Command::MarkRefunded {
                        refund_id: refund_id.clone(),
                    }),
                    None => continue,
                },
            };
            match &outcome {
                Outcome::Held(view) => holds.push((**view).clone()),
                Outcome::Confirmed(view) => bookings.push(view.booking_id.to_string()),
                Outcome::BookingCancelled(view) => {
                    refunds.extend(view.refund.as_ref().map(|refund| refund.refund_id.clone()))
                }
                Outcome::ConfirmRefused { refund, .. } => {
                    refunds_of_refused_confirms += 1;
                    refunds.push(refund.refund_id.clone());
                }
                Outcome::Rejected(Rejection::OutboxFull { .. }) => {
                    prop_assert_eq!(&before, &harness.state.snapshot_bytes());
                }
                _ => {}
            }
            let status = harness.state.outbox_status();
            prop_assert!(
                status.claims <= outbox_events_max as u64 + 2 * refunds_of_refused_confirms,
                "claims {} over {} after {:?}", status.claims, outbox_events_max, outcome
            );
            prop_assert_eq!(status.dropped, 0);
            let indexes: Vec<u64> = harness
                .state
                .outbox_events(0, usize::MAX)
                .iter()
                .map(|event| event.index)
                .collect();
            let expected: Vec<u64> = (mark + 1..=status.last_index).collect();
            prop_assert_eq!(indexes, expected);
            harness
                .state
                .check_invariants()
                .map_err(|violation| TestCaseError::fail(format!("{violation:?}")))?;
        }
        prop_assert!(harness.now_ms >= START_MS);
    }
}
