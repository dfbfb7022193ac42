//! `holdfast`: the Holdfast node binary. A thin shell over the `holdfast_node` library.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand, ValueEnum};
use holdfast_node::auth::AuthKeys;
use holdfast_node::expiry::{run_expiry_ticker, ExpiryConfig};
use holdfast_node::{
    router, run_http, shutdown_signal, AppState, HttpConfig, LocalReplica, LocalReplicaConfig,
    Replica, SandboxProvider,
};
use tokio::sync::watch;

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
    Serve(ServeArgs),
}

#[derive(clap::Args, Debug)]
struct ServeArgs {
    /// This node's id (never reused within a cluster).
    #[arg(long, env = "HOLDFAST_ID", default_value_t = 1)]
    id: u64,
    /// Address of the HTTP API.
    #[arg(long, env = "HOLDFAST_HTTP_ADDR", default_value = "127.0.0.1:7001")]
    http_addr: SocketAddr,
    /// Region or zone label.
    #[arg(long, env = "HOLDFAST_REGION", default_value = "local")]
    region: String,
    /// Run one in-memory node without Raft: not replicated, not durable (development).
    #[arg(long, env = "HOLDFAST_SINGLE_NODE")]
    single_node: bool,
    /// Address of the node-to-node Raft listener (Raft-backed mode).
    #[arg(long, env = "HOLDFAST_RAFT_ADDR")]
    raft_addr: Option<SocketAddr>,
    /// Data directory (Raft-backed mode).
    #[arg(long, env = "HOLDFAST_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Bearer keys file (`ROLE KEY` per line; roles customer, admin, operator); without
    /// one the API is open.
    #[arg(long, env = "HOLDFAST_AUTH_KEYS")]
    auth_keys: Option<PathBuf>,
    /// How often the leader looks for holds that are due to expire, in milliseconds.
    #[arg(
        long,
        env = "HOLDFAST_EXPIRY_CHECK_INTERVAL_MS",
        default_value_t = 1_000
    )]
    expiry_check_interval_ms: u64,
    /// Holds ended by one expiry entry at most.
    #[arg(
        long,
        env = "HOLDFAST_EXPIRY_HOLDS_PER_ENTRY_MAX",
        default_value_t = 1_000
    )]
    expiry_holds_per_entry_max: u32,
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    if !args.single_node {
        bail!(
            "the Raft-backed node is not available in this build yet: pass --single-node \
             (or HOLDFAST_SINGLE_NODE=true) to run one in-memory node"
        );
    }
    let auth_keys = match &args.auth_keys {
        Some(path) => {
            let keys = AuthKeys::load(path)?;
            tracing::info!(keys = keys.len(), file = %path.display(), "authentication is on");
            Some(Arc::new(keys))
        }
        None => {
            tracing::warn!("authentication is off: no --auth-keys file was given, the API is open");
            None
        }
    };
    if args.raft_addr.is_some() || args.data_dir.is_some() {
        tracing::warn!("--raft-addr and --data-dir are ignored in single-node mode");
    }
    tracing::warn!(
        "single-node mode: the state lives in memory only, is not replicated and is lost on exit"
    );

    let listener = tokio::net::TcpListener::bind(args.http_addr)
        .await
        .with_context(|| format!("cannot listen on {}", args.http_addr))?;
    let local_addr = listener.local_addr()?;
    let replica = LocalReplica::shared(LocalReplicaConfig {
        node_id: args.id,
        http_addr: local_addr.to_string(),
        region: args.region,
        ..LocalReplicaConfig::default()
    });
    let replica: Arc<dyn Replica> = replica;
    let state = AppState::new(
        replica.clone(),
        Arc::new(SandboxProvider::default()),
        HttpConfig {
            auth_keys,
            ..HttpConfig::default()
        },
    );
    let (stop_ticker, ticker_stopped) = watch::channel(false);
    let expiry = ExpiryConfig {
        check_interval: Duration::from_millis(args.expiry_check_interval_ms.max(1)),
        holds_per_entry_max: args.expiry_holds_per_entry_max.max(1),
    };
    let ticker = tokio::spawn(run_expiry_ticker(replica, expiry, ticker_stopped));
    tracing::info!(node_id = args.id, http = %format!("http://{local_addr}"), "holdfast is serving");
    run_http(router(state), listener, shutdown_signal())
        .await
        .context("the HTTP server failed")?;
    let _ = stop_ticker.send(true);
    ticker.await.context("the expiry ticker panicked")?;
    tracing::info!("stopped cleanly");
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    match cli.command {
        Command::Serve(args) => serve(args).await,
    }
}
