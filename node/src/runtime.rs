//! Starting and stopping a whole Raft-backed node: the Raft member with its stores, the
//! peer gRPC listener, the HTTP API, the expiry ticker and the refund worker. `holdfast serve` runs one;
//! `holdfast dev` runs several in one process, each with its own data directory.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use holdfast_raft::{MemoryDisk, NodeInfo, PeerTls, RaftNode, RaftNodeConfig, Transport};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::expiry::{run_expiry_ticker, ExpiryConfig};
use crate::faults::{
    fault_routes, test_faults_enabled, FaultSwitch, SwitchedStream, SwitchedTransport,
};
use crate::notifier::{run_notifier_with, HttpPoster, Notifier, NotifierConfig, WebhookPoster};
use crate::payment::PaymentProvider;
use crate::payment_http::{HttpPaymentProvider, HttpProviderConfig, HttpProviderError};
use crate::raft_replica::{LeaderContact, RaftReplica, RaftReplicaConfig};
use crate::refunds::{run_refund_worker, RefundWorkerConfig};
use crate::replica::{ClockFaults, ClusterClock, MemberSpec, Replica, SystemClock, WallClock};
use crate::{router, AppState, HttpConfig, SandboxProvider};

/// Everything a Raft-backed node needs to start.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// This node's Raft id; it must match the id its data directory records.
    pub node_id: u64,
    /// The cluster this node belongs to (1 to 64 letters, digits, `.`, `_` or `-`), or
    /// `""` to resume the one the data directory records or learn one later. A data
    /// directory of another cluster refuses to open.
    pub cluster_id: String,
    /// The node's data directory (log, snapshots, meta file), created on first start.
    pub data_dir: PathBuf,
    /// The region this node advertises to the cluster (`"local"` by default), for the
    /// placement check and leader preference.
    pub region: String,
    /// The HTTP address other nodes and clients are told (defaults to the bound address).
    pub advertised_http_addr: Option<String>,
    /// The Raft address other nodes dial (defaults to the bound address).
    pub advertised_raft_addr: Option<String>,
    /// The HTTP edge: body limits, bearer keys, admission limits, server limits.
    pub http: HttpConfig,
    /// The leader's hold-expiry ticker.
    pub expiry: ExpiryConfig,
    /// The payment provider charges and refunds go through.
    pub payments: PaymentConfig,
    /// The leader's refund worker.
    pub refunds: RefundWorkerConfig,
    /// The leader's webhook notifier.
    pub notifier: NotifierConfig,
    /// The Raft-backed replica: queues, batching, timeouts, placement policy and leader
    /// regions.
    pub replica: RaftReplicaConfig,
    /// openraft's settings; `None` for Holdfast's defaults.
    pub raft: Option<openraft::Config>,
    /// Each member snapshots at its own interval (`holdfast_raft::node::staggered_snapshots`);
    /// on by default.
    pub stagger_snapshots: bool,
    /// Test-only clock faults (all off by default); see [`ClockFaults`].
    pub clock_faults: ClockFaults,
    /// The state machine's limits for a new cluster (a restored snapshot brings its own).
    pub state_machine: holdfast_statemachine::Config,
    /// Mutual TLS on the peer port (`--peer-ca`, `--peer-cert`, `--peer-key`); `None`
    /// leaves the port open to anyone who reaches it.
    pub peer_tls: Option<PeerTls>,
    /// Self-bootstrap (`--bootstrap-members`); `None` waits for `POST /cluster/init`.
    pub bootstrap: Option<BootstrapMembers>,
}

/// The cluster's first members a node bootstraps from (see `raft_replica::bootstrap`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootstrapMembers {
    /// The cluster's first members (the `--bootstrap-members` list): the listed member
    /// with the lowest id initialises the cluster with all of them; a node not listed asks
    /// a listed one to let it join.
    pub members: Vec<MemberSpec>,
    /// Whether this node, when it is not listed, joins as a voter (else as a learner).
    pub join_as_voter: bool,
}

impl NodeConfig {
    /// Defaults for one node.
    pub fn new(node_id: u64, cluster_id: &str, data_dir: PathBuf) -> NodeConfig {
        NodeConfig {
            node_id,
            cluster_id: cluster_id.to_string(),
            data_dir,
            region: "local".into(),
            advertised_http_addr: None,
            advertised_raft_addr: None,
            http: HttpConfig::default(),
            expiry: ExpiryConfig::default(),
            payments: PaymentConfig::Sandbox,
            refunds: RefundWorkerConfig::default(),
            notifier: NotifierConfig::default(),
            replica: RaftReplicaConfig::default(),
            raft: None,
            stagger_snapshots: true,
            clock_faults: ClockFaults::default(),
            state_machine: holdfast_statemachine::Config::default(),
            peer_tls: None,
            bootstrap: None,
        }
    }
}

/// Which payment provider a node uses.
#[derive(Clone, Default)]
pub enum PaymentConfig {
    /// The built-in [`SandboxProvider`] (development and tests).
    #[default]
    Sandbox,
    /// A provider speaking the Stripe-like API of [`crate::payment_http`].
    Http(HttpProviderConfig),
    /// This provider instance (the simulations share one among their nodes, as real nodes
    /// share the provider's servers).
    Shared(Arc<dyn PaymentProvider>),
}

impl std::fmt::Debug for PaymentConfig {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PaymentConfig::Sandbox => formatter.write_str("Sandbox"),
            PaymentConfig::Http(config) => formatter.debug_tuple("Http").field(config).finish(),
            PaymentConfig::Shared(provider) => formatter
                .debug_tuple("Shared")
                .field(&provider.name())
                .finish(),
        }
    }
}

impl PaymentConfig {
    /// The provider this configuration names.
    pub fn provider(&self) -> Result<Arc<dyn PaymentProvider>, HttpProviderError> {
        Ok(match self {
            PaymentConfig::Sandbox => Arc::new(SandboxProvider::default()),
            PaymentConfig::Http(config) => Arc::new(HttpPaymentProvider::new(config.clone())?),
            PaymentConfig::Shared(provider) => provider.clone(),
        })
    }
}

/// Why a node did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The Raft member did not open: an invalid setting (such as the cluster id), a data
    /// directory of another node, cluster or format, or a storage failure.
    #[error(transparent)]
    Raft(#[from] holdfast_raft::Error),
    /// The configured HTTP payment provider could not be built.
    #[error(transparent)]
    Payments(#[from] HttpProviderError),
    /// A listener's bound address could not be read.
    #[error("cannot read the address of a listener: {0}")]
    Io(#[from] std::io::Error),
}

/// A node that is running. Stop it with [`RunningNode::shutdown`].
pub struct RunningNode {
    /// The node's replica, as its HTTP and gRPC edges use it.
    pub replica: RaftReplica,
    /// The address the HTTP API listener is bound to (not the advertised one).
    pub http_addr: SocketAddr,
    /// The address the peer listener is bound to (not the advertised one).
    pub raft_addr: SocketAddr,
    node: Arc<RaftNode>,
    stop: watch::Sender<bool>,
    http: JoinHandle<std::io::Result<()>>,
    peers: JoinHandle<Result<(), tonic::transport::Error>>,
    ticker: JoinHandle<()>,
    refund_worker: JoinHandle<()>,
    notifier: JoinHandle<()>,
}

/// What a node talks through, besides its data directory: the two listeners, the way it
/// dials peers and its wall clock. [`start`] builds it over the operating system's TCP and
/// clock; a simulation (`holdfast-sim`) builds it over turmoil's network and its own clocks
/// and runs exactly the same node.
pub struct NodeIo<HttpListener, RaftIncoming> {
    /// Accepts HTTP API connections.
    pub http_listener: HttpListener,
    /// The address `http_listener` is bound to.
    pub http_addr: SocketAddr,
    /// Accepted peer connections (Raft RPC and the peer booking service).
    pub raft_incoming: RaftIncoming,
    /// The address the peer listener is bound to.
    pub raft_addr: SocketAddr,
    /// How this node dials its peers.
    pub transport: Arc<dyn Transport>,
    /// The wall clock the leader stamps cluster time from.
    pub clock: Arc<dyn WallClock>,
    /// Simulations only: keep the log and snapshots on this in-memory disk instead of in
    /// the data directory. See `holdfast_raft::memory`.
    pub memory_disk: Option<MemoryDisk>,
    /// Routes served before the API's (the test-only fault switch).
    pub extra_routes: Option<axum::Router>,
    /// How the notifier posts webhook deliveries; `None` for HTTP over the operating
    /// system's network ([`HttpPoster`]).
    pub webhook_poster: Option<Arc<dyn WebhookPoster>>,
    /// Tests only: while set, the log store's writes fail (see [`FaultSwitch`]).
    pub refuse_writes: Option<Arc<std::sync::atomic::AtomicBool>>,
}

/// Opens the node's data directory and starts serving on the two listeners, over the
/// operating system's TCP and clock.
pub async fn start(
    config: NodeConfig,
    http_listener: TcpListener,
    raft_listener: TcpListener,
) -> Result<RunningNode, StartError> {
    let http_addr = http_listener.local_addr()?;
    let raft_addr = raft_listener.local_addr()?;
    if config.peer_tls.is_none() {
        tracing::warn!(
            raft = %raft_addr,
            "peer TLS is off: no --peer-ca/--peer-cert/--peer-key were given, so the peer port \
             is open — anyone who reaches {raft_addr} can act as a member of this cluster \
             (propose commands, vote, replicate); keep it on a private network only"
        );
    }
    let switch = Arc::new(FaultSwitch::default());
    let switch_for_disk = switch.disk_switch();
    let incoming =
        tonic::transport::server::TcpIncoming::from(raft_listener).with_nodelay(Some(true));
    let raft_incoming = {
        let switch = switch.clone();
        incoming.map(move |stream| stream.map(|stream| SwitchedStream::new(stream, switch.clone())))
    };
    let extra_routes = test_faults_enabled().then(|| {
        tracing::warn!(
            "HOLDFAST_TEST_FAULTS is set: POST /debug/faults can cut this node off its peers"
        );
        fault_routes(switch.clone())
    });
    let io = NodeIo {
        http_listener: crate::app::without_delay(http_listener),
        http_addr,
        raft_incoming,
        raft_addr,
        transport: Arc::new(SwitchedTransport::new(switch)),
        clock: crate::faults::test_clock().unwrap_or_else(|| Arc::new(SystemClock)),
        memory_disk: None,
        extra_routes,
        webhook_poster: None,
        refuse_writes: test_faults_enabled().then(|| switch_for_disk.clone()),
    };
    start_with(config, io).await
}

/// Starts a node over the given [`NodeIo`]: the Raft member with its stores, the peer
/// listener, the HTTP API, the expiry ticker and the refund worker.
pub async fn start_with<HttpListener, RaftIncoming, Io, IoError>(
    config: NodeConfig,
    io: NodeIo<HttpListener, RaftIncoming>,
) -> Result<RunningNode, StartError>
where
    HttpListener: crate::app::HttpListener,
    RaftIncoming: futures::Stream<Item = Result<Io, IoError>> + Send + 'static,
    Io: crate::peer::PeerConnection,
    IoError: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let NodeIo {
        http_listener,
        http_addr,
        raft_incoming,
        raft_addr,
        transport,
        clock,
        memory_disk,
        extra_routes,
        webhook_poster,
        refuse_writes,
    } = io;
    let info = NodeInfo {
        raft_addr: config
            .advertised_raft_addr
            .clone()
            .unwrap_or_else(|| raft_addr.to_string()),
        http_addr: config
            .advertised_http_addr
            .clone()
            .unwrap_or_else(|| http_addr.to_string()),
        region: config.region.clone(),
        // The data directory's, filled in when the Raft node opens it.
        incarnation: 0,
    };
    let this_member = MemberSpec {
        id: config.node_id,
        raft_addr: info.raft_addr.clone(),
        http_addr: info.http_addr.clone(),
        region: info.region.clone(),
    };
    let mut raft_config = RaftNodeConfig::new(
        config.node_id,
        &config.cluster_id,
        config.data_dir.clone(),
        info,
    );
    if let Some(raft) = config.raft.clone() {
        raft_config.raft = raft;
    }
    if config.stagger_snapshots {
        raft_config.raft =
            holdfast_raft::node::staggered_snapshots(raft_config.raft, config.node_id);
    }
    raft_config.linearizable_read_timeout = config.replica.linearizable_timeout;
    raft_config.memory_disk = memory_disk;
    raft_config.refuse_writes = refuse_writes;
    raft_config.state_machine = config.state_machine.clone();
    raft_config.network.tls = config.peer_tls.clone();
    let message_bytes_max = raft_config.network.message_bytes_max;
    let payments = config.payments.provider()?;
    let node = Arc::new(RaftNode::open(raft_config, transport.clone()).await?);
    let contact = Arc::new(LeaderContact::default());
    let replica = RaftReplica::new(
        node.clone(),
        transport,
        config.replica.clone(),
        contact.clone(),
        ClusterClock::new(clock.clone(), config.clock_faults),
    );

    let (stop, stopped) = watch::channel(false);
    let stop_signal = |mut stopped: watch::Receiver<bool>| async move {
        let _ = stopped.wait_for(|stop| *stop).await;
    };
    let peers = {
        let node = node.clone();
        let replica = replica.clone();
        let shutdown = stop_signal(stopped.clone());
        tokio::spawn(async move {
            crate::peer::serve_peers(
                &node,
                replica,
                contact,
                clock,
                message_bytes_max,
                raft_incoming,
                shutdown,
            )
            .await
        })
    };
    tokio::spawn(crate::raft_replica::run_clock_sampler(
        replica.clone(),
        stopped.clone(),
    ));
    if !config.replica.leader_regions.is_empty() {
        tokio::spawn(crate::raft_replica::run_leader_preference(
            replica.clone(),
            stopped.clone(),
        ));
    }
    if let Some(bootstrap) = &config.bootstrap {
        tokio::spawn(crate::raft_replica::run_bootstrap(
            replica.clone(),
            crate::raft_replica::Bootstrap {
                members: bootstrap.members.clone(),
                this: this_member,
                join_as_voter: bootstrap.join_as_voter,
            },
            stopped.clone(),
        ));
    }
    let shared: Arc<dyn Replica> = Arc::new(replica.clone());
    let ticker = tokio::spawn(run_expiry_ticker(
        shared.clone(),
        config.expiry.clone(),
        stopped.clone(),
    ));
    let refund_worker = tokio::spawn(run_refund_worker(
        shared.clone(),
        payments.clone(),
        config.refunds.clone(),
        stopped.clone(),
    ));
    let webhook_poster = webhook_poster
        .unwrap_or_else(|| Arc::new(HttpPoster::new(config.notifier.delivery_timeout)));
    let notifier = tokio::spawn(run_notifier_with(
        shared.clone(),
        Notifier::with_poster(config.notifier.clone(), webhook_poster),
        stopped.clone(),
    ));
    let state = AppState::new(shared, payments, config.http.clone());
    let mut routes = crate::grpc::with_grpc(router(state.clone()), state.clone());
    if let Some(extra_routes) = extra_routes {
        routes = extra_routes.merge(routes);
    }
    let http_stop = {
        let state = state.clone();
        let stopping = stop_signal(stopped);
        async move {
            stopping.await;
            state.stop_streams();
        }
    };
    let http = tokio::spawn(crate::app::run_http_with(
        routes,
        http_listener,
        http_stop,
        config.http.server,
    ));
    tracing::info!(
        node_id = config.node_id,
        http = %http_addr,
        raft = %raft_addr,
        peer_tls = config.peer_tls.is_some(),
        "node started"
    );
    Ok(RunningNode {
        replica,
        http_addr,
        raft_addr,
        node,
        stop,
        http,
        peers,
        ticker,
        refund_worker,
        notifier,
    })
}

/// How often [`RunningNode::raft_failed`] looks at Raft's running state.
const RAFT_FAILED_POLL: Duration = Duration::from_millis(100);

impl RunningNode {
    /// The Raft member.
    pub fn node(&self) -> &Arc<RaftNode> {
        &self.node
    }

    /// Waits until Raft stops on a fatal error (a storage failure, say) and answers why.
    /// Such a node can neither apply nor vote any more: the caller stops it and exits,
    /// so that its supervisor sees the failure and a healthy node can take its place.
    ///
    /// It looks every [`RAFT_FAILED_POLL`] instead of waking at each change of the Raft
    /// metrics: they change several times per entry, and this future is awaited on the
    /// process's main thread (outside the worker pool), where every wake-up was a thread
    /// switch of its own (about a thousand a second per node under load).
    pub async fn raft_failed(&self) -> String {
        let metrics = self.node.metrics();
        let mut poll = tokio::time::interval(RAFT_FAILED_POLL);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            poll.tick().await;
            if let Some(fatal) = self.node.fatal() {
                return fatal;
            }
            if metrics.has_changed().is_err() {
                return "raft stopped".into();
            }
        }
    }

    /// Stops accepting requests, finishes those in flight, stops the ticker and Raft, and
    /// closes the stores. Everything acknowledged was fsynced before it was acknowledged.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        if let Ok(Err(error)) = self.http.await {
            tracing::warn!(%error, "the HTTP server stopped with an error");
        }
        let _ = self.ticker.await;
        let _ = self.refund_worker.await;
        let _ = self.notifier.await;
        if let Err(error) = self.node.shutdown().await {
            tracing::warn!(%error, "raft did not stop cleanly");
        }
        if let Ok(Err(error)) = self.peers.await {
            tracing::warn!(%error, "the peer listener stopped with an error");
        }
        tracing::info!(node_id = self.node.node_id(), "node stopped");
    }
}
