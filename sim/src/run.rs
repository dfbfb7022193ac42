//! One simulated run: a cluster of real nodes on turmoil, the simulated customers, the fault
//! schedule, and the checks at the end.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use holdfast_node::raft_replica::RaftReplica;
use holdfast_node::replica::ClockFaults;
use holdfast_node::runtime::{start_with, NodeConfig, NodeIo};
use holdfast_raft::MemoryDisk;
use http::Method;
use openraft::ServerState;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use serde_json::json;

use crate::check::{self, CheckOutcome, LeadershipTimeline, ReplicaState};
use crate::client::{self, HTTP_PORT, RAFT_PORT};
use crate::clock::{SimClock, SIM_EPOCH_MS};
use crate::faults::{self, Action, Scenario, Scheduled, Target, Timeline, Topology};
use crate::history::Call;
use crate::net::{peer_incoming, HttpListener, SimTransport};
use crate::webhook::{self, Receiver, ReceiverMode, SimPoster, RECEIVER_HOST};
use crate::workload::{self, Customer, Shared};

/// A test-only way to break the system, to prove that the checkers catch it. The
/// command-line names (`--break`) are the variants in kebab case.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, clap::ValueEnum)]
pub enum Breakage {
    /// The real system.
    None,
    /// The state machine holds named seats without checking they are free.
    SkipSeatCheck,
    /// The disks acknowledge syncs without making anything durable.
    SkipFsync,
    /// The leader stamps entries with its local wall clock alone.
    LocalClock,
    /// The clock guard lets a leader stamp up to a year ahead of its voters' clocks.
    NoClockGuard,
    /// The nodes' webhook connection answers every fourth delivery `200` without sending
    /// it: a notifier that acknowledges events the receiver never got.
    LostDeliveries,
}

impl std::fmt::Display for Breakage {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        faults::write_value_name(self, formatter)
    }
}

/// What to run.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// Seeds the run: turmoil's network, the fault plan, the customers' choices and
    /// openraft's election timeouts, so that the same seed replays the same run.
    pub seed: u64,
    /// `None`: the seed's own scenario ([`Scenario::for_seed`]).
    pub scenario: Option<Scenario>,
    /// How to break the system, to prove a checker catches it ([`Breakage::None`]: don't).
    pub breakage: Breakage,
    /// Simulated customers.
    pub clients: usize,
    /// When the faults start and heal, when clients stop and when the run gives up.
    pub timeline: Timeline,
}

impl RunConfig {
    /// The seed's own scenario on the real system, with six customers and the default
    /// timeline.
    pub fn new(seed: u64) -> RunConfig {
        RunConfig {
            seed,
            scenario: None,
            breakage: Breakage::None,
            clients: 6,
            timeline: Timeline::default(),
        }
    }

    /// The scenario to run: the forced one, else the seed's own.
    pub fn scenario(&self) -> Scenario {
        self.scenario
            .unwrap_or_else(|| Scenario::for_seed(self.seed))
    }
}

/// What a run did and found.
#[derive(Clone, Debug, Serialize)]
pub struct RunReport {
    /// The seed that was run.
    pub seed: u64,
    /// The scenario that was run.
    pub scenario: Scenario,
    /// The breakage that was run with.
    pub breakage: Breakage,
    /// Actions carried out, by kind.
    pub faults: BTreeMap<&'static str, usize>,
    /// Every action carried out: (sim milliseconds, what).
    pub fault_log: Vec<(u64, String)>,
    /// Every checker's outcome, in a fixed order.
    pub checks: Vec<CheckOutcome>,
    /// Client calls recorded, and how many of them got no definite answer.
    pub ops: usize,
    /// Of [`RunReport::ops`], the calls with no definite answer.
    pub unknown_ops: usize,
    /// A hash of everything observable about the run (history, faults, final states):
    /// the same seed gives the same hash.
    pub trace_hash: u64,
    /// Simulated time the run took.
    pub sim_ms: u64,
    /// The simulation itself failed (a node's software panicked or returned an error).
    pub error: Option<String>,
}

impl RunReport {
    /// Whether the simulation ran without an error and every check passed.
    pub fn passed(&self) -> bool {
        self.error.is_none() && self.checks.iter().all(CheckOutcome::passed)
    }

    /// The failed checks, one line each.
    pub fn failures(&self) -> Vec<String> {
        let mut lines: Vec<String> = self
            .error
            .iter()
            .map(|error| format!("error: {error}"))
            .collect();
        for check in &self.checks {
            for violation in &check.violations {
                lines.push(format!("{}: {violation}", check.name));
            }
        }
        lines
    }
}

/// The harness records the replicas' outboxes every this many simulation steps (see
/// `check::deliveries`).
const OUTBOX_RECORD_STEPS: u64 = 3;

fn host_name(id: u64) -> String {
    format!("n{id}")
}

/// What the operator client is asked to do.
#[derive(Clone, Debug)]
enum OperatorTask {
    AddVoter(u64),
    Remove(u64),
}

/// State the harness shares with the simulated hosts and clients (all on one thread).
struct World {
    topology: Topology,
    registry: RefCell<BTreeMap<u64, RaftReplica>>,
    disks: BTreeMap<u64, MemoryDisk>,
    clocks: BTreeMap<u64, SimClock>,
    members: RefCell<BTreeSet<u64>>,
    operator_tasks: RefCell<VecDeque<OperatorTask>>,
    recovered_after_ms: Cell<Option<u64>>,
    /// The payment provider every node charges and refunds through, as real nodes share
    /// the provider's servers: what it paid is what the refund checker compares with.
    payments: Arc<holdfast_node::SandboxProvider>,
    /// The webhook receiver's record and answers.
    receiver: Rc<Receiver>,
    /// The webhook's mark when the operator added it.
    webhook_start_mark: Cell<Option<u64>>,
    scenario: Scenario,
}

/// Runs one seed and checks it.
pub fn run(config: &RunConfig) -> RunReport {
    holdfast_raft::runtime::seed_thread_rng(config.seed);
    let report = run_seeded(config);
    holdfast_raft::runtime::unseed_thread_rng();
    report
}

fn run_seeded(config: &RunConfig) -> RunReport {
    let scenario = config.scenario();
    let timeline = config.timeline;
    let topology = scenario.topology();
    let plan = faults::plan(scenario, config.seed, &timeline);
    let mut rng = StdRng::seed_from_u64(config.seed ^ 0x0FA0_17ED);

    let mut sim = turmoil::Builder::new()
        .rng_seed(config.seed)
        .epoch(UNIX_EPOCH + Duration::from_millis(SIM_EPOCH_MS))
        .simulation_duration(Duration::from_millis(timeline.give_up_ms + 10_000))
        // Two milliseconds a step: fine enough for 1–5 ms links, 250 ms heartbeats and 0.5–0.75 s
        // election timeouts, and half the cost of turmoil's default of one.
        .tick_duration(Duration::from_millis(2))
        .min_message_latency(Duration::from_millis(1))
        .max_message_latency(Duration::from_millis(timeline.normal_latency_ms))
        .build();

    let world = Rc::new(World {
        disks: topology
            .ids()
            .into_iter()
            .map(|id| (id, MemoryDisk::new()))
            .collect(),
        clocks: topology
            .ids()
            .into_iter()
            .map(|id| (id, SimClock::default()))
            .collect(),
        registry: RefCell::new(BTreeMap::new()),
        members: RefCell::new(
            topology.ids()[..topology.initial_voters]
                .iter()
                .copied()
                .collect(),
        ),
        operator_tasks: RefCell::new(VecDeque::new()),
        recovered_after_ms: Cell::new(None),
        payments: Arc::new(holdfast_node::SandboxProvider::default()),
        receiver: Rc::new(Receiver::default()),
        webhook_start_mark: Cell::new(None),
        scenario,
        topology: topology.clone(),
    });
    if config.breakage == Breakage::SkipFsync {
        for disk in world.disks.values() {
            disk.set_skip_sync(true);
        }
    }
    for &(id, region) in &topology.nodes {
        let world = world.clone();
        let breakage = config.breakage;
        sim.host(host_name(id), move || {
            run_node(world.clone(), id, region, breakage)
        });
    }
    {
        let receiver = world.receiver.clone();
        sim.host(RECEIVER_HOST, move || {
            webhook::run_receiver(receiver.clone())
        });
    }
    // Regions far apart: 30–80 ms between them.
    for &(a, region_a) in &topology.nodes {
        for &(b, region_b) in &topology.nodes {
            if a < b && region_a != region_b {
                let latency = Duration::from_millis(rng.gen_range(30..=80));
                sim.set_link_latency(host_name(a), host_name(b), latency);
                sim.set_link_max_message_latency(
                    host_name(a),
                    host_name(b),
                    latency + Duration::from_millis(5),
                );
            }
        }
    }

    let shared = Rc::new(Shared {
        history: RefCell::new(Default::default()),
        ready: Cell::new(false),
        hosts: RefCell::new(
            world
                .members
                .borrow()
                .iter()
                .map(|&id| host_name(id))
                .collect(),
        ),
        stop_at_ms: timeline.stop_ms,
        request_deadline: Duration::from_secs(3),
        write_attempts_max: 3,
        outbox_full_answers: Cell::new(0),
    });
    {
        let world = world.clone();
        let shared = shared.clone();
        sim.client("operator", async move {
            operator(world, shared, timeline).await;
            Ok(())
        });
    }
    for index in 0..config.clients {
        let customer = Customer::new(index, config.seed, shared.clone());
        sim.client(format!("client-{index}"), async move {
            customer.run().await;
            Ok(())
        });
    }

    let mut harness = Harness {
        world: world.clone(),
        plan: plan.into(),
        faults: BTreeMap::new(),
        fault_log: Vec::new(),
        leadership: LeadershipTimeline::default(),
        invariants: check::invariants::InvariantSampler::default(),
        outbox: check::deliveries::OutboxRecord::default(),
        crashed: BTreeSet::new(),
        receiver_down: false,
        receiver_back_ms: None,
    };
    let mut error = None;
    let mut last_sample_ms = 0;
    let mut steps = 0u64;
    let mut converged = None;
    loop {
        let now_ms = sim.elapsed().as_millis() as u64;
        harness.apply_due(&mut sim, now_ms);
        if now_ms >= last_sample_ms + 10 {
            last_sample_ms = now_ms;
            harness.sample(now_ms);
        }
        // Every third step (6 ms): an event stays in the leader's outbox for at least four
        // steps after it applied it (a delivery's request and answer, then the
        // acknowledgement's round to a follower), so no event is trimmed unseen.
        steps += 1;
        if steps % OUTBOX_RECORD_STEPS == 0 {
            harness.record_outbox();
        }
        let finished = match sim.step() {
            Ok(finished) => finished,
            Err(failure) => {
                error = Some(failure.to_string());
                break;
            }
        };
        if finished && now_ms >= timeline.stop_ms {
            // Converged, and the notifier delivered everything (the delivery checker
            // reports it if that never happens before the run gives up).
            if let Some(states) = harness.converged().filter(|states| delivered(states)) {
                converged = Some(states);
                break;
            }
        }
        if now_ms >= timeline.give_up_ms {
            break;
        }
    }
    let sim_ms = sim.elapsed().as_millis() as u64;
    let did_converge = converged.is_some();
    let replicas = match converged {
        Some(replicas) => replicas,
        None => harness.states(),
    };
    for replica in &replicas {
        harness
            .invariants
            .sample(replica.node_id, sim_ms, &replica.machine);
        harness.outbox.sample(replica.node_id, &replica.machine);
    }
    let received = world.receiver.received.borrow().clone();
    let history = shared.history.borrow().clone();
    let members = harness.members().len();
    let linearizable = linearizability_outcome(&history);
    let mut convergence = check::convergence::check(&replicas, members);
    if error.is_none() && !did_converge {
        convergence.violation(format!(
            "the members did not reach the same applied index by {} ms",
            timeline.give_up_ms
        ));
    }
    let mut checks = vec![
        harness.invariants.outcome.clone(),
        check::durability::check(&history, &replicas),
        check::expiry::check(&history, &replicas, &harness.leadership),
        check::clock::check(&history),
        convergence,
        linearizable,
        check::liveness::check(world.recovered_after_ms.get()),
        check::refunds::check(&replicas, &world.payments),
    ];
    checks.extend(check::deliveries::check(&check::deliveries::DeliveryRun {
        received: &received,
        record: &harness.outbox,
        replicas: &replicas,
        start_mark: world.webhook_start_mark.get(),
    }));
    if scenario == Scenario::WebhookOutage {
        checks.push(check::deliveries::outage(
            &history,
            shared.outbox_full_answers.get(),
            harness.receiver_back_ms,
        ));
    }
    let trace_hash = {
        let mut bytes = serde_json::to_vec(&history).unwrap_or_default();
        bytes.extend(serde_json::to_vec(&harness.fault_log).unwrap_or_default());
        bytes.extend(serde_json::to_vec(&received).unwrap_or_default());
        for replica in &replicas {
            bytes.extend(replica.applied_index.to_le_bytes());
            bytes.extend(check::convergence::state_hash(replica).to_le_bytes());
        }
        xxhash_rust::xxh3::xxh3_64(&bytes)
    };
    RunReport {
        seed: config.seed,
        scenario,
        breakage: config.breakage,
        faults: harness.faults,
        fault_log: harness.fault_log,
        checks,
        ops: history.ops.len(),
        unknown_ops: history
            .ops
            .iter()
            .filter(|op| !op.result.is_definite())
            .count(),
        trace_hash,
        sim_ms,
        error,
    }
}

/// Whether every webhook's mark reached the outbox's last event.
fn delivered(states: &[ReplicaState]) -> bool {
    states.iter().all(|state| {
        let last = state.machine.outbox_status().last_index;
        state
            .machine
            .webhooks()
            .iter()
            .all(|webhook| webhook.delivered_up_to >= last)
    })
}

/// Linearizability of the checked seats (the expiring ones are left out: the per-seat
/// model has no expiry).
fn linearizability_outcome(history: &crate::history::History) -> CheckOutcome {
    let mut checked = history.clone();
    checked.ops.retain(|op| match &op.call {
        Call::Hold { seats, .. } => seats
            .iter()
            .all(|seat| workload::CHECKED_SEATS.contains(&seat.as_str())),
        _ => true,
    });
    let report = check::linearizability::check(
        &checked,
        check::linearizability::DEFAULT_MAX_STATES_PER_SEAT,
    );
    let mut outcome = CheckOutcome::new("per-seat histories are linearizable");
    outcome.checked = report.checked_ops();
    for verdict in report.violations() {
        outcome.violation(verdict.to_string());
    }
    if report.inconclusive() > 0 {
        outcome.violation(format!(
            "the search gave up on {} seats (state bound reached)",
            report.inconclusive()
        ));
    }
    outcome
}

/// One node's software: the real node stack over turmoil's network, on its in-memory disk.
async fn run_node(world: Rc<World>, id: u64, region: u32, breakage: Breakage) -> turmoil::Result {
    let http = turmoil::net::TcpListener::bind(("0.0.0.0", HTTP_PORT)).await?;
    let raft = turmoil::net::TcpListener::bind(("0.0.0.0", RAFT_PORT)).await?;
    let http_addr = http.local_addr()?;
    let raft_addr = raft.local_addr()?;
    let mut config = NodeConfig::new(id, "sim", PathBuf::from(format!("/sim/{}", host_name(id))));
    config.region = format!("r{region}");
    config.advertised_http_addr = Some(format!("{}:{HTTP_PORT}", host_name(id)));
    config.advertised_raft_addr = Some(format!("{}:{RAFT_PORT}", host_name(id)));
    let mut raft_config = holdfast_raft::node::default_raft_config("sim");
    // Compact often, so that restarted and lagging nodes catch up by snapshot.
    raft_config.snapshot_policy = openraft::SnapshotPolicy::LogsSinceLast(150);
    raft_config.max_in_snapshot_log_to_keep = 20;
    config.raft = Some(raft_config);
    // One snapshot interval for every node, unlike a real one (`staggered_snapshots`).
    // When turmoil crashes a host it drops the host's tokio runtime, and tokio drops the
    // tasks in an order that follows their ids, which come from a process-wide counter
    // (and so from whatever else the process ran). Each dropped connection sends a FIN,
    // whose latency turmoil draws from the seeded generator: a different order of those
    // draws changes every later one. Whether that shows depends on the connections open at
    // the crash: with staggered snapshots seed 11 replayed differently in most runs of the
    // whole `simulation` binary (from the crash of n1 at 3,404 ms on, found by comparing
    // turmoil's `Send` traces of two runs); with one interval seeds 5 and 11 replay.
    config.stagger_snapshots = false;
    config.clock_faults = ClockFaults {
        local_wall_clock_only: breakage == Breakage::LocalClock,
    };
    config.state_machine.faults.skip_seat_check = breakage == Breakage::SkipSeatCheck;
    if breakage == Breakage::NoClockGuard {
        config.replica.clock_tolerance = Duration::from_secs(365 * 24 * 3_600);
    }
    config.payments = holdfast_node::runtime::PaymentConfig::Shared(world.payments.clone());
    // Passes often and short waits: a run lasts seconds, not hours.
    config.notifier = holdfast_node::notifier::NotifierConfig {
        check_interval: Duration::from_millis(250),
        delivery_timeout: Duration::from_secs(1),
        retry_base: Duration::from_millis(100),
        retry_max: Duration::from_secs(1),
        ..Default::default()
    };
    if world.scenario == Scenario::WebhookOutage {
        config.state_machine.outbox_events_max = faults::WEBHOOK_OUTAGE_OUTBOX_EVENTS_MAX;
    }
    let lose_every = (breakage == Breakage::LostDeliveries).then_some(4);
    let io = NodeIo {
        http_listener: HttpListener(http),
        http_addr,
        raft_incoming: peer_incoming(raft),
        raft_addr,
        transport: Arc::new(SimTransport),
        clock: Arc::new(world.clocks[&id].clone()),
        memory_disk: Some(world.disks[&id].clone()),
        extra_routes: None,
        webhook_poster: Some(Arc::new(SimPoster::new(lose_every))),
        refuse_writes: None,
    };
    let node = start_with(config, io)
        .await
        .map_err(|error| format!("node {id} did not start: {error}"))?;
    world.registry.borrow_mut().insert(id, node.replica.clone());
    std::future::pending::<()>().await;
    drop(node);
    Ok(())
}

/// The operator: initialises the cluster and creates the event, carries out membership
/// changes the schedule asks for, and after the heal probes how soon writes work again.
async fn operator(world: Rc<World>, shared: Rc<Shared>, timeline: Timeline) {
    let deadline = Duration::from_secs(3);
    let members: Vec<serde_json::Value> = world
        .members
        .borrow()
        .iter()
        .map(|&id| {
            json!({"id": id, "raft_addr": format!("{}:{RAFT_PORT}", host_name(id)),
                   "http_addr": format!("{}:{HTTP_PORT}", host_name(id)),
                   "region": format!("r{}", world.topology.region_of(id))})
        })
        .collect();
    let init = json!({ "members": members });
    loop {
        match client::send(
            "n1",
            Method::POST,
            "/cluster/init",
            None,
            Some(&init),
            deadline,
        )
        .await
        {
            Ok(answer) if answer.status < 300 || answer.code() == Some("ALREADY_INITIALIZED") => {
                break
            }
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    let event = workload::event_body();
    loop {
        let host = "n1";
        match client::send(
            host,
            Method::POST,
            "/admin/events",
            Some("setup-event"),
            Some(&event),
            deadline,
        )
        .await
        {
            Ok(answer) if answer.status == 201 || answer.code() == Some("EVENT_EXISTS") => break,
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    // The receiver, for every event type, before any customer books. A retry carries the
    // same key, so a lost answer cannot add a second webhook.
    let webhook = json!({"url": webhook::RECEIVER_URL, "secret": webhook::RECEIVER_SECRET});
    loop {
        match client::send(
            "n1",
            Method::POST,
            "/admin/webhooks",
            Some("setup-webhook"),
            Some(&webhook),
            deadline,
        )
        .await
        {
            Ok(answer) if answer.status == 201 => {
                world
                    .webhook_start_mark
                    .set(answer.body["delivered_up_to"].as_u64());
                break;
            }
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    shared.ready.set(true);

    let mut probe = 0u64;
    loop {
        let now_ms = workload::now_micros() / 1_000;
        let task = world.operator_tasks.borrow_mut().pop_front();
        if let Some(task) = task {
            membership_task(&world, &shared, task).await;
            continue;
        }
        if now_ms >= timeline.heal_ms && world.recovered_after_ms.get().is_none() {
            probe += 1;
            let hosts = shared.hosts.borrow().clone();
            let host = &hosts[probe as usize % hosts.len()];
            let body = json!({"event_id": format!("probe-{probe}"), "name": "probe", "category": "other",
                              "starts_at": "2026-06-01T20:00:00Z", "currency": "EUR",
                              "pools": [{"id": "P", "capacity": 1, "price": 1}]});
            let key = format!("probe-{probe}");
            if let Ok(answer) = client::send(
                host,
                Method::POST,
                "/admin/events",
                Some(&key),
                Some(&body),
                Duration::from_secs(2),
            )
            .await
            {
                if answer.status == 201 {
                    let now_ms = workload::now_micros() / 1_000;
                    world
                        .recovered_after_ms
                        .set(Some(now_ms - timeline.heal_ms));
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        if now_ms >= timeline.stop_ms && world.recovered_after_ms.get().is_some() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn membership_task(world: &World, shared: &Shared, task: OperatorTask) {
    let deadline = Duration::from_secs(20);
    for attempt in 0..10u64 {
        let hosts = shared.hosts.borrow().clone();
        let host = hosts[attempt as usize % hosts.len()].clone();
        let answer = match &task {
            OperatorTask::AddVoter(id) => {
                let learner = json!({"id": id, "raft_addr": format!("{}:{RAFT_PORT}", host_name(*id)),
                                     "http_addr": format!("{}:{HTTP_PORT}", host_name(*id)),
                                     "region": format!("r{}", world.topology.region_of(*id))});
                match client::send(
                    &host,
                    Method::POST,
                    "/cluster/learners",
                    None,
                    Some(&learner),
                    deadline,
                )
                .await
                {
                    Ok(answer) if answer.status < 300 => {
                        let mut voters: Vec<u64> = world.members.borrow().iter().copied().collect();
                        voters.push(*id);
                        let body = json!({"voters": voters});
                        client::send(
                            &host,
                            Method::POST,
                            "/cluster/membership",
                            None,
                            Some(&body),
                            deadline,
                        )
                        .await
                    }
                    other => other,
                }
            }
            OperatorTask::Remove(id) => {
                client::send(
                    &host,
                    Method::DELETE,
                    &format!("/cluster/nodes/{id}"),
                    None,
                    None,
                    deadline,
                )
                .await
            }
        };
        match answer {
            Ok(answer) if answer.status < 300 => {
                match task {
                    OperatorTask::AddVoter(id) => {
                        world.members.borrow_mut().insert(id);
                        shared.hosts.borrow_mut().push(host_name(id));
                    }
                    OperatorTask::Remove(id) => {
                        world.members.borrow_mut().remove(&id);
                        shared
                            .hosts
                            .borrow_mut()
                            .retain(|host| *host != host_name(id));
                    }
                }
                return;
            }
            // Refused for good (e.g. it would lose the majority): give up on it.
            Ok(answer) if (400..500).contains(&answer.status) => return,
            _ => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}

/// The harness side of a run: carries out the schedule and samples the nodes.
struct Harness {
    world: Rc<World>,
    plan: VecDeque<Scheduled>,
    faults: BTreeMap<&'static str, usize>,
    fault_log: Vec<(u64, String)>,
    leadership: LeadershipTimeline,
    invariants: check::invariants::InvariantSampler,
    /// Every event any replica's outbox held (for the delivery checks).
    outbox: check::deliveries::OutboxRecord,
    crashed: BTreeSet<u64>,
    /// Whether the receiver's host is down.
    receiver_down: bool,
    /// When the receiver last came back from being down.
    receiver_back_ms: Option<u64>,
}

impl Harness {
    fn nodes(&self) -> Vec<u64> {
        self.world.topology.ids()
    }

    /// The node that leads now, by the highest term any running node reports.
    fn leader(&self) -> Option<u64> {
        let registry = self.world.registry.borrow();
        registry
            .iter()
            .filter(|(id, _)| !self.crashed.contains(id))
            .filter_map(|(id, replica)| {
                let metrics = replica.node().metrics().borrow().clone();
                (metrics.state == ServerState::Leader).then_some((metrics.current_term, *id))
            })
            .max()
            .map(|(_, id)| id)
    }

    fn resolve(&self, target: Target) -> Option<u64> {
        let members: Vec<u64> = self
            .world
            .members
            .borrow()
            .iter()
            .copied()
            .filter(|id| !self.crashed.contains(id))
            .collect();
        match target {
            Target::Node(id) => Some(id),
            Target::Leader => self.leader().or_else(|| members.first().copied()),
            Target::Follower => {
                let leader = self.leader();
                members.into_iter().find(|id| Some(*id) != leader)
            }
        }
    }

    fn count(&mut self, now_ms: u64, kind: &'static str, description: String) {
        *self.faults.entry(kind).or_default() += 1;
        self.fault_log.push((now_ms, description));
    }

    fn crash(&mut self, sim: &mut turmoil::Sim<'_>, id: u64, power_loss: bool) {
        if self.crashed.insert(id) {
            sim.crash(host_name(id));
            self.world.registry.borrow_mut().remove(&id);
        }
        if power_loss {
            self.world.disks[&id].power_loss();
        }
    }

    fn restart_all(&mut self, sim: &mut turmoil::Sim<'_>) {
        for id in std::mem::take(&mut self.crashed) {
            sim.bounce(host_name(id));
        }
    }

    /// The receiver back up, answering at once and reachable from every node.
    fn receiver_up(&mut self, sim: &mut turmoil::Sim<'_>, now_ms: u64) {
        if std::mem::take(&mut self.receiver_down) {
            sim.bounce(RECEIVER_HOST);
            self.receiver_back_ms = Some(now_ms);
        }
        for id in self.nodes() {
            sim.repair(RECEIVER_HOST, host_name(id));
        }
        self.world.receiver.mode.set(ReceiverMode::Up);
    }

    fn repair_all(&self, sim: &mut turmoil::Sim<'_>) {
        let nodes = self.nodes();
        for &a in &nodes {
            for &b in &nodes {
                if a < b {
                    sim.repair(host_name(a), host_name(b));
                }
            }
        }
    }

    fn apply_due(&mut self, sim: &mut turmoil::Sim<'_>, now_ms: u64) {
        while self.plan.front().is_some_and(|next| next.at_ms <= now_ms) {
            let Some(scheduled) = self.plan.pop_front() else {
                break;
            };
            self.apply(sim, now_ms, scheduled.action);
        }
    }

    fn apply(&mut self, sim: &mut turmoil::Sim<'_>, now_ms: u64, action: Action) {
        let nodes = self.nodes();
        match action {
            Action::Isolate(target) => {
                let Some(id) = self.resolve(target) else {
                    return;
                };
                for &other in nodes.iter().filter(|&&other| other != id) {
                    sim.partition(host_name(id), host_name(other));
                }
                self.count(now_ms, "isolate", format!("isolate n{id}"));
            }
            Action::Partition(side) => {
                for &a in &side {
                    for &b in nodes.iter().filter(|node| !side.contains(node)) {
                        sim.partition(host_name(a), host_name(b));
                    }
                }
                self.count(
                    now_ms,
                    "partition",
                    format!("partition {side:?} from the rest"),
                );
            }
            Action::PartitionOneWay { from, to } => {
                let (Some(from), Some(to)) = (self.resolve(from), self.resolve(to)) else {
                    return;
                };
                if from == to {
                    return;
                }
                sim.partition_oneway(host_name(from), host_name(to));
                self.count(
                    now_ms,
                    "one-way partition",
                    format!("drop n{from} -> n{to}"),
                );
            }
            Action::RepairAll => {
                self.repair_all(sim);
                self.fault_log.push((now_ms, "repair".into()));
            }
            Action::MaxLatency { ms } => {
                sim.set_max_message_latency(Duration::from_millis(ms));
                self.count(now_ms, "latency", format!("max latency {ms} ms"));
            }
            Action::Loss { rate } => {
                sim.set_fail_rate(rate);
                self.count(now_ms, "loss", format!("loss rate {rate:.3}"));
            }
            Action::Crash { target, power_loss } => {
                let Some(id) = self.resolve(target) else {
                    return;
                };
                self.crash(sim, id, power_loss);
                let kind = if power_loss { "power loss" } else { "crash" };
                self.count(now_ms, kind, format!("{kind} n{id}"));
            }
            Action::PowerFailureAll => {
                for &id in &nodes {
                    self.crash(sim, id, true);
                }
                self.count(
                    now_ms,
                    "power failure (all)",
                    "power failure of every node".into(),
                );
            }
            Action::CrashRegion(region) => {
                for &(id, node_region) in &self.world.topology.nodes.clone() {
                    if node_region == region {
                        self.crash(sim, id, false);
                    }
                }
                self.count(now_ms, "region lost", format!("region r{region} lost"));
            }
            Action::RestartAll => {
                self.fault_log
                    .push((now_ms, format!("restart {:?}", self.crashed)));
                self.restart_all(sim);
            }
            Action::ClockOffset { target, offset_ms } => {
                let Some(id) = self.resolve(target) else {
                    return;
                };
                self.world.clocks[&id].set_offset_ms(offset_ms);
                self.count(
                    now_ms,
                    "clock offset",
                    format!("n{id} clock {offset_ms:+} ms"),
                );
            }
            Action::AddVoter(id) => {
                self.world
                    .operator_tasks
                    .borrow_mut()
                    .push_back(OperatorTask::AddVoter(id));
                self.count(now_ms, "add voter", format!("add n{id}"));
            }
            Action::RemoveVoter(target) => {
                let Some(id) = self.resolve(target) else {
                    return;
                };
                self.world
                    .operator_tasks
                    .borrow_mut()
                    .push_back(OperatorTask::Remove(id));
                self.count(now_ms, "remove voter", format!("remove n{id}"));
            }
            Action::Receiver(mode) => {
                self.world.receiver.mode.set(mode);
                self.count(now_ms, "receiver answers", format!("receiver {mode:?}"));
            }
            Action::ReceiverDown => {
                if !self.receiver_down {
                    self.receiver_down = true;
                    sim.crash(RECEIVER_HOST);
                }
                self.count(now_ms, "receiver down", "receiver down".into());
            }
            Action::ReceiverUp => {
                self.receiver_up(sim, now_ms);
                self.fault_log.push((now_ms, "receiver up".into()));
            }
            Action::IsolateReceiver(target) => {
                let Some(id) = self.resolve(target) else {
                    return;
                };
                sim.partition(RECEIVER_HOST, host_name(id));
                self.count(
                    now_ms,
                    "receiver cut off",
                    format!("receiver cut off from n{id}"),
                );
            }
            Action::Heal => {
                self.repair_all(sim);
                sim.set_max_message_latency(Duration::from_millis(5));
                sim.set_fail_rate(0.0);
                self.restart_all(sim);
                self.receiver_up(sim, now_ms);
                self.fault_log.push((now_ms, "heal".into()));
            }
        }
    }

    /// Between steps: who leads, and the invariants of every running replica.
    fn sample(&mut self, now_ms: u64) {
        let registry = self.world.registry.borrow();
        let mut highest: Option<(u64, Option<u64>)> = None;
        for (id, replica) in registry.iter() {
            if self.crashed.contains(id) {
                continue;
            }
            let metrics = replica.node().metrics().borrow().clone();
            let leader = metrics.current_leader;
            match highest {
                Some((term, known))
                    if metrics.current_term < term
                        || (metrics.current_term == term && known.is_some()) => {}
                _ => highest = Some((metrics.current_term, leader)),
            }
            if now_ms % 50 < 10 {
                replica
                    .node()
                    .read_stale(|state| self.invariants.sample(*id, now_ms, &state.machine));
            }
        }
        if let Some((term, leader)) = highest {
            self.leadership.observe(now_ms * 1_000, term, leader);
        }
    }

    /// After every step: the events every running replica's outbox holds that were not
    /// recorded yet (see `check::deliveries`).
    fn record_outbox(&mut self) {
        let registry = self.world.registry.borrow();
        for (id, replica) in registry.iter() {
            if self.crashed.contains(id) {
                continue;
            }
            replica
                .node()
                .read_stale(|state| self.outbox.sample(*id, &state.machine));
        }
    }

    /// The running members' states, if they all applied the same index.
    fn converged(&self) -> Option<Vec<ReplicaState>> {
        let states = self.states();
        let members = self.members().len();
        let first = states.first()?.applied_index;
        (states.len() == members && states.iter().all(|state| state.applied_index == first))
            .then_some(states)
    }

    /// The cluster's members (voters and learners) by the membership the most advanced
    /// running node applied: what the cluster itself says, whatever the operator heard back
    /// (a removal whose answer was lost still removed the node). When no running node knows
    /// any membership (every one lost its data), the members the operator set up: a node
    /// that forgot everything is still a member whose state the checkers must see.
    fn members(&self) -> BTreeSet<u64> {
        let registry = self.world.registry.borrow();
        registry
            .iter()
            .filter(|(id, _)| !self.crashed.contains(id))
            .map(|(_, replica)| replica.node().metrics().borrow().clone())
            .max_by_key(|metrics| metrics.last_applied.map(|log_id| log_id.index))
            .map(|metrics| {
                metrics
                    .membership_config
                    .membership()
                    .nodes()
                    .map(|(id, _)| *id)
                    .collect::<BTreeSet<u64>>()
            })
            .filter(|members| !members.is_empty())
            .unwrap_or_else(|| self.world.members.borrow().clone())
    }

    fn states(&self) -> Vec<ReplicaState> {
        let members = self.members();
        let registry = self.world.registry.borrow();
        registry
            .iter()
            .filter(|(id, _)| members.contains(id) && !self.crashed.contains(id))
            .map(|(id, replica)| {
                replica.node().read_stale(|state| ReplicaState {
                    node_id: *id,
                    applied_index: state.applied_index(),
                    machine: state.machine.clone(),
                })
            })
            .collect()
    }
}
