//! The node's network seam, filled with turmoil's simulated TCP: the HTTP listener, the
//! peer listener and the connector the node dials its peers with. The node code above
//! them is the production code, unchanged.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Stream;
use holdfast_raft::transport::{ConnectFuture, Transport};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tonic::transport::server::Connected;
use tonic::transport::{Endpoint, Uri};

/// The HTTP API's listener: a turmoil listener, as axum wants one.
pub struct HttpListener(pub turmoil::net::TcpListener);

impl axum::serve::Listener for HttpListener {
    type Io = turmoil::net::TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.0.accept().await {
                Ok(accepted) => return accepted,
                // turmoil's accept fails only while the host goes down; back off a little
                // instead of spinning.
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.0.local_addr()
    }
}

/// Served by `axum::serve` as it is: turmoil's sockets need none of the real server's
/// limits, and their addresses are not the rate limit's business.
impl holdfast_node::app::HttpListener for HttpListener {}

/// One accepted peer connection, as tonic's server wants it.
pub struct PeerStream(turmoil::net::TcpStream);

impl AsyncRead for PeerStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(context, buffer)
    }
}

impl AsyncWrite for PeerStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(context, bytes)
    }

    fn poll_flush(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(context)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(context)
    }
}

impl Connected for PeerStream {
    type ConnectInfo = ();

    fn connect_info(&self) -> Self::ConnectInfo {}
}

/// The peer listener's accepted connections as a stream.
pub fn peer_incoming(
    listener: turmoil::net::TcpListener,
) -> impl Stream<Item = Result<PeerStream, io::Error>> + Send + 'static {
    futures::stream::unfold(listener, |listener| async move {
        let accepted = listener
            .accept()
            .await
            .map(|(stream, _)| PeerStream(stream));
        Some((accepted, listener))
    })
}

/// Dials peers over turmoil's network. The endpoint keeps every setting the node gave it
/// (connect timeout, request deadline, keepalive): only the socket underneath changes.
#[derive(Clone, Copy, Debug, Default)]
pub struct SimTransport;

impl Transport for SimTransport {
    fn connect(&self, endpoint: Endpoint) -> ConnectFuture {
        Box::pin(async move {
            endpoint
                .connect_with_connector(tower::service_fn(|uri: Uri| connect(uri)))
                .await
        })
    }
}

async fn connect(uri: Uri) -> io::Result<TokioIo<turmoil::net::TcpStream>> {
    let host = uri
        .host()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no host in peer uri"))?
        .to_string();
    let port = uri.port_u16().unwrap_or(80);
    let stream = turmoil::net::TcpStream::connect((host.as_str(), port)).await?;
    Ok(TokioIo::new(stream))
}
