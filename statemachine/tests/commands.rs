//! One test or more for every command and every rejection of the state machine.

mod common;

use common::*;
use holdfast_statemachine::*;

/// Applies `command` and asserts that it was refused with `expected` and changed nothing.
fn assert_refused_unchanged(harness: &mut Harness, command: Command, expected: &str) {
    let before = harness.state.snapshot_bytes();
    let outcome = harness.run(command);
    assert_eq!(code(&outcome), expected, "{outcome:?}");
    assert_eq!(
        before,
        harness.state.snapshot_bytes(),
        "a refused command changed the state"
    );
    harness.state.check_invariants().unwrap();
}

#[test]
fn create_event_expands_seat_blocks_in_order() {
    let harness = Harness::cinema();
    let page = harness.state.availability("film", None, None, 100).unwrap();
    assert_eq!(page.seats.len(), 20);
    assert_eq!(page.seats[0].id, "S-A-1");
    assert_eq!(page.seats[9].id, "S-A-10");
    assert_eq!(page.seats[10].id, "S-B-1");
    assert_eq!(page.seats[0].row, "A");
    assert_eq!(
        page.summary,
        Summary {
            seats_total: 20,
            seats_available: 20,
            seats_held: 0,
            seats_booked: 0
        }
    );
    assert_eq!(page.pools[0].available, 5);
    assert_eq!(page.version, 1);
}

#[test]
fn create_event_refusals() {
    let mut harness = Harness::cinema();
    assert_refused_unchanged(
        &mut harness,
        Command::CreateEvent(cinema_event("film")),
        "EVENT_EXISTS",
    );
    let mut bad_id = cinema_event("has space");
    assert_refused_unchanged(
        &mut harness,
        Command::CreateEvent(bad_id.clone()),
        "INVALID_FIELD",
    );
    bad_id.event_id = "x".repeat(limits::ID_BYTES_MAX + 1);
    assert_refused_unchanged(&mut harness, Command::CreateEvent(bad_id), "INVALID_FIELD");
    let mut bad_currency = cinema_event("other");
    bad_currency.currency = "eur".into();
    assert_refused_unchanged(
        &mut harness,
        Command::CreateEvent(bad_currency),
        "INVALID_FIELD",
    );
    let mut duplicate_seat = cinema_event("other");
    duplicate_seat.seats.push(SeatSpec {
        id: "S-A-1".into(),
        section: "S".into(),
        row: "A".into(),
        number: 1,
        price: 1,
    });
    assert_refused_unchanged(
        &mut harness,
        Command::CreateEvent(duplicate_seat),
        "ITEM_EXISTS",
    );
    let mut duplicate_pool = cinema_event("other");
    duplicate_pool.pools.push(duplicate_pool.pools[0].clone());
    assert_refused_unchanged(
        &mut harness,
        Command::CreateEvent(duplicate_pool),
        "ITEM_EXISTS",
    );
    let mut too_big = cinema_event("other");
    too_big.seat_blocks[0].seats_per_row = limits::SEAT_BLOCK_SEATS_PER_ROW_MAX + 1;
    assert_refused_unchanged(
        &mut harness,
        Command::CreateEvent(too_big),
        "INVALID_QUANTITY",
    );
    let mut expensive = cinema_event("other");
    expensive.pools[0].price = limits::PRICE_MAX + 1;
    assert_refused_unchanged(
        &mut harness,
        Command::CreateEvent(expensive),
        "INVALID_FIELD",
    );
    let mut huge = cinema_event("other");
    huge.seat_blocks = vec![SeatBlock {
        section: "A".into(),
        rows: (0..1000).map(|r| r.to_string()).collect(),
        seats_per_row: 5000,
        price: 1,
    }];
    assert_refused_unchanged(&mut harness, Command::CreateEvent(huge), "TOO_MANY_ITEMS");
}

#[test]
fn a_million_seat_venue_is_one_small_command() {
    let mut harness = Harness::new();
    let venue = CreateEvent {
        seat_blocks: vec![SeatBlock {
            section: "F".into(),
            rows: (1..=1000).map(|r| r.to_string()).collect(),
            seats_per_row: 1000,
            price: 5000,
        }],
        pools: vec![],
        ..cinema_event("stadium")
    };
    assert!(harness.run(Command::CreateEvent(venue)).is_success());
    let (summary, _) = harness.state.summary("stadium").unwrap();
    assert_eq!(summary.seats_total, 1_000_000);
    let page = harness
        .state
        .availability("stadium", None, Some("F-1000-999"), 10)
        .unwrap();
    assert_eq!(page.seats.len(), 1);
    assert_eq!(page.seats[0].id, "F-1000-1000");
    assert_eq!(page.next_after, None);
}

#[test]
fn add_seats_and_pools() {
    let mut harness = Harness::cinema();
    let outcome = harness.run(Command::AddSeats {
        event_id: "film".into(),
        seats: vec![SeatSpec {
            id: "VIP-1".into(),
            section: "VIP".into(),
            row: "1".into(),
            number: 1,
            price: 5000,
        }],
        seat_blocks: vec![SeatBlock {
            section: "S".into(),
            rows: vec!["C".into()],
            seats_per_row: 5,
            price: 800,
        }],
    });
    assert_eq!(
        outcome,
        Outcome::InventoryChanged(EventChange {
            event_id: "film".into(),
            version: 2
        })
    );
    assert_eq!(harness.summary().seats_total, 26);
    assert_refused_unchanged(
        &mut harness,
        Command::AddSeats {
            event_id: "film".into(),
            seats: vec![],
            seat_blocks: vec![SeatBlock {
                section: "S".into(),
                rows: vec!["A".into()],
                seats_per_row: 1,
                price: 1,
            }],
        },
        "ITEM_EXISTS",
    );
    assert_refused_unchanged(
        &mut harness,
        Command::AddSeats {
            event_id: "nope".into(),
            seats: vec![],
            seat_blocks: vec![],
        },
        "EVENT_NOT_FOUND",
    );
    assert_refused_unchanged(
        &mut harness,
        Command::AddSeats {
            event_id: "film".into(),
            seats: vec![],
            seat_blocks: vec![],
        },
        "INVALID_FIELD",
    );
    let outcome = harness.run(Command::AddPools {
        event_id: "film".into(),
        pools: vec![PoolSpec {
            id: "BALCONY".into(),
            capacity: 10,
            price: 100,
        }],
    });
    assert!(outcome.is_success());
    assert_refused_unchanged(
        &mut harness,
        Command::AddPools {
            event_id: "film".into(),
            pools: vec![PoolSpec {
                id: "GA".into(),
                capacity: 1,
                price: 1,
            }],
        },
        "ITEM_EXISTS",
    );
    assert_refused_unchanged(
        &mut harness,
        Command::AddPools {
            event_id: "film".into(),
            pools: vec![],
        },
        "INVALID_FIELD",
    );
}

#[test]
fn pool_capacity_never_below_use() {
    let mut harness = Harness::cinema();
    assert!(harness.hold("c1", &[], &[("GA", 3)]).is_success());
    let set = |capacity| Command::SetPoolCapacity {
        event_id: "film".into(),
        pool_id: "GA".into(),
        capacity,
    };
    assert_refused_unchanged(&mut harness, set(2), "CAPACITY_BELOW_USAGE");
    assert!(harness.run(set(3)).is_success());
    assert_eq!(harness.pool("GA").available, 0);
    assert!(harness.run(set(50)).is_success());
    assert_eq!(harness.pool("GA").available, 47);
    assert_refused_unchanged(
        &mut harness,
        Command::SetPoolCapacity {
            event_id: "film".into(),
            pool_id: "X".into(),
            capacity: 1,
        },
        "POOL_NOT_FOUND",
    );
}

#[test]
fn remove_items_refused_while_in_use() {
    let mut harness = Harness::cinema();
    harness.held("c1", &["S-A-1"]);
    assert!(harness.hold("c1", &[], &[("GA", 1)]).is_success());
    let remove_seat = |seat: &str| Command::RemoveSeat {
        event_id: "film".into(),
        seat_id: seat.into(),
    };
    assert_refused_unchanged(&mut harness, remove_seat("S-A-1"), "ITEM_IN_USE");
    assert_refused_unchanged(
        &mut harness,
        Command::RemovePool {
            event_id: "film".into(),
            pool_id: "GA".into(),
        },
        "ITEM_IN_USE",
    );
    assert!(harness.run(remove_seat("S-A-2")).is_success());
    assert_eq!(harness.summary().seats_total, 19);
    assert_refused_unchanged(&mut harness, remove_seat("S-A-2"), "SEAT_NOT_FOUND");
    assert_eq!(code(&harness.hold("c2", &["S-A-2"], &[])), "SEAT_NOT_FOUND");
    // A removed seat id may be added again.
    let outcome = harness.run(Command::AddSeats {
        event_id: "film".into(),
        seats: vec![SeatSpec {
            id: "S-A-2".into(),
            section: "S".into(),
            row: "A".into(),
            number: 2,
            price: 900,
        }],
        seat_blocks: vec![],
    });
    assert!(outcome.is_success(), "{outcome:?}");
    harness.held("c2", &["S-A-2"]);
    harness.state.check_invariants().unwrap();
}

#[test]
fn hold_takes_seats_and_pools_atomically() {
    let mut harness = Harness::cinema();
    let outcome = harness.hold("c1", &["S-A-1", "S-A-2"], &[("GA", 2)]);
    let Outcome::Held(hold) = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(hold.hold_id, "h_1");
    assert_eq!(hold.status, HoldStatus::Active);
    assert_eq!(hold.amount, 2 * 900 + 2 * 2500);
    assert_eq!(hold.currency, "EUR");
    assert_eq!(hold.expires_at_ms, START_MS + 600_000);
    assert_eq!(hold.life_ends_at_ms, START_MS + 2 * 3600 * 1000);
    assert_eq!(harness.seat_status("S-A-1"), SeatStatus::Held);
    assert_eq!(harness.summary().seats_held, 2);
    assert_eq!(harness.pool("GA").held, 2);
    // All or nothing: one taken seat refuses the whole hold.
    assert_refused_unchanged(
        &mut harness,
        Command::Hold(hold_request("film", "c2", &["S-A-3", "S-A-2"], &[])),
        "SEAT_UNAVAILABLE",
    );
    assert_refused_unchanged(
        &mut harness,
        Command::Hold(hold_request("film", "c2", &["S-A-3"], &[("GA", 4)])),
        "POOL_EXHAUSTED",
    );
    let outcome = harness.run(Command::Hold(hold_request("film", "c2", &["S-A-2"], &[])));
    assert_eq!(
        outcome,
        Outcome::Rejected(Rejection::SeatUnavailable {
            seats: vec!["S-A-2".into()]
        })
    );
}

#[test]
fn hold_refusals() {
    let mut harness = Harness::cinema();
    let mut request = hold_request("film", "c1", &["S-A-1"], &[]);
    request.ttl_seconds = Some(0);
    assert_refused_unchanged(&mut harness, Command::Hold(request.clone()), "INVALID_TTL");
    request.ttl_seconds = Some(7201);
    assert_refused_unchanged(&mut harness, Command::Hold(request.clone()), "INVALID_TTL");
    assert_refused_unchanged(
        &mut harness,
        Command::Hold(hold_request("nope", "c1", &["S-A-1"], &[])),
        "EVENT_NOT_FOUND",
    );
    assert_refused_unchanged(
        &mut harness,
        Command::Hold(hold_request("film", "c1", &["S-Z-1"], &[])),
        "SEAT_NOT_FOUND",
    );
    assert_refused_unchanged(
        &mut harness,
        Command::Hold(hold_request("film", "c1", &[], &[("VIP", 1)])),
        "POOL_NOT_FOUND",
    );
    assert_refused_unchanged(
        &mut harness,
        Command::Hold(hold_request("film", "c1", &[], &[("GA", 0)])),
        "INVALID_QUANTITY",
    );
    assert_refused_unchanged(
        &mut harness,
        Command::Hold(hold_request(
            "film",
            "c1",
            &[],
            &[("GA", limits::HOLD_POOL_QUANTITY_MAX + 1)],
        )),
        "INVALID_QUANTITY",
    );
    assert_refused_unchanged(
        &mut harness,
        Command::Hold(hold_request("film", "c1", &[], &[])),
        "INVALID_FIELD",
    );
    assert_refused_unchanged(
        &mut harness,
        Command::Hold(hold_request("film", "c1", &["S-A-1", "S-A-1"], &[])),
        "INVALID_FIELD",
    );
    assert_refused_unchanged(
        &mut harness,
        Command::Hold(hold_request("film", "", &["S-A-1"], &[])),
        "INVALID_FIELD",
    );
    let many: Vec<String> = (0..=limits::HOLD_ITEMS_MAX)
        .map(|i| format!("seat-{i}"))
        .collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    assert_refused_unchanged(
        &mut harness,
        Command::Hold(hold_request("film", "c1", &many, &[])),
        "TOO_MANY_ITEMS",
    );
}

#[test]
fn default_ttl_applies() {
    let mut harness = Harness::cinema();
    let mut request = hold_request("film", "c1", &["S-A-1"], &[]);
    request.ttl_seconds = None;
    let Outcome::Held(hold) = harness.run(Command::Hold(request)) else {
        panic!()
    };
    assert_eq!(
        hold.expires_at_ms,
        START_MS + u64::from(limits::HOLD_TTL_SECONDS_DEFAULT) * 1000
    );
}

#[test]
fn holds_per_customer_per_event_are_limited() {
    let mut harness = Harness::with_config(Config {
        holds_per_customer_per_event_max: 2,
        ..Config::default()
    });
    harness.run(Command::CreateEvent(cinema_event("film")));
    harness.held("c1", &["S-A-1"]);
    let second = harness.held("c1", &["S-A-2"]);
    assert_refused_unchanged(
        &mut harness,
        Command::Hold(hold_request("film", "c1", &["S-A-3"], &[])),
        "HOLD_LIMIT_REACHED",
    );
    harness.held("c2", &["S-A-3"]);
    assert!(harness
        .run(Command::ReleaseHold {
            hold_id: second.hold_id.to_string()
        })
        .is_success());
    harness.held("c1", &["S-A-4"]);
}

#[test]
fn extend_within_maximum_life() {
    let mut harness = Harness::cinema();
    let hold = harness.held("c1", &["S-A-1"]);
    harness.advance(60_000);
    let Outcome::Extended(extended) = harness.run(Command::ExtendHold {
        hold_id: hold.hold_id.to_string(),
        ttl_seconds: 7200,
    }) else {
        panic!()
    };
    // 60 s + 7200 s would pass the 2 h life: capped.
    assert_eq!(extended.expires_at_ms, hold.life_ends_at_ms);
    // A shorter extension never shortens the hold.
    let Outcome::Extended(again) = harness.run(Command::ExtendHold {
        hold_id: hold.hold_id.to_string(),
        ttl_seconds: 1,
    }) else {
        panic!()
    };
    assert_eq!(again.expires_at_ms, hold.life_ends_at_ms);
    assert_refused_unchanged(
        &mut harness,
        Command::ExtendHold {
            hold_id: hold.hold_id.to_string(),
            ttl_seconds: 0,
        },
        "INVALID_TTL",
    );
    assert_refused_unchanged(
        &mut harness,
        Command::ExtendHold {
            hold_id: "h_99".into(),
            ttl_seconds: 10,
        },
        "HOLD_NOT_FOUND",
    );
    assert_refused_unchanged(
        &mut harness,
        Command::ExtendHold {
            hold_id: "h_01".into(),
            ttl_seconds: 10,
        },
        "HOLD_NOT_FOUND",
    );
    harness.now_ms = hold.life_ends_at_ms;
    let outcome = harness.run(Command::ExtendHold {
        hold_id: hold.hold_id.to_string(),
        ttl_seconds: 10,
    });
    assert_eq!(code(&outcome), "HOLD_EXPIRED");
    let other = harness.held("c2", &["S-A-2"]);
    harness.run(Command::ReleaseHold {
        hold_id: other.hold_id.to_string(),
    });
    assert_refused_unchanged(
        &mut harness,
        Command::ExtendHold {
            hold_id: other.hold_id.to_string(),
            ttl_seconds: 10,
        },
        "HOLD_NOT_ACTIVE",
    );
}

#[test]
fn release_frees_items_once() {
    let mut harness = Harness::cinema();
    let Outcome::Held(hold) = harness.hold("c1", &["S-A-1"], &[("GA", 2)]) else {
        panic!()
    };
    let Outcome::Released(released) = harness.run(Command::ReleaseHold {
        hold_id: hold.hold_id.to_string(),
    }) else {
        panic!()
    };
    assert_eq!(released.status, HoldStatus::Released);
    assert_eq!(harness.seat_status("S-A-1"), SeatStatus::Available);
    assert_eq!(harness.pool("GA").held, 0);
    assert_refused_unchanged(
        &mut harness,
        Command::ReleaseHold {
            hold_id: hold.hold_id.to_string(),
        },
        "HOLD_NOT_ACTIVE",
    );
    assert_refused_unchanged(
        &mut harness,
        Command::ReleaseHold {
            hold_id: "h_x".into(),
        },
        "HOLD_NOT_FOUND",
    );
    assert_eq!(
        harness.state.hold_by_id(&hold.hold_id).unwrap().status,
        HoldStatus::Released
    );
}

#[test]
fn confirm_creates_a_booking() {
    let mut harness = Harness::cinema();
    let Outcome::Held(hold) = harness.hold("c1", &["S-A-1", "S-A-2"], &[("GA", 1)]) else {
        panic!()
    };
    let Outcome::Confirmed(booking) = harness.confirm(&hold) else {
        panic!()
    };
    assert_eq!(booking.booking_id, "b_1");
    assert_eq!(booking.hold_id, hold.hold_id);
    assert_eq!(booking.status, BookingStatus::Confirmed);
    assert_eq!(booking.amount, hold.amount);
    assert_eq!(booking.seats, vec!["S-A-1", "S-A-2"]);
    assert_eq!(harness.seat_status("S-A-1"), SeatStatus::Booked);
    assert_eq!(harness.pool("GA").booked, 1);
    assert_eq!(harness.pool("GA").held, 0);
    assert_eq!(harness.summary().seats_booked, 2);
    let stored = harness.state.hold_by_id(&hold.hold_id).unwrap();
    assert_eq!(stored.status, HoldStatus::Confirmed);
    assert_eq!(stored.booking_id.as_deref(), Some("b_1"));
    assert_eq!(harness.state.booking_by_id("b_1").unwrap(), *booking);
}

#[test]
fn refused_confirm_with_a_charge_records_a_refund() {
    let mut harness = Harness::cinema();
    let hold = harness.held("c1", &["S-A-1"]);
    assert!(harness.confirm(&hold).is_success());
    // A second confirm (another charge) of the same hold: refused, and the charge refunded.
    let Outcome::ConfirmRefused { rejection, refund } = harness.confirm(&hold) else {
        panic!()
    };
    assert_eq!(rejection.code(), "HOLD_NOT_ACTIVE");
    assert_eq!(refund.status, RefundStatus::Pending);
    assert_eq!(refund.amount, 900);
    assert_eq!(refund.currency, "EUR");
    assert_eq!(
        harness.state.refund_by_id(&refund.refund_id).unwrap(),
        refund
    );
    // A confirm of an unknown hold also refunds.
    let outcome = harness.run(Command::Confirm {
        hold_id: "h_77".into(),
        payment: payment(100),
    });
    assert_eq!(code(&outcome), "HOLD_NOT_FOUND");
    assert!(matches!(outcome, Outcome::ConfirmRefused { .. }));
    // A wrong amount is refused and refunded.
    let other = harness.held("c2", &["S-A-2"]);
    let outcome = harness.run(Command::Confirm {
        hold_id: other.hold_id.to_string(),
        payment: payment(1),
    });
    assert_eq!(code(&outcome), "PAYMENT_AMOUNT_MISMATCH");
    assert_eq!(harness.seat_status("S-A-2"), SeatStatus::Held);
    assert_eq!(harness.state.pending_refunds(10).len(), 3);
}

/// A confirm retried after its idempotency key was forgotten, with the payment the first
/// attempt charged: the provider gives the same charge back, and the state machine must
/// answer the booking that payment bought, never record a refund of a live booking's money.
#[test]
fn a_confirm_retried_after_its_key_is_forgotten_answers_the_booking() {
    let mut harness = Harness::cinema();
    let hold = harness.held("c1", &["S-A-1"]);
    let charged = payment(hold.amount);
    let confirm = Command::Confirm {
        hold_id: hold.hold_id.to_string(),
        payment: charged.clone(),
    };
    let Outcome::Confirmed(booking) = harness.run_keyed("confirm:k1", confirm.clone()) else {
        panic!("the first confirm books");
    };
    // Long enough for the key and the ended hold to be forgotten.
    let config = harness.state.config().clone();
    harness.advance(
        config
            .idempotency_retention_ms
            .max(config.ended_hold_retention_ms)
            + 1,
    );
    harness.run(Command::ExpireHolds { max_holds: 10 });
    assert!(!harness.state.remembers_request("confirm:k1"));
    assert!(
        harness.state.hold_by_id(&hold.hold_id).is_none(),
        "the hold is pruned"
    );
    for key in ["confirm:k1", "confirm:k2"] {
        let retried = harness.run_keyed(key, confirm.clone());
        assert_eq!(retried, Outcome::Confirmed(booking.clone()), "{key}");
    }
    assert_eq!(
        harness.run(confirm.clone()),
        Outcome::Confirmed(booking.clone())
    );
    assert_eq!(
        harness.state.pending_refunds(10),
        vec![],
        "no refund of a live booking"
    );
    assert_eq!(harness.seat_status("S-A-1"), SeatStatus::Booked);
    // Cancelled, the booking's payment is refunded once; a retried confirm does not refund
    // it again.
    let cancelled = harness.run(Command::CancelBooking {
        booking_id: booking.booking_id.to_string(),
        reason: "changed plans".into(),
    });
    assert!(cancelled.is_success(), "{cancelled:?}");
    let Outcome::Confirmed(answered) = harness.run(confirm) else {
        panic!("the retry answers the booking");
    };
    assert_eq!(answered.booking_id, booking.booking_id);
    assert_eq!(answered.status, BookingStatus::Cancelled);
    assert_eq!(harness.state.pending_refunds(10).len(), 1);
    // The payment cannot buy another hold either, and is not refunded for it: it is the
    // first booking's money.
    let other = harness.held("c2", &["S-A-2"]);
    let before = harness.state.pending_refunds(10);
    let outcome = harness.run(Command::Confirm {
        hold_id: other.hold_id.to_string(),
        payment: charged,
    });
    assert_eq!(code(&outcome), "INVALID_FIELD", "{outcome:?}");
    assert!(matches!(outcome, Outcome::Rejected(_)));
    assert_eq!(harness.state.pending_refunds(10), before);
    assert_eq!(harness.seat_status("S-A-2"), SeatStatus::Held);
    harness.state.check_invariants().unwrap();
}

/// A refused confirm records one refund for its charge; the same charge confirmed again
/// (a retry after the key was forgotten) answers that refund instead of a second one, and
/// cannot book a hold with money that is being given back.
#[test]
fn a_charge_already_owed_back_is_refunded_once() {
    let mut harness = Harness::cinema();
    let hold = harness.held("c1", &["S-A-1"]);
    let wrong = PaymentRecord {
        amount: 1,
        ..payment(1)
    };
    let confirm = Command::Confirm {
        hold_id: hold.hold_id.to_string(),
        payment: wrong,
    };
    let Outcome::ConfirmRefused { refund, .. } = harness.run(confirm.clone()) else {
        panic!("a wrong amount is refused with a refund");
    };
    let Outcome::ConfirmRefused {
        refund: again,
        rejection,
    } = harness.run(confirm.clone())
    else {
        panic!("the retry answers the refund");
    };
    assert_eq!(again.refund_id, refund.refund_id);
    assert_eq!(rejection.code().as_str(), "INVALID_FIELD");
    assert_eq!(harness.state.pending_refunds(10).len(), 1);
    assert_eq!(harness.seat_status("S-A-1"), SeatStatus::Held);
    harness.state.check_invariants().unwrap();
    // The index is derived state: a restored replica answers the same.
    let mut restored = StateMachine::from_snapshot_bytes(&harness.state.snapshot_bytes()).unwrap();
    restored.check_invariants().unwrap();
    let entry = Entry {
        time_ms: harness.now_ms,
        request_id: None,
        command: confirm,
    };
    let Outcome::ConfirmRefused {
        refund: restored_answer,
        ..
    } = restored.apply(&entry)
    else {
        panic!("the restored replica answers the refund");
    };
    assert_eq!(restored_answer.refund_id, refund.refund_id);
    assert_eq!(restored.pending_refunds(10).len(), 1);
}

#[test]
fn confirm_after_expiry_is_refused_even_before_items_are_freed() {
    let mut harness = Harness::cinema();
    let hold = harness.held("c1", &["S-A-1"]);
    harness.now_ms = hold.expires_at_ms - 1;
    let early = harness.held("c9", &["S-B-1"]);
    assert!(harness.confirm(&early).is_success());
    harness.now_ms = hold.expires_at_ms;
    let outcome = harness.confirm(&hold);
    assert_eq!(code(&outcome), "HOLD_EXPIRED");
    let Outcome::ConfirmRefused { refund, .. } = outcome else {
        panic!()
    };
    assert_eq!(refund.amount, hold.amount);
    // Nothing freed the items yet, but they are not booked either.
    assert_eq!(harness.seat_status("S-A-1"), SeatStatus::Held);
    let Outcome::HoldsExpired { hold_ids } = harness.run(Command::ExpireHolds { max_holds: 100 })
    else {
        panic!()
    };
    assert_eq!(hold_ids, vec![hold.hold_id.clone()]);
    assert_eq!(harness.seat_status("S-A-1"), SeatStatus::Available);
    assert_eq!(
        harness.state.hold_by_id(&hold.hold_id).unwrap().status,
        HoldStatus::Expired
    );
    // After the expiry entry the answer is the same: the hold expired.
    assert_eq!(code(&harness.confirm(&hold)), "HOLD_EXPIRED");
    let extend = Command::ExtendHold {
        hold_id: hold.hold_id.to_string(),
        ttl_seconds: 60,
    };
    assert_refused_unchanged(&mut harness, extend, "HOLD_EXPIRED");
    let release = Command::ReleaseHold {
        hold_id: hold.hold_id.to_string(),
    };
    assert_refused_unchanged(&mut harness, release, "HOLD_EXPIRED");
}

#[test]
fn expiry_frees_only_due_holds_and_is_bounded() {
    let mut harness = Harness::cinema();
    let seats: Vec<String> = (1..=10).map(|n| format!("S-A-{n}")).collect();
    for (index, seat) in seats.iter().enumerate() {
        let mut request = hold_request("film", &format!("c{index}"), &[seat], &[]);
        request.ttl_seconds = Some(10 + index as u32);
        assert!(harness.run(Command::Hold(request)).is_success());
    }
    assert_eq!(harness.state.next_expiry_ms(), Some(START_MS + 10_000));
    harness.advance(14_000);
    assert_eq!(harness.state.holds_due(harness.now_ms, 100), 5);
    let Outcome::HoldsExpired { hold_ids } = harness.run(Command::ExpireHolds { max_holds: 3 })
    else {
        panic!()
    };
    assert_eq!(hold_ids, vec!["h_1", "h_2", "h_3"]);
    let Outcome::HoldsExpired { hold_ids } = harness.run(Command::ExpireHolds { max_holds: 100 })
    else {
        panic!()
    };
    assert_eq!(hold_ids, vec!["h_4", "h_5"]);
    assert_eq!(harness.summary().seats_held, 5);
    assert_refused_unchanged(
        &mut harness,
        Command::ExpireHolds { max_holds: 0 },
        "INVALID_QUANTITY",
    );
    assert_refused_unchanged(
        &mut harness,
        Command::ExpireHolds {
            max_holds: limits::EXPIRE_HOLDS_PER_ENTRY_MAX + 1,
        },
        "INVALID_QUANTITY",
    );
}

#[test]
fn time_never_goes_backwards() {
    let mut harness = Harness::cinema();
    let hold = harness.held("c1", &["S-A-1"]);
    harness.now_ms = hold.expires_at_ms + 1;
    harness.run(Command::ExpireHolds { max_holds: 1 });
    let late = harness.state.now_ms();
    // A new leader with a slow clock stamps an earlier time: the state's time stays put.
    harness.now_ms = START_MS;
    let second = harness.held("c2", &["S-A-2"]);
    assert_eq!(harness.state.now_ms(), late);
    assert_eq!(second.created_at_ms, late);
    assert_eq!(harness.seat_status("S-A-1"), SeatStatus::Available);
}

#[test]
fn cancel_booking_frees_items_and_owes_a_refund() {
    let mut harness = Harness::cinema();
    let Outcome::Held(hold) = harness.hold("c1", &["S-A-1"], &[("GA", 2)]) else {
        panic!()
    };
    let Outcome::Confirmed(booking) = harness.confirm(&hold) else {
        panic!()
    };
    let cancel = Command::CancelBooking {
        booking_id: booking.booking_id.to_string(),
        reason: "sick".into(),
    };
    let Outcome::BookingCancelled(cancelled) = harness.run(cancel.clone()) else {
        panic!()
    };
    assert_eq!(cancelled.status, BookingStatus::Cancelled);
    assert_eq!(cancelled.cancel_reason.as_deref(), Some("sick"));
    let refund = cancelled
        .refund
        .clone()
        .expect("a paid booking owes a refund");
    assert_eq!(refund.amount, booking.amount);
    assert_eq!(refund.status, RefundStatus::Pending);
    assert_eq!(
        refund.booking_id.as_deref(),
        Some(booking.booking_id.as_str())
    );
    assert_eq!(harness.seat_status("S-A-1"), SeatStatus::Available);
    assert_eq!(harness.pool("GA").booked, 0);
    assert_refused_unchanged(&mut harness, cancel, "BOOKING_NOT_ACTIVE");
    assert_refused_unchanged(
        &mut harness,
        Command::CancelBooking {
            booking_id: "b_9".into(),
            reason: String::new(),
        },
        "BOOKING_NOT_FOUND",
    );
    let mark = Command::MarkRefunded {
        refund_id: refund.refund_id.clone(),
    };
    let Outcome::RefundMarked(paid) = harness.run(mark.clone()) else {
        panic!()
    };
    assert_eq!(paid.status, RefundStatus::Refunded);
    assert_eq!(
        harness
            .state
            .booking_by_id(&booking.booking_id)
            .unwrap()
            .refund
            .unwrap()
            .status,
        RefundStatus::Refunded
    );
    assert_refused_unchanged(&mut harness, mark, "REFUND_NOT_PENDING");
    assert_refused_unchanged(
        &mut harness,
        Command::MarkRefunded {
            refund_id: "r_42".into(),
        },
        "REFUND_NOT_FOUND",
    );
}

#[test]
fn idempotent_replay_returns_the_first_answer() {
    let mut harness = Harness::cinema();
    let command = Command::Hold(hold_request("film", "c1", &["S-A-1"], &[]));
    let first = harness.run_keyed("hold:k1", command.clone());
    harness.advance(1000);
    // Move the state's clock to the replay's time with a refused, unkeyed command (which
    // changes nothing but the clock), so that a replay that stores nothing leaves exactly
    // these bytes.
    let clock_moved = harness.run(Command::ReleaseHold {
        hold_id: "h_99".into(),
    });
    assert_eq!(code(&clock_moved), "HOLD_NOT_FOUND");
    let before = harness.state.snapshot_bytes();
    let replay = harness.run_keyed("hold:k1", command.clone());
    assert_eq!(first, replay);
    assert_eq!(harness.summary().seats_held, 1);
    // Replays store nothing: not a second hold, not a new record, not a new time.
    assert!(
        harness.state.snapshot_bytes() == before,
        "the replay changed the state"
    );
    // The same key with another command is refused.
    let other = Command::Hold(hold_request("film", "c1", &["S-A-2"], &[]));
    assert_eq!(
        code(&harness.run_keyed("hold:k1", other)),
        "IDEMPOTENCY_KEY_REUSED"
    );
    // A refusal is remembered too, even after the seat frees up.
    let taken = harness.run_keyed(
        "hold:k2",
        Command::Hold(hold_request("film", "c2", &["S-A-1"], &[])),
    );
    assert_eq!(code(&taken), "SEAT_UNAVAILABLE");
    let Outcome::Held(hold) = first else { panic!() };
    harness.run(Command::ReleaseHold {
        hold_id: hold.hold_id.to_string(),
    });
    let again = harness.run_keyed(
        "hold:k2",
        Command::Hold(hold_request("film", "c2", &["S-A-1"], &[])),
    );
    assert_eq!(again, taken);
    assert_eq!(harness.summary().seats_held, 0);
}

#[test]
fn a_replayed_hold_answers_as_it_was_made_after_extension_confirmation_and_restore() {
    // By default ended holds outlive request ids and a hold's answer is kept by reference
    // to the hold; with a shorter hold retention it is kept encoded. Both answer the same.
    let short_hold_retention = Config {
        ended_hold_retention_ms: 60_000,
        ..Config::default()
    };
    for config in [Config::default(), short_hold_retention] {
        let mut harness = Harness::with_config(config);
        harness.run(Command::CreateEvent(cinema_event("film")));
        let command = Command::Hold(hold_request(
            "film",
            "c1",
            &["S-A-1", "S-A-2"],
            &[("GA", 2)],
        ));
        let first = harness.run_keyed("k", command.clone());
        let Outcome::Held(view) = &first else {
            panic!("{first:?}")
        };
        harness.advance(1000);
        let extended = harness.run(Command::ExtendHold {
            hold_id: view.hold_id.to_string(),
            ttl_seconds: 1200,
        });
        assert!(extended.is_success(), "{extended:?}");
        assert_eq!(harness.run_keyed("k", command.clone()), first);
        assert!(harness.confirm(view).is_success());
        assert_eq!(harness.run_keyed("k", command.clone()), first);

        let bytes = harness.state.snapshot_bytes();
        harness.state = StateMachine::from_snapshot_bytes(&bytes).unwrap();
        assert_eq!(harness.state.snapshot_bytes(), bytes);
        assert_eq!(harness.run_keyed("k", command.clone()), first);
        // Up to the end of the key's window, after which the hold is evaluated afresh.
        harness.advance(Config::default().idempotency_retention_ms - 1001);
        assert_eq!(harness.run_keyed("k", command.clone()), first);
        harness.advance(1);
        assert_eq!(code(&harness.run_keyed("k", command)), "SEAT_UNAVAILABLE");
    }
}

#[test]
fn idempotency_keys_expire_after_retention_and_a_full_table_sheds_writes() {
    let config = Config {
        idempotency_entries_max: 2,
        idempotency_retention_ms: 10_000,
        ..Config::default()
    };
    let mut harness = Harness::with_config(config);
    harness.run(Command::CreateEvent(cinema_event("film")));
    assert!(harness
        .run_keyed(
            "k1",
            Command::Hold(hold_request("film", "c1", &["S-A-1"], &[]))
        )
        .is_success());
    assert!(harness
        .run_keyed(
            "k2",
            Command::Hold(hold_request("film", "c2", &["S-A-2"], &[]))
        )
        .is_success());
    let before = harness.summary();
    let shed = harness.run_keyed(
        "k3",
        Command::Hold(hold_request("film", "c3", &["S-A-3"], &[])),
    );
    assert_eq!(code(&shed), "OVERLOADED");
    assert_eq!(harness.summary(), before, "a shed write must not apply");
    // Writes without a key still go through.
    harness.held("c4", &["S-A-4"]);
    harness.advance(10_000);
    // The old keys left their window: the table has room, and k1 is forgotten.
    assert!(harness
        .run_keyed(
            "k3",
            Command::Hold(hold_request("film", "c3", &["S-A-3"], &[]))
        )
        .is_success());
    let reused = harness.run_keyed(
        "k1",
        Command::Hold(hold_request("film", "c1", &["S-A-1"], &[])),
    );
    assert_eq!(
        code(&reused),
        "SEAT_UNAVAILABLE",
        "k1 was forgotten, so the hold was evaluated afresh"
    );
}

#[test]
fn outbox_orders_events_and_trims_on_acknowledgement() {
    let mut harness = Harness::cinema();
    let booking = harness.booked("c1", &["S-A-1"]);
    let hold = harness.held("c2", &["S-A-2"]);
    harness.now_ms = hold.expires_at_ms;
    harness.run(Command::ExpireHolds { max_holds: 10 });
    harness.run(Command::CancelBooking {
        booking_id: booking.booking_id.to_string(),
        reason: "r".into(),
    });
    let events = harness.state.outbox_events(0, 100);
    let kinds: Vec<&str> = events
        .iter()
        .map(|event| match event.kind {
            OutboxKind::BookingConfirmed { .. } => "confirmed",
            OutboxKind::HoldExpired { .. } => "expired",
            OutboxKind::BookingCancelled { .. } => "cancelled",
            OutboxKind::RefundOwed { .. } => "refund",
            OutboxKind::RefundPaid { .. } => "paid",
            OutboxKind::RefundFailed { .. } => "failed",
            OutboxKind::HoldPlaced { .. } => "placed",
            OutboxKind::HoldReleased { .. } => "released",
        })
        .collect();
    assert_eq!(
        kinds,
        vec![
            "placed",
            "confirmed",
            "placed",
            "expired",
            "cancelled",
            "refund"
        ]
    );
    assert_eq!(
        events.iter().map(|e| e.index).collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5, 6]
    );
    let Outcome::OutboxAcknowledged {
        acknowledged_up_to,
        remaining,
    } = harness.run(Command::AckOutbox { up_to: 2 })
    else {
        panic!()
    };
    assert_eq!((acknowledged_up_to, remaining), (2, 4));
    assert_eq!(harness.state.outbox_events(0, 100)[0].index, 3);
    assert_refused_unchanged(
        &mut harness,
        Command::AckOutbox { up_to: 7 },
        "INVALID_FIELD",
    );
}

#[test]
fn without_webhooks_the_outbox_keeps_a_window_of_the_newest_events() {
    let mut harness = Harness::with_config(Config {
        outbox_events_max: 3,
        ..Config::default()
    });
    harness.run(Command::CreateEvent(cinema_event("film")));
    for n in 1..=5 {
        // hold.placed and booking.confirmed each.
        harness.booked(&format!("c{n}"), &[&format!("S-A-{n}")]);
    }
    let status = harness.state.outbox_status();
    assert_eq!(
        (status.pending, status.last_index, status.dropped),
        (3, 10, 7)
    );
    assert_eq!(harness.state.outbox_events(0, 10)[0].index, 8);
}

fn best(count: u32, section: Option<&str>, allow_split: bool) -> Command {
    let mut request = hold_request("film", "c-best", &[], &[]);
    request.best_available = Some(BestAvailable {
        count,
        section: section.map(Into::into),
        allow_split,
    });
    Command::Hold(request)
}

#[test]
fn best_available_holds_adjacent_seats_near_the_centre() {
    let mut harness = Harness::cinema();
    let Outcome::Held(hold) = harness.run(best(4, None, false)) else {
        panic!()
    };
    assert_eq!(hold.seats[..], ["S-A-4", "S-A-5", "S-A-6", "S-A-7"]);
}

#[test]
fn best_available_avoids_orphan_seats() {
    let mut harness = Harness::cinema();
    // Row A: seats 1..=4 free, 5 taken, 6..=10 free. Row B all free.
    harness.held("c1", &["S-A-5"]);
    let Outcome::Held(hold) = harness.run(best(3, None, false)) else {
        panic!()
    };
    // 1-3 would orphan seat 4; 2-4 would orphan seat 1; 6-8 leaves 9-10 (a pair), 8-10 leaves 6-7.
    // Closest to the centre without an orphan in row A: 6-8 (centre 7) vs 8-10 (centre 9).
    assert_eq!(hold.seats[..], ["S-A-6", "S-A-7", "S-A-8"]);
    // Only 9-10 and 1-4 left in row A; two seats: 1-2 and 3-4 leave no orphan, 9-10 none either.
    let Outcome::Held(pair) = harness.run(best(2, None, false)) else {
        panic!()
    };
    assert_eq!(pair.seats.len(), 2);
    harness.state.check_invariants().unwrap();
}

#[test]
fn best_available_refuses_or_splits_when_no_row_fits() {
    let mut harness = Harness::cinema();
    // Leave every row with at most 3 adjacent free seats.
    harness.held("a", &["S-A-4", "S-A-8"]);
    harness.held("b", &["S-B-4", "S-B-8"]);
    let before = harness.state.snapshot_bytes();
    let outcome = harness.run(best(4, None, false));
    assert_eq!(code(&outcome), "NO_ADJACENT_SEATS");
    assert_eq!(before, harness.state.snapshot_bytes());
    let Outcome::Held(split) = harness.run(best(4, None, true)) else {
        panic!()
    };
    assert_eq!(split.seats.len(), 4);
    assert_eq!(
        code(&harness.run(best(2, Some("NOPE"), false))),
        "NO_ADJACENT_SEATS"
    );
    let Outcome::Held(sectioned) = harness.run(best(2, Some("S"), false)) else {
        panic!()
    };
    assert_eq!(sectioned.seats.len(), 2);
}

#[test]
fn availability_pages_and_sections() {
    let mut harness = Harness::cinema();
    harness.run(Command::AddSeats {
        event_id: "film".into(),
        seats: vec![],
        seat_blocks: vec![SeatBlock {
            section: "VIP".into(),
            rows: vec!["1".into()],
            seats_per_row: 3,
            price: 5000,
        }],
    });
    let first = harness.state.availability("film", None, None, 8).unwrap();
    assert_eq!(first.seats.len(), 8);
    assert_eq!(first.next_after.as_deref(), Some("S-A-8"));
    let mut all = first.seats.clone();
    let mut after = first.next_after;
    while let Some(cursor) = after {
        let page = harness
            .state
            .availability("film", None, Some(&cursor), 8)
            .unwrap();
        all.extend(page.seats);
        after = page.next_after;
    }
    assert_eq!(all.len(), 23);
    let vip = harness
        .state
        .availability("film", Some("VIP"), None, 2)
        .unwrap();
    assert_eq!(
        vip.seats.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
        vec!["VIP-1-1", "VIP-1-2"]
    );
    let rest = harness
        .state
        .availability("film", Some("VIP"), vip.next_after.as_deref(), 2)
        .unwrap();
    assert_eq!(rest.seats.len(), 1);
    assert_eq!(rest.next_after, None);
    assert_eq!(
        harness
            .state
            .availability("nope", None, None, 1)
            .unwrap_err()
            .code(),
        "EVENT_NOT_FOUND"
    );
    assert_eq!(
        harness
            .state
            .availability("film", None, Some("zzz"), 1)
            .unwrap_err()
            .code(),
        "SEAT_NOT_FOUND"
    );
}

#[test]
fn each_event_has_its_own_version() {
    let mut harness = Harness::cinema();
    harness.run(Command::CreateEvent(cinema_event("other")));
    let (_, other_before) = harness.state.summary("other").unwrap();
    let version = harness.version();
    let hold = harness.held("c1", &["S-A-1"]);
    assert_eq!(harness.version(), version + 1);
    harness.confirm(&hold);
    assert_eq!(harness.version(), version + 2);
    assert_eq!(harness.state.summary("other").unwrap().1, other_before);
    // Refusals bump nothing.
    harness.hold("c2", &["S-A-1"], &[]);
    assert_eq!(harness.version(), version + 2);
}

#[test]
fn customer_history_is_newest_first_and_paged() {
    let mut harness = Harness::cinema();
    for n in 1..=5 {
        harness.booked("alice", &[&format!("S-A-{n}")]);
        harness.booked("bob", &[&format!("S-B-{n}")]);
    }
    let page = harness.state.customer_bookings("alice", None, 2);
    let ids: Vec<_> = page
        .bookings
        .iter()
        .map(|b| b.booking_id.as_str())
        .collect();
    assert_eq!(ids, vec!["b_9", "b_7"]);
    assert_eq!(page.next_after.as_deref(), Some("b_7"));
    let page = harness.state.customer_bookings("alice", Some("b_7"), 10);
    let ids: Vec<_> = page
        .bookings
        .iter()
        .map(|b| b.booking_id.as_str())
        .collect();
    assert_eq!(ids, vec!["b_5", "b_3", "b_1"]);
    assert_eq!(page.next_after, None);
    assert!(harness
        .state
        .customer_bookings("nobody", None, 10)
        .bookings
        .is_empty());
}

#[test]
fn ended_holds_are_forgotten_after_their_retention() {
    let mut harness = Harness::with_config(Config {
        ended_hold_retention_ms: 5_000,
        ..Config::default()
    });
    harness.run(Command::CreateEvent(cinema_event("film")));
    let hold = harness.held("c1", &["S-A-1"]);
    harness.run(Command::ReleaseHold {
        hold_id: hold.hold_id.to_string(),
    });
    harness.advance(5_000);
    harness.held("c1", &["S-A-2"]);
    assert_eq!(harness.state.hold_by_id(&hold.hold_id), None);
    harness.state.check_invariants().unwrap();
}

/// A frozen copy (what a snapshot encodes while apply goes on) shares the state's chunks;
/// every kind of write after it — holds, confirms, releases, cancels, new seats, the
/// outbox's trimming — copies what it touches, so the copy still encodes its own moment.
#[test]
fn a_frozen_state_keeps_its_moment_across_many_chunks() {
    let mut harness = Harness::with_config(Config {
        outbox_events_max: 700,
        ..Config::default()
    });
    let mut create = cinema_event("film");
    create.seat_blocks = vec![SeatBlock {
        section: "S".into(),
        rows: (1..=12).map(|row| row.to_string()).collect(),
        seats_per_row: 250,
        price: 900,
    }];
    assert!(harness.run(Command::CreateEvent(create)).is_success());
    let seat = |n: usize| format!("S-{}-{}", n / 250 + 1, n % 250 + 1);
    let mut holds = Vec::new();
    for n in (0..3_000).step_by(3) {
        let id = seat(n);
        let key = format!("k{n}");
        let request = hold_request("film", &format!("c{n}"), &[id.as_str()], &[]);
        match harness.run_keyed(&key, Command::Hold(request)) {
            Outcome::Held(view) => holds.push(view),
            other => panic!("hold of {id}: {other:?}"),
        }
    }
    let frozen = harness.state.frozen();
    let bytes = harness.state.snapshot_bytes();
    assert_eq!(frozen.snapshot_bytes(), bytes);
    for (i, hold) in holds.iter().enumerate() {
        harness.advance(1);
        match i % 3 {
            0 => assert!(harness.confirm(hold).is_success()),
            1 => assert!(harness
                .run(Command::ReleaseHold {
                    hold_id: hold.hold_id.to_string(),
                })
                .is_success()),
            _ => {}
        }
    }
    for n in (1..3_000).step_by(3) {
        harness.held(&format!("late{n}"), &[seat(n).as_str()]);
    }
    assert!(harness
        .run(Command::AddSeats {
            event_id: "film".into(),
            seats: vec![],
            seat_blocks: vec![SeatBlock {
                section: "T".into(),
                rows: vec!["1".into()],
                seats_per_row: 600,
                price: 1_000,
            }],
        })
        .is_success());
    assert_ne!(harness.state.snapshot_bytes(), bytes);
    assert_eq!(frozen.snapshot_bytes(), bytes, "the frozen copy changed");
    harness.state.check_invariants().unwrap();
    // And it restores to the state as it was.
    let restored = StateMachine::from_snapshot_bytes(&frozen.snapshot_bytes()).unwrap();
    assert_eq!(restored.snapshot_bytes(), bytes);
}

#[test]
fn snapshots_round_trip_to_identical_bytes() {
    let mut harness = Harness::cinema();
    harness.booked("c1", &["S-A-1"]);
    harness.run_keyed(
        "k",
        Command::Hold(hold_request("film", "c2", &["S-A-2"], &[("GA", 2)])),
    );
    let bytes = harness.state.snapshot_bytes();
    let restored = StateMachine::from_snapshot_bytes(&bytes).unwrap();
    assert_eq!(restored.snapshot_bytes(), bytes);
    assert_eq!(restored.summary("film"), harness.state.summary("film"));
    assert_eq!(restored.hold_by_id("h_2"), harness.state.hold_by_id("h_2"));
    // The restored state remembers the request id.
    let mut restored = restored;
    let replay = restored.apply(&Entry {
        time_ms: harness.now_ms,
        request_id: Some("k".into()),
        command: Command::Hold(hold_request("film", "c2", &["S-A-2"], &[("GA", 2)])),
    });
    assert!(matches!(replay, Outcome::Held(ref view) if view.hold_id == "h_2"));
}

#[test]
fn snapshots_with_another_format_are_refused() {
    let bytes = Harness::cinema().state.snapshot_bytes();
    assert!(matches!(
        StateMachine::from_snapshot_bytes(b"garbage!garbage"),
        Err(SnapshotError::BadMagic)
    ));
    let mut future = bytes.clone();
    future[8] = 99;
    assert!(matches!(
        StateMachine::from_snapshot_bytes(&future),
        Err(SnapshotError::UnsupportedVersion {
            found: 99,
            supported: SNAPSHOT_FORMAT_VERSION
        })
    ));
    let truncated = &bytes[..bytes.len() / 2];
    assert!(matches!(
        StateMachine::from_snapshot_bytes(truncated),
        Err(SnapshotError::Corrupt(_))
    ));
}

#[test]
fn request_ids_are_bounded() {
    let mut harness = Harness::cinema();
    let long = "k".repeat(limits::REQUEST_ID_BYTES_MAX + 1);
    let outcome = harness.run_keyed(
        &long,
        Command::Hold(hold_request("film", "c1", &["S-A-1"], &[])),
    );
    assert_eq!(code(&outcome), "INVALID_FIELD");
    assert_eq!(harness.summary().seats_held, 0);
}

#[test]
fn retired_node_ids_are_remembered_across_snapshots() {
    let mut harness = Harness::cinema();
    assert!(!harness.state.is_node_retired(3));
    assert_eq!(
        harness.run(Command::RetireNode { node_id: 3 }),
        Outcome::NodeRetired { node_id: 3 }
    );
    let restored = StateMachine::from_snapshot_bytes(&harness.state.snapshot_bytes()).unwrap();
    assert!(restored.is_node_retired(3));
    assert!(!restored.is_node_retired(4));
}

#[test]
fn refunds_owed_outlive_an_overflowing_outbox() {
    // The outbox is a notification queue with a bound: a consumer that far behind loses
    // the oldest notifications (counted in `dropped`), never a booking. The money owed is
    // kept in the refunds table, which only marking the refund done empties.
    let mut harness = Harness::with_config(Config {
        outbox_events_max: 2,
        ..Config::default()
    });
    harness.run(Command::CreateEvent(cinema_event("film")));
    let mut booking_ids = Vec::new();
    for n in 1..=4 {
        booking_ids.push(
            harness
                .booked(&format!("c{n}"), &[&format!("S-A-{n}")])
                .booking_id,
        );
    }
    for booking_id in &booking_ids {
        let outcome = harness.run(Command::CancelBooking {
            booking_id: booking_id.to_string(),
            reason: "changed plans".into(),
        });
        assert_eq!(code(&outcome), "OK", "{outcome:?}");
    }
    let status = harness.state.outbox_status();
    assert_eq!(status.pending, 2);
    assert!(status.dropped >= 6, "{status:?}");
    let refunds = harness.state.pending_refunds(10);
    assert_eq!(refunds.len(), 4, "every refund owed is still listed");
    for booking_id in &booking_ids {
        assert!(refunds
            .iter()
            .any(|refund| refund.booking_id.as_deref() == Some(booking_id.as_str())));
    }
    harness.state.check_invariants().unwrap();
}

#[test]
fn events_beyond_the_limit_are_refused() {
    let mut harness = Harness::new();
    let tiny = |n: usize| CreateEvent {
        event_id: format!("e{n}"),
        name: "Slot".into(),
        category: Category::Appointment,
        starts_at_ms: None,
        currency: "EUR".into(),
        seats: vec![],
        seat_blocks: vec![],
        pools: vec![PoolSpec {
            id: "P".into(),
            capacity: 1,
            price: 100,
        }],
        listing: Default::default(),
    };
    for n in 0..limits::EVENTS_MAX {
        let outcome = harness.run(Command::CreateEvent(tiny(n)));
        assert!(outcome.is_success(), "{outcome:?}");
    }
    let before = harness.state.snapshot_bytes();
    let outcome = harness.run(Command::CreateEvent(tiny(limits::EVENTS_MAX)));
    assert_eq!(code(&outcome), "LIMIT_REACHED", "{outcome:?}");
    assert_eq!(
        outcome.rejection(),
        Some(&Rejection::LimitReached {
            what: "events".into(),
            max: limits::EVENTS_MAX as u64
        })
    );
    assert_eq!(
        before,
        harness.state.snapshot_bytes(),
        "the refusal stored nothing"
    );
}

#[test]
fn section_pages_follow_creation_order_across_interleaved_additions() {
    let mut harness = Harness::cinema();
    // Section S (rows A, B) exists; add T, then more of S, then a seat of T, and remove one.
    let block = |section: &str, row: &str| SeatBlock {
        section: section.into(),
        rows: vec![row.into()],
        seats_per_row: 3,
        price: 900,
    };
    for (section, row) in [("T", "1"), ("S", "C"), ("T", "2")] {
        let outcome = harness.run(Command::AddSeats {
            event_id: "film".into(),
            seats: vec![],
            seat_blocks: vec![block(section, row)],
        });
        assert_eq!(code(&outcome), "OK", "{outcome:?}");
    }
    let removed = harness.run(Command::RemoveSeat {
        event_id: "film".into(),
        seat_id: "S-B-4".into(),
    });
    assert_eq!(code(&removed), "OK", "{removed:?}");

    for section in ["S", "T"] {
        // What a scan of every seat in creation order gives.
        let everything = harness
            .state
            .availability("film", None, None, 5_000)
            .unwrap();
        let expected: Vec<String> = everything
            .seats
            .iter()
            .filter(|seat| seat.section == section)
            .map(|seat| seat.id.clone())
            .collect();
        let mut paged = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = harness
                .state
                .availability("film", Some(section), after.as_deref(), 4)
                .unwrap();
            paged.extend(page.seats.iter().map(|seat| seat.id.clone()));
            match page.next_after {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        assert_eq!(paged, expected, "section {section}");
        assert!(!paged.contains(&"S-B-4".to_string()));
    }
}

fn record_intent(harness: &mut Harness, key: &str, hold_id: &str) -> Outcome {
    harness.run(Command::RecordChargeIntent {
        charge_key: key.into(),
        hold_id: hold_id.into(),
        provider: "sandbox".into(),
    })
}

/// A charge intent is recorded against a live hold with the hold's price, is idempotent on
/// its key, outlives a snapshot, and is resolved by the confirm proposed under its key,
/// whatever that confirm answers.
#[test]
fn charge_intents_are_recorded_before_a_charge_and_resolved_by_its_confirm() {
    let mut harness = Harness::cinema();
    let hold = harness.held("c1", &["S-A-1", "S-A-2"]);
    let Outcome::ChargeIntentRecorded { intent, new: true } =
        record_intent(&mut harness, "confirm:k1", &hold.hold_id)
    else {
        panic!("a live hold takes an intent");
    };
    assert_eq!((intent.amount, intent.currency.as_str()), (1800, "EUR"));
    assert_eq!(intent.recorded_at_ms, harness.now_ms);
    harness.advance(10);
    assert_eq!(
        record_intent(&mut harness, "confirm:k1", &hold.hold_id),
        Outcome::ChargeIntentRecorded {
            intent: intent.clone(),
            new: false
        },
        "recording a key again answers the same intent"
    );
    // The same key for another hold is another request's key.
    let elsewhere = harness.held("c5", &["S-B-5"]);
    assert_eq!(
        code(&record_intent(
            &mut harness,
            "confirm:k1",
            &elsewhere.hold_id
        )),
        "IDEMPOTENCY_KEY_REUSED"
    );
    let restored = StateMachine::from_snapshot_bytes(&harness.state.snapshot_bytes()).unwrap();
    assert_eq!(restored.charge_intent("confirm:k1"), Some(&intent));
    let by = |up_to_ms: u64, after: Option<&str>| {
        harness
            .state
            .charge_intents_recorded_by(up_to_ms, after, 10)
    };
    assert_eq!(by(harness.now_ms, None), vec![intent.clone()]);
    assert_eq!(by(intent.recorded_at_ms - 1, None), vec![]);
    assert_eq!(by(harness.now_ms, Some("confirm:k0")), vec![intent.clone()]);
    assert_eq!(
        by(harness.now_ms, Some("confirm:k1")),
        vec![],
        "the cursor is past it"
    );
    // The confirm under the key resolves it.
    let confirmed = harness.run_keyed(
        "confirm:k1",
        Command::Confirm {
            hold_id: hold.hold_id.to_string(),
            payment: payment(1800),
        },
    );
    assert!(confirmed.is_success(), "{confirmed:?}");
    assert_eq!(harness.state.charge_intents_len(), 0);

    // A hold that ended is refused before anything is charged, and nothing is stored.
    let before = harness.state.snapshot_bytes();
    let refused = record_intent(&mut harness, "confirm:k2", &hold.hold_id);
    assert_eq!(code(&refused), "HOLD_NOT_ACTIVE");
    assert_eq!(harness.state.snapshot_bytes(), before);
    assert_eq!(
        code(&record_intent(&mut harness, "", &hold.hold_id)),
        "INVALID_FIELD"
    );

    // A confirm refused as a reused key still accounts for its charge: a refund, and the
    // intent under the key is resolved.
    let other = harness.held("c2", &["S-B-1"]);
    record_intent(&mut harness, "confirm:k1-again", &other.hold_id);
    // The key was used before for another request (a hold of a taken seat: remembered).
    let taken = harness.run_keyed(
        "confirm:k1-again",
        Command::Hold(hold_request("film", "c9", &["S-A-1"], &[])),
    );
    assert_eq!(code(&taken), "SEAT_UNAVAILABLE");
    let charged = payment(900);
    let reused = harness.run_keyed(
        "confirm:k1-again",
        Command::Confirm {
            hold_id: other.hold_id.to_string(),
            payment: charged.clone(),
        },
    );
    let Outcome::ConfirmRefused { rejection, refund } = reused else {
        panic!("a reused key with a charge records its refund: {reused:?}");
    };
    assert_eq!(rejection.code().as_str(), "IDEMPOTENCY_KEY_REUSED");
    assert_eq!(
        (refund.payment_id.as_str(), refund.amount),
        (charged.payment_id.as_str(), 900)
    );
    assert_eq!(harness.state.charge_intents_len(), 0);
    assert_eq!(harness.seat_status("S-B-1"), SeatStatus::Held);

    // An intent whose provider made no charge is dropped, once.
    let third = harness.held("c3", &["S-B-2"]);
    record_intent(&mut harness, "confirm:k3", &third.hold_id);
    let drop = Command::DropChargeIntent {
        charge_key: "confirm:k3".into(),
    };
    assert_eq!(
        harness.run(drop.clone()),
        Outcome::ChargeIntentDropped {
            charge_key: "confirm:k3".into(),
            dropped: true
        }
    );
    assert_eq!(
        harness.run(drop),
        Outcome::ChargeIntentDropped {
            charge_key: "confirm:k3".into(),
            dropped: false
        }
    );
    harness.state.check_invariants().unwrap();
}

/// A keyed request refused for what it is (malformed, or naming nothing that exists) is not
/// remembered: one caller's cheap bad requests cannot fill the idempotency table, and the
/// same key is judged afresh once the request can apply. A refusal that answers from the
/// state (a seat taken) is still remembered.
#[test]
fn requests_refused_for_what_they_are_are_not_remembered() {
    let mut harness = Harness::new();
    let unknown = harness.run_keyed(
        "hold:k1",
        Command::Hold(hold_request("film", "c1", &["S-A-1"], &[])),
    );
    assert_eq!(code(&unknown), "EVENT_NOT_FOUND");
    let bad_ttl = harness.run_keyed(
        "hold:k2",
        Command::ExtendHold {
            hold_id: "h_1".into(),
            ttl_seconds: 0,
        },
    );
    assert_eq!(code(&bad_ttl), "INVALID_TTL");
    assert!(!harness.state.remembers_request("hold:k1"));
    assert!(!harness.state.remembers_request("hold:k2"));
    let before = harness.state.snapshot_bytes();
    for n in 0..100 {
        let refused = harness.run_keyed(
            &format!("hold:junk-{n}"),
            Command::ReleaseHold {
                hold_id: "h_77".into(),
            },
        );
        assert_eq!(code(&refused), "HOLD_NOT_FOUND");
    }
    assert_eq!(harness.state.snapshot_bytes(), before, "nothing stored");

    harness.run(Command::CreateEvent(cinema_event("film")));
    let held = harness.run_keyed(
        "hold:k1",
        Command::Hold(hold_request("film", "c1", &["S-A-1"], &[])),
    );
    assert!(held.is_success(), "the key applies afresh: {held:?}");
    let taken = harness.run_keyed(
        "hold:k3",
        Command::Hold(hold_request("film", "c2", &["S-A-1"], &[])),
    );
    assert_eq!(code(&taken), "SEAT_UNAVAILABLE");
    assert!(harness.state.remembers_request("hold:k3"));
}

/// With an id key, hold, booking and refund ids are a keyed permutation of their numbers:
/// 16 hex digits that say nothing about each other, looked up, confirmed, cancelled and
/// replayed like sequential ones, and kept across a snapshot. The key is set once, before
/// any id is handed out.
#[test]
fn keyed_ids_are_unguessable_and_work_like_sequential_ones() {
    let mut harness = Harness::cinema();
    assert!(harness.state.wants_id_key());
    let key = Command::SetIdKey {
        key: [0x5eed, 0xc0ffee],
    };
    assert_eq!(harness.run(key.clone()), Outcome::IdKeySet);
    assert!(!harness.state.wants_id_key());
    assert_eq!(code(&harness.run(key)), "INVALID_FIELD", "set once");
    let keyed = |id: &str, prefix: &str| {
        id.strip_prefix(prefix).is_some_and(|digits| {
            digits.len() == 16 && digits.bytes().all(|b| b.is_ascii_hexdigit())
        })
    };
    let hold = harness.held("c1", &["S-A-1"]);
    let other = harness.held("c2", &["S-A-2"]);
    assert!(keyed(&hold.hold_id, "h_"), "{}", hold.hold_id);
    assert_ne!(&hold.hold_id[2..10], &other.hold_id[2..10]);
    assert_eq!(harness.state.hold_by_id(&hold.hold_id).unwrap(), hold);
    assert!(
        harness.state.hold_by_id("h_1").is_none(),
        "no sequential spelling"
    );
    // A replayed hold answers the same keyed id.
    let request = Command::Hold(hold_request("film", "c3", &["S-A-3"], &[]));
    let first = harness.run_keyed("hold:k", request.clone());
    assert_eq!(harness.run_keyed("hold:k", request), first);
    let Outcome::Confirmed(booking) = harness.confirm(&hold) else {
        panic!("confirmed");
    };
    assert!(keyed(&booking.booking_id, "b_"), "{}", booking.booking_id);
    let Outcome::BookingCancelled(cancelled) = harness.run(Command::CancelBooking {
        booking_id: booking.booking_id.to_string(),
        reason: "plans".into(),
    }) else {
        panic!("cancelled");
    };
    let refund_id = cancelled.refund.expect("a refund").refund_id;
    assert!(keyed(&refund_id, "r_"), "{refund_id}");
    assert!(harness.state.refund_by_id(&refund_id).is_some());
    let restored = StateMachine::from_snapshot_bytes(&harness.state.snapshot_bytes()).unwrap();
    assert_eq!(restored.hold_by_id(&other.hold_id).unwrap(), other);
    assert_eq!(restored.snapshot_bytes(), harness.state.snapshot_bytes());
    harness.state.check_invariants().unwrap();

    // A state that handed out sequential ids keeps them.
    let mut old = Harness::cinema();
    old.held("c1", &["S-A-1"]);
    assert!(!old.state.wants_id_key());
    assert_eq!(
        code(&old.run(Command::SetIdKey { key: [1, 2] })),
        "INVALID_FIELD"
    );
    assert!(old.state.hold_by_id("h_1").is_some());
}
