//! The clock guard on real processes: a leader whose wall clock runs two hours ahead (the
//! test-only `HOLDFAST_TEST_CLOCK_OFFSET_MS`) stamps the time its followers' clocks agree
//! on, so a hold placed through it expires when its time to live says, not at once, and
//! the node counts and exports what it did.

use std::time::{Duration, Instant};

use holdfast_tests::cluster::Launch;
use holdfast_tests::{event_body, hold_body, ProcessCluster};
use serde_json::json;

const TWO_HOURS_MS: i64 = 2 * 3_600 * 1_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_whose_clock_runs_hours_ahead_stamps_the_quorums_time() -> anyhow::Result<()> {
    let launch = Launch {
        node_env: vec![(
            1,
            "HOLDFAST_TEST_CLOCK_OFFSET_MS".to_owned(),
            TWO_HOURS_MS.to_string(),
        )],
        ..Launch::default()
    };
    let cluster = ProcessCluster::start_with(3, launch).await?;
    cluster
        .create_event(1, event_body("clock", 2, 10, 10))
        .await?;
    // Node 1 (the fast clock) leads.
    let moved = cluster
        .post(1, "/cluster/leader", json!({"node_id": 1}), None)
        .await?;
    assert_eq!(moved.status, 200, "{}", moved.body);
    assert_eq!(moved.body["leader_id"], 1, "{}", moved.body);

    let before = chrono::Utc::now();
    let held = cluster
        .post(
            0,
            "/booking/hold",
            hold_body("clock", "c1", &["A-1-1"], 600),
            Some("clock-1"),
        )
        .await?;
    assert_eq!(held.status, 201, "{}", held.body);
    let expires_at: chrono::DateTime<chrono::Utc> =
        held.body["expires_at"].as_str().unwrap().parse()?;
    let ahead = expires_at - before;
    // Ten minutes from the true time (plus the tolerance and this machine's slowness),
    // not two hours and ten minutes.
    assert!(
        ahead > chrono::Duration::seconds(590) && ahead < chrono::Duration::seconds(700),
        "the hold expires {ahead} after it was placed: {}",
        held.body
    );

    // Several expiry passes later the hold is still active.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let hold_id = held.body["hold_id"].as_str().unwrap();
    let hold = cluster
        .get(0, &format!("/holds/{hold_id}?consistency=linearizable"))
        .await?;
    assert_eq!(hold.status, 200, "{}", hold.body);
    assert_eq!(hold.body["status"], "HELD", "{}", hold.body);

    // The leader says what it did.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let metrics = cluster.metrics(0).await?;
        let value = |name: &str| {
            metrics
                .lines()
                .find(|line| line.starts_with(name))
                .and_then(|line| line.rsplit(' ').next())
                .and_then(|value| value.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        let engaged = value("holdfast_clock_guard_engaged_total");
        let skew = value("holdfast_clock_skew_ms");
        if engaged > 0.0 && skew > (TWO_HOURS_MS - 60_000) as f64 {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "no clock guard in the metrics (engaged {engaged}, skew {skew})"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}
