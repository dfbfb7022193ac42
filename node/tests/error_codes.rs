//! The one registry of error codes (`holdfast_statemachine::ErrorCode`) against what
//! leaves the node: every code is documented in `docs/API.md`, answers over HTTP with its
//! status and its code in the body, over gRPC with its gRPC code and its code in the
//! metadata, and comes back as the same typed code through the SDK's decoding of that
//! gRPC status, with its details.

use axum::response::IntoResponse;
use holdfast_node::grpc::status_of;
use holdfast_node::ApiError;
use holdfast_statemachine::ErrorCode;
use serde_json::json;

fn api_document() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/API.md");
    std::fs::read_to_string(path).expect("docs/API.md exists")
}

#[tokio::test]
async fn every_code_is_documented_and_round_trips_through_both_edges() {
    let document = api_document();
    let undocumented: Vec<&str> = ErrorCode::ALL
        .iter()
        .map(|code| code.as_str())
        .filter(|code| !document.contains(&format!("`{code}`")))
        .collect();
    assert!(
        undocumented.is_empty(),
        "codes docs/API.md does not name: {undocumented:?}"
    );
    for &code in ErrorCode::ALL {
        let text = code.as_str();
        let details = json!({"field": "x", "n": 1});
        let error = ApiError::new(code, "why").with_details(details.clone());

        let response = error.clone().into_response();
        assert_eq!(response.status().as_u16(), code.http_status(), "{text}");
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"]["code"], text, "{body}");
        assert_eq!(body["error"]["details"], details, "{text}");

        let status = status_of(&error);
        assert_eq!(status.code() as i32, code.grpc_code() as i32, "{text}");
        let sdk = holdfast_client::Error::from_status(&status);
        let known = holdfast_client::ErrorCode::parse(text);
        assert!(
            !matches!(known, holdfast_client::ErrorCode::Other(_)),
            "the SDK does not know {text}"
        );
        assert_eq!(known.as_str(), text);
        assert_eq!(known.http_status(), code.http_status(), "{text}");
        assert_eq!(sdk.code(), Some(&known), "{text}: {sdk:?}");
        let holdfast_client::Error::Api(api) = sdk else {
            unreachable!()
        };
        assert_eq!(api.details, details, "{text}");
        assert_eq!(api.message, "why", "{text}");
    }
}
