//! `holdfastctl`: Holdfast's command line for operators and users, built on the SDK.
//!
//! Exit codes are a contract for scripts: 0 success, 2 bad arguments, 3 refused by the
//! cluster (the error code on stderr), 4 cluster unreachable. With `-o json` a command
//! prints the API's JSON answer on stdout; errors always go to stderr.

mod output;

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use clap::{ArgGroup, CommandFactory, Parser, Subcommand, ValueEnum};
use holdfast_client::{
    AvailabilityQuery, CancelRequest, Client, ClientBuilder, ConfirmRequest, Consistency, Error,
    ExtendRequest, HoldRequest, Member, ReadOptions, SearchQuery,
};

use output::{print_json, Output};

/// Exit code: success.
const EXIT_OK: u8 = 0;
/// Exit code: bad arguments (clap uses it too).
const EXIT_USAGE: u8 = 2;
/// Exit code: the cluster refused the request.
const EXIT_REFUSED: u8 = 3;
/// Exit code: the cluster could not be reached.
const EXIT_UNREACHABLE: u8 = 4;
/// Most availability pages fetched for one seat map (5,000 seats each).
const AVAILABILITY_PAGES_MAX: usize = 200;

#[derive(Parser, Debug)]
#[command(
    name = "holdfastctl",
    version,
    about = "Operate and use a Holdfast booking cluster",
    after_help = "Exit codes: 0 success, 2 bad arguments, 3 refused by the cluster, 4 cluster unreachable."
)]
struct Cli {
    /// Nodes' HTTP addresses (HOST:PORT or URLs), comma-separated; any one answering is enough.
    #[arg(
        long,
        env = "HOLDFAST_ENDPOINTS",
        value_delimiter = ',',
        default_value = "127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003",
        global = true
    )]
    endpoints: Vec<String>,
    /// Bearer key (when the nodes run with --auth-keys).
    #[arg(long, env = "HOLDFAST_KEY", hide_env_values = true, global = true)]
    key: Option<String>,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Output::Table, global = true)]
    output: Output,
    /// Total deadline of each call in seconds, retries included.
    #[arg(long, env = "HOLDFAST_TIMEOUT", default_value_t = 10.0, global = true)]
    timeout: f64,
    /// Read level of reads.
    #[arg(long, value_enum, global = true)]
    consistency: Option<Level>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Level {
    Stale,
    Bounded,
    Linearizable,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Cluster status and initialisation.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Membership changes.
    #[command(subcommand)]
    Member(MemberCommand),
    /// Leadership.
    #[command(subcommand)]
    Leader(LeaderCommand),
    /// Readiness of every node (exit 3 if any is not ready).
    Health,
    /// Make a node take a snapshot now.
    Snapshot,
    /// Write a consistent backup of the replicated state (with its index and SHA-256) to
    /// FILE. Large states need a longer --timeout.
    Backup { file: std::path::PathBuf },
    /// Restore a backup FILE into a freshly initialised, empty cluster.
    Restore { file: std::path::PathBuf },
    /// Search events.
    Events {
        #[arg(long)]
        category: Option<String>,
        #[arg(long)]
        city: Option<String>,
        /// Text in the name or venue.
        #[arg(long)]
        q: Option<String>,
        /// At least this many seats or pool units free.
        #[arg(long)]
        min_available: Option<u64>,
        /// Starting at or after (RFC 3339).
        #[arg(long)]
        starts_from: Option<String>,
        /// Starting at or before (RFC 3339).
        #[arg(long)]
        starts_to: Option<String>,
        #[arg(long)]
        limit: Option<u32>,
        #[arg(long)]
        after: Option<String>,
    },
    /// One event's metadata and summary.
    Event { event_id: String },
    /// An event's seat map (coloured by status) and pools.
    Availability {
        event_id: String,
        /// Only this section.
        #[arg(long)]
        section: Option<String>,
        /// Counts only.
        #[arg(long)]
        summary: bool,
    },
    /// Hold seats, pool units or the best available seats.
    Hold {
        event_id: String,
        #[arg(long)]
        customer: String,
        /// A seat id (repeatable).
        #[arg(long = "seat")]
        seats: Vec<String>,
        /// POOL:N units of a pool (repeatable).
        #[arg(long = "pool", value_parser = parse_pool)]
        pools: Vec<(String, u64)>,
        /// N adjacent seats chosen by the node.
        #[arg(long)]
        best: Option<u32>,
        /// The section for --best.
        #[arg(long, requires = "best")]
        section: Option<String>,
        /// Time to live in seconds.
        #[arg(long)]
        ttl: Option<u64>,
        #[arg(long)]
        idempotency_key: Option<String>,
    },
    /// Extend a hold.
    Extend {
        hold_id: String,
        #[arg(long)]
        ttl: Option<u64>,
        #[arg(long)]
        idempotency_key: Option<String>,
    },
    /// Confirm a hold with a payment token.
    Confirm {
        hold_id: String,
        #[arg(long)]
        token: String,
        #[arg(long)]
        method: Option<String>,
        #[arg(long)]
        idempotency_key: Option<String>,
    },
    /// Release a hold or cancel a booking.
    #[command(group(ArgGroup::new("target").required(true).args(["hold", "booking"])))]
    Cancel {
        #[arg(long)]
        hold: Option<String>,
        #[arg(long)]
        booking: Option<String>,
        #[arg(long, requires = "booking")]
        reason: Option<String>,
        #[arg(long)]
        idempotency_key: Option<String>,
    },
    /// Look a hold up.
    #[command(name = "hold-info")]
    HoldInfo { hold_id: String },
    /// Look a booking up.
    Booking { booking_id: String },
    /// A customer's bookings, newest first.
    History {
        customer_id: String,
        #[arg(long)]
        limit: Option<u32>,
        #[arg(long)]
        after: Option<String>,
    },
    /// Print shell completions.
    Completions { shell: clap_complete::Shell },
}

#[derive(Subcommand, Debug)]
enum ClusterCommand {
    /// Every node's role, term, indexes, lag and health (one row per node).
    Status,
    /// Initialise a fresh cluster.
    Init {
        /// A member as ID,RAFT_ADDR,HTTP_ADDR or ID,RAFT_ADDR,HTTP_ADDR,REGION (repeatable).
        #[arg(long = "member", required = true, value_parser = parse_member)]
        members: Vec<Member>,
    },
}

#[derive(Subcommand, Debug)]
enum LeaderCommand {
    /// Hand leadership to voter ID (writes pause for about a second); answers once it
    /// leads.
    Transfer { id: u64 },
}

#[derive(Subcommand, Debug)]
enum MemberCommand {
    /// Add a learner (returns once it caught up).
    AddLearner {
        #[arg(long)]
        id: u64,
        #[arg(long)]
        raft_addr: String,
        #[arg(long)]
        http_addr: String,
        #[arg(long, default_value = "")]
        region: String,
    },
    /// Promote a learner to voter.
    Promote {
        id: u64,
        /// Send even when the change would lose the majority.
        #[arg(long)]
        force: bool,
    },
    /// Remove a node.
    Remove {
        id: u64,
        /// Send even when the change would lose the majority.
        #[arg(long)]
        force: bool,
    },
    /// List the members.
    List,
}

fn parse_pool(text: &str) -> Result<(String, u64), String> {
    let (pool, quantity) = text
        .rsplit_once(':')
        .ok_or_else(|| format!("expected POOL:N, got {text:?}"))?;
    let quantity = quantity
        .parse()
        .map_err(|_| format!("{quantity:?} is not a quantity"))?;
    if pool.is_empty() {
        return Err("empty pool id".into());
    }
    Ok((pool.to_string(), quantity))
}

fn parse_member(text: &str) -> Result<Member, String> {
    let parts: Vec<&str> = text.split(',').collect();
    if !(3..=4).contains(&parts.len()) {
        return Err(format!(
            "expected ID,RAFT_ADDR,HTTP_ADDR[,REGION], got {text:?}"
        ));
    }
    Ok(Member {
        id: parts[0]
            .parse()
            .map_err(|_| format!("{:?} is not a node id", parts[0]))?,
        raft_addr: parts[1].to_string(),
        http_addr: parts[2].to_string(),
        region: parts.get(3).unwrap_or(&"").to_string(),
        voter: true,
        lag: None,
        last_contact_ms: None,
    })
}

/// A failure of the command and its exit code.
struct Failure {
    code: u8,
    message: String,
}

impl From<Error> for Failure {
    fn from(error: Error) -> Failure {
        let code = match &error {
            Error::Api(_) | Error::Protocol(_) => EXIT_REFUSED,
            Error::Unreachable { .. } | Error::DeadlineExceeded { .. } => EXIT_UNREACHABLE,
            Error::InvalidArgument(_) => EXIT_USAGE,
            _ => EXIT_REFUSED,
        };
        let message = match &error {
            Error::Api(refusal) => format!("refused by the cluster: {refusal}"),
            other => other.to_string(),
        };
        Failure { code, message }
    }
}

/// `backup FILE`: the backup is written next to FILE, made durable, then renamed over it
/// (and the rename made durable), so FILE is never a partial backup.
async fn backup(client: &Client, file: &std::path::Path, json: bool) -> Result<u8, Failure> {
    let backup = client.backup().await?;
    let cannot = |error: std::io::Error| Failure {
        code: EXIT_USAGE,
        message: format!("cannot write {}: {error}", file.display()),
    };
    let mut partial = file.as_os_str().to_owned();
    partial.push(".partial");
    let partial = std::path::PathBuf::from(partial);
    let written = std::fs::File::create(&partial).and_then(|mut out| {
        out.write_all(backup.file_bytes())?;
        out.sync_all()
    });
    if let Err(error) = written.and_then(|()| std::fs::rename(&partial, file)) {
        let _ = std::fs::remove_file(&partial);
        return Err(cannot(error));
    }
    let directory = match file.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => std::path::Path::new("."),
    };
    std::fs::File::open(directory)
        .and_then(|directory| directory.sync_all())
        .map_err(cannot)?;
    let bytes = backup.state_bytes().len();
    if json {
        print_json(&serde_json::json!({
            "file": file.display().to_string(),
            "index": backup.index(),
            "bytes": bytes,
            "sha256": backup.sha256_hex(),
        }));
    } else {
        println!(
            "backup of {bytes} bytes at index {} written to {} (sha256 {})",
            backup.index(),
            file.display(),
            backup.sha256_hex()
        );
    }
    Ok(EXIT_OK)
}

/// `restore FILE`: the file is checked (header, length, SHA-256) before anything is sent.
async fn restore(client: &Client, file: &std::path::Path, json: bool) -> Result<u8, Failure> {
    let bytes = std::fs::read(file).map_err(|error| Failure {
        code: EXIT_USAGE,
        message: format!("cannot read {}: {error}", file.display()),
    })?;
    let backup = holdfast_client::Backup::from_file_bytes(bytes)?;
    let restored = client.restore(&backup).await?;
    if json {
        print_json(&serde_json::json!({
            "file": file.display().to_string(),
            "backup_index": backup.index(),
            "bytes": restored.total_bytes,
            "sha256": backup.sha256_hex(),
            "index": restored.index,
        }));
    } else {
        println!(
            "restored {} bytes (the backup of index {}) at index {}",
            restored.total_bytes,
            backup.index(),
            restored.index
        );
    }
    Ok(EXIT_OK)
}

fn refused(message: impl Into<String>) -> Failure {
    Failure {
        code: EXIT_REFUSED,
        message: message.into(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Completions { shell } = &cli.command {
        let mut command = Cli::command();
        clap_complete::generate(*shell, &mut command, "holdfastctl", &mut std::io::stdout());
        return ExitCode::from(EXIT_OK);
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the runtime: {error}");
            return ExitCode::from(EXIT_UNREACHABLE);
        }
    };
    let outcome = runtime.block_on(run(cli));
    let _ = std::io::stdout().flush();
    match outcome {
        Ok(code) => ExitCode::from(code),
        Err(failure) => {
            eprintln!("error: {}", failure.message);
            ExitCode::from(failure.code)
        }
    }
}

async fn run(cli: Cli) -> Result<u8, Failure> {
    if !(cli.timeout.is_finite() && cli.timeout > 0.0 && cli.timeout <= 3600.0) {
        return Err(Failure {
            code: EXIT_USAGE,
            message: "--timeout must be between 0 and 3600 seconds".into(),
        });
    }
    let timeout = Duration::from_secs_f64(cli.timeout);
    let mut builder = ClientBuilder::new(&cli.endpoints)
        .timeout(timeout)
        .attempt_timeout(timeout.min(Duration::from_secs(3)))
        .connect_timeout(timeout.min(Duration::from_secs(2)))
        .batching(false);
    if let Some(key) = &cli.key {
        builder = builder.api_key(key);
    }
    let mut client = match &cli.command {
        // A fresh cluster may not answer a status yet: send the init without probing.
        Command::Cluster(ClusterCommand::Init { .. }) => builder.build()?,
        _ => builder.connect().await?,
    };
    if let Some(level) = cli.consistency {
        let consistency = match level {
            Level::Stale => Consistency::Stale,
            Level::Bounded => Consistency::Bounded {
                max_staleness: Duration::from_secs(1),
            },
            Level::Linearizable => Consistency::Linearizable,
        };
        client = client.with_read(ReadOptions::at(consistency));
    }
    let json = cli.output == Output::Json;
    match cli.command {
        Command::Completions { .. } => Ok(EXIT_OK),
        Command::Cluster(ClusterCommand::Status) => cluster_status(&client, json).await,
        Command::Cluster(ClusterCommand::Init { members }) => {
            let status = client.init_cluster(members).await?;
            if json {
                print_json(&status);
            } else {
                println!(
                    "initialised: {} members, node {} answered",
                    status.members.len(),
                    status.node_id
                );
            }
            Ok(EXIT_OK)
        }
        Command::Member(command) => member(&client, command, json).await,
        Command::Leader(LeaderCommand::Transfer { id }) => {
            let before = client.cluster_status().await?.leader_id;
            if before == Some(id) {
                println!("node {id} leads already; nothing to do");
                return Ok(EXIT_OK);
            }
            let status = client.transfer_leader(id).await?;
            if json {
                print_json(&status);
            } else {
                let from = before.map_or_else(|| "none".to_owned(), |id| id.to_string());
                println!("leadership moved from node {from} to node {id}");
                output::members(&status);
            }
            Ok(EXIT_OK)
        }
        Command::Health => health(&client, json).await,
        Command::Snapshot => {
            let taken = client.snapshot().await?;
            if json {
                print_json(&taken);
            } else {
                println!(
                    "node {} took a snapshot at index {} in {:.1} ms",
                    taken.node_id, taken.snapshot_index, taken.build_ms
                );
            }
            Ok(EXIT_OK)
        }
        Command::Backup { file } => backup(&client, &file, json).await,
        Command::Restore { file } => restore(&client, &file, json).await,
        Command::Events {
            category,
            city,
            q,
            min_available,
            starts_from,
            starts_to,
            limit,
            after,
        } => {
            let page = client
                .search_events(SearchQuery {
                    category,
                    city,
                    q,
                    min_available,
                    starts_from,
                    starts_to,
                    limit,
                    after,
                    ..SearchQuery::default()
                })
                .await?;
            if json {
                print_json(&page);
            } else {
                output::events(&page);
            }
            Ok(EXIT_OK)
        }
        Command::Event { event_id } => {
            let event = client.event(&event_id).await?;
            if json {
                print_json(&event);
            } else {
                output::events(&holdfast_client::EventPage {
                    events: vec![event],
                    next_after: None,
                });
            }
            Ok(EXIT_OK)
        }
        Command::Availability {
            event_id,
            section,
            summary,
        } => availability(&client, event_id, section, summary, json).await,
        Command::Hold {
            event_id,
            customer,
            seats,
            pools,
            best,
            section,
            ttl,
            idempotency_key,
        } => {
            let mut request = HoldRequest::seats(event_id, customer, seats);
            for (pool, quantity) in pools {
                request = request.pool(pool, quantity);
            }
            if let Some(count) = best {
                request = request.best_available(count, section.as_deref());
            }
            if let Some(ttl) = ttl {
                request = request.ttl(Duration::from_secs(ttl));
            }
            if let Some(key) = idempotency_key {
                request = request.idempotency_key(key);
            }
            if request.seats.is_empty() && request.pools.is_empty() && best.is_none() {
                return Err(Failure {
                    code: EXIT_USAGE,
                    message: "give at least one --seat, --pool or --best".into(),
                });
            }
            let hold = client.hold(request).await?;
            if json {
                print_json(&hold);
            } else {
                output::hold(&hold);
            }
            Ok(EXIT_OK)
        }
        Command::Extend {
            hold_id,
            ttl,
            idempotency_key,
        } => {
            let mut request = ExtendRequest::new(hold_id);
            if let Some(ttl) = ttl {
                request = request.ttl(Duration::from_secs(ttl));
            }
            if let Some(key) = idempotency_key {
                request = request.idempotency_key(key);
            }
            let hold = client.extend(request).await?;
            if json {
                print_json(&hold);
            } else {
                output::hold(&hold);
            }
            Ok(EXIT_OK)
        }
        Command::Confirm {
            hold_id,
            token,
            method,
            idempotency_key,
        } => {
            let mut request = ConfirmRequest::new(hold_id, token);
            request.method = method;
            if let Some(key) = idempotency_key {
                request = request.idempotency_key(key);
            }
            let booking = client.confirm(request).await?;
            if json {
                print_json(&booking);
            } else {
                output::booking(&booking);
            }
            Ok(EXIT_OK)
        }
        Command::Cancel {
            hold,
            booking,
            reason,
            idempotency_key,
        } => {
            let mut request = match (hold, booking) {
                (Some(hold), None) => CancelRequest::hold(hold),
                (None, Some(booking)) => CancelRequest::booking(booking, reason.as_deref()),
                _ => {
                    return Err(Failure {
                        code: EXIT_USAGE,
                        message: "give exactly one of --hold and --booking".into(),
                    })
                }
            };
            if let Some(key) = idempotency_key {
                request = request.idempotency_key(key);
            }
            let cancelled = client.cancel(request).await?;
            if json {
                print_json(&cancelled);
            } else {
                match &cancelled {
                    holdfast_client::Cancelled::Hold(hold) => output::hold(hold),
                    holdfast_client::Cancelled::Booking(booking) => output::booking(booking),
                }
            }
            Ok(EXIT_OK)
        }
        Command::HoldInfo { hold_id } => {
            let hold = client.get_hold(&hold_id).await?;
            if json {
                print_json(&hold);
            } else {
                output::hold(&hold);
            }
            Ok(EXIT_OK)
        }
        Command::Booking { booking_id } => {
            let booking = client.booking(&booking_id).await?;
            if json {
                print_json(&booking);
            } else {
                output::booking(&booking);
            }
            Ok(EXIT_OK)
        }
        Command::History {
            customer_id,
            limit,
            after,
        } => {
            let page = client
                .history(&customer_id, limit, after.as_deref())
                .await?;
            if json {
                print_json(&page);
            } else {
                output::history(&page);
            }
            Ok(EXIT_OK)
        }
    }
}

async fn cluster_status(client: &Client, json: bool) -> Result<u8, Failure> {
    let reports = client.node_reports().await;
    let answered: Vec<&holdfast_client::ClusterStatus> = reports
        .iter()
        .filter_map(|report| report.status.as_ref().ok())
        .collect();
    if answered.is_empty() {
        let reasons: Vec<String> = reports
            .iter()
            .filter_map(|report| {
                report
                    .status
                    .as_ref()
                    .err()
                    .map(|error| format!("{}: {error}", report.endpoint))
            })
            .collect();
        return Err(Failure {
            code: EXIT_UNREACHABLE,
            message: format!("cannot reach the cluster: {}", reasons.join("; ")),
        });
    }
    if json {
        print_json(&answered);
        for report in &reports {
            if let Err(error) = &report.status {
                eprintln!("warning: {} did not answer: {error}", report.endpoint);
            }
        }
    } else {
        output::cluster_status(&reports);
    }
    Ok(EXIT_OK)
}

async fn health(client: &Client, json: bool) -> Result<u8, Failure> {
    let reports = client.node_reports().await;
    if reports.iter().all(|report| report.status.is_err()) {
        return Err(Failure {
            code: EXIT_UNREACHABLE,
            message: "cannot reach the cluster: no node answered".into(),
        });
    }
    let unhealthy = reports
        .iter()
        .filter(|report| report.ready.is_err())
        .count();
    if json {
        let rows: Vec<serde_json::Value> = reports
            .iter()
            .map(|report| {
                serde_json::json!({
                    "endpoint": report.endpoint,
                    "node_id": report.node_id,
                    "ready": report.ready.is_ok(),
                    "error": report.ready.as_ref().err().map(|error| error.to_string()),
                })
            })
            .collect();
        print_json(&rows);
    } else {
        output::health(&reports);
    }
    if unhealthy > 0 {
        eprintln!(
            "error: {unhealthy} of {} nodes are not ready",
            reports.len()
        );
        return Ok(EXIT_REFUSED);
    }
    Ok(EXIT_OK)
}

async fn availability(
    client: &Client,
    event_id: String,
    section: Option<String>,
    summary: bool,
    json: bool,
) -> Result<u8, Failure> {
    let mut query = AvailabilityQuery::new(event_id);
    if let Some(section) = section {
        query = query.section(section);
    }
    if summary {
        query = query.summary();
    }
    let mut page = client.availability_with(query.clone()).await?;
    let mut pages = 1;
    // The seat map shows every seat: follow the pages (bounded).
    while let Some(after) = page.next_after.take() {
        if summary || pages >= AVAILABILITY_PAGES_MAX {
            page.next_after = Some(after);
            break;
        }
        let next = client
            .availability_with(query.clone().limit(5000).after(after))
            .await?;
        page.seats.extend(next.seats);
        page.next_after = next.next_after;
        pages += 1;
    }
    if json {
        print_json(&page);
    } else {
        output::seat_map(&page);
    }
    Ok(EXIT_OK)
}

async fn member(client: &Client, command: MemberCommand, json: bool) -> Result<u8, Failure> {
    match command {
        MemberCommand::List => {
            let status = client.cluster_status().await?;
            if json {
                print_json(&status.members);
            } else {
                output::members(&status);
            }
            Ok(EXIT_OK)
        }
        MemberCommand::AddLearner {
            id,
            raft_addr,
            http_addr,
            region,
        } => {
            let status = client
                .add_learner(Member {
                    id,
                    raft_addr,
                    http_addr,
                    region,
                    voter: false,
                    lag: None,
                    last_contact_ms: None,
                })
                .await?;
            if json {
                print_json(&status);
            } else {
                println!("node {id} added as a learner and caught up");
                output::members(&status);
            }
            Ok(EXIT_OK)
        }
        MemberCommand::Promote { id, force } => {
            let status = client.cluster_status().await?;
            let Some(member) = status.members.iter().find(|member| member.id == id) else {
                return Err(refused(format!(
                    "node {id} is not a member; add it as a learner first (member add-learner)"
                )));
            };
            if member.voter {
                println!("node {id} is already a voter; nothing to do");
                return Ok(EXIT_OK);
            }
            let mut voters = status.voters();
            voters.push(id);
            voters.sort_unstable();
            check_majority(client, &status, &voters, force).await?;
            let status = client.change_membership(voters).await?;
            if json {
                print_json(&status);
            } else {
                println!("node {id} promoted to voter");
                output::members(&status);
            }
            Ok(EXIT_OK)
        }
        MemberCommand::Remove { id, force } => {
            let status = client.cluster_status().await?;
            if !status.members.iter().any(|member| member.id == id) {
                return Err(refused(format!(
                    "node {id} is not a member (NODE_NOT_FOUND)"
                )));
            }
            let voters: Vec<u64> = status
                .voters()
                .into_iter()
                .filter(|voter| *voter != id)
                .collect();
            if voters.is_empty() {
                return Err(refused(format!(
                    "node {id} is the last voter; removing it would leave no cluster"
                )));
            }
            check_majority(client, &status, &voters, force).await?;
            let status = client.remove_node(id).await?;
            if json {
                print_json(&status);
            } else {
                println!("node {id} removed (its id is never reused)");
                output::members(&status);
            }
            Ok(EXIT_OK)
        }
    }
}

/// Prints what a change of voters does to the majority, and refuses (unless `force`) a
/// change whose healthy new voters would not form a majority — the node refuses it too.
async fn check_majority(
    client: &Client,
    status: &holdfast_client::ClusterStatus,
    new_voters: &[u64],
    force: bool,
) -> Result<(), Failure> {
    let old_voters = status.voters();
    let majority = |voters: usize| voters / 2 + 1;
    let tolerates = |voters: usize| voters.saturating_sub(majority(voters));
    let reports = client.node_reports().await;
    let healthy: Vec<u64> = reports
        .iter()
        .filter(|report| report.status.is_ok() && report.ready.is_ok())
        .filter_map(|report| report.node_id)
        .collect();
    let healthy_new = new_voters.iter().filter(|id| healthy.contains(id)).count();
    eprintln!(
        "voters {:?} -> {:?}: majority {} -> {}, tolerates {} -> {} failed node(s); {} of the new voters healthy",
        old_voters,
        new_voters,
        majority(old_voters.len()),
        majority(new_voters.len()),
        tolerates(old_voters.len()),
        tolerates(new_voters.len()),
        healthy_new,
    );
    if healthy_new < majority(new_voters.len()) {
        let reason = format!(
            "only {healthy_new} of the {} new voters are healthy: the change would lose the majority",
            new_voters.len()
        );
        if force {
            eprintln!("warning: {reason}; sending anyway (--force)");
        } else {
            return Err(refused(format!("{reason} (use --force to send it anyway)")));
        }
    }
    Ok(())
}
