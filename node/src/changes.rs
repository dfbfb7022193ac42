//! `GET /changes?from=INDEX`: the outbox as server-sent events, for consumers that follow
//! changes themselves. Each event's `id:` is its outbox index, `event:` its type and `data:`
//! the same JSON a webhook receives; a client that reconnects with `Last-Event-ID` resumes
//! right after the last event it saw, without gaps (as long as the events are still in the
//! outbox: it keeps what some webhook has not acknowledged, within its bound).
//!
//! The stream polls this node's applied state (any node serves it), sends at most
//! [`CHANGES_EVENTS_PER_READ_MAX`] events per read, ends after
//! [`CHANGES_STREAM_LIFETIME`] (the client resumes) or when the server stops.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use holdfast_statemachine::{EventType, OutboxEvent};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::app::AppState;
use crate::error::ApiError;
use crate::extract::ApiQuery;
use crate::replica::{read_now, Replica};
use crate::webhooks::event_json;

/// How often an idle stream looks for new events.
pub const CHANGES_POLL_INTERVAL: Duration = Duration::from_millis(100);
/// Events read from the state at once.
pub const CHANGES_EVENTS_PER_READ_MAX: usize = 256;
/// How long one stream lasts before it ends and the client resumes with `Last-Event-ID`.
pub const CHANGES_STREAM_LIFETIME: Duration = Duration::from_secs(300);

struct Cursor {
    replica: Arc<dyn Replica>,
    /// The index of the last event sent.
    after: u64,
    queued: VecDeque<OutboxEvent>,
    stopping: watch::Receiver<bool>,
    ends_at: Instant,
}

fn sse_event(event: &OutboxEvent) -> Event {
    Event::default()
        .id(event.index.to_string())
        .event(EventType::of(&event.kind).as_str())
        .data(event_json(event).to_string())
}

async fn next_event(mut cursor: Cursor) -> Option<(Result<Event, Infallible>, Cursor)> {
    loop {
        if *cursor.stopping.borrow() || Instant::now() >= cursor.ends_at {
            return None;
        }
        if let Some(event) = cursor.queued.pop_front() {
            cursor.after = event.index;
            return Some((Ok(sse_event(&event)), cursor));
        }
        let after = cursor.after;
        let (events, _) = read_now(&*cursor.replica, |machine| {
            machine.outbox_events(after, CHANGES_EVENTS_PER_READ_MAX)
        });
        if events.is_empty() {
            tokio::select! {
                _ = tokio::time::sleep(CHANGES_POLL_INTERVAL) => {}
                _ = cursor.stopping.changed() => return None,
            }
        }
        cursor.queued.extend(events);
    }
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
        (status = 400, description = "INVALID_FIELD (from, Last-Event-ID)"),
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
    let cursor = Cursor {
        replica: state.replica.clone(),
        after,
        queued: VecDeque::new(),
        stopping: state.streams_stopping(),
        ends_at: Instant::now() + CHANGES_STREAM_LIFETIME,
    };
    let stream = futures::stream::unfold(cursor, next_event);
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}
