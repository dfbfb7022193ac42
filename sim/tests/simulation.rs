//! The simulations as tests: a few hundred seeds across every scenario must pass, and each
//! test-only breakage must be caught within a few seeds. (That a seed replays exactly is
//! `replay.rs`, a process of its own.)
//!
//! `HOLDFAST_SIM_SEEDS` sets how many seeds the seed tests run in all (default 200, spread
//! over four tests so that they use both cores); `holdfast-sim --seeds 10000` is the soak.

use holdfast_sim::{run, Breakage, RunConfig, RunReport, Scenario};

const SEED_SHARDS: u64 = 4;

fn seeds_total() -> u64 {
    std::env::var("HOLDFAST_SIM_SEEDS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(200)
}

fn describe(report: &RunReport) -> String {
    format!(
        "seed {} ({}) failed; replay with `cargo run -p holdfast-sim -- --seed {}`:\n  {}",
        report.seed,
        report.scenario,
        report.seed,
        report.failures().join("\n  ")
    )
}

fn run_shard(shard: u64) {
    let mut failures = Vec::new();
    let mut seed = shard;
    while seed < seeds_total() {
        let report = run(&RunConfig::new(seed));
        if !report.passed() {
            failures.push(describe(&report));
        }
        seed += SEED_SHARDS;
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn seeds_shard_0() {
    run_shard(0);
}

#[test]
fn seeds_shard_1() {
    run_shard(1);
}

#[test]
fn seeds_shard_2() {
    run_shard(2);
}

#[test]
fn seeds_shard_3() {
    run_shard(3);
}

/// Runs seeds `0..seeds_max` of `scenario` with `breakage` until one fails, and returns
/// that report.
fn first_caught(scenario: Scenario, breakage: Breakage, seeds_max: u64) -> Option<RunReport> {
    (0..seeds_max).find_map(|seed| {
        let report = run(&RunConfig {
            scenario: Some(scenario),
            breakage,
            ..RunConfig::new(seed)
        });
        (!report.passed()).then_some(report)
    })
}

/// The first of `seeds_max` seeds whose run fails the check named by `name_part`.
fn first_caught_as(
    scenario: Scenario,
    breakage: Breakage,
    seeds_max: u64,
    name_part: &str,
) -> Option<RunReport> {
    (0..seeds_max).find_map(|seed| {
        let report = run(&RunConfig {
            scenario: Some(scenario),
            breakage,
            ..RunConfig::new(seed)
        });
        failed_check(&report, name_part).then_some(report)
    })
}

fn failed_check(report: &RunReport, name_part: &str) -> bool {
    report
        .checks
        .iter()
        .any(|check| check.name.contains(name_part) && !check.passed())
}

#[test]
fn a_skipped_seat_check_is_caught_within_three_seeds() {
    let report = first_caught(Scenario::Partitions, Breakage::SkipSeatCheck, 3)
        .expect("holding taken seats went unnoticed for 3 seeds");
    assert!(
        failed_check(&report, "double booking") || failed_check(&report, "linearizable"),
        "caught, but not as a double booking: {:?}",
        report.failures()
    );
}

#[test]
fn skipped_fsyncs_are_caught_within_three_seeds() {
    // Caught as what it is: a booking that a client was told about is gone after a power
    // loss. Any other failure (diverging replicas, a refused restart) does not count, nor
    // does openraft's own debug assertion against a follower's log going back, which
    // stops some seeds (seed 0 since the prompt elections of 2026-12-04; seeds 1–4, 6 and
    // 7 of 0–7 are caught as lost bookings).
    let caught = (0..3).find_map(|seed| {
        let report = std::panic::catch_unwind(|| {
            run(&RunConfig {
                scenario: Some(Scenario::PowerLoss),
                breakage: Breakage::SkipFsync,
                ..RunConfig::new(seed)
            })
        })
        .ok()?;
        failed_check(&report, DURABILITY_CHECK).then_some(report)
    });
    let report = caught.expect("no acknowledged booking was lost to skipped fsyncs in 3 seeds");
    assert!(
        report
            .failures()
            .iter()
            .any(|failure| failure.contains("is missing on node")),
        "{:?}",
        report.failures()
    );
}

/// The name of the durability checker (`check/durability.rs`).
const DURABILITY_CHECK: &str = "every acknowledged confirm on every replica";

#[test]
fn a_leader_reading_expiry_from_its_local_clock_is_caught_within_six_seeds() {
    // Caught as what it is: a confirm the cluster accepted for a hold that had expired.
    // Other checkers (cluster time ahead of true time, linearizability) catch it in more
    // seeds; this one must too. Measured on 2026-12-03: seeds 3 and 5 of 0–5.
    let caught = first_caught_as(Scenario::ClockSkew, Breakage::LocalClock, 6, "expired");
    assert!(
        caught.is_some(),
        "no confirm of an expired hold was caught in 6 seeds of a leader stamping its local clock"
    );
}

#[test]
fn a_leader_stamping_hours_ahead_without_the_clock_guard_is_caught_within_five_seeds() {
    // Seeds where the jumped leader loses its leadership before it stamps are caught by
    // the other checkers (a follower judging by its own clock refuses confirms early).
    // Measured on 2026-12-04, with prompt elections: seeds 3–7 of 0–7 catch it as such,
    // seeds 0–2 only as non-linearizable histories.
    first_caught_as(
        Scenario::ClockSkew,
        Breakage::NoClockGuard,
        5,
        "ahead of true time",
    )
    .expect("a leader stamping hours ahead was not caught as such within 5 seeds");
}

#[test]
fn a_notifier_acknowledging_lost_deliveries_is_caught_within_three_seeds() {
    let report = first_caught(Scenario::Partitions, Breakage::LostDeliveries, 3)
        .expect("acknowledging deliveries that never arrived went unnoticed for 3 seeds");
    assert!(
        failed_check(&report, "acknowledged to the webhook"),
        "caught, but not as an acknowledged event the receiver never got: {:?}",
        report.failures()
    );
}
