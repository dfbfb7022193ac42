//! The dashboard in a real headless Chromium against real `holdfast serve` processes: the
//! pages load without errors, the seat map shows what the API reports and follows changes
//! made through the API without a reload, its buttons hold and confirm, and the cluster
//! view shows a killed node as down. Screenshots of both views are written to
//! `HOLDFAST_UI_SCREENSHOTS` (a directory) when it is set, else to the target directory.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{ensure, Result};
use holdfast_tests::browser::Browser;
use holdfast_tests::cluster::{free_port, holdfast_binary};
use holdfast_tests::{confirm_body, event_body, hold_body, seat_status, ProcessCluster};
use serde_json::{json, Value};

const EVENT: &str = "ui-show";
/// How long the page may take to show a change: it polls twice a second, but this machine
/// is shared and slow.
const SHOWN_WITHIN: Duration = Duration::from_secs(30);

fn screenshot_path(name: &str) -> PathBuf {
    let dir = std::env::var_os("HOLDFAST_UI_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ui"));
    dir.join(name)
}

/// The counters as the page shows them, as text.
const PAGE_COUNTS: &str =
    "JSON.stringify(['count-available','count-held','count-booked','count-total']\
    .map(id => document.getElementById(id).textContent))";

fn api_counts(summary: &Value) -> String {
    json!([
        summary["seats_available"].to_string(),
        summary["seats_held"].to_string(),
        summary["seats_booked"].to_string(),
        summary["seats_total"].to_string()
    ])
    .to_string()
}

async fn summary(cluster: &ProcessCluster, position: usize) -> Result<Value> {
    let answer = cluster
        .get(
            position,
            &format!("/availability?event_id={EVENT}&view=summary&consistency=linearizable"),
        )
        .await?;
    ensure!(
        answer.status == 200,
        "availability answered {}",
        answer.status
    );
    Ok(answer.body["summary"].clone())
}

/// Waits until the page's counters are the API's (read on the leader, linearizable).
async fn wait_for_api_counts(browser: &mut Browser, cluster: &ProcessCluster) -> Result<()> {
    let expected = api_counts(&summary(cluster, 0).await?);
    let check = format!("{PAGE_COUNTS} === {}", serde_json::to_string(&expected)?);
    let shown = browser.page.wait_for(&check, SHOWN_WITHIN).await;
    if shown.is_err() {
        let page = browser.page.eval(PAGE_COUNTS).await?;
        anyhow::bail!("the page shows {page}, the API {expected}");
    }
    Ok(())
}

fn seat(id: &str) -> String {
    format!("document.querySelector('[data-seat-id=\"{id}\"]')")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seat_map_shows_the_apis_counts_and_follows_holds_without_a_reload() -> Result<()> {
    let cluster = ProcessCluster::start(3).await?;
    cluster
        .create_event(0, event_body(EVENT, 3, 12, 200))
        .await?;
    // Some state before the page opens: two held seats, one booked, pool units held.
    let held = cluster
        .post(
            1,
            "/booking/hold",
            hold_body(EVENT, "c-1", &["A-1-1", "A-1-2"], 600),
            Some("h1"),
        )
        .await?;
    ensure!(held.status == 201, "hold: {}", held.body);
    let booked = cluster
        .post(
            2,
            "/booking/hold",
            hold_body(EVENT, "c-2", &["B-3-12"], 600),
            Some("h2"),
        )
        .await?;
    let hold_id = booked.body["hold_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let confirmed = cluster
        .post(
            2,
            "/booking/confirm",
            confirm_body(&hold_id, "tok_visa"),
            Some("c2"),
        )
        .await?;
    ensure!(confirmed.status == 200, "confirm: {}", confirmed.body);
    let pool = json!({"event_id": EVENT, "customer_id": "c-3", "pools": [{"pool_id": "GA", "quantity": 7}]});
    ensure!(
        cluster
            .post(0, "/booking/hold", pool, Some("h3"))
            .await?
            .status
            == 201
    );

    let mut browser = Browser::launch().await?;
    let url = cluster.nodes[1].url(&format!("/ui/events/{EVENT}"));
    browser.page.navigate(&url).await?;
    browser
        .page
        .wait_for(&format!("{} !== null", seat("B-3-12")), SHOWN_WITHIN)
        .await?;
    wait_for_api_counts(&mut browser, &cluster).await?;
    // A mark that a reload would wipe out.
    browser.page.eval("window.loadedOnce = 'yes'").await?;

    let statuses = browser
        .page
        .eval(&format!(
            "[{}, {}, {}].map(seat => seat.dataset.status)",
            seat("A-1-1"),
            seat("B-3-12"),
            seat("A-2-3")
        ))
        .await?;
    assert_eq!(statuses, json!(["HELD", "BOOKED", "AVAILABLE"]));
    let pool_text = browser
        .page
        .eval("document.querySelector('[data-pool-id=\"GA\"]').textContent")
        .await?;
    let pool_text = pool_text.as_str().unwrap_or_default();
    assert!(
        pool_text.contains("available 193") && pool_text.contains("held 7"),
        "{pool_text}"
    );

    let colour = |id: &str| format!("getComputedStyle({}).backgroundColor", seat(id));
    let available_colour = browser.page.eval(&colour("A-2-3")).await?;
    let held_colour = browser.page.eval(&colour("A-1-1")).await?;
    assert_ne!(available_colour, held_colour);

    let errors = browser.page.console_errors().await?;
    assert!(errors.is_empty(), "the seat map logged errors: {errors:?}");

    // A hold made through the API (another node) turns the seat's colour, no reload.
    let answer = cluster
        .post(
            2,
            "/booking/hold",
            hold_body(EVENT, "c-4", &["A-2-3"], 600),
            Some("h4"),
        )
        .await?;
    ensure!(answer.status == 201, "hold: {}", answer.body);
    browser
        .page
        .wait_for(
            &format!("{}.dataset.status === 'HELD'", seat("A-2-3")),
            SHOWN_WITHIN,
        )
        .await?;
    assert_eq!(browser.page.eval(&colour("A-2-3")).await?, held_colour);
    assert_eq!(browser.page.eval("window.loadedOnce").await?, json!("yes"));
    wait_for_api_counts(&mut browser, &cluster).await?;

    // The demo buttons: select a seat, hold it, confirm the hold with the test card.
    browser
        .page
        .eval(&format!(
            "{}.click(); document.getElementById('hold-button').click()",
            seat("B-1-1")
        ))
        .await?;
    browser
        .page
        .wait_for(
            "document.querySelector('button[data-action=\"confirm\"]') !== null",
            SHOWN_WITHIN,
        )
        .await?;
    browser
        .page
        .eval("document.querySelector('button[data-action=\"confirm\"]').click()")
        .await?;
    browser
        .page
        .wait_for(
            &format!("{}.dataset.status === 'BOOKED'", seat("B-1-1")),
            SHOWN_WITHIN,
        )
        .await?;
    let page = cluster
        .get(
            0,
            &format!("/availability?event_id={EVENT}&consistency=linearizable"),
        )
        .await?;
    assert_eq!(seat_status(&page.body, "B-1-1").as_deref(), Some("BOOKED"));
    wait_for_api_counts(&mut browser, &cluster).await?;
    let errors = browser.page.console_errors().await?;
    assert!(
        errors.is_empty(),
        "the demo actions logged errors: {errors:?}"
    );

    browser
        .page
        .screenshot(&screenshot_path("seat-map.png"))
        .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_view_shows_every_member_and_a_killed_node_as_down() -> Result<()> {
    let mut cluster = ProcessCluster::start(3).await?;
    cluster
        .create_event(0, event_body("ui-listed", 2, 8, 50))
        .await?;
    let mut browser = Browser::launch().await?;
    browser.page.navigate(&cluster.nodes[0].url("/ui")).await?;
    let up = "document.querySelectorAll('tr.member[data-state=\"up\"]').length";
    browser
        .page
        .wait_for(&format!("{up} === 3"), SHOWN_WITHIN)
        .await?;
    browser
        .page
        .wait_for(
            "document.querySelector('td.role-leader') !== null",
            SHOWN_WITHIN,
        )
        .await?;
    // The event list answers (GET /events) or says why not; either way the id box works.
    browser
        .page
        .wait_for("document.getElementById('events-note').textContent !== '' || document.querySelector('#event-list li') !== null", SHOWN_WITHIN)
        .await?;
    let errors = browser.page.console_errors().await?;
    assert!(
        errors.is_empty(),
        "the cluster view logged errors: {errors:?}"
    );

    let killed = 2;
    let killed_id = cluster.nodes[killed].id;
    cluster.kill(killed);
    let row = format!("document.querySelector('tr.member[data-node-id=\"{killed_id}\"]')");
    browser
        .page
        .wait_for(&format!("{row}.dataset.state === 'down'"), SHOWN_WITHIN)
        .await?;
    browser
        .page
        .wait_for(&format!("{up} === 2"), SHOWN_WITHIN)
        .await?;
    // The leader's last contact with the killed node, in ms, in the "last contact" column;
    // no placement warning for a cluster in one region.
    browser
        .page
        .wait_for(
            &format!("{row}.children[10].textContent.endsWith(' ms')"),
            SHOWN_WITHIN,
        )
        .await?;
    let warning_hidden = browser
        .page
        .eval("document.getElementById('placement-warning').hidden")
        .await?;
    assert_eq!(warning_hidden, serde_json::json!(true));
    let summary = browser
        .page
        .eval("document.getElementById('cluster-summary').textContent")
        .await?;
    assert!(
        summary
            .as_str()
            .unwrap_or_default()
            .starts_with("2 of 3 members up"),
        "{summary}"
    );

    browser
        .page
        .screenshot(&screenshot_path("cluster.png"))
        .await?;
    Ok(())
}

/// A node with keys: the page is served without one, asks for one when the API answers
/// 401, sends it from then on, and keeps it for the tab (a reload does not ask again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_api_makes_the_page_ask_for_a_key_and_use_it() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let keys = dir.path().join("keys");
    std::fs::write(
        &keys,
        "admin admin-key-0123456789\ncustomer cust-key-0123456789\n",
    )?;
    let http_addr = format!("127.0.0.1:{}", free_port()?);
    let log = std::fs::File::create(dir.path().join("node.log"))?;
    let child = std::process::Command::new(holdfast_binary()?)
        .args(["serve", "--single-node", "--http-addr", &http_addr])
        .arg("--auth-keys")
        .arg(&keys)
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()?;
    let _node = KillOnDrop(child);
    let client = reqwest::Client::new();
    let url = |path: &str| format!("http://{http_addr}{path}");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while client.get(url("/healthz")).send().await.is_err() {
        ensure!(
            std::time::Instant::now() < deadline,
            "the node never answered"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let created = client
        .post(url("/admin/events"))
        .bearer_auth("admin-key-0123456789")
        .json(&event_body(EVENT, 1, 6, 10))
        .send()
        .await?;
    ensure!(created.status() == 201, "event: {}", created.status());
    let held = client
        .post(url("/booking/hold"))
        .bearer_auth("cust-key-0123456789")
        .json(&hold_body(EVENT, "c-1", &["A-1-2"], 600))
        .send()
        .await?;
    ensure!(held.status() == 201, "hold: {}", held.status());

    let mut browser = Browser::launch().await?;
    browser
        .page
        .navigate(&url(&format!("/ui/events/{EVENT}")))
        .await?;
    // Nothing of the event is rendered by the server for a node with keys.
    let shown = browser.page.eval(PAGE_COUNTS).await?;
    assert_eq!(shown, json!(json!(["–", "–", "–", "–"]).to_string()));
    browser
        .page
        .wait_for(
            "document.getElementById('key-panel').hidden === false",
            SHOWN_WITHIN,
        )
        .await?;
    browser
        .page
        .eval("document.getElementById('key-input').value = 'cust-key-0123456789'; document.getElementById('key-form').requestSubmit()")
        .await?;
    let expected = json!(json!(["11", "1", "0", "12"]).to_string());
    let check = format!("{PAGE_COUNTS} === {expected}");
    browser.page.wait_for(&check, SHOWN_WITHIN).await?;
    assert_eq!(
        browser
            .page
            .eval(&format!("{}.dataset.status", seat("A-1-2")))
            .await?,
        json!("HELD")
    );
    assert_eq!(
        browser
            .page
            .eval("document.getElementById('key-panel').hidden")
            .await?,
        json!(true)
    );
    // The key lasts for the tab: a reload reads the event without asking.
    browser.page.call("Page.reload", json!({})).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    browser
        .page
        .wait_for("document.readyState === 'complete'", SHOWN_WITHIN)
        .await?;
    browser.page.clear_events();
    browser.page.wait_for(&check, SHOWN_WITHIN).await?;
    assert_eq!(
        browser
            .page
            .eval("document.getElementById('key-panel').hidden")
            .await?,
        json!(true)
    );
    let errors = browser.page.console_errors().await?;
    assert!(
        errors.is_empty(),
        "with a key the page logged errors: {errors:?}"
    );
    Ok(())
}

/// Kills the node process when the test ends, however it ends.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
