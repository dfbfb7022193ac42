//! Following the outbox: `GET /changes?from=INDEX` as server-sent events, and the gRPC
//! `AdminService.WatchChanges` stream (`grpc.rs`), two sibling edges over one
//! [`ChangeFeed`]. Each event carries its outbox index (SSE `id:`, the message's `index`)
//! and the same JSON a webhook receives; a client that reconnects resumes right after the
//! last index it saw (`Last-Event-ID`, or `from_index` = that index + 1), without gaps, as
//! long as the events are still in the outbox (see the outbox's rule in the state
//! machine's `outbox.rs`).
//!
//! A feed polls this node's applied state (any node serves it), reads at most
//! [`CHANGES_EVENTS_PER_READ_MAX`] events at once, ends after [`CHANGES_STREAM_LIFETIME`]
//! (the client resumes) or when the server stops. Feeds open at once on one node are capped
//! by `HttpConfig::change_streams_max` (SSE and gRPC together); beyond it a new one is
//! refused with `503 OVERLOADED`.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use holdfast_statemachine::{ErrorCode, EventType, OutboxEvent};
use tokio::sync::{watch, OwnedSemaphorePermit};
use tokio::time::Instant;

use crate::app::AppState;
use crate::error::{ApiError, RETRY_AFTER_SECONDS_DEFAULT};
use crate::extract::ApiQuery;
use crate::replica::{read_now, Replica};
use crate::webhooks::event_json;

/// How often an idle stream looks for new events.
pub const CHANGES_POLL_INTERVAL: Duration = Duration::from_millis(100);
/// Events read from the state at once.
pub const CHANGES_EVENTS_PER_READ_MAX: usize = 256;
/// How long one stream lasts before it ends and the client resumes with `Last-Event-ID`.
pub const CHANGES_STREAM_LIFETIME: Duration = Duration::from_secs(300);
/// Change streams (SSE and gRPC together) one node serves at once by default.
pub const CHANGE_STREAMS_MAX_DEFAULT: usize = 256;

/// One open follower of the outbox: the events after an index, in order, as they come.
/// Holds its place in the cap on change streams until dropped.
pub struct ChangeFeed {
    replica: Arc<dyn Replica>,
    /// The index of the last event handed out.
    after: u64,
    queued: VecDeque<OutboxEvent>,
    stopping: watch::Receiver<bool>,
    ends_at: Instant,
    _place: OwnedSemaphorePermit,
}

impl ChangeFeed {
    /// A feed of the events after index `after` (`field` names where the client gave it),
    /// `400 INVALID_FIELD` when some of those events are no longer in the outbox (the
    /// stream could not go on without a gap; `details.oldest_index` is where it can start),
    /// or `503 OVERLOADED` when this node serves as many change streams as it may.
    pub fn open(state: &AppState, after: u64, field: &str) -> Result<ChangeFeed, ApiError> {
        let ((first, last), _) = read_now(&*state.replica, |machine| {
            (
                machine.outbox_first_index(),
                machine.outbox_status().last_index,
            )
        });
        let oldest = first.unwrap_or(last + 1);
        if after >= 1 && after + 1 < oldest {
            return Err(ApiError::new(
                ErrorCode::InvalidField,
                format!(
                    "invalid {field}: the events after {after} up to {} are no longer in the \
                     outbox; start from {oldest}",
                    oldest - 1
                ),
            )
            .with_details(serde_json::json!({"field": field, "oldest_index": oldest})));
        }
        let place = state
            .change_streams
            .clone()
            .try_acquire_owned()
            .map_err(|_| {
                let max = state.config.change_streams_max;
                metrics::counter!("holdfast_change_streams_refused_total").increment(1);
                ApiError::new(
                    ErrorCode::Overloaded,
                    format!("this node serves {max} change streams already; retry later"),
                )
                .with_details(serde_json::json!({"change_streams_max": max}))
                .with_retry_after(RETRY_AFTER_SECONDS_DEFAULT)
            })?;
        Ok(ChangeFeed {
            replica: state.replica.clone(),
            after,
            queued: VecDeque::new(),
            stopping: state.streams_stopping(),
            ends_at: Instant::now() + CHANGES_STREAM_LIFETIME,
            _place: place,
        })
    }

    /// The next event; `None` once the feed's lifetime is over or the server stops.
    pub async fn next(&mut self) -> Option<OutboxEvent> {
        loop {
            if *self.stopping.borrow() || Instant::now() >= self.ends_at {
                return None;
            }
            if let Some(event) = self.queued.pop_front() {
                self.after = event.index;
                return Some(event);
            }
            let after = self.after;
            let (events, _) = read_now(&*self.replica, |machine| {
                machine.outbox_events(after, CHANGES_EVENTS_PER_READ_MAX)
            });
            if events.is_empty() {
                tokio::select! {
                    _ = tokio::time::sleep(CHANGES_POLL_INTERVAL) => {}
                    _ = self.stopping.changed() => return None,
                }
            }
            self.queued.extend(events);
        }
    }
}

fn sse_event(event: &OutboxEvent) -> Event {
    Event::default()
        .id(event.index.to_string())
        .event(EventType::of(&event.kind).as_str())
        .data(event_json(event).to_string())
}

/// Streams the outbox from an index.
#[utoipa::path(
    get, path = "/changes", tag = "reads",
    params(
        ("from" = Option<u64>, Query, description = "The first outbox index to send (default 1)"),
        ("Last-Event-ID" = Option<String>, Header, description = "Resume after this index (wins over from)"),
    ),
    responses(
        (status = 200, description = "text/event-stream: id = outbox index, event = type, data = the event's JSON"),
        (status = 400, description = "INVALID_FIELD (from, Last-Event-ID; also when events after it were trimmed: details.oldest_index)"),
        (status = 503, description = "OVERLOADED: as many change streams as the node serves (--change-streams-max)"),
    )
)]
pub async fn changes(
    State(state): State<AppState>,
    query: ApiQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let from = query.get_u64("from")?.unwrap_or(1);
    let after = match headers.get("last-event-id") {
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|text| text.trim().parse::<u64>().ok())
            .ok_or_else(|| ApiError::invalid_field("Last-Event-ID", "must be an outbox index"))?,
        None => from.saturating_sub(1),
    };
    let field = if headers.contains_key("last-event-id") {
        "Last-Event-ID"
    } else {
        "from"
    };
    let feed = ChangeFeed::open(&state, after, field)?;
    let stream = futures::stream::unfold(feed, |mut feed| async move {
        let event = feed.next().await?;
        Some((Ok::<_, Infallible>(sse_event(&event)), feed))
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}
