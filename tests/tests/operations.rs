//! Operating a node: admission control and leader loss answer 503 with Retry-After, a
//! membership change that would lose the majority is refused, the TOML config file, and
//! `holdfast dev` (the README's main job) starting, stopping and resuming.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use holdfast_tests::cluster::holdfast_binary;
use holdfast_tests::{event_body, hold_body, Launch, ProcessCluster};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_proposal_queue_answers_overloaded_and_stores_nothing() -> anyhow::Result<()> {
    let mut launch = Launch::default();
    launch.env.extend([
        ("HOLDFAST_PROPOSALS_QUEUED_MAX".to_string(), "1".to_string()),
        ("HOLDFAST_BATCH_ENTRIES_MAX".to_string(), "1".to_string()),
    ]);
    let cluster = ProcessCluster::start_with(1, launch).await?;
    cluster
        .create_event(0, event_body("rush", 10, 20, 0))
        .await?;

    // 400 holds on 400 different seats at once: only the queue can turn any away.
    let mut requests = Vec::new();
    for row in 1..=10 {
        for number in 1..=20 {
            for section in ["A", "B"] {
                let seat = format!("{section}-{row}-{number}");
                let body = hold_body("rush", &format!("c-{seat}"), &[&seat], 600);
                let request = cluster
                    .client
                    .post(cluster.nodes[0].url("/booking/hold"))
                    .json(&body)
                    .send();
                requests.push(request);
            }
        }
    }
    let answers = futures::future::join_all(requests).await;
    let mut held = 0;
    let mut overloaded = 0;
    for answer in answers {
        let answer = answer?;
        let status = answer.status().as_u16();
        let retry_after = answer.headers().get("retry-after").is_some();
        let body: serde_json::Value = answer.json().await?;
        match status {
            201 => held += 1,
            503 => {
                assert_eq!(body["error"]["code"], "OVERLOADED", "{body}");
                assert!(retry_after, "503 OVERLOADED without Retry-After");
                overloaded += 1;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert!(
        overloaded > 0,
        "a one-slot queue never overflowed under 400 holds"
    );
    let summary = cluster
        .get(
            0,
            "/availability?event_id=rush&view=summary&consistency=linearizable",
        )
        .await?;
    assert_eq!(
        summary.body["summary"]["seats_held"], held,
        "the refused holds stored nothing"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_leader_writes_answer_no_leader_with_retry_after() -> anyhow::Result<()> {
    let mut cluster = ProcessCluster::start(3).await?;
    cluster.create_event(0, event_body("lone", 2, 5, 0)).await?;
    let leader = cluster.wait_for_leader().await?;
    let survivor = (0..3).find(|&position| position != leader).unwrap();
    let other = (0..3)
        .find(|&position| position != leader && position != survivor)
        .unwrap();
    // The survivor must have the event before the others go, or its summary below has
    // nothing to show.
    let deadline = Instant::now() + Duration::from_secs(20);
    while cluster
        .get(survivor, "/availability?event_id=lone&view=summary")
        .await?
        .status
        != 200
    {
        assert!(
            Instant::now() < deadline,
            "the survivor never applied the event"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cluster.kill(leader);
    cluster.kill(other);

    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let answer = cluster
            .post(
                survivor,
                "/booking/hold",
                hold_body("lone", "c-1", &["A-1-1"], 600),
                None,
            )
            .await?;
        assert_eq!(
            answer.status, 503,
            "a write without a majority: {:?}",
            answer.body
        );
        if answer.code() == "NO_LEADER" {
            assert!(
                answer.header("retry-after").is_some(),
                "NO_LEADER without Retry-After"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the survivor never said NO_LEADER; last {:?}",
            answer.body
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let page = cluster
        .get(survivor, "/availability?event_id=lone&view=summary")
        .await?;
    assert_eq!(page.body["summary"]["seats_held"], 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_membership_change_that_would_lose_the_majority_is_refused() -> anyhow::Result<()> {
    let mut cluster = ProcessCluster::start(3).await?;
    let leader = cluster.wait_for_leader().await?;
    let down = (0..3).find(|&position| position != leader).unwrap();
    let up = (0..3)
        .find(|&position| position != leader && position != down)
        .unwrap();
    cluster.kill(down);
    let (leader_id, down_id, up_id) = (
        cluster.nodes[leader].id,
        cluster.nodes[down].id,
        cluster.nodes[up].id,
    );

    let change_voters = |voters: [u64; 2]| {
        cluster.post(
            leader,
            "/cluster/membership",
            json!({ "voters": voters }),
            None,
        )
    };
    // The leader and a dead node as the only voters: one of two alive, no majority.
    let refused = change_voters([leader_id, down_id]).await?;
    assert_eq!(refused.status, 409, "{:?}", refused.body);
    assert_eq!(refused.code(), "MEMBERSHIP_REFUSED");
    let unknown = change_voters([leader_id, 99]).await?;
    assert_eq!(unknown.code(), "MEMBERSHIP_REFUSED", "{:?}", unknown.body);

    // The voters are unchanged, and the two live nodes are a valid set.
    let status = cluster.get(leader, "/cluster/status").await?;
    let voters = status.body["members"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|member| member["voter"] == true)
        .count();
    assert_eq!(voters, 3, "{:?}", status.body);
    let shrunk = change_voters([leader_id, up_id]).await?;
    assert_eq!(shrunk.status, 200, "{:?}", shrunk.body);
    Ok(())
}

fn free_port() -> u16 {
    holdfast_tests::cluster::free_port().expect("a free port")
}

async fn wait_until_ok(
    client: &reqwest::Client,
    url: &str,
    within: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    loop {
        if let Ok(answer) = client.get(url).send().await {
            if answer.status().is_success() {
                return Ok(());
            }
        }
        anyhow::ensure!(Instant::now() < deadline, "{url} never answered 200");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_config_file_fills_what_flags_leave_out() -> anyhow::Result<()> {
    let root = tempfile::tempdir()?;
    let (http, raft) = (free_port(), free_port());
    let config = root.path().join("node.toml");
    std::fs::write(
        &config,
        format!(
            "id = 7\nhttp_addr = \"127.0.0.1:{http}\"\nraft_addr = \"127.0.0.1:{raft}\"\n\
             data_dir = \"{}\"\ncluster_id = \"from-file\"\nregion = \"eu-west\"\n",
            root.path().join("data").display()
        ),
    )?;
    let mut child = Command::new(holdfast_binary()?)
        .args(["serve", "--config"])
        .arg(&config)
        .env("RUST_LOG", "warn")
        .env("HOLDFAST_ALLOW_SANDBOX_PAYMENTS", "true")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{http}");
    let result = async {
        wait_until_ok(&client, &format!("{base}/healthz"), Duration::from_secs(30)).await?;
        let init = client
            .post(format!("{base}/cluster/init"))
            .json(&json!({"members": [{"id": 7, "raft_addr": format!("127.0.0.1:{raft}"),
                                        "http_addr": format!("127.0.0.1:{http}"), "region": "eu-west"}]}))
            .send()
            .await?;
        anyhow::ensure!(init.status().is_success(), "init answered {}", init.status());
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            let status: serde_json::Value = client
                .get(format!("{base}/cluster/status"))
                .send()
                .await?
                .json()
                .await?;
            if status["role"] == "leader" || Instant::now() > deadline {
                break status;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(status["node_id"], 7, "{status}");
        assert_eq!(status["members"][0]["region"], "eu-west", "{status}");
        let meta = std::fs::read_to_string(root.path().join("data").join("holdfast.meta"))?;
        assert!(meta.contains("from-file"), "the cluster id of the file is recorded: {meta}");
        Ok::<(), anyhow::Error>(())
    }
    .await;
    let _ = child.kill();
    let _ = child.wait();
    result?;

    // Restarted from flags alone, without --cluster-id, it resumes the recorded cluster.
    let mut child = Command::new(holdfast_binary()?)
        .args(["serve", "--id", "7"])
        .args(["--http-addr", &format!("127.0.0.1:{http}")])
        .args(["--raft-addr", &format!("127.0.0.1:{raft}")])
        .arg("--data-dir")
        .arg(root.path().join("data"))
        .env("RUST_LOG", "warn")
        .env("HOLDFAST_ALLOW_SANDBOX_PAYMENTS", "true")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let resumed = async {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(answer) = client.get(format!("{base}/cluster/status")).send().await {
                let status: serde_json::Value = answer.json().await?;
                if status["leader_id"] == 7 {
                    return Ok(());
                }
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "the node did not resume its cluster"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    .await;
    let _ = child.kill();
    let _ = child.wait();
    resumed?;

    // A key the node does not know is refused, not ignored.
    std::fs::write(&config, "id = 7\nhttp_adr = \"127.0.0.1:1\"\n")?;
    let output = Command::new(holdfast_binary()?)
        .args(["serve", "--config"])
        .arg(&config)
        .env("RUST_LOG", "warn")
        .output()?;
    let text = String::from_utf8_lossy(&output.stderr).to_string()
        + &String::from_utf8_lossy(&output.stdout);
    assert!(
        !output.status.success(),
        "a misspelt key was accepted:\n{text}"
    );
    assert!(
        text.contains("http_adr"),
        "the refusal names the key:\n{text}"
    );
    Ok(())
}

/// Starts `holdfast dev` and waits for its "Try:" banner; returns the child.
fn start_dev(data_dir: &std::path::Path, base_port: u16) -> anyhow::Result<std::process::Child> {
    let mut child = Command::new(holdfast_binary()?)
        .args(["dev", "--nodes", "3", "--base-port", &base_port.to_string()])
        .arg("--data-dir")
        .arg(data_dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let stdout = child.stdout.take().expect("piped");
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.starts_with("Try:") {
                let _ = sender.send(());
            }
        }
    });
    if receiver.recv_timeout(Duration::from_secs(90)).is_err() {
        let _ = child.kill();
        anyhow::bail!("holdfast dev printed no banner within 90 s");
    }
    Ok(child)
}

fn interrupt_and_wait(child: &mut std::process::Child) -> anyhow::Result<()> {
    kill(Pid::from_raw(child.id() as i32), Signal::SIGINT)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait()? {
            anyhow::ensure!(status.success(), "holdfast dev exited with {status}");
            return Ok(());
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            anyhow::bail!("holdfast dev ignored Ctrl-C for 30 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A base port whose HTTP (base+1..3) and Raft (base+101..103) ports are all free.
fn free_base_port() -> u16 {
    for _ in 0..100 {
        let base = 20_000 + rand::random::<u16>() % 20_000;
        let ports = (1..=3).chain(101..=103).map(|offset| base + offset);
        if ports
            .into_iter()
            .all(|port| TcpListener::bind(("127.0.0.1", port)).is_ok())
        {
            return base;
        }
    }
    panic!("no free port range");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holdfast_dev_serves_demo_data_stops_on_ctrl_c_and_resumes() -> anyhow::Result<()> {
    let root = tempfile::tempdir()?;
    let data_dir = root.path().join("dev");
    let base = free_base_port();
    let client = reqwest::Client::new();
    let cinema = |node: u16| {
        format!(
            "http://127.0.0.1:{}/availability?event_id=cinema-dune&view=summary&consistency=linearizable",
            base + node
        )
    };

    let mut dev = start_dev(&data_dir, base)?;
    let first = async {
        for node in 1..=3 {
            wait_until_ok(&client, &cinema(node), Duration::from_secs(30)).await?;
        }
        let hold = client
            .post(format!("http://127.0.0.1:{}/booking/hold", base + 2))
            .json(&json!({"event_id": "cinema-dune", "customer_id": "c-dev",
                          "best_available": {"count": 2}}))
            .send()
            .await?;
        anyhow::ensure!(
            hold.status().as_u16() == 201,
            "hold answered {}",
            hold.status()
        );
        for event in ["concert-aurora", "hotel-harbour", "clinic-northside"] {
            let url = format!(
                "http://127.0.0.1:{}/availability?event_id={event}&view=summary",
                base + 1
            );
            wait_until_ok(&client, &url, Duration::from_secs(10)).await?;
        }
        Ok::<(), anyhow::Error>(())
    }
    .await;
    if first.is_err() {
        let _ = dev.kill();
    }
    first?;
    interrupt_and_wait(&mut dev)?;

    // A second run resumes the same data: the hold is still there.
    let mut dev = start_dev(&data_dir, base)?;
    let second = async {
        wait_until_ok(&client, &cinema(1), Duration::from_secs(30)).await?;
        let summary: serde_json::Value = client.get(cinema(1)).send().await?.json().await?;
        assert_eq!(summary["summary"]["seats_held"], 2, "{summary}");
        Ok::<(), anyhow::Error>(())
    }
    .await;
    if second.is_err() {
        let _ = dev.kill();
    }
    second?;
    interrupt_and_wait(&mut dev)?;
    Ok(())
}
