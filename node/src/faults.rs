//! A fault switch in the node-to-node network: while it is on, every peer connection of
//! this node (Raft RPCs, forwarded writes and reads, in both directions) fails, as if the
//! node were cut off by a partition, while its HTTP API keeps answering clients.
//!
//! Production always runs with the switch off; the cost is one atomic load per socket
//! poll. Tests flip it through `POST /debug/faults`, a route that exists only when the
//! node is started with `HOLDFAST_TEST_FAULTS=1`.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use holdfast_raft::transport::{ConnectFuture, Transport};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tonic::transport::server::{Connected, TcpConnectInfo};
use tonic::transport::Uri;

/// Whether this node is cut off from its peers, and whether its disk refuses writes.
#[derive(Debug, Default)]
pub struct FaultSwitch {
    isolated: AtomicBool,
    /// Shared with the log store (`RaftNodeConfig::refuse_writes`).
    disk_refuses_writes: Arc<AtomicBool>,
}

impl FaultSwitch {
    /// The switch the log store watches: while it is on, every log write fails.
    pub fn disk_switch(&self) -> Arc<AtomicBool> {
        self.disk_refuses_writes.clone()
    }

    /// Whether peer links are cut: while this is true every connection this node dials, and
    /// every read or write on an open peer connection, fails with `ConnectionReset`.
    pub fn is_isolated(&self) -> bool {
        self.isolated.load(Ordering::Relaxed)
    }

    /// Cuts (`true`) or restores (`false`) the peer links; it takes effect at the next poll
    /// of each peer socket, so open connections fail too.
    pub fn set_isolated(&self, isolated: bool) {
        self.isolated.store(isolated, Ordering::Relaxed);
    }
}

fn cut() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionReset,
        "peer link cut by the fault switch",
    )
}

/// A peer socket that fails while the switch is on.
pub struct SwitchedStream {
    stream: TcpStream,
    switch: Arc<FaultSwitch>,
}

impl SwitchedStream {
    /// Wraps a peer connection (dialled or accepted) so that it fails while `switch` is on.
    pub fn new(stream: TcpStream, switch: Arc<FaultSwitch>) -> SwitchedStream {
        SwitchedStream { stream, switch }
    }
}

impl AsyncRead for SwitchedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.switch.is_isolated() {
            return Poll::Ready(Err(cut()));
        }
        Pin::new(&mut self.stream).poll_read(context, buffer)
    }
}

impl AsyncWrite for SwitchedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.switch.is_isolated() {
            return Poll::Ready(Err(cut()));
        }
        Pin::new(&mut self.stream).poll_write(context, bytes)
    }

    fn poll_flush(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(context)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(context)
    }
}

impl Connected for SwitchedStream {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.stream.connect_info()
    }
}

/// TCP to peers through the fault switch.
#[derive(Clone, Debug)]
pub struct SwitchedTransport {
    switch: Arc<FaultSwitch>,
}

impl SwitchedTransport {
    /// A transport whose every connection, and every attempt to make one, goes through
    /// `switch`.
    pub fn new(switch: Arc<FaultSwitch>) -> SwitchedTransport {
        SwitchedTransport { switch }
    }
}

impl Transport for SwitchedTransport {
    fn connect(&self, endpoint: tonic::transport::Endpoint) -> ConnectFuture {
        let switch = self.switch.clone();
        Box::pin(async move {
            let connector = tower::service_fn(move |uri: Uri| {
                let switch = switch.clone();
                async move {
                    if switch.is_isolated() {
                        return Err(cut());
                    }
                    let host = uri
                        .host()
                        .unwrap_or("127.0.0.1")
                        .trim_start_matches('[')
                        .trim_end_matches(']')
                        .to_string();
                    let port = uri.port_u16().unwrap_or(80);
                    let stream = TcpStream::connect((host.as_str(), port)).await?;
                    stream.set_nodelay(true)?;
                    Ok::<_, io::Error>(TokioIo::new(SwitchedStream::new(stream, switch)))
                }
            });
            endpoint.connect_with_connector(connector).await
        })
    }
}

/// The switches a request sets (those it names) and an answer shows (all of them).
#[derive(Debug, Deserialize, Serialize)]
struct FaultRequest {
    isolated: Option<bool>,
    disk_refuses_writes: Option<bool>,
}

async fn set_faults(
    State(switch): State<Arc<FaultSwitch>>,
    Json(request): Json<FaultRequest>,
) -> Json<FaultRequest> {
    if let Some(isolated) = request.isolated {
        switch.set_isolated(isolated);
    }
    if let Some(refuse) = request.disk_refuses_writes {
        switch.disk_refuses_writes.store(refuse, Ordering::Relaxed);
    }
    tracing::warn!(?request, "fault switch changed");
    Json(FaultRequest {
        isolated: Some(switch.is_isolated()),
        disk_refuses_writes: Some(switch.disk_refuses_writes.load(Ordering::Relaxed)),
    })
}

/// `POST /debug/faults {"isolated": true|false, "disk_refuses_writes": true|false}`, for
/// tests only: sets the switches the body names and answers the state of both.
pub fn fault_routes(switch: Arc<FaultSwitch>) -> Router {
    Router::new()
        .route("/debug/faults", post(set_faults))
        .with_state(switch)
}

/// With `HOLDFAST_TEST_FAULTS` on, `HOLDFAST_TEST_CLOCK_OFFSET_MS=N` runs this node's wall
/// clock N milliseconds ahead (or behind, when negative) of the system's: a bad clock for
/// the clock guard's tests. `None` otherwise.
pub fn test_clock() -> Option<std::sync::Arc<dyn crate::replica::WallClock>> {
    if !test_faults_enabled() {
        return None;
    }
    let offset_ms: i64 = std::env::var("HOLDFAST_TEST_CLOCK_OFFSET_MS")
        .ok()?
        .parse()
        .ok()?;
    tracing::warn!(
        offset_ms,
        "HOLDFAST_TEST_CLOCK_OFFSET_MS is set: this node's clock is off on purpose"
    );
    Some(std::sync::Arc::new(OffsetClock { offset_ms }))
}

/// The system clock moved by a fixed offset (tests only).
#[derive(Debug)]
struct OffsetClock {
    offset_ms: i64,
}

impl crate::replica::WallClock for OffsetClock {
    fn now_ms(&self) -> u64 {
        crate::replica::wall_clock_ms().saturating_add_signed(self.offset_ms)
    }
}

/// Whether the test-only faults (the `/debug/faults` route, the disk switch, [`test_clock`])
/// are enabled: `HOLDFAST_TEST_FAULTS` is `1` or `true`.
pub fn test_faults_enabled() -> bool {
    std::env::var("HOLDFAST_TEST_FAULTS").is_ok_and(|value| value == "1" || value == "true")
}
