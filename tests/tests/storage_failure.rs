//! A node whose disk starts refusing writes (the test-only fault switch), or whose disk is
//! really full (a small tmpfs filled to the last byte), stops: Raft stops on the storage
//! error, the node says why, leaves the cluster's way and exits non-zero for its supervisor
//! — it does not go on answering from a state that no longer moves. The other two nodes
//! keep taking bookings, and every acknowledged booking is there; the full disk's node,
//! given room again, restarts on its directory and catches up.

use std::time::{Duration, Instant};

use holdfast_tests::cluster::Response;
use holdfast_tests::{event_body, hold_body, ProcessCluster};

/// Holds `seat` of `event` through node `position`, for a customer and under an
/// idempotency key of the seat's own.
async fn hold_seat(cluster: &ProcessCluster, position: usize, event: &str, seat: &str) -> Response {
    cluster
        .post(
            position,
            "/booking/hold",
            hold_body(event, &format!("c-{seat}"), &[seat], 600),
            Some(&format!("{event}-{seat}")),
        )
        .await
        .unwrap()
}
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_disk_refuses_writes_stops_and_the_cluster_goes_on() {
    let mut cluster = ProcessCluster::start(3).await.expect("cluster");
    let leader = cluster.wait_for_leader().await.unwrap();
    cluster
        .create_event(leader, event_body("disk", 4, 10, 10))
        .await
        .unwrap();
    let victim = (leader + 1) % 3;
    let switched = cluster
        .post(
            victim,
            "/debug/faults",
            json!({"disk_refuses_writes": true}),
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        switched.body["disk_refuses_writes"], true,
        "{:?}",
        switched.body
    );
    assert_eq!(switched.body["isolated"], false);

    // Bookings go on through the leader; the victim's next append fails.
    let mut held = Vec::new();
    for n in 1..=10 {
        let seat = format!("A-1-{n}");
        let hold = hold_seat(&cluster, leader, "disk", &seat).await;
        assert_eq!(hold.status, 201, "{:?}", hold.body);
        held.push(seat);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = cluster.exit_status(victim) {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the node with the failing disk is still running:\n{}",
            cluster.log_tail(victim)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(!status.success(), "it exited with {status}");
    let log = cluster.log(victim);
    assert!(
        log.contains("raft stopped on a fatal error") && log.contains("refused the write"),
        "{}",
        cluster.log_tail(victim)
    );

    // The two others go on, and every acknowledged hold is there.
    let leader = cluster.wait_for_leader().await.unwrap();
    let more = hold_seat(&cluster, leader, "disk", "B-1-1").await;
    assert_eq!(more.status, 201, "{:?}", more.body);
    let page = cluster
        .get(
            leader,
            "/availability?event_id=disk&section=A&consistency=linearizable",
        )
        .await
        .unwrap();
    for seat in &held {
        assert_eq!(
            holdfast_tests::seat_status(&page.body, seat).as_deref(),
            Some("HELD"),
            "{seat}"
        );
    }
}

/// A tmpfs of `size` mounted over `path` (root only), unmounted when dropped.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(path: &std::path::Path, size: &str) -> Tmpfs {
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .status()
            .expect("mount runs");
        assert!(
            status.success(),
            "mounting a tmpfs failed ({status}): this test runs as root, as CI does"
        );
        Tmpfs(path.to_owned())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// Writes `path` until the disk under it is full; answers the bytes written.
fn fill(path: &std::path::Path) -> u64 {
    use std::io::Write;
    let mut file = std::fs::File::create(path).expect("filler file");
    let chunk = vec![0xa5u8; 64 * 1024];
    let mut written = 0u64;
    loop {
        match file.write(&chunk) {
            Ok(0) | Err(_) => break,
            Ok(bytes) => written += bytes as u64,
        }
    }
    let _ = file.sync_all();
    written
}

/// A real full disk, not the fault switch: a follower's data directory on a small tmpfs
/// that is then filled to the last byte. Its next log write fails with "no space left";
/// the node stops and exits non-zero, and the other two go on taking bookings. Once there
/// is room again it restarts on the same directory, replays what it had, and catches up:
/// nothing acknowledged is lost anywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_disk_fills_up_stops_and_catches_up_once_there_is_room() {
    let mut cluster = ProcessCluster::start(3).await.expect("cluster");
    let leader = cluster.wait_for_leader().await.unwrap();
    cluster
        .create_event(leader, event_body("full", 50, 40, 10))
        .await
        .unwrap();

    // The follower moves onto a 64 MiB tmpfs, with its data.
    let victim = (leader + 1) % 3;
    let data_dir = cluster.nodes[victim].data_dir.clone();
    cluster.stop(victim).unwrap();
    let saved = tempfile::tempdir().unwrap();
    let copied = std::process::Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", data_dir.display()))
        .arg(saved.path())
        .status()
        .unwrap();
    assert!(copied.success());
    let _tmpfs = Tmpfs::mount(&data_dir, "64m");
    let restored = std::process::Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", saved.path().display()))
        .arg(&data_dir)
        .status()
        .unwrap();
    assert!(restored.success());
    cluster.restart(victim).await.unwrap();

    // Full to the last byte.
    let filler = data_dir.join("filler");
    assert!(fill(&filler) > 0);

    // Bookings go on through the leader until the victim's writes fail (RocksDB may
    // have room preallocated for its write-ahead log, so the first few can still fit).
    let mut held = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = 'writing: loop {
        for _ in 0..10 {
            let n = held.len();
            let seat = format!("A-{}-{}", n / 40 + 1, n % 40 + 1);
            let answer = hold_seat(&cluster, leader, "full", &seat).await;
            assert_eq!(answer.status, 201, "{:?}", answer.body);
            held.push(seat);
        }
        if let Some(status) = cluster.exit_status(victim) {
            break 'writing status;
        }
        assert!(
            Instant::now() < deadline && held.len() < 2_000,
            "the node with the full disk is still running after {} holds:\n{}",
            held.len(),
            cluster.log_tail(victim)
        );
    };
    assert!(!status.success(), "it exited with {status}");
    let log = cluster.log(victim);
    assert!(
        log.contains("raft stopped on a fatal error")
            && log.to_lowercase().contains("no space left"),
        "{}",
        cluster.log_tail(victim)
    );

    // The two others go on.
    let leader = cluster.wait_for_leader().await.unwrap();
    let more = hold_seat(&cluster, leader, "full", "B-1-1").await;
    assert_eq!(more.status, 201, "{:?}", more.body);
    held.push("B-1-1".into());

    // Room again: it restarts on its directory and catches up with everything.
    std::fs::remove_file(&filler).unwrap();
    cluster.restart(victim).await.unwrap();
    let index = cluster.get(leader, "/cluster/status").await.unwrap().body["applied_index"]
        .as_u64()
        .unwrap();
    for section in ["A", "B"] {
        let page = cluster
            .get(
                victim,
                &format!("/availability?event_id=full&section={section}&min_index={index}"),
            )
            .await
            .unwrap();
        assert_eq!(page.status, 200, "{:?}", page.body);
        for seat in held.iter().filter(|seat| seat.starts_with(section)) {
            assert_eq!(
                holdfast_tests::seat_status(&page.body, seat).as_deref(),
                Some("HELD"),
                "{seat} on the node that ran out of disk"
            );
        }
    }
    cluster.stop(victim).unwrap();
}

/// With `--on-storage-failure read-only` the node whose disk fails stays up: it serves
/// stale reads of what it had, refuses writes and consistent reads with `503 NOT_READY`
/// (nothing it proposes could commit through it), is not ready, and says why on
/// `/healthz`. The cluster goes on without it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_told_to_stay_read_only_serves_stale_reads_after_its_disk_fails() {
    let mut launch = holdfast_tests::cluster::Launch::default();
    launch
        .env
        .push(("HOLDFAST_ON_STORAGE_FAILURE".into(), "read-only".into()));
    let mut cluster = ProcessCluster::start_with(3, launch)
        .await
        .expect("cluster");
    let leader = cluster.wait_for_leader().await.unwrap();
    cluster
        .create_event(leader, event_body("ro", 4, 10, 10))
        .await
        .unwrap();
    let before = hold_seat(&cluster, leader, "ro", "A-1-1").await;
    assert_eq!(before.status, 201, "{:?}", before.body);
    let index = before.body["applied_index"].as_u64().unwrap_or(0);
    let victim = (leader + 1) % 3;
    let caught_up = cluster
        .get(
            victim,
            &format!("/availability?event_id=ro&section=A&min_index={index}"),
        )
        .await
        .unwrap();
    assert_eq!(caught_up.status, 200, "{:?}", caught_up.body);
    cluster
        .post(
            victim,
            "/debug/faults",
            json!({"disk_refuses_writes": true}),
            None,
        )
        .await
        .unwrap();

    // Its next append fails; it stays up, read-only.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut n = 1;
    let health = loop {
        let hold = hold_seat(&cluster, leader, "ro", &format!("A-2-{n}")).await;
        assert_eq!(hold.status, 201, "{:?}", hold.body);
        n += 1;
        let health = cluster.get(victim, "/healthz").await.unwrap();
        if health.body["status"] == "read_only" {
            break health;
        }
        assert!(
            Instant::now() < deadline,
            "the node never reported the failure:\n{}",
            cluster.log_tail(victim)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(health.status, 200);
    assert!(
        health.body["reason"]
            .as_str()
            .is_some_and(|reason| !reason.is_empty()),
        "{:?}",
        health.body
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        cluster.exit_status(victim).is_none(),
        "it exited:\n{}",
        cluster.log_tail(victim)
    );
    let ready = cluster.get(victim, "/readyz").await.unwrap();
    assert_eq!(
        (ready.status, ready.code()),
        (503, "NOT_READY"),
        "{:?}",
        ready.body
    );
    // What it had is still served at `stale`.
    let stale = cluster
        .get(victim, "/availability?event_id=ro&section=A")
        .await
        .unwrap();
    assert_eq!(stale.status, 200, "{:?}", stale.body);
    assert_eq!(
        holdfast_tests::seat_status(&stale.body, "A-1-1").as_deref(),
        Some("HELD")
    );
    // Writes and consistent reads through it are refused, quickly and clearly.
    let write = hold_seat(&cluster, victim, "ro", "B-1-1").await;
    assert_eq!(
        (write.status, write.code()),
        (503, "NOT_READY"),
        "{:?}",
        write.body
    );
    let consistent = cluster
        .get(
            victim,
            "/availability?event_id=ro&section=A&consistency=linearizable",
        )
        .await
        .unwrap();
    assert_eq!(
        (consistent.status, consistent.code()),
        (503, "NOT_READY"),
        "{:?}",
        consistent.body
    );
    // The others go on.
    let leader = cluster.wait_for_leader_without(victim).await.unwrap();
    let more = hold_seat(&cluster, leader, "ro", "B-2-2").await;
    assert_eq!(more.status, 201, "{:?}", more.body);
    cluster.stop(victim).unwrap();
}
