//! Backups and restores: `GET /cluster/backup` and `POST /cluster/restore`, and their gRPC
//! twins `ClusterService.Backup` and `ClusterService.Restore`, over one service layer.
//!
//! A backup is the replicated state as of a linearizable point (everything acknowledged
//! before the call is in it): the state machine's snapshot bytes behind a header with the
//! log index they include, their length and their SHA-256 ([`holdfast_proto::backup`]).
//! It is encoded from the node's snapshot copy of the state, so apply and reads go on
//! meanwhile.
//!
//! A restore sends the state bytes back in pieces of at most [`RESTORE_CHUNK_BYTES_MAX`],
//! in order; each piece is a replicated command (`RestoreChunk`), and the last one replaces
//! the state of an *empty* cluster in one entry, after checking the whole against its
//! length and checksum (see the state machine's `restore.rs`). Pieces are idempotent, so
//! a client retries a piece whose answer it lost.

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use holdfast_proto::backup::{hex, parse_sha256, BackupHeader};
use holdfast_statemachine::{Command, Outcome, RestoreChunk, RestoreProgress};
use serde::Serialize;

use crate::app::{json_answer, AppState};
use crate::error::ApiError;
use crate::extract::{ApiBytes, ApiQuery};
use crate::service;

/// The largest piece of a restore, bytes: far below a log entry's byte cap, so a piece is
/// one entry whatever else is batched with it.
pub const RESTORE_CHUNK_BYTES_MAX: usize = 1024 * 1024;

/// How a backup file is handed out: pieces of this many bytes (HTTP body chunks and
/// gRPC `BackupChunk`s), well below every message limit.
pub const BACKUP_PIECE_BYTES: usize = 1024 * 1024;

/// The body limit of `POST /cluster/restore`.
pub const RESTORE_BODY_BYTES_MAX: usize = RESTORE_CHUNK_BYTES_MAX;

/// A backup file: the header, then the state bytes (kept apart, so that the state is never
/// copied to put the header in front of it).
pub struct BackupFile {
    /// The log index the state includes, the state's length and its SHA-256.
    pub header: BackupHeader,
    /// The state machine's snapshot bytes, exactly `header.length` of them.
    pub state: axum::body::Bytes,
}

impl BackupFile {
    /// The file's bytes in order, in pieces of at most `piece_bytes` (the header first).
    pub fn into_pieces(
        self,
        piece_bytes: usize,
    ) -> impl Iterator<Item = axum::body::Bytes> + Send + 'static {
        let state = self.state;
        std::iter::once(axum::body::Bytes::copy_from_slice(&self.header.encode())).chain(
            (0..state.len())
                .step_by(piece_bytes)
                .map(move |start| state.slice(start..(start + piece_bytes).min(state.len()))),
        )
    }
}

/// Takes a backup (the service layer of both edges). One at a time per node, as each holds
/// a copy of the state in memory: a second backup asked for meanwhile waits for the first.
/// (Nodes sharing a process, as `holdfast dev` runs them, do not wait for each other.)
pub async fn take(state: &AppState) -> Result<BackupFile, ApiError> {
    let _one_at_a_time = state
        .backups
        .acquire()
        .await
        .map_err(|_| ApiError::internal("the backup gate is closed"))?;
    let backup = state.replica.backup().await?;
    let (header, state) = tokio::task::spawn_blocking(move || {
        let header = BackupHeader {
            index: backup.index,
            length: backup.bytes.len() as u64,
            sha256: holdfast_statemachine::restore_sha256(&backup.bytes),
        };
        (header, axum::body::Bytes::from(backup.bytes))
    })
    .await
    .map_err(|error| ApiError::internal(format!("checksumming the backup failed: {error}")))?;
    tracing::info!(
        index = header.index,
        bytes = header.length,
        sha256 = %hex(&header.sha256),
        "backup taken"
    );
    Ok(BackupFile { header, state })
}

/// Restores one piece (the service layer of both edges): the progress and the log index
/// that applied it.
pub async fn restore_chunk(
    state: &AppState,
    chunk: RestoreChunk,
) -> Result<(RestoreProgress, u64), ApiError> {
    if chunk.data.is_empty() || chunk.data.len() > RESTORE_CHUNK_BYTES_MAX {
        return Err(ApiError::invalid_field(
            "data",
            format!("a piece is 1 to {RESTORE_CHUNK_BYTES_MAX} bytes"),
        ));
    }
    if chunk.total_bytes == 0 || chunk.total_bytes > holdfast_statemachine::RESTORE_BYTES_MAX {
        return Err(ApiError::invalid_field(
            "total_bytes",
            format!("must be 1 to {}", holdfast_statemachine::RESTORE_BYTES_MAX),
        ));
    }
    if chunk.offset == 0 {
        check_format(&chunk.data)?;
    }
    let committed = service::propose(state, None, Command::RestoreChunk(chunk)).await?;
    match committed.outcome {
        Outcome::RestoreProgress(progress) => {
            if progress.done {
                tracing::info!(
                    restore_id = progress.restore_id,
                    bytes = progress.total_bytes,
                    index = committed.index,
                    "backup restored"
                );
            }
            Ok((progress, committed.index))
        }
        other => Err(service::unexpected(&other)),
    }
}

/// The first piece opens with a snapshot header of a format this build reads: a backup
/// that every replica of this build would refuse is refused before anything is staged.
fn check_format(first: &[u8]) -> Result<(), ApiError> {
    use holdfast_statemachine::{
        SnapshotError, SNAPSHOT_FORMAT_VERSION, SNAPSHOT_FORMAT_VERSION_OLDEST_READ,
    };
    match holdfast_statemachine::snapshot_format_version(first) {
        Ok(_) => Ok(()),
        Err(SnapshotError::UnsupportedVersion { found, .. }) => Err(ApiError::invalid_field(
            "data",
            format!(
                "the backup's state format {found} is not one this node reads \
                 ({SNAPSHOT_FORMAT_VERSION_OLDEST_READ} to {SNAPSHOT_FORMAT_VERSION})"
            ),
        )),
        Err(_) => Err(ApiError::invalid_field(
            "data",
            "the state bytes do not open with a Holdfast snapshot header",
        )),
    }
}

/// Downloads a consistent backup of the replicated state: the backup file (a 60-byte
/// header, then the state bytes). `X-Holdfast-Backup-Index` and `X-Holdfast-Backup-Sha256`
/// repeat the header's index and checksum.
#[utoipa::path(
    get, path = "/cluster/backup", tag = "cluster",
    responses(
        (status = 200, description = "The backup file", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 503, description = "NO_LEADER, NO_QUORUM: no linearizable point could be taken", body = crate::wire::ErrorBody),
    )
)]
pub async fn backup(State(state): State<AppState>) -> Result<Response, ApiError> {
    let file = take(&state).await?;
    let (index, sha256, length) = (
        file.header.index,
        hex(&file.header.sha256),
        holdfast_proto::backup::HEADER_BYTES as u64 + file.header.length,
    );
    let mut response = (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        )],
        axum::body::Body::from_stream(futures::stream::iter(
            file.into_pieces(BACKUP_PIECE_BYTES)
                .map(Ok::<_, std::convert::Infallible>),
        )),
    )
        .into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    headers.insert("x-holdfast-backup-index", HeaderValue::from(index));
    if let Ok(value) = HeaderValue::from_str(&sha256) {
        headers.insert("x-holdfast-backup-sha256", value);
    }
    Ok(response)
}

/// `POST /cluster/restore`'s answer.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct RestoreProgressJson {
    /// The restore the piece belongs to, as the client chose it.
    pub restore_id: u64,
    /// Bytes of the state staged so far (all of them once `done`).
    pub received_bytes: u64,
    /// The length of the whole state bytes, as this piece declared it.
    pub total_bytes: u64,
    /// The backup replaced the state.
    pub done: bool,
    /// The log index that applied this piece.
    pub index: u64,
}

fn number(query: &ApiQuery, name: &str) -> Result<u64, ApiError> {
    query
        .get(name)
        .ok_or_else(|| ApiError::invalid_field(name, "is required"))?
        .parse()
        .map_err(|_| ApiError::invalid_field(name, "must be a non-negative integer"))
}

/// Restores one piece of a backup's state bytes (the body, at most 1 MiB) into an empty
/// cluster. Pieces go in order from byte 0; the one that completes the state replaces the
/// cluster's state at once, after its length and SHA-256 are checked. A piece sent again
/// answers the progress so far (`done` once the restore completed).
#[utoipa::path(
    post, path = "/cluster/restore", tag = "cluster",
    params(
        ("restore_id" = u64, Query, description = "Chosen by the client, the same for every piece"),
        ("offset" = u64, Query, description = "Where this piece starts in the state bytes"),
        ("total_bytes" = u64, Query, description = "The length of the whole state bytes (at most 2 GiB)"),
        ("sha256" = String, Query, description = "SHA-256 of the whole state bytes, 64 hex digits"),
    ),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses(
        (status = 200, description = "Piece staged (or, with `done`, the backup restored)", body = RestoreProgressJson),
        (status = 400, description = "INVALID_FIELD", body = crate::wire::ErrorBody),
        (status = 409, description = "RESTORE_REFUSED: the cluster holds data, a piece out of order, or a checksum that does not match", body = crate::wire::ErrorBody),
        (status = 413, description = "BODY_TOO_LARGE", body = crate::wire::ErrorBody),
    )
)]
pub async fn restore(
    State(state): State<AppState>,
    query: ApiQuery,
    ApiBytes(data): ApiBytes,
) -> Result<Response, ApiError> {
    let sha256 = query
        .get("sha256")
        .and_then(parse_sha256)
        .ok_or_else(|| ApiError::invalid_field("sha256", "must be 64 hex digits"))?;
    let chunk = RestoreChunk {
        restore_id: number(&query, "restore_id")?,
        offset: number(&query, "offset")?,
        total_bytes: number(&query, "total_bytes")?,
        sha256,
        data: data.to_vec(),
    };
    let (progress, index) = restore_chunk(&state, chunk).await?;
    Ok(json_answer(
        StatusCode::OK,
        &RestoreProgressJson {
            restore_id: progress.restore_id,
            received_bytes: progress.received_bytes,
            total_bytes: progress.total_bytes,
            done: progress.done,
            index,
        },
    ))
}
