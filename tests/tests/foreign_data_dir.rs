//! A node started on the data directory of another node, or of another cluster, refuses to
//! start with a clear message instead of joining with someone else's log.

use std::process::Command;
use std::time::Duration;

use holdfast_tests::cluster::holdfast_binary;
use holdfast_tests::ProcessCluster;

fn serve_on(
    data_dir: &std::path::Path,
    id: &str,
    cluster_id: &str,
) -> anyhow::Result<(bool, String)> {
    let output = Command::new(holdfast_binary()?)
        .args(["serve", "--id", id, "--cluster-id", cluster_id])
        .args(["--http-addr", "127.0.0.1:0", "--raft-addr", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(data_dir)
        .env("RUST_LOG", "warn")
        .env("HOLDFAST_ALLOW_SANDBOX_PAYMENTS", "true")
        .output()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok((output.status.success(), text))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_refuses_a_data_directory_that_is_not_its_own() -> anyhow::Result<()> {
    let mut cluster = ProcessCluster::start(1).await?;
    // The random id `POST /cluster/init` gave the cluster, recorded in the directory.
    let status = cluster.get(0, "/cluster/status").await?;
    let cluster_id = status.body["cluster_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(cluster_id.starts_with("hf-"), "{:?}", status.body);
    cluster.stop(0)?;
    let data_dir = cluster.nodes[0].data_dir.clone();
    tokio::time::sleep(Duration::from_millis(100)).await;

    let (started, text) = serve_on(&data_dir, "7", &cluster_id)?;
    assert!(
        !started,
        "a node with another id started on node 1's directory:\n{text}"
    );
    assert!(
        text.contains("belongs to node 1"),
        "unclear refusal:\n{text}"
    );

    let (started, text) = serve_on(&data_dir, "1", "another-cluster")?;
    assert!(
        !started,
        "a node of another cluster started on this directory:\n{text}"
    );
    assert!(
        text.contains("belongs to cluster"),
        "unclear refusal:\n{text}"
    );

    // Its own node still starts on it.
    cluster.restart(0).await?;
    Ok(())
}
