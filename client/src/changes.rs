//! The change stream: `AdminService.WatchChanges` as a [`Stream`] of typed [`Change`]s that
//! resumes by itself after a disconnect.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use holdfast_proto::booking as pb;
use holdfast_proto::booking::admin_service_client::AdminServiceClient;
use serde::Deserialize;

use crate::client::Client;
use crate::error::{Error, Result};
use crate::transport::{Node, MESSAGE_BYTES_MAX};

/// One event of the replicated outbox, as webhooks and the change stream carry it
/// (API.md, *Notifications*).
///
/// ```
/// use holdfast_client::{Change, ChangeData};
/// let json = r#"{"id": "evt_7", "type": "refund.paid", "index": 7,
///                "created_at": "2026-06-01T20:00:00Z", "data": {"refund_id": "r_1"}}"#;
/// let change = Change::from_json(json).unwrap();
/// assert_eq!(change.index, 7);
/// assert_eq!(change.data, ChangeData::RefundPaid { refund_id: "r_1".into() });
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// The event's position in the outbox: increasing, never reused.
    pub index: u64,
    /// `evt_<index>`: deduplicate by it.
    pub id: String,
    /// The event type (`hold.placed`, `booking.confirmed`, ...).
    pub event_type: String,
    /// When the event happened (RFC 3339, cluster time).
    pub created_at: String,
    /// What happened, by type.
    pub data: ChangeData,
}

/// What a [`Change`] says happened: one variant per event type of API.md, and
/// [`ChangeData::Other`] for a type this SDK does not know yet (a newer node).
///
/// ```
/// use holdfast_client::ChangeData;
/// let data = ChangeData::parse("hold.released",
///     serde_json::json!({"hold_id": "h_1", "event_id": "E", "customer_id": "c-1"})).unwrap();
/// assert!(matches!(data, ChangeData::HoldReleased { .. }));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum ChangeData {
    /// `hold.placed`.
    HoldPlaced {
        /// The hold.
        hold_id: String,
        /// Its event.
        event_id: String,
        /// Its customer.
        customer_id: String,
        /// Its price, minor units.
        amount: u64,
        /// ISO currency.
        currency: String,
        /// When it expires (RFC 3339).
        expires_at: String,
    },
    /// `hold.expired`.
    HoldExpired {
        /// The hold.
        hold_id: String,
        /// Its event.
        event_id: String,
        /// Its customer.
        customer_id: String,
    },
    /// `hold.released` (by its customer, or with its event's cancellation).
    HoldReleased {
        /// The hold.
        hold_id: String,
        /// Its event.
        event_id: String,
        /// Its customer.
        customer_id: String,
    },
    /// `booking.confirmed`.
    BookingConfirmed {
        /// The booking.
        booking_id: String,
        /// The hold it came from.
        hold_id: String,
        /// Its event.
        event_id: String,
        /// Its customer.
        customer_id: String,
        /// What was charged, minor units.
        amount: u64,
        /// ISO currency.
        currency: String,
    },
    /// `booking.cancelled`.
    BookingCancelled {
        /// The booking.
        booking_id: String,
        /// Its event.
        event_id: String,
        /// Its customer.
        customer_id: String,
        /// Why.
        reason: String,
    },
    /// `refund.recorded`: money owed back (a cancelled booking, or a confirm refused after
    /// its charge, which has no booking).
    RefundRecorded {
        /// The refund.
        refund_id: String,
        /// The hold the charge was for.
        hold_id: String,
        /// The booking, if there was one.
        booking_id: Option<String>,
        /// Minor units.
        amount: u64,
        /// ISO currency.
        currency: String,
    },
    /// `refund.paid`.
    RefundPaid {
        /// The refund.
        refund_id: String,
    },
    /// `refund.failed`.
    RefundFailed {
        /// The refund.
        refund_id: String,
        /// Why it was given up.
        reason: String,
    },
    /// A type this SDK does not know, with its data as sent.
    Other(serde_json::Value),
}

impl ChangeData {
    /// The data of an event of type `event_type`; an unknown type is [`ChangeData::Other`],
    /// a known type whose data does not fit its variant is an error.
    ///
    /// ```
    /// use holdfast_client::ChangeData;
    /// let data = ChangeData::parse("seat.painted", serde_json::json!({"seat": "A-1"})).unwrap();
    /// assert!(matches!(data, ChangeData::Other(_)));
    /// ```
    pub fn parse(event_type: &str, data: serde_json::Value) -> Result<ChangeData> {
        fn typed<T: serde::de::DeserializeOwned>(
            event_type: &str,
            data: serde_json::Value,
        ) -> Result<T> {
            serde_json::from_value(data).map_err(|error| {
                Error::Protocol(format!(
                    "a {event_type} change with unexpected data: {error}"
                ))
            })
        }
        #[derive(Deserialize)]
        struct Hold {
            hold_id: String,
            event_id: String,
            customer_id: String,
        }
        #[derive(Deserialize)]
        struct Placed {
            hold_id: String,
            event_id: String,
            customer_id: String,
            amount: u64,
            currency: String,
            expires_at: String,
        }
        #[derive(Deserialize)]
        struct Confirmed {
            booking_id: String,
            hold_id: String,
            event_id: String,
            customer_id: String,
            amount: u64,
            currency: String,
        }
        #[derive(Deserialize)]
        struct Cancelled {
            booking_id: String,
            event_id: String,
            customer_id: String,
            reason: String,
        }
        #[derive(Deserialize)]
        struct Recorded {
            refund_id: String,
            hold_id: String,
            booking_id: Option<String>,
            amount: u64,
            currency: String,
        }
        #[derive(Deserialize)]
        struct Paid {
            refund_id: String,
        }
        #[derive(Deserialize)]
        struct Failed {
            refund_id: String,
            reason: String,
        }
        Ok(match event_type {
            "hold.placed" => {
                let Placed {
                    hold_id,
                    event_id,
                    customer_id,
                    amount,
                    currency,
                    expires_at,
                } = typed(event_type, data)?;
                ChangeData::HoldPlaced {
                    hold_id,
                    event_id,
                    customer_id,
                    amount,
                    currency,
                    expires_at,
                }
            }
            "hold.expired" | "hold.released" => {
                let Hold {
                    hold_id,
                    event_id,
                    customer_id,
                } = typed(event_type, data)?;
                if event_type == "hold.expired" {
                    ChangeData::HoldExpired {
                        hold_id,
                        event_id,
                        customer_id,
                    }
                } else {
                    ChangeData::HoldReleased {
                        hold_id,
                        event_id,
                        customer_id,
                    }
                }
            }
            "booking.confirmed" => {
                let Confirmed {
                    booking_id,
                    hold_id,
                    event_id,
                    customer_id,
                    amount,
                    currency,
                } = typed(event_type, data)?;
                ChangeData::BookingConfirmed {
                    booking_id,
                    hold_id,
                    event_id,
                    customer_id,
                    amount,
                    currency,
                }
            }
            "booking.cancelled" => {
                let Cancelled {
                    booking_id,
                    event_id,
                    customer_id,
                    reason,
                } = typed(event_type, data)?;
                ChangeData::BookingCancelled {
                    booking_id,
                    event_id,
                    customer_id,
                    reason,
                }
            }
            "refund.recorded" => {
                let Recorded {
                    refund_id,
                    hold_id,
                    booking_id,
                    amount,
                    currency,
                } = typed(event_type, data)?;
                ChangeData::RefundRecorded {
                    refund_id,
                    hold_id,
                    booking_id,
                    amount,
                    currency,
                }
            }
            "refund.paid" => {
                let Paid { refund_id } = typed(event_type, data)?;
                ChangeData::RefundPaid { refund_id }
            }
            "refund.failed" => {
                let Failed { refund_id, reason } = typed(event_type, data)?;
                ChangeData::RefundFailed { refund_id, reason }
            }
            _ => ChangeData::Other(data),
        })
    }
}

impl Change {
    /// A change from the JSON a webhook receives (`{"id", "type", "index", "created_at",
    /// "data"}`); the `json` field of the gRPC `ChangeEvent`.
    ///
    /// ```
    /// use holdfast_client::Change;
    /// assert!(Change::from_json("not json").is_err());
    /// ```
    pub fn from_json(json: &str) -> Result<Change> {
        #[derive(Deserialize)]
        struct Wire {
            index: u64,
            id: String,
            #[serde(rename = "type")]
            event_type: String,
            created_at: String,
            #[serde(default)]
            data: serde_json::Value,
        }
        let wire: Wire = serde_json::from_str(json)
            .map_err(|error| Error::Protocol(format!("a change that is not an event: {error}")))?;
        let data = ChangeData::parse(&wire.event_type, wire.data)?;
        Ok(Change {
            index: wire.index,
            id: wire.id,
            event_type: wire.event_type,
            created_at: wire.created_at,
            data,
        })
    }

    fn from_proto(event: pb::ChangeEvent) -> Result<Change> {
        let change = Change::from_json(&event.json)?;
        if change.index != event.index {
            return Err(Error::Protocol(format!(
                "a change event of index {} carries the JSON of index {}",
                event.index, change.index
            )));
        }
        Ok(change)
    }
}

type Opened = tonic::Streaming<pb::ChangeEvent>;
type Pending = Pin<Box<dyn std::future::Future<Output = Result<(Opened, Arc<Node>)>> + Send>>;

/// Where a [`ChangeStream`] is.
enum State {
    /// Opening the call, from `next_index`; the answer is the stream and the serving node.
    Opening(Pending),
    /// Receiving events (boxed: the stream is large beside the other states).
    Streaming(Box<Opened>),
    /// Failed for good (the error was yielded) or dropped by the caller's choice.
    Done,
}

/// The outbox as a stream of [`Change`]s from an index, from [`Client::watch_changes`].
///
/// It yields each event once, in index order. When the call breaks — the node it streams
/// from stops or is killed, the connection drops, the server ends the stream (after five
/// minutes) — it opens the call again from the last index it yielded plus one, on whichever
/// node answers, so nothing is skipped or repeated. Each reopening is one call of the
/// client's retry loop (bounded attempts with backoff and jitter, within the client's
/// timeout, [`ClientBuilder::timeout`](crate::ClientBuilder::timeout)), and at most
/// [`CHANGE_STREAM_REOPENS_MAX`] reopenings in a row may pass without an event; after that,
/// or on a refusal (`INVALID_FIELD` when the resume point was trimmed, `FORBIDDEN`), the
/// stream yields the error and ends. Drop it to stop; [`ChangeStream::next_index`] is where
/// a new one would resume.
///
/// ```no_run
/// # async fn demo(client: holdfast_client::Client) -> holdfast_client::Result<()> {
/// use futures::StreamExt;
/// let mut changes = client.watch_changes(1);
/// while let Some(change) = changes.next().await {
///     let change = change?;
///     println!("{} {} {:?}", change.index, change.event_type, change.data);
/// }
/// # Ok(()) }
/// ```
pub struct ChangeStream {
    client: Client,
    state: State,
    next_index: Arc<AtomicU64>,
    node: Option<Arc<Node>>,
    reopens_without_event: u32,
}

/// Reopenings of a [`ChangeStream`] in a row that may pass without an event before it gives
/// up (each is itself a bounded retry loop).
pub const CHANGE_STREAM_REOPENS_MAX: u32 = 8;

/// The first wait before reopening after a reopened stream broke again without an event;
/// doubled each time, at most the client's longest backoff.
const REOPEN_BACKOFF_INITIAL: Duration = Duration::from_millis(50);

impl ChangeStream {
    pub(crate) fn new(client: Client, from_index: u64) -> ChangeStream {
        let next_index = Arc::new(AtomicU64::new(from_index));
        let state = State::Opening(open(client.clone(), from_index, Duration::ZERO));
        ChangeStream {
            client,
            state,
            next_index,
            node: None,
            reopens_without_event: 0,
        }
    }

    /// The index the stream continues from: one past the last change it yielded (the
    /// `from_index` it was opened with, before any). Pass it to
    /// [`Client::watch_changes`] to resume after dropping this stream.
    ///
    /// ```no_run
    /// # async fn demo(client: holdfast_client::Client) -> holdfast_client::Result<()> {
    /// use futures::StreamExt;
    /// let mut changes = client.watch_changes(1);
    /// let first = changes.next().await.transpose()?;
    /// let resume_at = changes.next_index();
    /// drop(changes);
    /// let mut again = client.watch_changes(resume_at);
    /// # Ok(()) }
    /// ```
    pub fn next_index(&self) -> u64 {
        self.next_index.load(Ordering::Relaxed)
    }

    /// The id of the node the stream is receiving from (0 before it opened, or if the node
    /// did not say).
    ///
    /// ```no_run
    /// # fn demo(changes: &holdfast_client::ChangeStream) {
    /// println!("streaming from node {}", changes.node_id());
    /// # }
    /// ```
    pub fn node_id(&self) -> u64 {
        self.node.as_ref().and_then(|node| node.id()).unwrap_or(0)
    }

    /// Starts opening the call again from the next index, after a pause when the last
    /// reopenings brought nothing; `Err` when too many did.
    fn reopen(&mut self, why: Error) -> std::result::Result<(), Error> {
        if self.reopens_without_event >= CHANGE_STREAM_REOPENS_MAX {
            return Err(why);
        }
        let pause = if self.reopens_without_event == 0 {
            Duration::ZERO
        } else {
            let doublings = (self.reopens_without_event - 1).min(16);
            (REOPEN_BACKOFF_INITIAL * (1 << doublings)).min(self.client.max_backoff())
        };
        self.reopens_without_event += 1;
        tracing::debug!(error = %why, next_index = self.next_index(), "change stream broke; reopening");
        self.state = State::Opening(open(self.client.clone(), self.next_index(), pause));
        Ok(())
    }
}

/// Opens `WatchChanges` from `from_index` through the client's retry loop, after `pause`.
fn open(client: Client, from_index: u64, pause: Duration) -> Pending {
    Box::pin(async move {
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
        client.open_change_stream(from_index).await
    })
}

impl Stream for ChangeStream {
    type Item = Result<Change>;

    fn poll_next(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            match &mut this.state {
                State::Done => return Poll::Ready(None),
                State::Opening(pending) => match pending.as_mut().poll(context) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Ok((stream, node))) => {
                        this.node = Some(node);
                        this.state = State::Streaming(Box::new(stream));
                    }
                    Poll::Ready(Err(error)) => {
                        this.state = State::Done;
                        return Poll::Ready(Some(Err(error)));
                    }
                },
                State::Streaming(stream) => match Pin::new(&mut **stream).poll_next(context) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Some(Ok(event))) => {
                        let next = this.next_index();
                        if event.index < next {
                            // Already yielded (a server never sends this; be sure anyway).
                            continue;
                        }
                        // From 0 or 1 the server starts at the oldest event it holds;
                        // from any later index it starts exactly there or refuses. A gap
                        // would lose events silently: end with an error instead.
                        if next > 1 && event.index > next {
                            this.state = State::Done;
                            return Poll::Ready(Some(Err(Error::Protocol(format!(
                                "the change stream skipped from {next} to {}",
                                event.index
                            )))));
                        }
                        match Change::from_proto(event) {
                            Ok(change) => {
                                this.next_index.store(change.index + 1, Ordering::Relaxed);
                                this.reopens_without_event = 0;
                                return Poll::Ready(Some(Ok(change)));
                            }
                            Err(error) => {
                                this.state = State::Done;
                                return Poll::Ready(Some(Err(error)));
                            }
                        }
                    }
                    Poll::Ready(Some(Err(status))) => {
                        let error = Error::from_status(&status);
                        if !error.is_retryable() {
                            this.state = State::Done;
                            return Poll::Ready(Some(Err(error)));
                        }
                        // Another node first, if there is one: this one may be gone.
                        if let Some(node) = &this.node {
                            this.client.stream_node_failed(node);
                        }
                        if let Err(error) = this.reopen(error) {
                            this.state = State::Done;
                            return Poll::Ready(Some(Err(error)));
                        }
                    }
                    Poll::Ready(None) => {
                        let ended = Error::Protocol("the server ended the change stream".into());
                        if let Err(error) = this.reopen(ended) {
                            this.state = State::Done;
                            return Poll::Ready(Some(Err(error)));
                        }
                    }
                },
            }
        }
    }
}

/// `WatchChanges` on one node's channel.
pub(crate) fn admin_service(
    channel: tonic::transport::Channel,
) -> AdminServiceClient<tonic::transport::Channel> {
    AdminServiceClient::new(channel)
        .max_decoding_message_size(MESSAGE_BYTES_MAX)
        .max_encoding_message_size(MESSAGE_BYTES_MAX)
}
