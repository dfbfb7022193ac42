//! Listings, search, event updates and event cancellation.

mod common;

use common::*;
use holdfast_statemachine::limits::*;
use holdfast_statemachine::*;

const HOUR_MS: u64 = 3_600_000;

fn event(
    event_id: &str,
    category: Category,
    starts_at_ms: Option<u64>,
    venue: &str,
    city: &str,
) -> CreateEvent {
    CreateEvent {
        event_id: event_id.into(),
        name: format!("Show {event_id}"),
        category,
        starts_at_ms,
        currency: "EUR".into(),
        seats: vec![],
        seat_blocks: vec![SeatBlock {
            section: "A".into(),
            rows: vec!["1".into()],
            seats_per_row: 4,
            price: 1_000,
        }],
        pools: vec![],
        listing: Listing {
            venue: Some(venue.into()),
            city: Some(city.into()),
            ..Listing::default()
        },
    }
}

/// A hotel with room types STD (2 rooms) and STE (1 room) for the nights given.
fn hotel(event_id: &str, nights: &[&str]) -> CreateEvent {
    let mut pools = Vec::new();
    for night in nights {
        for (room_type, capacity) in [("STD", 2), ("STE", 1)] {
            pools.push(PoolSpec {
                id: format!("{room_type}-{night}"),
                capacity,
                price: 10_000,
            });
        }
    }
    CreateEvent {
        event_id: event_id.into(),
        name: "Harbour Hotel".into(),
        category: Category::Hotel,
        starts_at_ms: Some(START_MS),
        currency: "EUR".into(),
        seats: vec![],
        seat_blocks: vec![],
        pools,
        listing: Listing {
            city: Some("Marseille".into()),
            ..Listing::default()
        },
    }
}

fn create(harness: &mut Harness, create: CreateEvent) {
    let outcome = harness.run(Command::CreateEvent(create));
    assert!(outcome.is_success(), "{outcome:?}");
}

fn ids(page: &SearchPage) -> Vec<&str> {
    page.events.iter().map(|e| e.event_id.as_str()).collect()
}

fn search(harness: &Harness, query: SearchQuery) -> SearchPage {
    harness.state.search(&query).expect("a valid query")
}

fn all(limit: usize) -> SearchQuery {
    SearchQuery {
        limit,
        ..SearchQuery::default()
    }
}

/// Five events: three in Lyon, two in Paris, at different hours; one without a start.
fn catalogue() -> Harness {
    let mut harness = Harness::new();
    let at = |hours: u64| Some(START_MS + hours * HOUR_MS);
    create(
        &mut harness,
        event("e3", Category::Movie, at(3), "Odeon", "Lyon"),
    );
    create(
        &mut harness,
        event("e1", Category::Event, at(1), "Arena", "Paris"),
    );
    create(
        &mut harness,
        event("e2", Category::Movie, at(2), "Grand Rex", "Paris"),
    );
    create(
        &mut harness,
        event("e0", Category::Movie, None, "Odeon", "Lyon"),
    );
    create(
        &mut harness,
        event("e2b", Category::Event, at(2), "Halle", "lyon"),
    );
    harness.state.check_invariants().unwrap();
    harness
}

#[test]
fn a_search_lists_events_by_start_then_id_with_events_without_a_start_last() {
    let harness = catalogue();
    assert_eq!(
        ids(&search(&harness, all(50))),
        ["e1", "e2", "e2b", "e3", "e0"]
    );
}

#[test]
fn pages_follow_next_after_until_nothing_remains() {
    let harness = catalogue();
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = search(
            &harness,
            SearchQuery {
                after: after.clone(),
                limit: 2,
                ..SearchQuery::default()
            },
        );
        seen.extend(ids(&page).into_iter().map(String::from));
        match page.next_after {
            Some(next) => {
                assert_eq!(Some(&next), seen.last());
                after = Some(next);
            }
            None => break,
        }
    }
    assert_eq!(seen, ["e1", "e2", "e2b", "e3", "e0"]);
    // A full last page says nothing remains.
    let exact = search(&harness, all(5));
    assert_eq!(exact.events.len(), 5);
    assert_eq!(exact.next_after, None);
}

#[test]
fn filters_combine() {
    let harness = catalogue();
    let query = |edit: &dyn Fn(&mut SearchQuery)| {
        let mut query = all(50);
        edit(&mut query);
        ids(&search(&harness, query))
            .into_iter()
            .map(String::from)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        query(&|q| q.category = Some(Category::Movie)),
        ["e2", "e3", "e0"]
    );
    assert_eq!(
        query(&|q| q.city = Some("LYON".into())),
        ["e2b", "e3", "e0"]
    );
    // Text in the name or the venue, case-insensitively.
    assert_eq!(query(&|q| q.text = Some("odEON".into())), ["e3", "e0"]);
    assert_eq!(query(&|q| q.text = Some("show e2".into())), ["e2", "e2b"]);
    assert!(query(&|q| q.text = Some("nowhere".into())).is_empty());
    // The name and the venue are not one text.
    assert!(query(&|q| q.text = Some("e3 odeon".into())).is_empty());
    // A time range leaves out events without a start.
    assert_eq!(
        query(&|q| q.starts_from_ms = Some(START_MS + 2 * HOUR_MS)),
        ["e2", "e2b", "e3"]
    );
    assert_eq!(
        query(&|q| q.starts_to_ms = Some(START_MS + 2 * HOUR_MS)),
        ["e1", "e2", "e2b"]
    );
    assert_eq!(
        query(&|q| {
            q.category = Some(Category::Movie);
            q.city = Some("paris".into());
            q.starts_from_ms = Some(START_MS);
            q.starts_to_ms = Some(START_MS + 3 * HOUR_MS);
        }),
        ["e2"]
    );
    // `after` works with a category and a lower time bound.
    assert_eq!(
        query(&|q| {
            q.category = Some(Category::Movie);
            q.after = Some("e2".into());
        }),
        ["e3", "e0"]
    );
    assert_eq!(
        query(&|q| {
            q.starts_from_ms = Some(START_MS + 3 * HOUR_MS);
            q.after = Some("e1".into());
        }),
        ["e3"]
    );
}

#[test]
fn min_available_counts_free_seats_and_pool_units() {
    let mut harness = Harness::cinema(); // 20 seats and a pool of 5
    create(
        &mut harness,
        event("small", Category::Event, Some(START_MS), "Club", "Lyon"),
    );
    let with = |harness: &Harness, n: u64| {
        let page = search(
            harness,
            SearchQuery {
                min_available: Some(n),
                ..all(50)
            },
        );
        ids(&page).into_iter().map(String::from).collect::<Vec<_>>()
    };
    assert_eq!(with(&harness, 4), ["small", "film"]);
    assert_eq!(with(&harness, 25), ["film"]);
    assert!(with(&harness, 26).is_empty());
    harness.held("c1", &["S-A-1"]);
    assert!(with(&harness, 25).is_empty());
    let listing = harness.state.event_listing("film").unwrap();
    assert_eq!(listing.summary.seats_available, 19);
    assert_eq!(
        listing.pools,
        PoolTotals {
            capacity: 5,
            available: 5,
            held: 0,
            booked: 0
        }
    );
}

#[test]
fn a_hotel_matches_a_night_range_only_when_one_room_type_is_free_every_night() {
    let mut harness = Harness::new();
    let nights = ["2026-12-01", "2026-12-02", "2026-12-03"];
    create(&mut harness, hotel("harbour", &nights));
    create(
        &mut harness,
        event("film", Category::Movie, Some(START_MS), "Odeon", "Lyon"),
    );
    let matches = |harness: &Harness, nights: &[&str]| {
        let query = SearchQuery {
            nights: nights.iter().map(|n| n.to_string()).collect(),
            ..all(50)
        };
        ids(&search(harness, query)).len() == 1
    };
    assert!(matches(&harness, &nights));
    assert!(matches(&harness, &nights[1..2]));
    // A night the hotel does not sell.
    assert!(!matches(&harness, &["2026-12-03", "2026-12-04"]));
    let take = |harness: &mut Harness, customer: &str, pool: &str, quantity: u32| {
        let outcome = harness.run(Command::Hold(hold_request(
            "harbour",
            customer,
            &[],
            &[(pool, quantity)],
        )));
        assert!(outcome.is_success(), "{outcome:?}");
    };
    // The suite is gone on the 2nd, the standard rooms on the 3rd: no single room type is
    // free on all three nights, though every night has a room.
    take(&mut harness, "c1", "STE-2026-12-02", 1);
    take(&mut harness, "c2", "STD-2026-12-03", 2);
    assert!(!matches(&harness, &nights));
    assert!(matches(&harness, &nights[..2]));
    assert!(matches(&harness, &nights[2..]));
    assert!(matches(&harness, &nights[..1]));
}

#[test]
fn queries_beyond_their_limits_are_refused() {
    let harness = catalogue();
    let refused = |query: SearchQuery| harness.state.search(&query).unwrap_err();
    assert_eq!(
        refused(SearchQuery {
            text: Some("x".repeat(SEARCH_TEXT_BYTES_MAX + 1)),
            ..all(1)
        })
        .code(),
        "INVALID_FIELD"
    );
    assert_eq!(
        refused(SearchQuery {
            nights: vec!["2026-12-01".into(); SEARCH_NIGHTS_MAX + 1],
            ..all(1)
        })
        .code(),
        "INVALID_FIELD"
    );
    assert_eq!(
        refused(SearchQuery {
            after: Some("unknown".into()),
            ..all(1)
        }),
        Rejection::InvalidField {
            field: "after".into(),
            reason: "names no event".into()
        }
    );
    // Limits are clamped.
    assert_eq!(search(&harness, all(0)).events.len(), 1);
    assert_eq!(search(&harness, all(usize::MAX)).events.len(), 5);
}

#[test]
fn listings_are_validated_when_created_and_nothing_is_stored_on_refusal() {
    let mut harness = Harness::new();
    let refused = |harness: &mut Harness, listing: Listing, field: &str| {
        let mut create = event("bad", Category::Event, Some(START_MS), "v", "c");
        create.listing = listing;
        let outcome = harness.run(Command::CreateEvent(create));
        assert_eq!(
            outcome.rejection().map(Rejection::code),
            Some(holdfast_statemachine::ErrorCode::InvalidField)
        );
        match outcome.rejection() {
            Some(Rejection::InvalidField { field: named, .. }) => assert_eq!(named, field),
            other => panic!("{other:?}"),
        }
        assert!(harness.state.event_listing("bad").is_none());
    };
    let base = Listing::default();
    refused(
        &mut harness,
        Listing {
            venue: Some(String::new()),
            ..base.clone()
        },
        "venue",
    );
    refused(
        &mut harness,
        Listing {
            city: Some("x".repeat(LISTING_LABEL_BYTES_MAX + 1)),
            ..base.clone()
        },
        "city",
    );
    refused(
        &mut harness,
        Listing {
            description: Some("a\u{7}b".into()),
            ..base.clone()
        },
        "description",
    );
    refused(
        &mut harness,
        Listing {
            tags: vec!["t".into(); 2],
            ..base.clone()
        },
        "tags",
    );
    refused(
        &mut harness,
        Listing {
            tags: (0..=TAGS_PER_EVENT_MAX).map(|n| n.to_string()).collect(),
            ..base.clone()
        },
        "tags",
    );
    refused(
        &mut harness,
        Listing {
            ends_at_ms: Some(START_MS - 1),
            ..base
        },
        "ends_at",
    );
    assert!(search(&harness, all(50)).events.is_empty());
}

#[test]
fn an_update_changes_the_listing_and_moves_the_event_in_time() {
    let mut harness = catalogue();
    let outcome = harness.run(Command::UpdateEvent(EventUpdate {
        event_id: "e0".into(),
        name: Some("Premiere".into()),
        starts_at_ms: Some(Some(START_MS)),
        ends_at_ms: Some(Some(START_MS + 2 * HOUR_MS)),
        city: Some(None),
        tags: Some(vec!["gala".into()]),
        ..EventUpdate::default()
    }));
    assert!(matches!(outcome, Outcome::InventoryChanged(ref change) if change.event_id == "e0"));
    let listing = harness.state.event_listing("e0").unwrap();
    assert_eq!(listing.name, "Premiere");
    assert_eq!(listing.starts_at_ms, Some(START_MS));
    assert_eq!(listing.listing.city, None);
    assert_eq!(listing.listing.venue.as_deref(), Some("Odeon"));
    assert_eq!(listing.listing.tags, ["gala"]);
    assert_eq!(
        ids(&search(&harness, all(50))),
        ["e0", "e1", "e2", "e2b", "e3"]
    );
    let text = SearchQuery {
        text: Some("premiere".into()),
        ..all(50)
    };
    assert_eq!(ids(&search(&harness, text)), ["e0"]);
    harness.state.check_invariants().unwrap();

    // Refused whole: an end before the start, an unknown event.
    let before = harness.state.snapshot_bytes();
    let outcome = harness.run(Command::UpdateEvent(EventUpdate {
        event_id: "e0".into(),
        name: Some("Changed".into()),
        ends_at_ms: Some(Some(START_MS - 1)),
        ..EventUpdate::default()
    }));
    assert_eq!(code(&outcome), "INVALID_FIELD");
    let outcome = harness.run(Command::UpdateEvent(EventUpdate {
        event_id: "nope".into(),
        name: Some("x".into()),
        ..EventUpdate::default()
    }));
    assert_eq!(code(&outcome), "EVENT_NOT_FOUND");
    assert_eq!(harness.state.snapshot_bytes(), before);
}

#[test]
fn cancelling_an_event_releases_holds_cancels_bookings_with_refunds_and_refuses_holds() {
    let mut harness = Harness::cinema();
    let held = harness.held("c1", &["S-A-1"]);
    let pooled = harness.hold("c2", &[], &[("GA", 2)]);
    assert!(pooled.is_success());
    let booking = harness.booked("c3", &["S-A-2", "S-A-3"]);
    let outcome = harness.run(Command::CancelEvent {
        event_id: "film".into(),
        reason: "storm".into(),
    });
    let Outcome::EventCancelled(cancelled) = outcome else {
        panic!("{outcome:?}");
    };
    assert_eq!(cancelled.holds_released, 2);
    assert_eq!(cancelled.bookings_cancelled, 1);
    assert_eq!(cancelled.refunds_recorded, 1);
    assert_eq!(cancelled.refund_amount, booking.amount);
    harness.state.check_invariants().unwrap();

    let summary = harness.summary();
    assert_eq!((summary.seats_held, summary.seats_booked), (0, 0));
    assert_eq!(harness.pool("GA").available, 5);
    let hold = harness.state.hold_by_id(&held.hold_id).unwrap();
    assert_eq!(hold.status, HoldStatus::Released);
    let booking = harness.state.booking_by_id(&booking.booking_id).unwrap();
    assert_eq!(booking.status, BookingStatus::Cancelled);
    assert_eq!(booking.cancel_reason.as_deref(), Some("storm"));
    assert_eq!(booking.refund.unwrap().status, RefundStatus::Pending);
    assert_eq!(harness.state.pending_refunds(10).len(), 1);

    assert_eq!(
        code(&harness.hold("c4", &["S-A-5"], &[])),
        "EVENT_CANCELLED"
    );
    let again = harness.run(Command::CancelEvent {
        event_id: "film".into(),
        reason: "again".into(),
    });
    assert_eq!(code(&again), "EVENT_CANCELLED");
    // Gone from searches, still readable by id.
    assert!(search(&harness, all(50)).events.is_empty());
    let listing = harness.state.event_listing("film").unwrap();
    assert_eq!(listing.cancelled_at_ms, Some(harness.now_ms));
    // A confirm of the released hold is refused, not booked.
    assert_eq!(code(&harness.confirm(&held)), "HOLD_NOT_ACTIVE");
    harness.state.check_invariants().unwrap();
}

#[test]
fn listings_indexes_and_cancellations_survive_a_snapshot() {
    let mut harness = catalogue();
    harness.run(Command::CancelEvent {
        event_id: "e2".into(),
        reason: "moved".into(),
    });
    harness.run(Command::UpdateEvent(EventUpdate {
        event_id: "e3".into(),
        description: Some(Some("Late show".into())),
        starts_at_ms: Some(None),
        ..EventUpdate::default()
    }));
    let bytes = harness.state.snapshot_bytes();
    let restored = StateMachine::from_snapshot_bytes(&bytes).unwrap();
    assert_eq!(restored.snapshot_bytes(), bytes);
    let query = all(50);
    assert_eq!(restored.search(&query), harness.state.search(&query));
    assert_eq!(
        ids(&restored.search(&query).unwrap()),
        ["e1", "e2b", "e0", "e3"]
    );
    assert_eq!(
        restored
            .event_listing("e3")
            .unwrap()
            .listing
            .description
            .as_deref(),
        Some("Late show")
    );
    assert!(restored
        .event_listing("e2")
        .unwrap()
        .cancelled_at_ms
        .is_some());
}

#[test]
fn a_snapshot_of_the_previous_format_is_refused_clearly() {
    let mut bytes = Harness::cinema().state.snapshot_bytes();
    bytes[8..12].copy_from_slice(&1u32.to_le_bytes());
    match StateMachine::from_snapshot_bytes(&bytes) {
        Err(SnapshotError::UnsupportedVersion {
            found: 1,
            supported,
        }) => {
            assert_eq!(supported, SNAPSHOT_FORMAT_VERSION)
        }
        other => panic!("{:?}", other.map(|_| ())),
    }
}

#[test]
fn a_search_among_100_000_events_walks_the_index_in_order() {
    let mut harness = Harness::new();
    let cities = ["Lyon", "Paris", "Marseille", "Lille"];
    for n in 0..EVENTS_MAX as u64 {
        let category = [Category::Movie, Category::Event, Category::Hotel][(n % 3) as usize];
        // Start times in an order unlike the ids'.
        let starts_at_ms = START_MS + (n * 7_919 % 100_000) * 60_000;
        let create = CreateEvent {
            event_id: format!("ev-{n}"),
            name: format!("Event {n}"),
            category,
            starts_at_ms: Some(starts_at_ms),
            currency: "EUR".into(),
            seats: vec![],
            seat_blocks: vec![],
            pools: vec![PoolSpec {
                id: "GA".into(),
                capacity: n % 10 + 1,
                price: 100,
            }],
            listing: Listing {
                city: Some(cities[(n % 4) as usize].into()),
                ..Listing::default()
            },
        };
        create_fast(&mut harness, create);
    }
    let query = SearchQuery {
        category: Some(Category::Movie),
        city: Some("lyon".into()),
        min_available: Some(5),
        starts_from_ms: Some(START_MS + 50_000 * 60_000),
        limit: 100,
        ..SearchQuery::default()
    };
    let page = search(&harness, query.clone());
    assert_eq!(page.events.len(), 100);
    assert!(page.next_after.is_some());
    let mut previous = 0;
    for listing in &page.events {
        let start = listing.starts_at_ms.unwrap();
        assert!(start >= START_MS + 50_000 * 60_000 && start >= previous);
        previous = start;
        assert_eq!(listing.category, Category::Movie);
        assert_eq!(listing.listing.city.as_deref(), Some("Lyon"));
        assert!(listing.pools.available >= 5);
    }
    // The next page starts after the last one, in order.
    let next = search(
        &harness,
        SearchQuery {
            after: page.next_after.clone(),
            ..query
        },
    );
    assert!(next.events[0].starts_at_ms.unwrap() >= previous);
}

fn create_fast(harness: &mut Harness, create: CreateEvent) {
    let outcome = harness.run(Command::CreateEvent(create));
    assert!(outcome.is_success(), "{outcome:?}");
}
