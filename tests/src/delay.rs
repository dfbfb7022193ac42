//! A TCP proxy that delays every byte that passes it, in both directions and in order: a
//! link between regions for real processes on one machine (these kernels have no netem).
//!
//! Put in front of a node's peer port (and advertised as that port), it delays every
//! peer connection to the node by `delay` plus up to `jitter` each way, so a request and
//! its answer take two delays: a proxy at 15–40 ms one way gives round trips of 30–80 ms.
//! Delays never reorder bytes (a chunk is due no earlier than the one before it), and a
//! bounded queue per direction pushes back on a sender that outruns the link.

use std::time::Duration;

use anyhow::Result;
use rand::Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Chunks in flight per direction of one connection.
const CHUNKS_IN_FLIGHT_MAX: usize = 1024;

/// A running delay proxy; stops (and drops its connections) when dropped.
pub struct DelayProxy {
    /// `127.0.0.1:port` to dial instead of the target.
    pub addr: String,
    accept: JoinHandle<()>,
}

impl Drop for DelayProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Starts a proxy on 127.0.0.1 to `target` (needs a tokio runtime).
pub fn start(target: String, delay: Duration, jitter: Duration) -> Result<DelayProxy> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?.to_string();
    let listener = TcpListener::from_std(listener)?;
    let accept = tokio::spawn(async move {
        let mut connections = Vec::new();
        while let Ok((inbound, _)) = listener.accept().await {
            let target = target.clone();
            connections.retain(|task: &JoinHandle<()>| !task.is_finished());
            connections.push(tokio::spawn(async move {
                let Ok(outbound) = TcpStream::connect(&target).await else {
                    return;
                };
                let _ = inbound.set_nodelay(true);
                let _ = outbound.set_nodelay(true);
                let (in_read, in_write) = inbound.into_split();
                let (out_read, out_write) = outbound.into_split();
                let there = tokio::spawn(pump(in_read, out_write, delay, jitter));
                let back = tokio::spawn(pump(out_read, in_write, delay, jitter));
                let _ = tokio::join!(there, back);
            }));
        }
        for connection in connections {
            connection.abort();
        }
    });
    Ok(DelayProxy { addr, accept })
}

/// Copies `from` to `to`, each chunk written `delay` (+ jitter) after it was read.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    delay: Duration,
    jitter: Duration,
) {
    let (sender, mut receiver) = mpsc::channel::<(Instant, Vec<u8>)>(CHUNKS_IN_FLIGHT_MAX);
    let writer = tokio::spawn(async move {
        while let Some((due, chunk)) = receiver.recv().await {
            tokio::time::sleep_until(due).await;
            if to.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    });
    let mut last_due = Instant::now();
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let read = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(read) => read,
        };
        let extra = if jitter.is_zero() {
            Duration::ZERO
        } else {
            rand::thread_rng().gen_range(Duration::ZERO..jitter)
        };
        let due = (Instant::now() + delay + extra).max(last_due);
        last_due = due;
        if sender.send((due, buffer[..read].to_vec())).await.is_err() {
            break;
        }
    }
    drop(sender);
    let _ = writer.await;
}
