//! The workloads: flash sale, browse, hotel and mixed, each with its inventory set-up and
//! its end-of-run check (nothing sold twice, the cluster's counts equal what the clients
//! were told).

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{bail, Result};
use serde_json::{json, Value};

use super::http::Http;
use super::load::{Class, OpKind, Recorder, Run, Workload};
use super::Options;

/// Seats per row and rows per section of the benchmark venues: sections of 400 seats.
const SEATS_PER_ROW: u64 = 20;
const ROWS_PER_SECTION: u64 = 20;
const SEATS_PER_SECTION: u64 = SEATS_PER_ROW * ROWS_PER_SECTION;

/// A venue of `seats` seats in 400-seat sections `S1`, `S2`, ... (rounded up to whole rows).
#[derive(Clone, Copy, Debug)]
pub struct Venue {
    /// Seats in all: a whole number of 20-seat rows.
    pub seats: u64,
}

impl Venue {
    /// A venue of `seats` seats rounded up to whole rows of 20 (one row at least).
    pub fn new(seats: u64) -> Venue {
        Venue {
            seats: seats.max(1).div_ceil(SEATS_PER_ROW) * SEATS_PER_ROW,
        }
    }

    /// The id of seat `index` (0-based): `S<section>-<row>-<number>`.
    pub fn seat_id(index: u64) -> String {
        let section = index / SEATS_PER_SECTION + 1;
        let row = (index % SEATS_PER_SECTION) / SEATS_PER_ROW + 1;
        let number = index % SEATS_PER_ROW + 1;
        format!("S{section}-{row}-{number}")
    }

    /// The seat blocks of `POST /admin/events`.
    fn seat_blocks(&self) -> Vec<Value> {
        let rows_total = self.seats / SEATS_PER_ROW;
        let sections = rows_total.div_ceil(ROWS_PER_SECTION);
        (0..sections)
            .map(|section| {
                let rows = (rows_total - section * ROWS_PER_SECTION).min(ROWS_PER_SECTION);
                let names: Vec<String> = (1..=rows).map(|row| row.to_string()).collect();
                json!({"section": format!("S{}", section + 1), "rows": names,
                       "seats_per_row": SEATS_PER_ROW, "price": 4500})
            })
            .collect()
    }
}

/// Creates the event of a venue on node 0.
pub async fn create_venue(http: &Http, event_id: &str, venue: Venue) -> Result<()> {
    let body = json!({
        "event_id": event_id, "name": format!("Benchmark venue of {} seats", venue.seats),
        "category": "event", "starts_at": "2030-06-01T20:00:00Z", "currency": "EUR",
        "seat_blocks": venue.seat_blocks(),
    });
    create_event(http, body).await
}

async fn create_event(http: &Http, body: Value) -> Result<()> {
    let answer = http
        .post(0, "/admin/events", None, body.to_string())
        .await
        .map_err(|class| anyhow::anyhow!("event creation failed: {class:?}"))?;
    if answer.status != 201 {
        bail!(
            "event creation answered {}: {}",
            answer.status,
            String::from_utf8_lossy(&answer.body)
        );
    }
    Ok(())
}

/// A prefix for event ids and request ids, unique to each call in this process and to this
/// process among runs against the same cluster.
pub fn run_tag() -> String {
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_millis());
    format!("{nonce:x}p{}", CALLS.fetch_add(1, Ordering::Relaxed))
}

/// Records a finished request, unless the run is still warming up.
fn record(recorder: &Mutex<Recorder>, run: &Run, kind: OpKind, started: Instant, class: Class) {
    if run.recording() {
        recorder
            .lock()
            .expect("recorder lock")
            .record(kind, started.elapsed(), class);
    }
    run.tick();
}

/// Confirms the hold of a successful hold `answer` with the sandbox's good card, recorded
/// as a `confirm` request; returns how it ended.
async fn confirm(
    http: &Http,
    node: usize,
    key: &str,
    answer: Result<super::http::Answer, Class>,
    recorder: &Mutex<Recorder>,
    run: &Run,
) -> Class {
    let hold_id = answer
        .map(|answer| answer.json()["hold_id"].clone())
        .unwrap_or(Value::Null);
    let body = json!({"hold_id": hold_id, "payment": {"token": "tok_visa"}}).to_string();
    let started = Instant::now();
    let class = match http.post(node, "/booking/confirm", Some(key), body).await {
        Ok(answer) => answer.class(200),
        Err(class) => class,
    };
    record(recorder, run, OpKind::Confirm, started, class.clone());
    class
}

/// Single-seat holds on one venue, hot and random seats, a share of them confirmed.
pub struct FlashSale {
    /// The cluster's nodes.
    pub http: Http,
    /// The venue's event, created before the sale.
    pub event_id: String,
    /// The venue on sale.
    pub venue: Venue,
    /// Seats `0..hot_seats` are the hot ones.
    pub hot_seats: u64,
    /// Share of holds that go for a hot seat (0.0 to 1.0); the others pick any seat.
    pub hot_fraction: f64,
    /// Share of successful holds that are then confirmed (0.0 to 1.0).
    pub confirm_ratio: f64,
    /// Whether plain HTTP holds carry an `Idempotency-Key`; confirms and SDK calls always
    /// do.
    pub keys: bool,
    /// The run's prefix of idempotency keys ([`run_tag`]).
    pub tag: String,
    /// Successful holds per seat, as the clients were told: more than one is a double
    /// booking (holds outlive the run and nothing is released).
    pub held: Vec<AtomicU32>,
    /// Holds and confirms without a definite answer: they may or may not have happened.
    pub unknown_holds: AtomicU64,
    /// Confirms that succeeded, as the clients were told.
    pub confirmed: AtomicU64,
    /// Holds and confirms go through the SDK (`--sdk`) instead of plain HTTP.
    pub sdk: Option<holdfast_client::Client>,
}

impl FlashSale {
    /// A sale on `venue` (already created as `event_id`) as the options describe.
    pub fn new(
        http: Http,
        event_id: String,
        venue: Venue,
        options: &Options,
        tag: String,
    ) -> FlashSale {
        FlashSale {
            http,
            event_id,
            venue,
            hot_seats: options.hot_seats.clamp(1, venue.seats),
            hot_fraction: options.hot_fraction,
            confirm_ratio: options.confirm_ratio,
            keys: !options.no_keys,
            tag,
            held: (0..venue.seats).map(|_| AtomicU32::new(0)).collect(),
            unknown_holds: AtomicU64::new(0),
            confirmed: AtomicU64::new(0),
            sdk: None,
        }
    }

    fn pick_seat(&self) -> u64 {
        if rand::random::<f64>() < self.hot_fraction {
            rand::random::<u64>() % self.hot_seats
        } else {
            rand::random::<u64>() % self.venue.seats
        }
    }

    /// One hold, and its confirm when the dice say so.
    async fn hold_and_maybe_confirm(
        &self,
        client: usize,
        sequence: u64,
        started: Instant,
        recorder: &Mutex<Recorder>,
        run: &Run,
    ) {
        let seat = self.pick_seat();
        if let Some(sdk) = &self.sdk {
            return self
                .hold_and_maybe_confirm_sdk(sdk, seat, client, sequence, started, recorder, run)
                .await;
        }
        let node = self.http.node_for(client, sequence);
        let body =
            json!({"event_id": self.event_id, "customer_id": format!("b{client}-{sequence}"),
                          "seats": [Venue::seat_id(seat)]})
            .to_string();
        let key = self
            .keys
            .then(|| format!("{}h{client}-{sequence}", self.tag));
        let (answer, class) = self.http.hold(node, key.as_deref(), body).await;
        let held = class == Class::Ok;
        if held {
            self.held[seat as usize].fetch_add(1, Ordering::Relaxed);
        } else if matches!(class, Class::Error(_)) {
            self.unknown_holds.fetch_add(1, Ordering::Relaxed);
        }
        record(recorder, run, OpKind::Hold, started, class);
        if !held || rand::random::<f64>() >= self.confirm_ratio {
            return;
        }
        let key = format!("{}c{client}-{sequence}", self.tag);
        if confirm(&self.http, node, &key, answer, recorder, run).await == Class::Ok {
            self.confirmed.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// [`FlashSale::hold_and_maybe_confirm`] through the SDK: the key is given so it is
    /// the same on the SDK's retries, and concurrent clients' calls share `Batch` calls.
    #[allow(clippy::too_many_arguments)]
    async fn hold_and_maybe_confirm_sdk(
        &self,
        sdk: &holdfast_client::Client,
        seat: u64,
        client: usize,
        sequence: u64,
        started: Instant,
        recorder: &Mutex<Recorder>,
        run: &Run,
    ) {
        let request = holdfast_client::HoldRequest::seats(
            &self.event_id,
            format!("b{client}-{sequence}"),
            [Venue::seat_id(seat)],
        )
        .idempotency_key(format!("{}h{client}-{sequence}", self.tag));
        let answer = sdk.hold(request).await;
        let class = sdk_class(answer.as_ref().map(|_| ()));
        let held = class == Class::Ok;
        if held {
            self.held[seat as usize].fetch_add(1, Ordering::Relaxed);
        } else if matches!(class, Class::Error(_)) {
            self.unknown_holds.fetch_add(1, Ordering::Relaxed);
        }
        record(recorder, run, OpKind::Hold, started, class);
        let Ok(hold) = answer else { return };
        if rand::random::<f64>() >= self.confirm_ratio {
            return;
        }
        let request = holdfast_client::ConfirmRequest::new(&hold.hold_id, "tok_visa")
            .idempotency_key(format!("{}c{client}-{sequence}", self.tag));
        let started = Instant::now();
        let class = sdk_class(sdk.confirm(request).await.as_ref().map(|_| ()));
        record(recorder, run, OpKind::Confirm, started, class.clone());
        if class == Class::Ok {
            self.confirmed.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Seats held more than once by the clients' account, and seats held at all.
    pub fn client_counts(&self) -> (u64, u64) {
        let mut double = 0;
        let mut held = 0;
        for count in &self.held {
            match count.load(Ordering::Relaxed) {
                0 => {}
                1 => held += 1,
                _ => {
                    held += 1;
                    double += 1;
                }
            }
        }
        (double, held)
    }

    /// The end-of-run check: no seat held twice, and on every node the event's held and
    /// booked seats equal the holds the clients were granted (up to the holds whose answer
    /// was lost), with every node agreeing.
    pub async fn check(&self) -> Check {
        let (double, held) = self.client_counts();
        let unknown = self.unknown_holds.load(Ordering::Relaxed);
        let mut problems = Vec::new();
        if double > 0 {
            problems.push(format!("{double} seats were granted to two holds"));
        }
        let mut counts = Vec::new();
        for node in 0..self.http.nodes.len() {
            match linearizable_summary(&self.http, node, &self.event_id).await {
                Ok(answer) => {
                    let summary = &answer["summary"];
                    let taken = summary["seats_held"].as_u64().unwrap_or(0)
                        + summary["seats_booked"].as_u64().unwrap_or(0);
                    counts.push(taken);
                    if taken < held || taken > held + unknown {
                        problems.push(format!(
                            "node {} counts {taken} seats taken; the clients were granted {held} (+{unknown} unknown)",
                            node + 1
                        ));
                    }
                }
                Err(error) => problems.push(format!("node {}: {error}", node + 1)),
            }
        }
        if counts.windows(2).any(|pair| pair[0] != pair[1]) {
            problems.push(format!("the nodes disagree: {counts:?}"));
        }
        Check {
            description: format!(
                "{held} seats held by the clients' account, {double} twice; nodes count {counts:?}"
            ),
            problems,
        }
    }
}

/// How an SDK call ended: a 409 refusal is the workload's conflict, anything else an
/// error named by its code.
fn sdk_class(answer: Result<(), &holdfast_client::Error>) -> Class {
    match answer {
        Ok(()) => Class::Ok,
        Err(holdfast_client::Error::Api(refusal)) if refusal.code.http_status() == 409 => {
            Class::Conflict
        }
        Err(holdfast_client::Error::Api(refusal)) => Class::Error(format!("sdk_{}", refusal.code)),
        Err(holdfast_client::Error::DeadlineExceeded { .. }) => Class::Error("sdk_deadline".into()),
        Err(_) => Class::Error("sdk_transport".into()),
    }
}

impl Workload for FlashSale {
    async fn step(
        self: Arc<Self>,
        client: usize,
        sequence: u64,
        started: Instant,
        recorder: Arc<Mutex<Recorder>>,
        run: Arc<Run>,
    ) {
        self.hold_and_maybe_confirm(client, sequence, started, &recorder, &run)
            .await;
    }
}

/// The query of an event's summary view, read linearizably (sees every acknowledged
/// write).
pub fn linearizable_summary_query(event_id: &str) -> String {
    read_query(event_id, View::Summary, Level::Linearizable, 1, 0)
}

/// The summary view of an event on one node (counts and pools), read linearizably.
async fn linearizable_summary(http: &Http, node: usize, event_id: &str) -> Result<Value> {
    let answer = http
        .get(node, &linearizable_summary_query(event_id))
        .await
        .map_err(|class| anyhow::anyhow!("summary read failed: {class:?}"))?;
    if answer.status != 200 {
        bail!("summary read answered {}", answer.status);
    }
    Ok(answer.json())
}

/// The outcome of an end-of-run check.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Check {
    /// What was checked and counted, in one line.
    pub description: String,
    /// What was wrong; empty when the check passed.
    pub problems: Vec<String>,
}

impl Check {
    /// Whether nothing was wrong.
    pub fn passed(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Which availability view a read asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum View {
    /// `view=summary`: the counts and pools.
    Summary,
    /// The full view of one 400-seat section.
    Section,
}

/// A read level of API.md.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// `consistency=stale`: the answering node's local state.
    Stale,
    /// `consistency=bounded`: the local state of a node that heard from the leader within
    /// the default 1000 ms, else the leader's.
    Bounded,
    /// `consistency=linearizable`: read after the leader confirmed its leadership with a
    /// quorum.
    Linearizable,
}

impl Level {
    fn as_str(self) -> &'static str {
        match self {
            Level::Stale => "stale",
            Level::Bounded => "bounded",
            Level::Linearizable => "linearizable",
        }
    }
}

/// The query of one availability read.
pub fn read_query(event_id: &str, view: View, level: Level, sections: u64, pick: u64) -> String {
    match view {
        View::Summary => format!(
            "/availability?event_id={event_id}&view=summary&consistency={}",
            level.as_str()
        ),
        View::Section => format!(
            "/availability?event_id={event_id}&section=S{}&limit=400&consistency={}",
            pick % sections.max(1) + 1,
            level.as_str()
        ),
    }
}

async fn timed_read(
    http: &Http,
    node: usize,
    query: &str,
    started: Instant,
    recorder: &Mutex<Recorder>,
    run: &Run,
) {
    let class = match http.get(node, query).await {
        Ok(answer) => answer.class(200),
        Err(class) => class,
    };
    record(recorder, run, OpKind::Read, started, class);
}

/// Availability reads across every node at one level and view.
pub struct Browse {
    /// The cluster's nodes.
    pub http: Http,
    /// The venue's event, created before the phase.
    pub event_id: String,
    /// The venue, whose sections a [`View::Section`] read picks from.
    pub venue: Venue,
    /// The view every read asks for.
    pub view: View,
    /// The read level of every read.
    pub level: Level,
}

impl Workload for Browse {
    async fn step(
        self: Arc<Self>,
        client: usize,
        sequence: u64,
        started: Instant,
        recorder: Arc<Mutex<Recorder>>,
        run: Arc<Run>,
    ) {
        let sections = self.venue.seats.div_ceil(SEATS_PER_SECTION);
        let query = read_query(
            &self.event_id,
            self.view,
            self.level,
            sections,
            rand::random(),
        );
        let node = self.http.node_for(client, sequence);
        timed_read(&self.http, node, &query, started, &recorder, &run).await;
    }
}

/// 95 % stale reads (half summaries, half 400-seat sections), 5 % flash-sale holds.
pub struct Mixed {
    /// The sale that makes the holds; its venue is the one read.
    pub sale: FlashSale,
}

impl Workload for Mixed {
    async fn step(
        self: Arc<Self>,
        client: usize,
        sequence: u64,
        started: Instant,
        recorder: Arc<Mutex<Recorder>>,
        run: Arc<Run>,
    ) {
        let dice = rand::random::<f64>();
        if dice < 0.05 {
            return self
                .sale
                .hold_and_maybe_confirm(client, sequence, started, &recorder, &run)
                .await;
        }
        let view = if dice < 0.525 {
            View::Summary
        } else {
            View::Section
        };
        let sections = self.sale.venue.seats.div_ceil(SEATS_PER_SECTION);
        let query = read_query(
            &self.sale.event_id,
            view,
            Level::Stale,
            sections,
            rand::random(),
        );
        let node = self.sale.http.node_for(client, sequence);
        timed_read(&self.sale.http, node, &query, started, &recorder, &run).await;
    }
}

/// Multi-night holds over pools: `room_types` × `nights` pools of `rooms` each; a stay is
/// one room of one type for 1–4 consecutive nights, all or nothing.
pub struct Hotel {
    /// The cluster's nodes.
    pub http: Http,
    /// The hotel's event.
    pub event_id: String,
    /// Room types, at least one.
    pub room_types: u32,
    /// Nights on sale, at least one.
    pub nights: u32,
    /// Rooms of each type per night, at least one: each pool's capacity.
    pub rooms: u64,
    /// Share of successful holds that are then confirmed (0.0 to 1.0).
    pub confirm_ratio: f64,
    /// Whether holds carry an `Idempotency-Key`; confirms always do.
    pub keys: bool,
    /// The run's prefix of idempotency keys ([`run_tag`]).
    pub tag: String,
    /// Room nights granted per pool (type-major), as the clients were told.
    pub granted: Vec<AtomicU64>,
    /// Holds that ended in an error (neither `201` nor `409`): each may have taken up to
    /// four room nights.
    pub unknown_holds: AtomicU64,
}

impl Hotel {
    /// A hotel named `event_id` (created by [`Hotel::create`]) as the options describe.
    pub fn new(http: Http, event_id: String, options: &Options, tag: String) -> Hotel {
        let room_types = options.room_types.max(1);
        let nights = options.nights.max(1);
        Hotel {
            http,
            event_id,
            room_types,
            nights,
            rooms: options.rooms.max(1),
            confirm_ratio: options.confirm_ratio,
            keys: !options.no_keys,
            tag,
            granted: (0..room_types * nights)
                .map(|_| AtomicU64::new(0))
                .collect(),
            unknown_holds: AtomicU64::new(0),
        }
    }

    fn pool_id(room_type: u32, night: u32) -> String {
        format!("R{}-N{}", room_type + 1, night + 1)
    }

    /// Creates the hotel's event through node 0: a pool `R<type>-N<night>` (both counted
    /// from 1) of `rooms` rooms per room type and night. Fails unless the node answers
    /// `201`.
    pub async fn create(&self) -> Result<()> {
        let mut pools = Vec::new();
        for room_type in 0..self.room_types {
            for night in 0..self.nights {
                pools.push(json!({"id": Hotel::pool_id(room_type, night),
                                  "capacity": self.rooms, "price": 9000 + 1000 * room_type}));
            }
        }
        create_event(
            &self.http,
            json!({"event_id": self.event_id, "name": "Benchmark hotel", "category": "hotel",
                   "starts_at": "2030-06-01T15:00:00Z", "currency": "EUR", "pools": pools}),
        )
        .await
    }

    /// Every pool's held and booked rooms equal what the clients were granted (up to the
    /// unknown answers) and never exceed its capacity, on every node.
    pub async fn check(&self) -> Check {
        let unknown = self.unknown_holds.load(Ordering::Relaxed) * 4;
        let granted: u64 = self
            .granted
            .iter()
            .map(|count| count.load(Ordering::Relaxed))
            .sum();
        let mut problems = Vec::new();
        let mut totals = Vec::new();
        for node in 0..self.http.nodes.len() {
            let pools = match linearizable_summary(&self.http, node, &self.event_id).await {
                Ok(answer) => answer["pools"].clone(),
                Err(error) => {
                    problems.push(format!("node {}: {error}", node + 1));
                    continue;
                }
            };
            let mut total = 0;
            for pool in pools.as_array().into_iter().flatten() {
                let taken =
                    pool["held"].as_u64().unwrap_or(0) + pool["booked"].as_u64().unwrap_or(0);
                if taken > pool["capacity"].as_u64().unwrap_or(0) {
                    problems.push(format!(
                        "node {}: pool {} over capacity",
                        node + 1,
                        pool["id"]
                    ));
                }
                total += taken;
            }
            if total < granted || total > granted + unknown {
                problems.push(format!(
                    "node {} counts {total} room nights taken; the clients were granted {granted}",
                    node + 1
                ));
            }
            totals.push(total);
        }
        Check {
            description: format!("{granted} room nights granted; nodes count {totals:?}"),
            problems,
        }
    }
}

impl Workload for Hotel {
    async fn step(
        self: Arc<Self>,
        client: usize,
        sequence: u64,
        started: Instant,
        recorder: Arc<Mutex<Recorder>>,
        run: Arc<Run>,
    ) {
        let room_type = rand::random::<u32>() % self.room_types;
        let stay = (rand::random::<u32>() % 4 + 1).min(self.nights);
        let first = rand::random::<u32>() % (self.nights - stay + 1);
        let pools: Vec<Value> = (first..first + stay)
            .map(|night| json!({"pool_id": Hotel::pool_id(room_type, night), "quantity": 1}))
            .collect();
        let body =
            json!({"event_id": self.event_id, "customer_id": format!("g{client}-{sequence}"),
                          "pools": pools})
            .to_string();
        let node = self.http.node_for(client, sequence);
        let key = self
            .keys
            .then(|| format!("{}h{client}-{sequence}", self.tag));
        let (answer, class) = self.http.hold(node, key.as_deref(), body).await;
        match class {
            Class::Ok => {
                for night in first..first + stay {
                    self.granted[(room_type * self.nights + night) as usize]
                        .fetch_add(1, Ordering::Relaxed);
                }
            }
            Class::Error(_) => {
                self.unknown_holds.fetch_add(1, Ordering::Relaxed);
            }
            Class::Conflict => {}
        }
        let held = class == Class::Ok;
        record(&recorder, &run, OpKind::Hold, started, class);
        if !held || rand::random::<f64>() >= self.confirm_ratio {
            return;
        }
        let key = format!("{}c{client}-{sequence}", self.tag);
        confirm(&self.http, node, &key, answer, &recorder, &run).await;
    }
}
