//! Cluster operations (delegated to the [`crate::replica::Replica`] seam) and operations
//! endpoints: health, readiness, metrics.

use std::collections::BTreeSet;

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::app::{json_answer, AppState};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath};
use crate::replica::MemberSpec;
use crate::wire::{
    ClusterInitBody, ClusterStatusJson, ErrorBody, HealthJson, MemberBody, MembershipBody,
    SnapshotJson, TransferLeaderBody,
};

/// Members named in one cluster request at most.
pub const CLUSTER_MEMBERS_MAX: usize = 100;

fn status_answer(state: &AppState) -> Response {
    json_answer(
        StatusCode::OK,
        &ClusterStatusJson::from(&state.replica.status()),
    )
}

fn member(body: MemberBody) -> Result<MemberSpec, ApiError> {
    if body.id == 0 {
        return Err(ApiError::invalid_field("id", "node ids start at 1"));
    }
    for (field, value) in [
        ("raft_addr", &body.raft_addr),
        ("http_addr", &body.http_addr),
    ] {
        if value.is_empty() || value.len() > 256 {
            return Err(ApiError::invalid_field(field, "must be host:port"));
        }
    }
    crate::validate::text("region", &body.region)?;
    Ok(MemberSpec {
        id: body.id,
        raft_addr: body.raft_addr,
        http_addr: body.http_addr,
        region: body.region,
    })
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
    let taken = state.replica.snapshot_now().await?;
    Ok(json_answer(
        StatusCode::OK,
        &SnapshotJson {
            node_id: state.replica.node_id(),
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
    status_answer(&state)
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
    let members = init_members(body)?;
    state.replica.initialize(members).await?;
    Ok(status_answer(&state))
}

/// A cluster's first members, checked: 1 to [`CLUSTER_MEMBERS_MAX`], unique ids, valid
/// addresses and regions.
fn init_members(body: ClusterInitBody) -> Result<Vec<MemberSpec>, ApiError> {
    if body.members.is_empty() || body.members.len() > CLUSTER_MEMBERS_MAX {
        return Err(ApiError::invalid_field(
            "members",
            format!("name 1 to {CLUSTER_MEMBERS_MAX} members"),
        ));
    }
    let members = body
        .members
        .into_iter()
        .map(member)
        .collect::<Result<Vec<_>, _>>()?;
    let ids: BTreeSet<u64> = members.iter().map(|member| member.id).collect();
    if ids.len() != members.len() {
        return Err(ApiError::invalid_field(
            "members",
            "node ids must be unique",
        ));
    }
    Ok(members)
}

/// The members of a `--bootstrap-members` file: the JSON `POST /cluster/init` takes,
/// checked as it checks it.
pub fn parse_members(text: &str) -> Result<Vec<MemberSpec>, ApiError> {
    init_members(crate::extract::parse_json(text.as_bytes())?)
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
    let member = member(body)?;
    state.replica.add_learner(member).await?;
    Ok(status_answer(&state))
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
    let voters: BTreeSet<u64> = body.voters.iter().copied().collect();
    if voters.is_empty() || voters.len() > CLUSTER_MEMBERS_MAX || voters.contains(&0) {
        return Err(ApiError::invalid_field(
            "voters",
            format!("name 1 to {CLUSTER_MEMBERS_MAX} node ids, each at least 1"),
        ));
    }
    state.replica.change_membership(voters).await?;
    Ok(status_answer(&state))
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
    if body.node_id == 0 {
        return Err(ApiError::invalid_field(
            "node_id",
            "a node id is at least 1",
        ));
    }
    state.replica.transfer_leader(body.node_id).await?;
    Ok(status_answer(&state))
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
    state.replica.remove_node(node_id).await?;
    Ok(status_answer(&state))
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
    state.replica.readiness()?;
    Ok(json_answer(
        StatusCode::OK,
        &HealthJson {
            status: "ok",
            node_id: state.replica.node_id(),
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
