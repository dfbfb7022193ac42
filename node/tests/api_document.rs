//! `docs/API.md` is the project's API document: every path the node describes in
//! `/openapi.json` must be documented there, so the document cannot fall behind the code.

use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use holdfast_node::SandboxProvider;
use holdfast_node::{router, AppState, HttpConfig, LocalReplica, LocalReplicaConfig};
use tower::ServiceExt;

fn api_document() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/API.md");
    std::fs::read_to_string(path).expect("docs/API.md exists")
}

async fn openapi() -> serde_json::Value {
    let state = AppState::new(
        LocalReplica::shared(LocalReplicaConfig::default()),
        Arc::new(SandboxProvider::default()),
        HttpConfig::default(),
    );
    let request = Request::get("/openapi.json").body(Body::empty()).unwrap();
    let response = router(state).oneshot(request).await.unwrap();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test]
async fn every_path_the_node_serves_is_documented() {
    let document = api_document();
    let openapi = openapi().await;
    let paths = openapi["paths"].as_object().expect("paths");
    assert!(paths.len() > 20, "only {} paths described", paths.len());
    let missing: Vec<&String> = paths
        .keys()
        .filter(|path| !document.contains(path.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "paths in /openapi.json that docs/API.md does not mention: {missing:?}"
    );
}

/// OpenAPI's integer formats are signed: an `int32` or `int64` label on a range it cannot
/// hold (a `u32` seat number, a `u64` node id) tells a client the node refuses values it
/// takes — schemathesis sent a seat number of 2,147,483,648 as a request to be refused.
#[tokio::test]
async fn every_integer_format_holds_the_range_it_labels() {
    fn walk(value: &serde_json::Value, path: &str, wrong: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(map) => {
                let within = |key: &str, low: i64, high: i64| {
                    map.get(key).is_none_or(|bound| {
                        bound
                            .as_i64()
                            .is_some_and(|bound| (low..=high).contains(&bound))
                    })
                };
                let fits = match map.get("format").and_then(|format| format.as_str()) {
                    Some("int32") => {
                        let (low, high) = (i64::from(i32::MIN), i64::from(i32::MAX));
                        within("minimum", low, high) && within("maximum", low, high)
                    }
                    Some("int64") => {
                        within("minimum", i64::MIN, i64::MAX)
                            && within("maximum", i64::MIN, i64::MAX)
                    }
                    _ => true,
                };
                if !fits {
                    wrong.push(format!("{path}: {map:?}"));
                }
                for (key, value) in map {
                    walk(value, &format!("{path}/{key}"), wrong);
                }
            }
            serde_json::Value::Array(values) => {
                for (at, value) in values.iter().enumerate() {
                    walk(value, &format!("{path}/{at}"), wrong);
                }
            }
            _ => {}
        }
    }
    let openapi = openapi().await;
    let mut wrong = Vec::new();
    walk(&openapi, "", &mut wrong);
    assert!(
        wrong.is_empty(),
        "formats that cannot hold their range: {wrong:#?}"
    );
    let number = &openapi["components"]["schemas"]["SeatBody"]["properties"]["number"];
    assert_eq!(number["maximum"], u64::from(u32::MAX));
    assert_eq!(number["format"], "int64", "{number}");
}
