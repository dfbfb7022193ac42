//! What the node's integration tests share: a node (in-memory replica, sandbox payments)
//! serving HTTP and gRPC on one real port.

use std::sync::Arc;
use std::time::Duration;

use holdfast_node::grpc::with_grpc;
use holdfast_node::SandboxProvider;
use holdfast_node::{router, run_http, AppState, HttpConfig, LocalReplica, LocalReplicaConfig};

/// A node with the default configuration: its `http://` address, and the sender that
/// stops it (dropping it stops it too).
pub async fn serve() -> (String, tokio::sync::oneshot::Sender<()>) {
    serve_with(HttpConfig::default()).await
}

/// [`serve`] with `config`.
pub async fn serve_with(config: HttpConfig) -> (String, tokio::sync::oneshot::Sender<()>) {
    let replica = LocalReplica::shared(LocalReplicaConfig {
        min_index_wait: Duration::from_millis(50),
        ..LocalReplicaConfig::default()
    });
    let state = AppState::new(replica, Arc::new(SandboxProvider::default()), config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(run_http(
        with_grpc(router(state.clone()), state),
        listener,
        async {
            let _ = stopped.await;
        },
    ));
    (address, stop)
}
