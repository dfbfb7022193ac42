//! Automatic batching: concurrent writes from any number of tasks become few `Batch` calls.
//!
//! Every hold, extend, confirm and cancel is queued here with its own idempotency key. A
//! dispatcher task takes what is queued: when a slot for a batch is free it sends at once
//! (a lone caller waits for nothing), and while every slot is busy (two by default)
//! everything that arrives gathers into the next batch, up to the node's limit of
//! operations and bytes. Each caller gets its own result back; the caller's own retry
//! loop (same key, backoff, its own deadline) decides what to do with a failure, so one
//! refused operation never affects its neighbours and a batch lost in transit is retried
//! operation by operation.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use holdfast_proto::booking::booking_service_client::BookingServiceClient;
use holdfast_proto::booking::{batch_operation, BatchOperation, BatchRequest, BatchResult};
use prost::Message;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};
use tracing::Instrument;

use crate::error::{text, Error};
use crate::transport::{Meta, Route, Transport, MESSAGE_BYTES_MAX};

/// The node's limit of operations in one batch (API.md, `POST /booking/batch`).
pub const BATCH_OPERATIONS_MAX: usize = 1000;
/// Encoded bytes of one batch, kept well below the node's 1 MiB body limit.
const BATCH_BYTES_MAX: usize = 512 * 1024;
/// Operations waiting for a batch; callers beyond it wait to enqueue (backpressure).
const QUEUE_CAPACITY: usize = 16 * 1024;
/// Shortest deadline a batch is sent with.
const BATCH_TIMEOUT_MIN: Duration = Duration::from_millis(200);

/// Why a batched operation got no result of its own.
#[derive(Debug)]
pub(crate) enum BatchFailure {
    /// The node does not implement `Batch`: send the operation on its own.
    Unsupported,
    /// The batch as a whole failed (transport, deadline, overload); retry with the key.
    Failed(Error),
}

pub(crate) type BatchReply = Result<(BatchResult, Meta), BatchFailure>;

struct Pending {
    operation: BatchOperation,
    bytes: usize,
    deadline: Instant,
    reply: oneshot::Sender<BatchReply>,
}

/// The handle callers enqueue through; the dispatcher stops when every handle is gone.
#[derive(Debug, Clone)]
pub(crate) struct Batcher {
    queue: mpsc::Sender<Pending>,
}

impl Batcher {
    /// Starts the dispatcher on the current tokio runtime.
    pub(crate) fn start(
        transport: Arc<Transport>,
        max_operations: usize,
        max_in_flight: usize,
    ) -> Batcher {
        let (queue, receiver) = mpsc::channel(QUEUE_CAPACITY);
        let limits = Limits {
            operations: max_operations.clamp(1, BATCH_OPERATIONS_MAX),
            bytes: BATCH_BYTES_MAX,
        };
        tokio::spawn(dispatch(receiver, transport, limits, max_in_flight.max(1)));
        Batcher { queue }
    }

    /// Queues `operation` and waits for its own result.
    pub(crate) async fn submit(
        &self,
        operation: batch_operation::Operation,
        deadline: Instant,
    ) -> BatchReply {
        let operation = BatchOperation {
            operation: Some(operation),
        };
        // Its share of the request: the message and the frame `BatchRequest` puts around
        // each operation (a one-byte key for field 1, and the length).
        let length = operation.encoded_len();
        let bytes = 1 + prost::length_delimiter_len(length) + length;
        let (reply, answer) = oneshot::channel();
        let pending = Pending {
            operation,
            bytes,
            deadline,
            reply,
        };
        if self.queue.send(pending).await.is_err() {
            return Err(BatchFailure::Unsupported);
        }
        answer.await.unwrap_or_else(|_| {
            Err(BatchFailure::Failed(Error::Protocol(
                "the batch dispatcher stopped".into(),
            )))
        })
    }
}

#[derive(Clone, Copy)]
struct Limits {
    operations: usize,
    bytes: usize,
}

/// Operations gathered for one `Batch` call.
struct Gathered {
    pending: Vec<Pending>,
    bytes: usize,
}

impl Gathered {
    fn new(first: Pending) -> Gathered {
        Gathered {
            bytes: first.bytes,
            pending: vec![first],
        }
    }

    fn is_full(&self, limits: Limits) -> bool {
        self.pending.len() >= limits.operations || self.bytes >= limits.bytes
    }

    /// Adds `pending`, or leaves it over for the next batch when it would exceed a limit.
    fn push_or_leave(&mut self, pending: Pending, limits: Limits, left_over: &mut Option<Pending>) {
        if self.pending.len() >= limits.operations || self.bytes + pending.bytes > limits.bytes {
            *left_over = Some(pending);
            return;
        }
        self.bytes += pending.bytes;
        self.pending.push(pending);
    }

    /// Takes whatever is queued right now; an operation that does not fit is left over.
    fn drain(
        &mut self,
        receiver: &mut mpsc::Receiver<Pending>,
        limits: Limits,
        left_over: &mut Option<Pending>,
    ) {
        while left_over.is_none() && !self.is_full(limits) {
            match receiver.try_recv() {
                Ok(pending) => self.push_or_leave(pending, limits, left_over),
                Err(_) => break,
            }
        }
    }
}

async fn dispatch(
    mut receiver: mpsc::Receiver<Pending>,
    transport: Arc<Transport>,
    limits: Limits,
    max_in_flight: usize,
) {
    let slots = Arc::new(Semaphore::new(max_in_flight));
    let mut left_over: Option<Pending> = None;
    loop {
        let first = match left_over.take() {
            Some(pending) => pending,
            None => match receiver.recv().await {
                Some(pending) => pending,
                None => return,
            },
        };
        let mut batch = Gathered::new(first);
        batch.drain(&mut receiver, limits, &mut left_over);
        // Send as soon as a slot is free; while every slot is busy, keep gathering.
        let permit = loop {
            if batch.is_full(limits) || left_over.is_some() {
                break slots.clone().acquire_owned().await;
            }
            tokio::select! {
                biased;
                permit = slots.clone().acquire_owned() => break permit,
                more = receiver.recv() => match more {
                    Some(pending) => batch.push_or_leave(pending, limits, &mut left_over),
                    None => break slots.clone().acquire_owned().await,
                },
            }
        };
        let Ok(permit) = permit else { return };
        batch.drain(&mut receiver, limits, &mut left_over);
        let span = tracing::debug_span!("holdfast.batch", operations = batch.pending.len());
        tokio::spawn(send(transport.clone(), batch.pending, permit).instrument(span));
    }
}

/// Sends one batch and hands every caller its result.
async fn send(transport: Arc<Transport>, pending: Vec<Pending>, _permit: OwnedSemaphorePermit) {
    // Callers that gave up (their deadline passed) are not sent for.
    let pending: Vec<Pending> = pending
        .into_iter()
        .filter(|pending| !pending.reply.is_closed())
        .collect();
    if pending.is_empty() {
        return;
    }
    let now = Instant::now();
    let timeout = pending
        .iter()
        .map(|pending| pending.deadline.saturating_duration_since(now))
        .max()
        .unwrap_or_default()
        .max(BATCH_TIMEOUT_MIN);
    let (operations, replies): (Vec<_>, Vec<_>) = pending
        .into_iter()
        .map(|pending| (pending.operation, pending.reply))
        .unzip();
    let count = operations.len();
    let node = transport.pick(Route::Leader);
    transport.counters.rpcs.fetch_add(1, Ordering::Relaxed);
    transport
        .counters
        .batch_rpcs
        .fetch_add(1, Ordering::Relaxed);
    transport
        .counters
        .batched_operations
        .fetch_add(count as u64, Ordering::Relaxed);
    let request = transport.request(BatchRequest { operations }, timeout);
    let mut client = BookingServiceClient::new(node.channel.clone())
        .max_decoding_message_size(MESSAGE_BYTES_MAX)
        .max_encoding_message_size(MESSAGE_BYTES_MAX);
    let answer = tokio::time::timeout(timeout, client.batch(request)).await;
    let failure = match answer {
        Ok(Ok(response)) => {
            let mut meta = transport.observe(&node, response.metadata());
            let response = response.into_inner();
            if meta.applied_index.is_none() {
                meta.applied_index = response.header.map(|header| header.applied_index);
            }
            if response.results.len() == count {
                for (result, reply) in response.results.into_iter().zip(replies) {
                    let _ = reply.send(Ok((result, meta)));
                }
                return;
            }
            BatchFailure::Failed(Error::Protocol(format!(
                "a batch of {count} operations answered {} results",
                response.results.len()
            )))
        }
        Ok(Err(status)) => {
            if status.code() == tonic::Code::Unimplemented
                && text(status.metadata(), "holdfast-error-code").is_none()
            {
                transport.batch_unsupported.store(true, Ordering::Relaxed);
                tracing::info!(node = %node.url, "the node does not implement Batch; sending operations one by one");
                BatchFailure::Unsupported
            } else {
                let error = Error::from_status(&status);
                if matches!(error, Error::Unreachable { .. }) {
                    node.mark_down();
                    transport.forget_leader(&node);
                    transport.rotate_from(&node);
                }
                BatchFailure::Failed(error)
            }
        }
        Err(_) => {
            node.mark_down();
            transport.forget_leader(&node);
            transport.rotate_from(&node);
            BatchFailure::Failed(Error::DeadlineExceeded {
                attempts: 1,
                last: format!("{} did not answer a batch within {timeout:?}", node.url),
            })
        }
    };
    tracing::debug!(node = %node.url, operations = count, failure = ?failure, "batch failed");
    for reply in replies {
        let failure = match &failure {
            BatchFailure::Unsupported => BatchFailure::Unsupported,
            BatchFailure::Failed(error) => BatchFailure::Failed(error.clone()),
        };
        let _ = reply.send(Err(failure));
    }
}
