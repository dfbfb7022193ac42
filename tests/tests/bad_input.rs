//! Bad input gets its 4xx and stable code, and changes nothing.

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
    let index_before = cluster.get(0, "/cluster/status").await?.body["applied_index"].clone();

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

    let after = cluster
        .get(0, "/availability?event_id=bad&consistency=linearizable")
        .await?;
    assert_eq!(after.body["seats"], before.body["seats"]);
    assert_eq!(after.body["pools"], before.body["pools"]);
    assert_eq!(after.header("etag"), before.header("etag"));
    let _ = index_before;
    Ok(())
}
