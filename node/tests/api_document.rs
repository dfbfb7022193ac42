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
