//! Prometheus metrics through the `metrics` facade: booking outcomes (the design's success
//! and failure rates), latency histograms, and gauges sampled when `/metrics` is scraped.
//!
//! The recorder is process-wide (the `metrics` facade has one global recorder), installed
//! once by [`install`]; every router in the process renders the same registry.

use std::sync::OnceLock;
use std::time::Instant;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::replica::{self, Replica};

/// Holds by outcome (`held` or the lower-case rejection code).
pub const HOLDS_TOTAL: &str = "holdfast_holds_total";
/// Confirms by outcome (`confirmed`, `payment_declined`, `refunded_<code>`, ...).
pub const CONFIRMS_TOTAL: &str = "holdfast_confirms_total";
/// Cancels by kind (`hold`, `booking`) and outcome.
pub const CANCELS_TOTAL: &str = "holdfast_cancels_total";
/// Holds ended by expiry.
pub const EXPIRIES_TOTAL: &str = "holdfast_expiries_total";
/// Refunds the refund worker tried, by outcome (`paid`, `retried`, `failed`,
/// `settled_elsewhere`, `not_committed`).
pub const REFUNDS_TOTAL: &str = "holdfast_refunds_total";
/// Webhook deliveries by outcome (`delivered`, `failed`).
pub const WEBHOOK_DELIVERIES_TOTAL: &str = "holdfast_webhook_deliveries_total";
/// Payment charges by outcome.
pub const PAYMENTS_TOTAL: &str = "holdfast_payments_total";
/// HTTP answers of [`crate::router`] by status code (the `status` label, e.g. `201`).
pub const HTTP_RESPONSES_TOTAL: &str = "holdfast_http_responses_total";
/// Charges whose confirm got no answer yet and is being proposed again (see
/// [`crate::charges`]).
pub const CHARGES_UNRESOLVED: &str = "holdfast_charges_unresolved";
/// Charge intents the leader's reconciler settled, by outcome (`booked`, `refunded`,
/// `dropped`, `unknown`, `not_committed`; see [`crate::charges`]).
pub const CHARGE_INTENTS_RECONCILED_TOTAL: &str = "holdfast_charge_intents_reconciled_total";
/// Latency of `GET /availability`, seconds.
pub const AVAILABILITY_SECONDS: &str = "holdfast_availability_seconds";
/// Latency of `POST /booking/hold`, seconds.
pub const HOLD_SECONDS: &str = "holdfast_hold_seconds";
/// Latency of `POST /booking/confirm` (payment included), seconds.
pub const CONFIRM_SECONDS: &str = "holdfast_confirm_seconds";
/// Latency of the payment provider's charge, seconds.
pub const PAYMENT_SECONDS: &str = "holdfast_payment_seconds";
/// Batch calls answered (`POST /booking/batch` and the gRPC `Batch`), whatever their size.
pub const BATCHES_TOTAL: &str = "holdfast_batches_total";
/// Operations carried by batch calls.
pub const BATCH_OPERATIONS_TOTAL: &str = "holdfast_batch_operations_total";
/// Requests refused at admission, by budget (`reads`, `writes`, `in_flight`).
pub const REFUSED_AT_ADMISSION_TOTAL: &str = "holdfast_refused_at_admission_total";
/// Latency of a whole batch call, seconds.
pub const BATCH_SECONDS: &str = "holdfast_batch_seconds";
/// Groups of writes a follower forwarded to the leader.
pub const FORWARDS_TOTAL: &str = "holdfast_forwards_total";
/// Commands carried by those groups.
pub const FORWARDED_COMMANDS_TOTAL: &str = "holdfast_forwarded_commands_total";

const LATENCY_BUCKETS_SECONDS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Buckets of the storage stages that take well under a millisecond when all is well (an
/// append's fsync, an apply, a snapshot's freeze), so that their tails show.
const STAGE_BUCKETS_SECONDS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// The histograms with [`STAGE_BUCKETS_SECONDS`] (recorded by `holdfast_raft`).
const STAGES: [&str; 3] = [
    holdfast_raft::metrics::LOG_APPEND_SECONDS,
    holdfast_raft::metrics::APPLY_SECONDS,
    holdfast_raft::metrics::SNAPSHOT_FREEZE_SECONDS,
];

/// Events whose seat gauges a scrape reports at most (bounds the scrape's cost).
pub const EVENTS_REPORTED_MAX: usize = 1_000;

/// Sets the gauge of charges whose confirm has no answer yet.
pub fn set_charges_unresolved(count: u64) {
    metrics::gauge!(CHARGES_UNRESOLVED).set(count as f64);
}

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide Prometheus recorder (once) and returns its handle.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let builder = STAGES.into_iter().fold(
                PrometheusBuilder::new()
                    .set_buckets(&LATENCY_BUCKETS_SECONDS)
                    .expect("the latency buckets are not empty"),
                |builder, stage| {
                    builder
                        .set_buckets_for_metric(Matcher::Full(stage.into()), &STAGE_BUCKETS_SECONDS)
                        .expect("the stage buckets are not empty")
                },
            );
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (an embedding program's): then
            // this registry stays empty but `/metrics` still answers.
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics will be empty");
            }
            describe();
            handle
        })
        .clone()
}

fn describe() {
    metrics::describe_counter!(HOLDS_TOTAL, "Hold requests by outcome.");
    metrics::describe_counter!(CONFIRMS_TOTAL, "Confirm requests by outcome.");
    metrics::describe_counter!(CANCELS_TOTAL, "Cancel requests by kind and outcome.");
    metrics::describe_counter!(EXPIRIES_TOTAL, "Holds ended by expiry.");
    metrics::describe_counter!(WEBHOOK_DELIVERIES_TOTAL, "Webhook deliveries by outcome.");
    metrics::describe_counter!(
        REFUNDS_TOTAL,
        "Refunds the refund worker tried, by outcome."
    );
    metrics::describe_counter!(PAYMENTS_TOTAL, "Payment charges by outcome.");
    metrics::describe_counter!(HTTP_RESPONSES_TOTAL, "HTTP answers by status class.");
    metrics::describe_counter!(BATCHES_TOTAL, "Batch calls answered.");
    metrics::describe_counter!(BATCH_OPERATIONS_TOTAL, "Operations carried by batch calls.");
    metrics::describe_counter!(
        FORWARDS_TOTAL,
        "Groups of writes this node forwarded to the leader."
    );
    metrics::describe_counter!(
        FORWARDED_COMMANDS_TOTAL,
        "Commands carried by the groups this node forwarded to the leader."
    );
    metrics::describe_counter!(
        REFUSED_AT_ADMISSION_TOTAL,
        "Requests refused by a rate limit or the in-flight cap, by budget."
    );
    metrics::describe_histogram!(
        BATCH_SECONDS,
        metrics::Unit::Seconds,
        "Latency of whole batch calls."
    );
    metrics::describe_counter!(
        CHARGE_INTENTS_RECONCILED_TOTAL,
        "Charge intents left by a stopped confirm that the leader settled, by outcome."
    );
    metrics::describe_gauge!(
        CHARGES_UNRESOLVED,
        "Charges made whose confirm has no answer yet (being proposed again)."
    );
    metrics::describe_histogram!(
        AVAILABILITY_SECONDS,
        metrics::Unit::Seconds,
        "Latency of availability reads."
    );
    metrics::describe_histogram!(HOLD_SECONDS, metrics::Unit::Seconds, "Latency of holds.");
    let stages = [
        (
            holdfast_raft::metrics::LOG_APPEND_SECONDS,
            "Time to write and fsync one append of Raft log entries.",
        ),
        (
            holdfast_raft::metrics::APPLY_SECONDS,
            "Time apply held the state for one batch of committed entries.",
        ),
        (
            holdfast_raft::metrics::SNAPSHOT_FREEZE_SECONDS,
            "Time a snapshot's freeze held the state (apply and reads waited).",
        ),
        (
            holdfast_raft::metrics::SNAPSHOT_ENCODE_SECONDS,
            "Time to encode a frozen state as a snapshot, off apply's path.",
        ),
    ];
    for (name, help) in stages {
        metrics::describe_histogram!(name, metrics::Unit::Seconds, help);
    }
    metrics::describe_histogram!(
        CONFIRM_SECONDS,
        metrics::Unit::Seconds,
        "Latency of confirms, payment included."
    );
    metrics::describe_histogram!(
        PAYMENT_SECONDS,
        metrics::Unit::Seconds,
        "Latency of payment charges."
    );
}

/// The outcome label of a rejection code: `SEAT_UNAVAILABLE` → `seat_unavailable`.
pub fn outcome_label(code: holdfast_statemachine::ErrorCode) -> String {
    code.as_str().to_ascii_lowercase()
}

/// Counts one booking outcome.
pub fn count(name: &'static str, outcome: String) {
    count_n(name, outcome, 1);
}

/// Counts `n` operations of `name` with `outcome`.
pub fn count_n(name: &'static str, outcome: String, n: u64) {
    metrics::counter!(name, "outcome" => outcome).increment(n);
}

/// Counts `n` cancels of `kind` (`hold` or `booking`) with `outcome`.
pub fn count_cancel_n(kind: &'static str, outcome: String, n: u64) {
    metrics::counter!(CANCELS_TOTAL, "kind" => kind, "outcome" => outcome).increment(n);
}

/// Counts one batch call of `operations` operations.
pub fn count_batch(operations: usize) {
    metrics::counter!(BATCHES_TOTAL).increment(1);
    metrics::counter!(BATCH_OPERATIONS_TOTAL).increment(operations as u64);
}

/// Counts one group of `commands` commands forwarded to the leader.
pub fn count_forward(commands: usize) {
    metrics::counter!(FORWARDS_TOTAL).increment(1);
    metrics::counter!(FORWARDED_COMMANDS_TOTAL).increment(commands as u64);
}

/// Records the time since `started` into a latency histogram.
pub fn observe(name: &'static str, started: Instant) {
    metrics::histogram!(name).record(started.elapsed().as_secs_f64());
}

/// Samples gauges of the cluster and of event utilisation, then renders the registry.
pub fn render(handle: &PrometheusHandle, replica: &dyn Replica) -> String {
    let status = replica.status();
    metrics::gauge!("holdfast_applied_index").set(status.applied_index as f64);
    metrics::gauge!("holdfast_committed_index").set(status.committed_index as f64);
    metrics::gauge!("holdfast_term").set(status.term as f64);
    metrics::gauge!("holdfast_leader_id").set(status.leader_id.map_or(-1.0, |id| id as f64));
    metrics::gauge!("holdfast_is_leader").set(f64::from(u8::from(
        status.leader_id == Some(status.node_id),
    )));
    for (follower, lag) in replica.replication_lag() {
        metrics::gauge!("holdfast_replication_lag_entries", "follower" => follower.to_string())
            .set(lag as f64);
    }
    let (events, _) = replica::read_now(replica, |state| {
        let ids = state.event_ids(None, EVENTS_REPORTED_MAX);
        let summaries: Vec<_> = ids
            .into_iter()
            .filter_map(|id| {
                let (summary, _) = state.summary(&id)?;
                let pools = state.availability(&id, None, None, 1).ok()?.pools;
                let (held, booked, available) = pools.iter().fold((0, 0, 0), |(h, b, a), pool| {
                    (h + pool.held, b + pool.booked, a + pool.available)
                });
                Some((
                    id,
                    summary,
                    [("available", available), ("held", held), ("booked", booked)],
                ))
            })
            .collect();
        (summaries, state.active_holds())
    });
    let (summaries, active_holds) = events;
    metrics::gauge!("holdfast_active_holds").set(active_holds as f64);
    for (event_id, summary, pool_units) in summaries {
        for (state, units) in pool_units {
            metrics::gauge!("holdfast_event_pool_units", "event_id" => event_id.clone(), "state" => state)
                .set(units as f64);
        }
        let states = [
            ("available", summary.seats_available),
            ("held", summary.seats_held),
            ("booked", summary.seats_booked),
        ];
        for (state, seats) in states {
            metrics::gauge!("holdfast_event_seats", "event_id" => event_id.clone(), "state" => state)
                .set(seats as f64);
        }
    }
    handle.render()
}
