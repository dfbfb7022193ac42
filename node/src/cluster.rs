//! The HTTP edge of cluster operations (the service layer's [`crate::service::cluster`])
//! and the operations endpoints: health, readiness, metrics.

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::app::{json_answer, AppState};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath};
use crate::replica::{ClusterStatus, MemberSpec};
use crate::service::cluster as service;
use crate::wire::{
    ClusterInitBody, ClusterStatusJson, ErrorBody, HealthJson, MemberBody, MembershipBody,
    SnapshotJson, TransferLeaderBody,
};

pub use crate::service::cluster::CLUSTER_MEMBERS_MAX;

fn status_answer(status: &ClusterStatus) -> Response {
    json_answer(StatusCode::OK, &ClusterStatusJson::from(status))
}

/// Builds a snapshot of this node's state now (the log behind it is then purged by the
/// retention policy); answers once it is persisted.
#[utoipa::path(
    post, path = "/cluster/snapshot", tag = "cluster",
    responses(
        (status = 200, description = "Snapshot persisted", body = SnapshotJson),
        (status = 400, description = "INVALID_FIELD: this node keeps no snapshots", body = ErrorBody),
    )
)]
pub async fn snapshot(State(state): State<AppState>) -> Result<Response, ApiError> {
    let taken = service::snapshot(&state).await?;
    Ok(json_answer(
        StatusCode::OK,
        &SnapshotJson {
            node_id: taken.node_id,
            snapshot_index: taken.index,
            build_ms: taken.build.as_secs_f64() * 1e3,
        },
    ))
}

/// The cluster as this node sees it.
#[utoipa::path(
    get, path = "/cluster/status", tag = "cluster",
    responses((status = 200, description = "Status", body = ClusterStatusJson))
)]
pub async fn status(State(state): State<AppState>) -> Response {
    status_answer(&service::status(&state))
}

/// Initialises a fresh cluster with its first members.
#[utoipa::path(
    post, path = "/cluster/init", tag = "cluster",
    request_body = ClusterInitBody,
    responses(
        (status = 200, description = "Initialised", body = ClusterStatusJson),
        (status = 409, description = "ALREADY_INITIALIZED", body = ErrorBody),
    )
)]
pub async fn initialize(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<ClusterInitBody>,
) -> Result<Response, ApiError> {
    Ok(status_answer(&service::initialize(&state, body).await?))
}

/// The members of a `--bootstrap-members` file: the JSON `POST /cluster/init` takes,
/// checked as it checks it.
pub fn parse_members(text: &str) -> Result<Vec<MemberSpec>, ApiError> {
    service::init_members(crate::extract::parse_json(text.as_bytes())?)
}

/// Adds a learner; returns once it has caught up.
#[utoipa::path(
    post, path = "/cluster/learners", tag = "cluster",
    request_body = MemberBody,
    responses(
        (status = 200, description = "Added and caught up", body = ClusterStatusJson),
        (status = 409, description = "MEMBERSHIP_REFUSED", body = ErrorBody),
        (status = 503, description = "NO_LEADER", body = ErrorBody),
    )
)]
pub async fn add_learner(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<MemberBody>,
) -> Result<Response, ApiError> {
    Ok(status_answer(&service::add_learner(&state, body).await?))
}

/// Makes `voters` the voter set.
#[utoipa::path(
    post, path = "/cluster/membership", tag = "cluster",
    request_body = MembershipBody,
    responses(
        (status = 200, description = "Changed", body = ClusterStatusJson),
        (status = 409, description = "MEMBERSHIP_REFUSED", body = ErrorBody),
    )
)]
pub async fn change_membership(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<MembershipBody>,
) -> Result<Response, ApiError> {
    Ok(status_answer(
        &service::change_membership(&state, &body.voters).await?,
    ))
}

/// Hands leadership to a voter: the leader stops taking writes (they wait, as in an
/// election), lets the voter catch up, falls silent for a lease and asks it to start an
/// election. Answers once it leads (about 1.5 s).
#[utoipa::path(
    post, path = "/cluster/leader", tag = "cluster",
    request_body = TransferLeaderBody,
    responses(
        (status = 200, description = "The voter leads", body = ClusterStatusJson),
        (status = 409, description = "MEMBERSHIP_REFUSED: not a voter, or another transfer is under way", body = ErrorBody),
        (status = 503, description = "LEADER_TRANSFER_FAILED, NO_LEADER", body = ErrorBody),
    )
)]
pub async fn transfer_leader(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<TransferLeaderBody>,
) -> Result<Response, ApiError> {
    Ok(status_answer(
        &service::transfer_leader(&state, body.node_id).await?,
    ))
}

/// Removes a node from the cluster.
#[utoipa::path(
    delete, path = "/cluster/nodes/{node_id}", tag = "cluster",
    params(("node_id" = u64, Path, description = "The node")),
    responses(
        (status = 200, description = "Removed", body = ClusterStatusJson),
        (status = 404, description = "NODE_NOT_FOUND", body = ErrorBody),
        (status = 409, description = "MEMBERSHIP_REFUSED", body = ErrorBody),
    )
)]
pub async fn remove_node(
    State(state): State<AppState>,
    ApiPath(node_id): ApiPath<u64>,
) -> Result<Response, ApiError> {
    Ok(status_answer(&service::remove_node(&state, node_id).await?))
}

/// The process is up.
#[utoipa::path(
    get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "Up", body = HealthJson))
)]
pub async fn healthz(State(state): State<AppState>) -> Response {
    let reason = state.replica.fatal();
    json_answer(
        StatusCode::OK,
        &HealthJson {
            status: if reason.is_some() { "read_only" } else { "ok" },
            node_id: state.replica.node_id(),
            reason,
        },
    )
}

/// A leader is known and this node has caught up.
#[utoipa::path(
    get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Ready", body = HealthJson),
        (status = 503, description = "NOT_READY, NO_LEADER", body = ErrorBody),
    )
)]
pub async fn readyz(State(state): State<AppState>) -> Result<Response, ApiError> {
    Ok(json_answer(
        StatusCode::OK,
        &HealthJson {
            status: "ok",
            node_id: service::ready(&state)?,
            reason: None,
        },
    ))
}

/// Prometheus text exposition.
#[utoipa::path(
    get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text", content_type = "text/plain"))
)]
pub async fn metrics(State(state): State<AppState>) -> Response {
    let text = crate::metrics::render(&state.metrics, &*state.replica);
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        text,
    )
        .into_response()
}
