//! Refunds after they are recorded: paid (`MarkRefunded`), failed attempts and giving up
//! (`RefundAttemptFailed`), and the pages of `refunds_page`. Unit tests for each rule and a
//! property test against a plain model: statuses, attempt counts and reasons match after
//! every step, every page of every status lists exactly the model's refunds of that status,
//! a snapshot restores the same state, and the log applied again gives the same bytes.

mod common;

use common::{code, Harness};
use holdfast_statemachine::*;
use proptest::prelude::*;

/// A cinema with `count` bookings, each cancelled: `count` pending refunds `r_1`..`r_count`.
fn with_refunds(count: usize) -> Harness {
    let mut harness = Harness::cinema();
    for index in 0..count {
        let seat = format!(
            "S-{}-{}",
            if index < 10 { "A" } else { "B" },
            index % 10 + 1
        );
        let booking = harness.booked(&format!("c{index}"), &[seat.as_str()]);
        let outcome = harness.run(Command::CancelBooking {
            booking_id: booking.booking_id.to_string(),
            reason: "changed plans".into(),
        });
        assert!(outcome.is_success(), "{outcome:?}");
    }
    harness
}

fn failed(refund: &str, attempt: u32, give_up: bool) -> Command {
    Command::RefundAttemptFailed {
        refund_id: refund.into(),
        attempt,
        reason: format!("provider said no ({attempt})"),
        give_up,
    }
}

#[test]
fn a_failed_attempt_is_counted_once_and_leaves_the_refund_pending() {
    let mut harness = with_refunds(1);
    harness.advance(500);
    let Outcome::RefundAttemptRecorded(view) = harness.run(failed("r_1", 1, false)) else {
        panic!("the first attempt is recorded");
    };
    assert_eq!(view.status, RefundStatus::Pending);
    assert_eq!(view.attempts, 1);
    assert_eq!(view.last_attempt_at_ms, Some(harness.now_ms));
    assert_eq!(view.reason.as_deref(), Some("provider said no (1)"));
    // The same report again (a retried proposal, another leader) is stale and changes
    // nothing but the clock.
    let before = harness.state.refund_by_id("r_1");
    assert_eq!(
        code(&harness.run(failed("r_1", 1, false))),
        "REFUND_ATTEMPT_STALE"
    );
    assert_eq!(
        code(&harness.run(failed("r_1", 3, false))),
        "REFUND_ATTEMPT_STALE"
    );
    assert_eq!(harness.state.refund_by_id("r_1"), before);
    assert_eq!(harness.state.pending_refunds(10).len(), 1);
    harness.state.check_invariants().unwrap();
}

#[test]
fn giving_up_fails_the_refund_with_its_reason_and_tells_the_outbox() {
    let mut harness = with_refunds(2);
    harness.run(failed("r_2", 1, false));
    let Outcome::RefundAttemptRecorded(view) = harness.run(failed("r_2", 2, true)) else {
        panic!("the last attempt is recorded");
    };
    assert_eq!(view.status, RefundStatus::Failed);
    assert_eq!(view.attempts, 2);
    assert_eq!(view.reason.as_deref(), Some("provider said no (2)"));
    let pending: Vec<String> = harness
        .state
        .pending_refunds(10)
        .into_iter()
        .map(|view| view.refund_id)
        .collect();
    assert_eq!(pending, vec!["r_1".to_string()]);
    // A failed refund is final: neither paid nor failed again.
    assert_eq!(
        code(&harness.run(Command::MarkRefunded {
            refund_id: "r_2".into()
        })),
        "REFUND_NOT_PENDING"
    );
    assert_eq!(
        code(&harness.run(failed("r_2", 3, true))),
        "REFUND_NOT_PENDING"
    );
    let last = harness.state.outbox_events(0, 100).pop().unwrap();
    assert_eq!(
        last.kind,
        OutboxKind::RefundFailed {
            refund_id: "r_2".into(),
            reason: "provider said no (2)".into()
        }
    );
    // The booking's lookup shows its refund failed.
    let booking = harness
        .state
        .booking_by_id(view.booking_id.as_deref().unwrap())
        .unwrap();
    assert_eq!(booking.refund.unwrap().status, RefundStatus::Failed);
    harness.state.check_invariants().unwrap();
}

#[test]
fn failed_attempt_reports_are_checked() {
    let mut harness = with_refunds(1);
    assert_eq!(
        code(&harness.run(failed("r_9", 1, false))),
        "REFUND_NOT_FOUND"
    );
    assert_eq!(
        code(&harness.run(failed("nonsense", 1, false))),
        "REFUND_NOT_FOUND"
    );
    assert_eq!(
        code(&harness.run(Command::RefundAttemptFailed {
            refund_id: "r_1".into(),
            attempt: 1,
            reason: "x".repeat(limits::TEXT_BYTES_MAX + 1),
            give_up: false,
        })),
        "INVALID_FIELD"
    );
    harness.run(Command::MarkRefunded {
        refund_id: "r_1".into(),
    });
    assert_eq!(
        code(&harness.run(failed("r_1", 1, false))),
        "REFUND_NOT_PENDING"
    );
}

#[test]
fn refund_pages_follow_next_after_by_status() {
    let mut harness = with_refunds(5);
    harness.run(Command::MarkRefunded {
        refund_id: "r_2".into(),
    });
    harness.run(failed("r_4", 1, true));
    let ids = |page: &RefundPage| -> Vec<String> {
        page.refunds
            .iter()
            .map(|view| view.refund_id.clone())
            .collect()
    };
    let first = harness
        .state
        .refunds_page(Some(RefundStatus::Pending), None, 2);
    assert_eq!(ids(&first), vec!["r_1", "r_3"]);
    assert_eq!(first.next_after.as_deref(), Some("r_3"));
    let second = harness
        .state
        .refunds_page(Some(RefundStatus::Pending), Some("r_3"), 2);
    assert_eq!(ids(&second), vec!["r_5"]);
    assert_eq!(second.next_after, None);
    let failed_page = harness
        .state
        .refunds_page(Some(RefundStatus::Failed), None, 10);
    assert_eq!(ids(&failed_page), vec!["r_4"]);
    assert_eq!(
        failed_page.refunds[0].reason.as_deref(),
        Some("provider said no (1)")
    );
    let all = harness.state.refunds_page(None, None, 10);
    assert_eq!(all.refunds.len(), 5);
    assert_eq!(all.next_after, None);
    let refunded = harness
        .state
        .refunds_page(Some(RefundStatus::Refunded), Some("r_2"), 10);
    assert!(refunded.refunds.is_empty());
}

#[test]
fn a_snapshot_keeps_failed_attempts_and_the_pending_index() {
    let mut harness = with_refunds(3);
    harness.run(failed("r_1", 1, false));
    harness.run(failed("r_3", 1, true));
    let bytes = harness.state.snapshot_bytes();
    let restored = StateMachine::from_snapshot_bytes(&bytes).unwrap();
    assert_eq!(restored.snapshot_bytes(), bytes);
    assert_eq!(
        restored.pending_refunds(10),
        harness.state.pending_refunds(10)
    );
    assert_eq!(restored.refund_by_id("r_1").unwrap().attempts, 1);
    assert_eq!(
        restored.refund_by_id("r_3").unwrap().status,
        RefundStatus::Failed
    );
}

const REFUNDS: usize = 6;

#[derive(Clone, Debug)]
enum Op {
    Paid {
        refund: usize,
    },
    AttemptFailed {
        refund: usize,
        skew: i8,
        give_up: bool,
    },
    Page {
        status: u8,
        limit: usize,
    },
    Snapshot,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (0..REFUNDS + 1).prop_map(|refund| Op::Paid { refund }),
        5 => (0..REFUNDS + 1, prop_oneof![8 => Just(0i8), 1 => Just(-1i8), 1 => Just(1i8)], prop::bool::weighted(0.3))
            .prop_map(|(refund, skew, give_up)| Op::AttemptFailed { refund, skew, give_up }),
        2 => (0u8..4, 1usize..4).prop_map(|(status, limit)| Op::Page { status, limit }),
        1 => Just(Op::Snapshot),
    ]
}

#[derive(Clone, Debug, PartialEq)]
struct RefundModel {
    status: RefundStatus,
    attempts: u32,
    reason: Option<String>,
}

fn status_of(number: u8) -> Option<RefundStatus> {
    match number {
        0 => Some(RefundStatus::Pending),
        1 => Some(RefundStatus::Refunded),
        2 => Some(RefundStatus::Failed),
        _ => None,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn refunds_match_the_model(ops in prop::collection::vec(op(), 1..60)) {
        let mut harness = with_refunds(REFUNDS);
        let mut log: Vec<Entry> = Vec::new();
        let mut model = vec![
            RefundModel { status: RefundStatus::Pending, attempts: 0, reason: None };
            REFUNDS
        ];
        for op in &ops {
            harness.advance(100);
            let (command, expected) = match *op {
                Op::Paid { refund } => {
                    let expected = match model.get_mut(refund) {
                        None => "REFUND_NOT_FOUND",
                        Some(m) if m.status != RefundStatus::Pending => "REFUND_NOT_PENDING",
                        Some(m) => {
                            m.status = RefundStatus::Refunded;
                            "OK"
                        }
                    };
                    (Command::MarkRefunded { refund_id: format!("r_{}", refund + 1) }, expected)
                }
                Op::AttemptFailed { refund, skew, give_up } => {
                    let current = model.get(refund).map_or(0, |m| m.attempts);
                    let attempt = (i64::from(current) + 1 + i64::from(skew)).max(0) as u32;
                    let reason = format!("no {attempt}");
                    let expected = match model.get_mut(refund) {
                        None => "REFUND_NOT_FOUND",
                        Some(m) if m.status != RefundStatus::Pending => "REFUND_NOT_PENDING",
                        Some(_) if skew != 0 => "REFUND_ATTEMPT_STALE",
                        Some(m) => {
                            m.attempts = attempt;
                            m.reason = Some(reason.clone());
                            if give_up {
                                m.status = RefundStatus::Failed;
                            }
                            "OK"
                        }
                    };
                    (
                        Command::RefundAttemptFailed {
                            refund_id: format!("r_{}", refund + 1),
                            attempt,
                            reason,
                            give_up,
                        },
                        expected,
                    )
                }
                Op::Page { status, limit } => {
                    let status = status_of(status);
                    let mut listed = Vec::new();
                    let mut after: Option<String> = None;
                    loop {
                        let page = harness.state.refunds_page(status, after.as_deref(), limit);
                        prop_assert!(page.refunds.len() <= limit);
                        listed.extend(page.refunds.into_iter().map(|view| view.refund_id));
                        match page.next_after {
                            Some(next) => after = Some(next),
                            None => break,
                        }
                    }
                    let expected: Vec<String> = model
                        .iter()
                        .enumerate()
                        .filter(|(_, m)| status.is_none_or(|status| m.status == status))
                        .map(|(index, _)| format!("r_{}", index + 1))
                        .collect();
                    prop_assert_eq!(listed, expected);
                    continue;
                }
                Op::Snapshot => {
                    let bytes = harness.state.snapshot_bytes();
                    let restored = StateMachine::from_snapshot_bytes(&bytes)
                        .map_err(|error| TestCaseError::fail(error.to_string()))?;
                    prop_assert_eq!(restored.snapshot_bytes(), bytes);
                    harness.state = restored;
                    continue;
                }
            };
            let entry = Entry { time_ms: harness.now_ms, request_id: None, command };
            let outcome = harness.state.apply(&entry);
            log.push(entry);
            prop_assert_eq!(code(&outcome), expected, "op {:?} gave {:?}", op, outcome);
            harness.state.check_invariants().map_err(|error| TestCaseError::fail(error.to_string()))?;
            for (index, m) in model.iter().enumerate() {
                let view = harness.state.refund_by_id(&format!("r_{}", index + 1)).unwrap();
                prop_assert_eq!(
                    (view.status, view.attempts, view.reason.clone()),
                    (m.status, m.attempts, m.reason.clone())
                );
            }
        }
        // The refund commands, applied again after the same setup, give the same bytes.
        let mut replayed = with_refunds(REFUNDS);
        for entry in &log {
            replayed.state.apply(entry);
        }
        prop_assert_eq!(replayed.state.snapshot_bytes(), harness.state.snapshot_bytes());
    }
}
