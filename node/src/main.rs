//! `holdfast`: the Holdfast node binary. A thin shell over the `holdfast_node` library.
//!
//! - `holdfast serve`: one node. With `--data-dir` and `--raft-addr` it is a Raft member
//!   persisted in RocksDB (a fresh node waits to be initialised or added; a node with data
//!   resumes by itself); with `--single-node` it is one in-memory node for experiments.
//!   Every flag can also come from a `HOLDFAST_*` environment variable or from the TOML
//!   file named by `--config` (keys are the flag names with underscores); flags and
//!   environment win over the file.
//! - `holdfast dev`: a local cluster with demo data, the README's main job.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand, ValueEnum};
use holdfast_node::auth::AuthKeys;
use holdfast_node::expiry::{run_expiry_ticker, ExpiryConfig};
use holdfast_node::notifier::{run_notifier, NotifierConfig};
use holdfast_node::refunds::{run_refund_worker, RefundWorkerConfig};
use holdfast_node::replica::{MemberSpec, Proposal};
use holdfast_node::runtime::{self, NodeConfig, PaymentConfig, RunningNode};
use holdfast_node::{
    router, AppState, HttpConfig, HttpProviderConfig, LocalReplica, LocalReplicaConfig, NodeError,
    Replica, ShutdownSignal,
};
use holdfast_raft::{ClusterCa, PeerTls};
use serde::Deserialize;
use tokio::sync::watch;

/// mimalloc instead of the system allocator: a hold makes a couple of dozen small
/// allocations, and `cargo bench -p holdfast-statemachine` applies 37–45 % more holds per
/// second with it (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(
    name = "holdfast",
    version,
    about = "Holdfast: a replicated booking cluster node"
)]
struct Cli {
    /// Log format.
    #[arg(long, env = "HOLDFAST_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Runs a node.
    Serve(Box<ServeArgs>),
    /// Runs a local cluster with demo data (each node with its own RocksDB directory).
    Dev(DevArgs),
    /// Makes a cluster CA and a peer certificate per node id, as --peer-ca, --peer-cert and
    /// --peer-key take them: ca.crt, node-<id>.crt and node-<id>.key in --out. The CA's
    /// key is not kept, so issue every id the cluster may use (ids beyond today's nodes,
    /// for the nodes a scale-up adds); a new set means a new CA on every node.
    Certs(CertsArgs),
}

/// Flags of `holdfast certs`.
#[derive(clap::Args, Debug)]
struct CertsArgs {
    /// Directory to write into (created if missing; existing files are never overwritten).
    #[arg(long)]
    out: PathBuf,
    /// Node ids, comma-separated numbers and ranges (e.g. 1-9,101-109).
    #[arg(long)]
    ids: String,
}

/// Ids one `holdfast certs` issues at most.
const CERT_IDS_MAX: usize = 1_000;

/// The ids of `--ids`: numbers and `FIRST-LAST` ranges, each at least 1.
fn parse_ids(text: &str) -> anyhow::Result<Vec<u64>> {
    let mut ids = std::collections::BTreeSet::new();
    for part in text
        .split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
    {
        let (first, last) = match part.split_once('-') {
            Some((first, last)) => (first.trim().parse::<u64>()?, last.trim().parse::<u64>()?),
            None => {
                let id = part.parse::<u64>()?;
                (id, id)
            }
        };
        if first == 0 || last < first || last - first >= CERT_IDS_MAX as u64 {
            bail!("{part:?} is not a range of node ids (ids start at 1)");
        }
        ids.extend(first..=last);
        if ids.len() > CERT_IDS_MAX {
            bail!("at most {CERT_IDS_MAX} ids at once");
        }
    }
    if ids.is_empty() {
        bail!("--ids names no node");
    }
    Ok(ids.into_iter().collect())
}

/// `holdfast certs`.
fn certs(args: CertsArgs) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let ids = parse_ids(&args.ids).context("--ids")?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let write = |name: &str, text: &str, mode: u32| -> anyhow::Result<()> {
        let path = args.out.join(name);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&path)
            .with_context(|| format!("cannot create {} (it must not exist)", path.display()))?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        Ok(())
    };
    let ca = ClusterCa::generate("holdfast cluster CA").context("cannot make the CA")?;
    write("ca.crt", ca.ca_pem(), 0o644)?;
    for id in &ids {
        let (certificate, key) = ca
            .issue(*id)
            .with_context(|| format!("cannot issue node {id}'s certificate"))?;
        write(&format!("node-{id}.crt"), &certificate, 0o644)?;
        write(&format!("node-{id}.key"), &key, 0o600)?;
    }
    println!(
        "wrote ca.crt and the certificates and keys of {} node ids to {}",
        ids.len(),
        args.out.display()
    );
    Ok(())
}

/// Flags of `holdfast serve`. Every one is optional here so that the config file can fill
/// what the command line and the environment leave out; defaults apply last.
#[derive(clap::Args, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServeArgs {
    /// TOML file with any of these settings (keys are the flag names with underscores).
    #[arg(long, env = "HOLDFAST_CONFIG")]
    #[serde(skip)]
    config: Option<PathBuf>,
    /// This node's id (never reused within a cluster) [default: 1].
    #[arg(long, env = "HOLDFAST_ID")]
    id: Option<u64>,
    /// Address of the HTTP API [default: 127.0.0.1:7001].
    #[arg(long, env = "HOLDFAST_HTTP_ADDR")]
    http_addr: Option<SocketAddr>,
    /// Address of the node-to-node Raft listener [default: 127.0.0.1:7101].
    #[arg(long, env = "HOLDFAST_RAFT_ADDR")]
    raft_addr: Option<SocketAddr>,
    /// HTTP address told to other nodes, when it differs from --http-addr.
    #[arg(long, env = "HOLDFAST_ADVERTISE_HTTP_ADDR")]
    advertise_http_addr: Option<String>,
    /// Raft address told to other nodes, when it differs from --raft-addr.
    #[arg(long, env = "HOLDFAST_ADVERTISE_RAFT_ADDR")]
    advertise_raft_addr: Option<String>,
    /// Data directory (RocksDB log, snapshots, node identity).
    #[arg(long, env = "HOLDFAST_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Cluster id, recorded in the data directory [default: the recorded one; on a fresh
    /// directory, the random id `POST /cluster/init` generates, or the id of the cluster
    /// whose leader first reaches the node]. A node refuses a directory of another cluster
    /// and the calls of other clusters' nodes.
    #[arg(long, env = "HOLDFAST_CLUSTER_ID")]
    cluster_id: Option<String>,
    /// Region or zone label [default: local].
    #[arg(long, env = "HOLDFAST_REGION")]
    region: Option<String>,
    /// Run one in-memory node without Raft: not replicated, not durable (experiments).
    #[arg(long, env = "HOLDFAST_SINGLE_NODE")]
    #[serde(default)]
    single_node: bool,
    /// Bearer keys file (`ROLE KEY [CUSTOMER_ID]` per line; roles customer, admin,
    /// operator, monitor); without one the API is open.
    #[arg(long, env = "HOLDFAST_AUTH_KEYS")]
    auth_keys: Option<PathBuf>,
    /// Reads (GET) per second per caller (its key, else its address); over it 429
    /// RATE_LIMITED; 0 = no limit [default: 100000].
    #[arg(long, env = "HOLDFAST_RATE_LIMIT_READS")]
    rate_limit_reads: Option<u32>,
    /// Writes per second per caller (its key, else its address); over it 429
    /// RATE_LIMITED; 0 = no limit [default: 20000].
    #[arg(long, env = "HOLDFAST_RATE_LIMIT_WRITES")]
    rate_limit_writes: Option<u32>,
    /// Holds one customer id may place a minute (in a burst of as many); over it 429
    /// RATE_LIMITED; 0 = no limit [default: 600].
    #[arg(long, env = "HOLDFAST_HOLDS_PER_MINUTE_PER_CUSTOMER")]
    holds_per_minute_per_customer: Option<u32>,
    /// Holds one caller (its key, else its address) may place a minute whatever customer
    /// ids it names; over it 429 RATE_LIMITED. Off by default (0): a front end or proxy
    /// places everyone's holds from one address; set it where clients reach the nodes
    /// directly.
    #[arg(long, env = "HOLDFAST_HOLDS_PER_MINUTE_PER_CALLER")]
    holds_per_minute_per_caller: Option<u32>,
    /// HTTP requests served at once; beyond it 503 OVERLOADED; 0 = no cap [default: 8192].
    #[arg(long, env = "HOLDFAST_REQUESTS_IN_FLIGHT_MAX")]
    requests_in_flight_max: Option<usize>,
    /// HTTP connections open at once; further ones wait to be accepted [default: 10000].
    #[arg(long, env = "HOLDFAST_CONNECTIONS_MAX")]
    connections_max: Option<usize>,
    /// How often the leader looks for holds that are due to expire, in ms [default: 1000].
    #[arg(long, env = "HOLDFAST_EXPIRY_CHECK_INTERVAL_MS")]
    expiry_check_interval_ms: Option<u64>,
    /// Holds ended by one expiry entry at most [default: 1000].
    #[arg(long, env = "HOLDFAST_EXPIRY_HOLDS_PER_ENTRY_MAX")]
    expiry_holds_per_entry_max: Option<u32>,
    /// Proposals waiting at once before the node answers 503 OVERLOADED [default: 16384].
    #[arg(long, env = "HOLDFAST_PROPOSALS_QUEUED_MAX")]
    proposals_queued_max: Option<usize>,
    /// Client commands committed in one Raft entry at most [default: 512].
    #[arg(long, env = "HOLDFAST_BATCH_ENTRIES_MAX")]
    batch_entries_max: Option<usize>,
    /// Raft entries of client commands proposed and not yet committed at once; while they
    /// commit, new commands gather into the next entry [default: 1].
    #[arg(long, env = "HOLDFAST_BATCHES_IN_FLIGHT_MAX")]
    batches_in_flight_max: Option<usize>,
    /// On a follower: groups of writes forwarded to the leader and not yet answered, at
    /// once; the leader coalesces them into its own entries [default: 8].
    #[arg(long, env = "HOLDFAST_FORWARDS_IN_FLIGHT_MAX")]
    forwards_in_flight_max: Option<usize>,
    /// On a follower: while a forward is out, another is sent only once this many commands
    /// wait; fewer gather until the one out is answered [default: 128].
    #[arg(long, env = "HOLDFAST_FORWARD_OVERLAP_COMMANDS")]
    forward_overlap_commands: Option<usize>,
    /// Raft heartbeat interval in ms; an AppendEntries call fails after one interval, so it
    /// must exceed the slowest round trip between voters plus an fsync [default: 250].
    /// The same on every node.
    #[arg(long, env = "HOLDFAST_RAFT_HEARTBEAT_MS")]
    raft_heartbeat_ms: Option<u64>,
    /// Shortest Raft election timeout in ms (the longest, which is also the leader's lease,
    /// is one and a half times it); at least twice the heartbeat interval. Failover takes
    /// about three times it [default: 500]. The same on every node.
    #[arg(long, env = "HOLDFAST_RAFT_ELECTION_TIMEOUT_MS")]
    raft_election_timeout_ms: Option<u64>,
    /// What a membership change that leaves the voters unable to survive the loss of one
    /// region does (members in three or more regions): warn, refuse (when they survive it
    /// today) or off [default: warn].
    #[arg(long, env = "HOLDFAST_PLACEMENT")]
    placement: Option<String>,
    /// Regions the leader should be in, most preferred first, comma-separated; the same on
    /// every node. A leader elsewhere hands leadership to a caught-up voter of a more
    /// preferred region [default: none].
    #[arg(long, env = "HOLDFAST_LEADER_REGIONS", value_delimiter = ',')]
    leader_regions: Option<Vec<String>>,
    /// How long a leader leads, and a voter of a preferred region stays caught up, before
    /// leadership moves to it, in ms [default: 30000].
    #[arg(long, env = "HOLDFAST_LEADER_PREFERENCE_DELAY_MS")]
    leader_preference_delay_ms: Option<u64>,
    /// JSON file of the cluster's first members (`{"members": [...]}`, as `POST
    /// /cluster/init` takes it): the listed nodes form the cluster by themselves and a node
    /// not listed joins it (see deploy/README.md) [default: none, initialise by hand].
    #[arg(long, env = "HOLDFAST_BOOTSTRAP_MEMBERS")]
    bootstrap_members: Option<PathBuf>,
    /// What a node not in --bootstrap-members joins as: voter or learner [default: voter].
    #[arg(long, env = "HOLDFAST_BOOTSTRAP_JOIN_AS")]
    bootstrap_join_as: Option<String>,
    /// How far ahead of the time its voters' clocks agree on a leader may stamp entries, in
    /// ms; a leader whose clock runs further ahead stamps the agreed time [default: 1000].
    #[arg(long, env = "HOLDFAST_CLOCK_TOLERANCE_MS")]
    clock_tolerance_ms: Option<u64>,
    /// PEM file of the cluster CA: the peer port accepts only peers whose certificate it
    /// signed, and this node dials only peers whose certificate it signed. With
    /// --peer-cert and --peer-key; without the three the peer port is open.
    #[arg(long, env = "HOLDFAST_PEER_CA")]
    peer_ca: Option<PathBuf>,
    /// PEM file of this node's certificate (chain), signed by the cluster CA, naming
    /// `holdfast-node-<id>` as a DNS subject alternative name.
    #[arg(long, env = "HOLDFAST_PEER_CERT")]
    peer_cert: Option<PathBuf>,
    /// PEM file of this node's private key.
    #[arg(long, env = "HOLDFAST_PEER_KEY")]
    peer_key: Option<PathBuf>,
    /// Payment provider: sandbox (test tokens) or http (the Stripe-like API at
    /// --payment-url) [default: sandbox]. A Raft node refuses the sandbox unless
    /// --allow-sandbox-payments is given.
    #[arg(long, env = "HOLDFAST_PAYMENT_PROVIDER")]
    payment_provider: Option<String>,
    /// Let a Raft node take payments with the sandbox provider, which accepts public test
    /// tokens and charges nothing: for test and demo clusters only (`holdfast dev` and
    /// --single-node use it without asking).
    #[arg(long, env = "HOLDFAST_ALLOW_SANDBOX_PAYMENTS")]
    #[serde(default)]
    allow_sandbox_payments: bool,
    /// Let the kernel back this node's memory with transparent huge pages. Off by default:
    /// the state grows with every hold, and a huge page is cleared (and, with the kernel's
    /// default `defrag` setting, compacted for) all at once on first touch, which stalled
    /// apply and every answer behind it for milliseconds at a time (BENCHMARKS.md,
    /// 2026-12-05 late evening).
    #[arg(long, env = "HOLDFAST_TRANSPARENT_HUGE_PAGES")]
    #[serde(default)]
    transparent_huge_pages: bool,
    /// Base URL of the http payment provider.
    #[arg(long, env = "HOLDFAST_PAYMENT_URL")]
    payment_url: Option<String>,
    /// Bearer secret of the http payment provider (prefer the environment variable).
    #[arg(long, env = "HOLDFAST_PAYMENT_SECRET", hide_env_values = true)]
    payment_secret: Option<String>,
    /// Time for one call to the http payment provider, in ms [default: 10000].
    #[arg(long, env = "HOLDFAST_PAYMENT_TIMEOUT_MS")]
    payment_timeout_ms: Option<u64>,
    /// Change streams served at once, `GET /changes` and gRPC `WatchChanges` together;
    /// beyond it 503 OVERLOADED [default: 256].
    #[arg(long, env = "HOLDFAST_CHANGE_STREAMS_MAX")]
    change_streams_max: Option<usize>,
    /// How often the leader looks for refunds to pay, in ms [default: 1000].
    #[arg(long, env = "HOLDFAST_REFUND_CHECK_INTERVAL_MS")]
    refund_check_interval_ms: Option<u64>,
    /// Attempts to pay a refund before it is given up as FAILED [default: 8].
    #[arg(long, env = "HOLDFAST_REFUND_ATTEMPTS_MAX")]
    refund_attempts_max: Option<u32>,
    /// Wait after a refund's first failed attempt, doubled after each further one, in ms
    /// [default: 2000].
    #[arg(long, env = "HOLDFAST_REFUND_RETRY_BASE_MS")]
    refund_retry_base_ms: Option<u64>,
    /// Longest wait between two attempts to pay a refund, in ms [default: 600000].
    #[arg(long, env = "HOLDFAST_REFUND_RETRY_MAX_MS")]
    refund_retry_max_ms: Option<u64>,
    /// Age of a charge intent after which the leader settles it itself, because the
    /// confirm that recorded it stopped between the provider and the log: it books or
    /// refunds the charge the provider made under the intent's key, or drops the intent.
    /// Keep it above the payment timeout, in ms [default: 60000].
    #[arg(long, env = "HOLDFAST_CHARGE_RECONCILE_AFTER_MS")]
    charge_reconcile_after_ms: Option<u64>,
    /// What a node does when its Raft stops on a fatal storage error (a full disk, an I/O
    /// error): `exit` (non-zero, for its supervisor to see) or `read-only` (stay up serving
    /// stale reads of what it has; writes and consistent reads answer 503 NOT_READY,
    /// /readyz 503, /healthz says read_only) [default: exit].
    #[arg(long, env = "HOLDFAST_ON_STORAGE_FAILURE", value_parser = ["exit", "read-only"])]
    on_storage_failure: Option<String>,
}

impl ServeArgs {
    /// openraft's settings when a timer flag is given (`None`: the defaults).
    fn raft_timers(&self, cluster_id: &str) -> anyhow::Result<Option<openraft::Config>> {
        if self.raft_heartbeat_ms.is_none() && self.raft_election_timeout_ms.is_none() {
            return Ok(None);
        }
        let heartbeat_ms = self
            .raft_heartbeat_ms
            .unwrap_or(holdfast_raft::node::HEARTBEAT_MS_DEFAULT);
        let election_ms = self
            .raft_election_timeout_ms
            .unwrap_or(holdfast_raft::node::ELECTION_TIMEOUT_MS_DEFAULT);
        anyhow::ensure!(
            (10..=60_000).contains(&heartbeat_ms),
            "--raft-heartbeat-ms must be within 10..=60000"
        );
        anyhow::ensure!(
            election_ms >= heartbeat_ms.saturating_mul(2) && election_ms <= 600_000,
            "--raft-election-timeout-ms must be at least twice --raft-heartbeat-ms ({heartbeat_ms}) and at most 600000"
        );
        let config = holdfast_raft::node::raft_config(cluster_id, heartbeat_ms, election_ms)
            .validate()
            .map_err(|error| anyhow::anyhow!("invalid Raft timers: {error}"))?;
        Ok(Some(config))
    }

    /// `--bootstrap-members` and `--bootstrap-join-as`, read and checked.
    fn bootstrap(&self) -> anyhow::Result<Option<runtime::BootstrapMembers>> {
        let join_as_voter = match self.bootstrap_join_as.as_deref() {
            None | Some("voter") => true,
            Some("learner") => false,
            Some(other) => {
                anyhow::bail!("--bootstrap-join-as must be voter or learner, not {other:?}")
            }
        };
        let Some(path) = &self.bootstrap_members else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the members file {}", path.display()))?;
        let members = holdfast_node::cluster::parse_members(&text)
            .map_err(|error| anyhow::anyhow!("{}: {}", path.display(), error.message))?;
        Ok(Some(runtime::BootstrapMembers {
            members,
            join_as_voter,
        }))
    }

    /// Fills what the command line and environment left out from the config file.
    fn merge_file(mut self) -> anyhow::Result<ServeArgs> {
        let Some(path) = self.config.clone() else {
            return Ok(self);
        };
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read the config file {}", path.display()))?;
        let file: ServeArgs = toml::from_str(&text)
            .with_context(|| format!("invalid config file {}", path.display()))?;
        macro_rules! fill {
            ($($field:ident),*) => { $( if self.$field.is_none() { self.$field = file.$field; } )* };
        }
        fill!(
            id,
            http_addr,
            raft_addr,
            advertise_http_addr,
            advertise_raft_addr,
            data_dir,
            cluster_id,
            region,
            auth_keys,
            rate_limit_reads,
            rate_limit_writes,
            holds_per_minute_per_customer,
            holds_per_minute_per_caller,
            requests_in_flight_max,
            connections_max,
            expiry_check_interval_ms,
            expiry_holds_per_entry_max,
            proposals_queued_max,
            batch_entries_max,
            batches_in_flight_max,
            forwards_in_flight_max,
            forward_overlap_commands,
            raft_heartbeat_ms,
            raft_election_timeout_ms,
            placement,
            clock_tolerance_ms,
            bootstrap_members,
            bootstrap_join_as,
            leader_regions,
            leader_preference_delay_ms,
            peer_ca,
            peer_cert,
            peer_key,
            payment_provider,
            payment_url,
            payment_secret,
            payment_timeout_ms,
            refund_check_interval_ms,
            refund_attempts_max,
            refund_retry_base_ms,
            refund_retry_max_ms,
            charge_reconcile_after_ms,
            change_streams_max
        );
        self.single_node |= file.single_node;
        self.allow_sandbox_payments |= file.allow_sandbox_payments;
        self.transparent_huge_pages |= file.transparent_huge_pages;
        Ok(self)
    }

    fn expiry(&self) -> ExpiryConfig {
        ExpiryConfig {
            check_interval: Duration::from_millis(
                self.expiry_check_interval_ms.unwrap_or(1_000).max(1),
            ),
            holds_per_entry_max: self.expiry_holds_per_entry_max.unwrap_or(1_000).max(1),
        }
    }

    /// The peer port's mutual TLS from the three PEM files; all three or none.
    fn peer_tls(&self) -> anyhow::Result<Option<PeerTls>> {
        match (&self.peer_ca, &self.peer_cert, &self.peer_key) {
            (None, None, None) => Ok(None),
            (Some(ca), Some(cert), Some(key)) => {
                let tls = PeerTls::load(ca, cert, key).context("cannot load the peer TLS files")?;
                tracing::info!(ca = %ca.display(), cert = %cert.display(), "peer TLS is on");
                Ok(Some(tls))
            }
            _ => bail!("--peer-ca, --peer-cert and --peer-key go together: give all three or none"),
        }
    }

    fn payments(&self) -> anyhow::Result<PaymentConfig> {
        match self.payment_provider.as_deref().unwrap_or("sandbox") {
            "sandbox" if self.single_node || self.allow_sandbox_payments => {
                tracing::warn!(
                    "payments go to the sandbox provider: test tokens, nothing is charged"
                );
                Ok(PaymentConfig::Sandbox)
            }
            "sandbox" => bail!(
                "the sandbox payment provider accepts public test tokens and charges nothing, \
                 so holdfast serve refuses it outside development: configure a real provider \
                 (--payment-provider http --payment-url URL, with HOLDFAST_PAYMENT_SECRET), or \
                 pass --allow-sandbox-payments (HOLDFAST_ALLOW_SANDBOX_PAYMENTS=true) for a test \
                 or demo cluster"
            ),
            "http" => {
                let Some(url) = &self.payment_url else {
                    bail!("--payment-provider http needs --payment-url");
                };
                let secret = self.payment_secret.clone().unwrap_or_default();
                if secret.is_empty() {
                    tracing::warn!("the http payment provider has no secret (--payment-secret)");
                }
                let mut config = HttpProviderConfig::new(url, &secret);
                if let Some(timeout_ms) = self.payment_timeout_ms {
                    config.request_timeout = Duration::from_millis(timeout_ms.max(1));
                }
                Ok(PaymentConfig::Http(config))
            }
            other => bail!("unknown --payment-provider {other}: use sandbox or http"),
        }
    }

    fn refunds(&self) -> RefundWorkerConfig {
        let defaults = RefundWorkerConfig::default();
        let millis = |value: Option<u64>, default: Duration| {
            value.map_or(default, |ms| Duration::from_millis(ms.max(1)))
        };
        RefundWorkerConfig {
            check_interval: millis(self.refund_check_interval_ms, defaults.check_interval),
            attempts_max: self
                .refund_attempts_max
                .unwrap_or(defaults.attempts_max)
                .max(1),
            retry_base: millis(self.refund_retry_base_ms, defaults.retry_base),
            retry_max: millis(self.refund_retry_max_ms, defaults.retry_max),
            intent_reconcile_after: millis(
                self.charge_reconcile_after_ms,
                defaults.intent_reconcile_after,
            ),
            ..defaults
        }
    }

    fn http_config(&self) -> anyhow::Result<HttpConfig> {
        let auth_keys = match &self.auth_keys {
            Some(path) => {
                let keys = AuthKeys::load(path)?;
                tracing::info!(keys = keys.len(), file = %path.display(), "authentication is on");
                Some(Arc::new(keys))
            }
            None => {
                tracing::warn!(
                    "authentication is off: no --auth-keys file was given, the API is open"
                );
                None
            }
        };
        let defaults = holdfast_node::rate::AdmissionConfig::default();
        let admission = holdfast_node::rate::AdmissionConfig {
            reads_per_second: self.rate_limit_reads.unwrap_or(defaults.reads_per_second),
            writes_per_second: self.rate_limit_writes.unwrap_or(defaults.writes_per_second),
            requests_in_flight_max: self
                .requests_in_flight_max
                .unwrap_or(defaults.requests_in_flight_max),
            holds_per_minute_per_customer: self
                .holds_per_minute_per_customer
                .unwrap_or(defaults.holds_per_minute_per_customer),
            holds_per_minute_per_caller: self
                .holds_per_minute_per_caller
                .unwrap_or(defaults.holds_per_minute_per_caller),
        };
        let server = holdfast_node::app::ServerLimits {
            connections_max: self
                .connections_max
                .unwrap_or(holdfast_node::app::CONNECTIONS_MAX_DEFAULT)
                .max(1),
            ..Default::default()
        };
        let mut config = HttpConfig {
            auth_keys,
            admission,
            server,
            ..HttpConfig::default()
        };
        if let Some(streams) = self.change_streams_max {
            config.change_streams_max = streams;
        }
        Ok(config)
    }
}

#[derive(clap::Args, Debug)]
struct DevArgs {
    /// Nodes in the local cluster.
    #[arg(long, env = "HOLDFAST_DEV_NODES", default_value_t = 3)]
    nodes: u64,
    /// Node N listens for HTTP on BASE+N and for Raft on BASE+100+N.
    #[arg(long, env = "HOLDFAST_DEV_BASE_PORT", default_value_t = 7000)]
    base_port: u16,
    /// Where the nodes keep their data; a second run resumes it.
    #[arg(long, env = "HOLDFAST_DEV_DATA_DIR", default_value = ".holdfast-dev")]
    data_dir: PathBuf,
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=warn"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn bind(address: SocketAddr, what: &str) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen for {what} on {address}"))
}

async fn serve(args: ServeArgs, signal: ShutdownSignal) -> anyhow::Result<()> {
    let args = args.merge_file()?;
    // Before the state is built: every allocation from here on is the state's.
    transparent_huge_pages(args.transparent_huge_pages);
    if args.single_node {
        return serve_single_node(args, signal).await;
    }
    let Some(data_dir) = args.data_dir.clone() else {
        bail!("--data-dir is required (or --single-node for an in-memory node without Raft)");
    };
    // Before anything is opened: a node that would take fake payments does not start.
    let payments = args.payments()?;
    let http_addr = args
        .http_addr
        .unwrap_or_else(|| "127.0.0.1:7001".parse().expect("valid address"));
    let raft_addr = args
        .raft_addr
        .unwrap_or_else(|| "127.0.0.1:7101".parse().expect("valid address"));
    // Without --cluster-id a node resumes the cluster its directory records; a fresh one
    // belongs to no cluster until it initialises one (`POST /cluster/init` generates a
    // random id) or a cluster's leader reaches it.
    let cluster_id = match &args.cluster_id {
        Some(cluster_id) => cluster_id.clone(),
        None => holdfast_raft::DataDir::recorded_cluster_id(&data_dir)
            .context("cannot read the data directory")?
            .unwrap_or_default(),
    };
    if cluster_id.is_empty() {
        tracing::info!(
            "no --cluster-id and a fresh data directory: this node takes a random cluster id \
             when it initialises a cluster (POST /cluster/init), or the id of the cluster whose \
             leader first reaches it"
        );
    }
    let mut config = NodeConfig::new(args.id.unwrap_or(1), &cluster_id, data_dir);
    config.region = args.region.clone().unwrap_or_else(|| "local".into());
    config.advertised_http_addr = args.advertise_http_addr.clone();
    config.advertised_raft_addr = args.advertise_raft_addr.clone();
    config.http = args.http_config()?;
    config.peer_tls = args.peer_tls()?;
    config.expiry = args.expiry();
    config.payments = payments;
    config.refunds = args.refunds();
    if let Some(queued) = args.proposals_queued_max {
        config.replica.proposals_queued_max = queued.max(1);
    }
    if let Some(batch) = args.batch_entries_max {
        config.replica.batch_entries_max = batch.max(1);
    }
    if let Some(in_flight) = args.batches_in_flight_max {
        config.replica.batches_in_flight_max = in_flight.max(1);
    }
    if let Some(in_flight) = args.forwards_in_flight_max {
        config.replica.forwards_in_flight_max = in_flight.max(1);
    }
    if let Some(overlap) = args.forward_overlap_commands {
        config.replica.forward_overlap_commands = overlap.max(1);
    }
    if let Some(placement) = &args.placement {
        config.replica.placement = placement
            .parse()
            .map_err(|error: String| anyhow::anyhow!(error))?;
    }
    if let Some(regions) = &args.leader_regions {
        config.replica.leader_regions = regions
            .iter()
            .map(|region| region.trim().to_owned())
            .filter(|region| !region.is_empty())
            .collect();
    }
    if let Some(tolerance_ms) = args.clock_tolerance_ms {
        config.replica.clock_tolerance = Duration::from_millis(tolerance_ms);
    }
    if let Some(delay_ms) = args.leader_preference_delay_ms {
        config.replica.leader_preference_delay = Duration::from_millis(delay_ms);
    }
    config.bootstrap = args.bootstrap()?;
    if let Some(raft) = args.raft_timers(&cluster_id)? {
        // A follower believes in its leader for as long as the leader's lease runs.
        config.replica.leader_contact_max = Duration::from_millis(raft.election_timeout_max);
        config.raft = Some(raft);
    }
    let read_only_on_failure = args.on_storage_failure.as_deref() == Some("read-only");
    let http_listener = bind(http_addr, "HTTP").await?;
    let raft_listener = bind(raft_addr, "Raft").await?;
    let node = runtime::start(config, http_listener, raft_listener)
        .await
        .context("the node could not start")?;
    tracing::info!(http = %format!("http://{}", node.http_addr), raft = %node.raft_addr, "holdfast is serving");
    let stopped = signal.recv();
    tokio::pin!(stopped);
    tokio::select! {
        () = &mut stopped => {}
        reason = node.raft_failed() => {
            // A node whose Raft stopped (a disk that refuses writes, say) can neither
            // apply nor vote: stop serving and exit non-zero, so that the supervisor sees
            // it, instead of answering reads from a state that no longer moves — unless
            // the operator asked it to stay up for stale reads.
            if read_only_on_failure {
                tracing::error!(
                    %reason,
                    "raft stopped on a fatal error: staying up read-only (stale reads of what \
                     this node has; writes and consistent reads answer 503 NOT_READY) until stopped"
                );
                stopped.await;
            } else {
                tracing::error!(%reason, "raft stopped on a fatal error: stopping this node");
                node.shutdown().await;
                bail!("raft stopped on a fatal error: {reason}");
            }
        }
    }
    node.shutdown().await;
    tracing::info!("stopped cleanly");
    Ok(())
}

async fn serve_single_node(args: ServeArgs, signal: ShutdownSignal) -> anyhow::Result<()> {
    if args.raft_addr.is_some() || args.data_dir.is_some() {
        tracing::warn!("--raft-addr and --data-dir are ignored in single-node mode");
    }
    tracing::warn!(
        "single-node mode: the state lives in memory only, is not replicated and is lost on exit"
    );
    let http_addr = args
        .http_addr
        .unwrap_or_else(|| "127.0.0.1:7001".parse().expect("valid address"));
    let listener = bind(http_addr, "HTTP").await?;
    let local_addr = listener.local_addr()?;
    let replica = LocalReplica::shared(LocalReplicaConfig {
        node_id: args.id.unwrap_or(1),
        http_addr: local_addr.to_string(),
        region: args.region.clone().unwrap_or_else(|| "local".into()),
        ..LocalReplicaConfig::default()
    });
    let replica: Arc<dyn Replica> = replica;
    let payments = args.payments()?.provider()?;
    let state = AppState::new(replica.clone(), payments.clone(), args.http_config()?);
    let (stop_ticker, ticker_stopped) = watch::channel(false);
    let refund_worker = tokio::spawn(run_refund_worker(
        replica.clone(),
        payments,
        args.refunds(),
        ticker_stopped.clone(),
    ));
    let notifier = tokio::spawn(run_notifier(
        replica.clone(),
        NotifierConfig::default(),
        ticker_stopped.clone(),
    ));
    let ticker = tokio::spawn(run_expiry_ticker(replica, args.expiry(), ticker_stopped));
    tracing::info!(http = %format!("http://{local_addr}"), "holdfast is serving");
    let stop_streams = {
        let state = state.clone();
        async move {
            signal.recv().await;
            state.stop_streams();
        }
    };
    let limits = state.config.server;
    holdfast_node::app::run_http_with(
        holdfast_node::grpc::with_grpc(router(state.clone()), state),
        holdfast_node::app::without_delay(listener),
        stop_streams,
        limits,
    )
    .await
    .context("the HTTP server failed")?;
    let _ = stop_ticker.send(true);
    ticker.await.context("the expiry ticker panicked")?;
    refund_worker.await.context("the refund worker panicked")?;
    notifier.await.context("the notifier panicked")?;
    tracing::info!("stopped cleanly");
    Ok(())
}

fn dev_addresses(args: &DevArgs, id: u64) -> anyhow::Result<(SocketAddr, SocketAddr)> {
    let port = |offset: u64| -> anyhow::Result<u16> {
        u16::try_from(u64::from(args.base_port) + offset)
            .context("--base-port leaves no room for the node ports")
    };
    Ok((
        SocketAddr::from(([127, 0, 0, 1], port(id)?)),
        SocketAddr::from(([127, 0, 0, 1], port(100 + id)?)),
    ))
}

async fn start_dev_node(
    args: &DevArgs,
    id: u64,
    data_dir: &Path,
    ca: &ClusterCa,
) -> anyhow::Result<RunningNode> {
    let (http_addr, raft_addr) = dev_addresses(args, id)?;
    let mut config = NodeConfig::new(id, "holdfast-dev", data_dir.join(format!("node-{id}")));
    config.region = format!("dev-{}", (id - 1) % 3 + 1);
    config.peer_tls = Some(
        ca.peer_tls(id)
            .context("cannot make a dev node certificate")?,
    );
    let http_listener = bind(http_addr, "HTTP").await?;
    let raft_listener = bind(raft_addr, "Raft").await?;
    runtime::start(config, http_listener, raft_listener)
        .await
        .with_context(|| format!("node {id} could not start"))
}

async fn wait_for_leader(node: &RunningNode) -> anyhow::Result<()> {
    for _ in 0..300 {
        if node.replica.status().leader_id.is_some() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("no leader was elected within 30 s")
}

async fn dev(args: DevArgs, signal: ShutdownSignal) -> anyhow::Result<()> {
    if args.nodes == 0 || args.nodes > 9 {
        bail!("--nodes must be 1 to 9");
    }
    transparent_huge_pages(false);
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("cannot create {}", args.data_dir.display()))?;
    let data_dir = args.data_dir.canonicalize()?;
    // The nodes talk over mutual TLS, with a CA made for this run and kept in memory only:
    // nothing outside this process can join the dev cluster's peer ports.
    let ca = ClusterCa::generate("holdfast dev cluster CA").context("cannot make the dev CA")?;
    let mut nodes = Vec::new();
    for id in 1..=args.nodes {
        nodes.push(start_dev_node(&args, id, &data_dir, &ca).await?);
    }
    let first = &nodes[0];
    let members: Vec<MemberSpec> = nodes
        .iter()
        .enumerate()
        .map(|(position, node)| MemberSpec {
            id: position as u64 + 1,
            raft_addr: node.raft_addr.to_string(),
            http_addr: node.http_addr.to_string(),
            region: format!("dev-{}", position % 3 + 1),
        })
        .collect();
    match first.replica.initialize(members).await {
        Ok(()) => tracing::info!("initialised a new cluster of {} nodes", args.nodes),
        Err(NodeError::AlreadyInitialized) => {
            tracing::info!("resuming the cluster in {}", data_dir.display())
        }
        Err(error) => bail!("cannot initialise the cluster: {error}"),
    }
    wait_for_leader(first).await?;
    load_demo_data(first).await?;

    let http = |id: usize| format!("http://{}", nodes[id].http_addr);
    println!();
    println!(
        "Holdfast dev cluster: {} nodes, data in {}",
        args.nodes,
        data_dir.display()
    );
    for (position, node) in nodes.iter().enumerate() {
        println!(
            "  node {}  http://{}  (raft {}, mutual TLS)",
            position + 1,
            node.http_addr,
            node.raft_addr
        );
    }
    let any = http(nodes.len() - 1);
    println!();
    println!("Dashboard: {}/ui (any node's /ui)", http(0));
    println!();
    println!("Try:");
    println!("  curl -s '{any}/events?city=lyon'");
    println!("  curl -s '{any}/events?category=hotel&min_available=1'");
    println!("  curl -s '{any}/availability?event_id=cinema-dune&view=summary'");
    println!("  curl -s '{any}/availability?event_id=cinema-dune&section=PREMIUM&limit=5'");
    println!("  curl -s -X POST {any}/booking/hold -H 'Idempotency-Key: demo-1' -H 'content-type: application/json' \\");
    println!("       -d '{{\"event_id\":\"cinema-dune\",\"customer_id\":\"c-42\",\"best_available\":{{\"count\":2,\"section\":\"STALLS\"}}}}'");
    println!("  curl -s -X POST {any}/booking/confirm -H 'Idempotency-Key: demo-2' -H 'content-type: application/json' \\");
    println!("       -d '{{\"hold_id\":\"h_1\",\"payment\":{{\"method\":\"card\",\"token\":\"tok_visa\"}}}}'");
    println!("  curl -s -X POST {any}/booking/hold -H 'content-type: application/json' \\");
    println!("       -d '{{\"event_id\":\"concert-aurora\",\"customer_id\":\"c-7\",\"pools\":[{{\"pool_id\":\"GA\",\"quantity\":2}}]}}'");
    println!("  curl -s {}/cluster/status", http(0));
    println!("  curl -s {}/metrics | grep holdfast_", http(0));
    println!();
    println!("Ctrl-C stops the cluster; running this again resumes the same data.");

    signal.recv().await;
    for node in nodes {
        node.shutdown().await;
    }
    println!("stopped cleanly");
    Ok(())
}

/// Creates the demo events unless they exist (keyed, so a rerun is a no-op).
async fn load_demo_data(node: &RunningNode) -> anyhow::Result<()> {
    let today_ms = holdfast_node::replica::wall_clock_ms();
    for command in holdfast_node::demo::demo_commands(today_ms) {
        let holdfast_statemachine::Command::CreateEvent(create) = &command else {
            continue;
        };
        let event_id = create.event_id.clone();
        let (exists, _) = holdfast_node::replica::read_now(&node.replica, |state| {
            state.event(&event_id).is_some()
        });
        if exists {
            continue;
        }
        let proposal = Proposal {
            request_id: Some(format!("demo:{event_id}")),
            command,
        };
        let mut attempts = 0;
        loop {
            match holdfast_node::replica::propose_one(&node.replica, proposal.clone()).await {
                Ok(committed) => {
                    match committed.outcome.rejection() {
                        None => tracing::info!(%event_id, "demo event created"),
                        Some(rejection) if rejection.code() == "EVENT_EXISTS" => {}
                        Some(rejection) => {
                            bail!("demo event {event_id} refused: {}", rejection.code())
                        }
                    }
                    break;
                }
                Err(error) if attempts < 50 => {
                    attempts += 1;
                    tracing::debug!(%error, "retrying the demo data");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(error) => bail!("cannot load the demo data: {error}"),
            }
        }
    }
    Ok(())
}

/// Switches transparent huge pages off for this process (and what it starts), unless
/// `keep`.
///
/// The allocator (mimalloc) asks for huge pages on its large regions when the kernel offers
/// them on request (`/sys/kernel/mm/transparent_hugepage/enabled` set to `madvise`, as on
/// Debian, or `always`). A huge page is cleared whole, 2 MiB at once, the first time any
/// byte of it is written, after the kernel has compacted memory to find one: the state
/// machine's tables grow into fresh memory with every hold, so apply stalled for about 5 ms
/// every couple of megabytes of growth on this project's VM (the apply bench's first sale:
/// 750,000 holds a second with them, 1,430,000 without; the wrk tail at p99.9 about 40 ms
/// with them, 25 without). Latency-sensitive databases ask the same of their hosts (Redis
/// warns at start when huge pages are on; MongoDB long recommended switching them off).
fn transparent_huge_pages(keep: bool) {
    if keep {
        return;
    }
    #[cfg(target_os = "linux")]
    match nix::sys::prctl::set_thp_disable(true) {
        Ok(()) => tracing::debug!("transparent huge pages off for this process"),
        Err(error) => {
            tracing::warn!(%error, "cannot switch transparent huge pages off for this process")
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    // Caught from here on, so a Ctrl-C or SIGTERM during the start is a clean stop too.
    let signal = ShutdownSignal::install().context("cannot listen for Ctrl-C and SIGTERM")?;
    match cli.command {
        Command::Serve(args) => serve(*args, signal).await,
        Command::Dev(args) => dev(args, signal).await,
        Command::Certs(args) => certs(args),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serve_args(flags: &[&str]) -> ServeArgs {
        let cli = Cli::try_parse_from(
            ["holdfast", "serve", "--data-dir", "/nonexistent"]
                .iter()
                .chain(flags),
        )
        .expect("the flags parse");
        match cli.command {
            Command::Serve(args) => *args,
            _ => unreachable!(),
        }
    }

    #[test]
    fn certificate_ids_are_numbers_and_ranges() {
        assert_eq!(
            parse_ids("1-3, 7,101-102").unwrap(),
            vec![1, 2, 3, 7, 101, 102]
        );
        assert!(parse_ids("0-2").is_err());
        assert!(parse_ids("5-3").is_err());
        assert!(parse_ids("1-5000").is_err());
        assert!(parse_ids("").is_err());
        assert!(parse_ids("x").is_err());
    }

    #[test]
    fn raft_timer_flags_set_openraft_timers_and_refuse_inconsistent_ones() {
        assert!(serve_args(&[]).raft_timers("c").unwrap().is_none());
        let config = serve_args(&[
            "--raft-heartbeat-ms",
            "400",
            "--raft-election-timeout-ms",
            "1000",
        ])
        .raft_timers("c")
        .unwrap()
        .expect("timers given");
        assert_eq!(config.heartbeat_interval, 400);
        assert_eq!(config.election_timeout_min, 1_000);
        assert_eq!(config.election_timeout_max, 1_500);
        // The heartbeat alone keeps the default election timeout (500 ms): 300 ms is too long.
        let error = serve_args(&["--raft-heartbeat-ms", "300"])
            .raft_timers("c")
            .unwrap_err();
        assert!(error.to_string().contains("at least twice"), "{error}");
        assert!(serve_args(&["--raft-heartbeat-ms", "0"])
            .raft_timers("c")
            .is_err());
    }

    #[test]
    fn serve_refuses_the_sandbox_unless_asked() {
        let refused = serve_args(&[]).payments().unwrap_err().to_string();
        assert!(refused.contains("--allow-sandbox-payments"), "{refused}");
        let refused = serve_args(&["--payment-provider", "sandbox"]).payments();
        assert!(refused.is_err());
        for flags in [
            &["--allow-sandbox-payments"][..],
            &["--payment-provider", "sandbox", "--allow-sandbox-payments"],
            &["--single-node"],
        ] {
            assert!(
                matches!(serve_args(flags).payments(), Ok(PaymentConfig::Sandbox)),
                "{flags:?}"
            );
        }
        let http = serve_args(&[
            "--payment-provider",
            "http",
            "--payment-url",
            "http://127.0.0.1:9",
        ]);
        assert!(matches!(http.payments(), Ok(PaymentConfig::Http(_))));
    }

    #[test]
    fn the_config_file_can_allow_the_sandbox() {
        let file: ServeArgs =
            toml::from_str("allow_sandbox_payments = true\nchange_streams_max = 3\n").unwrap();
        assert!(file.allow_sandbox_payments);
        assert_eq!(file.change_streams_max, Some(3));
    }

    #[test]
    fn transparent_huge_pages_are_off_unless_asked_for() {
        assert!(!serve_args(&[]).transparent_huge_pages);
        assert!(serve_args(&["--transparent-huge-pages"]).transparent_huge_pages);
        let file: ServeArgs = toml::from_str("transparent_huge_pages = true\n").unwrap();
        assert!(file.transparent_huge_pages);
        // What `serve` does before it builds anything (for this test process too, which
        // does not mind).
        transparent_huge_pages(false);
        #[cfg(target_os = "linux")]
        assert!(nix::sys::prctl::get_thp_disable().unwrap());
    }
}
