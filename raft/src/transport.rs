//! The seam between the Raft network and the sockets underneath.
//!
//! Production and the in-process harness use [`TcpTransport`]. A simulation (turmoil)
//! implements [`Transport`] with its own connector (`Endpoint::connect_with_connector`)
//! and serves [`crate::server::RaftGrpcService`] over its own listener with
//! [`crate::server::serve_incoming`]; nothing else in this crate touches a socket.

use std::future::Future;
use std::pin::Pin;

use tonic::transport::{Channel, Endpoint};

/// A boxed connect future.
pub type ConnectFuture =
    Pin<Box<dyn Future<Output = Result<Channel, tonic::transport::Error>> + Send>>;

/// Opens gRPC channels to peers.
pub trait Transport: Send + Sync + 'static {
    /// Connects to `endpoint`, which is already configured with the deadlines, keepalive
    /// and buffer settings of [`crate::NetworkConfig`].
    fn connect(&self, endpoint: Endpoint) -> ConnectFuture;
}

/// Plain TCP through the operating system.
#[derive(Clone, Copy, Debug, Default)]
pub struct TcpTransport;

impl Transport for TcpTransport {
    fn connect(&self, endpoint: Endpoint) -> ConnectFuture {
        Box::pin(async move { endpoint.connect().await })
    }
}
