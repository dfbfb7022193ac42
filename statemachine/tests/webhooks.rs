//! Webhooks in the state machine: added without their secret in any answer, acknowledged
//! forward only, the outbox trimmed only below what every webhook acknowledged, kept by
//! snapshots.

mod common;

use common::{code, Harness};
use holdfast_statemachine::*;

fn add(harness: &mut Harness, url: &str, events: &[EventType]) -> WebhookView {
    match harness.run(Command::AddWebhook {
        url: url.into(),
        secret: "whsec_0123456789".into(),
        events: events.to_vec(),
    }) {
        Outcome::WebhookAdded(view) => view,
        other => panic!("{other:?}"),
    }
}

fn ack(harness: &mut Harness, webhook_id: &str, up_to: u64) -> Outcome {
    harness.run(Command::AckWebhook {
        webhook_id: webhook_id.into(),
        up_to,
    })
}

#[test]
fn webhooks_are_added_listed_and_removed_without_their_secrets() {
    let mut harness = Harness::cinema();
    harness.booked("c1", &["S-A-1"]);
    let first = add(
        &mut harness,
        "https://hooks.example/a",
        &[
            EventType::RefundPaid,
            EventType::BookingConfirmed,
            EventType::RefundPaid,
        ],
    );
    assert_eq!(first.webhook_id, "wh_1");
    assert_eq!(
        first.events,
        vec![EventType::BookingConfirmed, EventType::RefundPaid]
    );
    // It hears of what happens from now on (after hold.placed and booking.confirmed).
    assert_eq!(first.delivered_up_to, 2);
    let listed = harness.state.webhooks();
    assert_eq!(listed, vec![first.clone()]);
    assert!(!format!("{listed:?}").contains("whsec"));
    assert!(!format!("{:?}", harness.state.webhook_targets()).contains("whsec"));
    assert_eq!(
        harness.state.webhook_targets()[0].secret,
        "whsec_0123456789"
    );

    let removed = harness.run(Command::RemoveWebhook {
        webhook_id: "wh_1".into(),
    });
    assert!(matches!(removed, Outcome::WebhookRemoved(ref view) if view.webhook_id == "wh_1"));
    assert!(harness.state.webhooks().is_empty());
    let again = harness.run(Command::RemoveWebhook {
        webhook_id: "wh_1".into(),
    });
    assert_eq!(code(&again), "WEBHOOK_NOT_FOUND");
}

#[test]
fn webhook_fields_are_checked() {
    let mut harness = Harness::cinema();
    for (url, secret) in [
        ("ftp://x", "s"),
        ("http://a b", "s"),
        ("https://ok.example", ""),
        ("https://ok.example", "bad\nsecret"),
    ] {
        let outcome = harness.run(Command::AddWebhook {
            url: url.into(),
            secret: secret.into(),
            events: vec![],
        });
        assert_eq!(code(&outcome), "INVALID_FIELD", "{url} {secret:?}");
    }
    for _ in 0..limits::WEBHOOKS_MAX {
        add(&mut harness, "http://127.0.0.1:9/", &[]);
    }
    let outcome = harness.run(Command::AddWebhook {
        url: "http://127.0.0.1:9/".into(),
        secret: "s".into(),
        events: vec![],
    });
    assert_eq!(code(&outcome), "LIMIT_REACHED");
}

#[test]
fn the_outbox_is_trimmed_only_below_what_every_webhook_acknowledged() {
    let mut harness = Harness::cinema();
    let slow = add(&mut harness, "http://slow.example", &[]);
    let fast = add(&mut harness, "http://fast.example", &[]);
    for seat in ["S-A-1", "S-A-2", "S-A-3"] {
        harness.booked("c1", &[seat]);
    }
    // Each booking: hold.placed and booking.confirmed.
    assert_eq!(harness.state.outbox_status().pending, 6);
    ack(&mut harness, &fast.webhook_id, 6);
    assert_eq!(
        harness.state.outbox_status().pending,
        6,
        "the slow webhook still needs them"
    );
    ack(&mut harness, &slow.webhook_id, 4);
    assert_eq!(harness.state.outbox_status().pending, 2);
    assert_eq!(harness.state.outbox_events(0, 10)[0].index, 5);
    // Marks only move forward.
    let late = ack(&mut harness, &slow.webhook_id, 1);
    assert!(matches!(
        late,
        Outcome::WebhookAcknowledged {
            delivered_up_to: 4,
            ..
        }
    ));
    assert_eq!(
        code(&ack(&mut harness, &slow.webhook_id, 99)),
        "INVALID_FIELD"
    );
    assert_eq!(code(&ack(&mut harness, "wh_9", 1)), "WEBHOOK_NOT_FOUND");
    // Removing the laggard trims what the others acknowledged.
    harness.run(Command::RemoveWebhook {
        webhook_id: slow.webhook_id.clone(),
    });
    assert_eq!(harness.state.outbox_status().pending, 0);
    harness.state.check_invariants().unwrap();

    let bytes = harness.state.snapshot_bytes();
    let restored = StateMachine::from_snapshot_bytes(&bytes).unwrap();
    assert_eq!(restored.snapshot_bytes(), bytes);
    assert_eq!(restored.webhook_targets(), harness.state.webhook_targets());
}

#[test]
fn event_types_cover_every_outbox_kind_and_parse_back() {
    for event_type in EventType::ALL {
        assert_eq!(EventType::parse(event_type.as_str()), Some(event_type));
    }
    assert_eq!(EventType::parse("hold.placed"), Some(EventType::HoldPlaced));
    assert_eq!(
        EventType::parse("hold.released"),
        Some(EventType::HoldReleased)
    );
    assert_eq!(EventType::parse("hold.unknown"), None);
    let kind = OutboxKind::RefundPaid {
        refund_id: "r_1".into(),
    };
    assert_eq!(EventType::of(&kind), EventType::RefundPaid);
}
