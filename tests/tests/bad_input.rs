//! Bad input gets its 4xx and stable code, and changes nothing: input refused at the HTTP
//! edge is never proposed (the applied index does not move on any node), and a command the
//! state machine refuses leaves the inventory as it was.

use holdfast_tests::{event_body, hold_body, ProcessCluster};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_and_stores_nothing() -> anyhow::Result<()> {
    let cluster = ProcessCluster::start(3).await?;
    cluster
        .create_event(0, event_body("bad", 1, 10, 10))
        .await?;
    let before = cluster
        .get(0, "/availability?event_id=bad&consistency=linearizable")
        .await?;
    let index_before = applied_indexes(&cluster).await?;

    let oversized = vec![b' '; 65 * 1024];
    let answer = cluster.post_raw(1, "/booking/hold", oversized).await?;
    assert_eq!(
        (answer.status, answer.code()),
        (413, "BODY_TOO_LARGE"),
        "{:?}",
        answer.body
    );
    // The unread body ends the connection; the client is told so, and its next request
    // (below, on the same client) goes over a new one.
    assert_eq!(answer.header("connection"), Some("close"));

    let answer = cluster
        .post_raw(1, "/booking/hold", b"{\"event_id\": ".to_vec())
        .await?;
    assert_eq!(
        (answer.status, answer.code()),
        (400, "INVALID_JSON"),
        "{:?}",
        answer.body
    );

    let answer = cluster
        .post(
            1,
            "/booking/hold",
            json!({"event_id": 7, "customer_id": "c", "seats": ["A-1-1"]}),
            None,
        )
        .await?;
    assert_eq!(answer.status, 400, "{:?}", answer.body);

    let zero =
        json!({"event_id": "bad", "customer_id": "c", "pools": [{"pool_id": "GA", "quantity": 0}]});
    let answer = cluster.post(2, "/booking/hold", zero, None).await?;
    assert_eq!(
        (answer.status, answer.code()),
        (400, "INVALID_QUANTITY"),
        "{:?}",
        answer.body
    );

    let answer = cluster.get(0, "/no/such/route").await?;
    assert_eq!(
        (answer.status, answer.code()),
        (404, "ROUTE_NOT_FOUND"),
        "{:?}",
        answer.body
    );

    // Nothing of the above was proposed: a linearizable read on node 0 has applied
    // everything committed before it, and every node's applied index is where it was.
    let edge = cluster
        .get(0, "/availability?event_id=bad&consistency=linearizable")
        .await?;
    assert_eq!(edge.applied_index(), before.applied_index());
    assert_eq!(applied_indexes(&cluster).await?, index_before);

    // A hold for an unknown event passes the edge; the state machine refuses it.
    let answer = cluster
        .post(
            2,
            "/booking/hold",
            hold_body("nope", "c", &["A-1-1"], 60),
            None,
        )
        .await?;
    assert_eq!(
        (answer.status, answer.code()),
        (404, "EVENT_NOT_FOUND"),
        "{:?}",
        answer.body
    );

    let after = cluster
        .get(0, "/availability?event_id=bad&consistency=linearizable")
        .await?;
    assert_eq!(after.body["seats"], before.body["seats"]);
    assert_eq!(after.body["pools"], before.body["pools"]);
    assert_eq!(after.header("etag"), before.header("etag"));
    Ok(())
}

/// Every node's applied index, once all of them agree (replication of anything committed
/// has finished): what a bad request must not move.
async fn applied_indexes(cluster: &ProcessCluster) -> anyhow::Result<Vec<u64>> {
    let mut last = Vec::new();
    for _ in 0..100 {
        let mut indexes = Vec::new();
        for position in 0..cluster.nodes.len() {
            let status = cluster.get(position, "/cluster/status").await?;
            let index = status.body["applied_index"]
                .as_u64()
                .ok_or_else(|| anyhow::anyhow!("no applied_index in {}", status.body))?;
            indexes.push(index);
        }
        if indexes.windows(2).all(|pair| pair[0] == pair[1]) {
            return Ok(indexes);
        }
        last = indexes;
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    anyhow::bail!("the nodes never agreed on the applied index: {last:?}")
}
