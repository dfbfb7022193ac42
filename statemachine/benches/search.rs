//! Search over 100,000 events (the state machine's event limit).
//!
//! `cargo bench -p holdfast-statemachine --bench search [-- --events N --runs N]`
//!
//! Builds a catalogue of movies, concerts, hotels (three room types for 30 nights each)
//! and appointments across eight cities and a year of start times, then times each query
//! shape `--runs` times (default 200) and prints the median and the 99th percentile per
//! query, with the events each one returned, and the mean CPU time per query (user and
//! kernel, from `/proc/self/stat`: on a shared machine, wall time is mostly waiting). Only the search is timed, not building the
//! answer's JSON (that is the node's).

use std::time::{Duration, Instant};

use holdfast_statemachine::limits::EVENTS_MAX;
use holdfast_statemachine::*;

const START_MS: u64 = 1_790_000_000_000;
const DAY_MS: u64 = 86_400_000;
const CITIES: [&str; 8] = [
    "Lyon",
    "Paris",
    "Marseille",
    "Lille",
    "Nantes",
    "Bordeaux",
    "Toulouse",
    "Nice",
];

struct Options {
    events: usize,
    runs: usize,
}

fn options() -> Options {
    let mut options = Options {
        events: EVENTS_MAX,
        runs: 200,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().and_then(|v| v.parse().ok());
        match arg.as_str() {
            "--events" => options.events = value().expect("--events N"),
            "--runs" => options.runs = value().expect("--runs N"),
            _ => {} // `cargo bench` passes `--bench`.
        }
    }
    options
}

/// `YYYY-MM-DD` of day `day` after 2026-12-01 (December and January are enough here).
fn night(day: u64) -> String {
    if day < 31 {
        format!("2026-12-{:02}", day + 1)
    } else {
        format!("2027-01-{:02}", day - 30)
    }
}

fn event(n: u64) -> CreateEvent {
    let category = [
        Category::Movie,
        Category::Event,
        Category::Hotel,
        Category::Appointment,
    ][(n % 4) as usize];
    // A year of start times, in an order unlike the ids'.
    let starts_at_ms = START_MS + (n * 7_919 % 100_000) * (365 * DAY_MS / 100_000);
    let (seat_blocks, pools) = match category {
        Category::Movie => (
            vec![SeatBlock {
                section: "A".into(),
                rows: (1..=10).map(|row| row.to_string()).collect(),
                seats_per_row: 20,
                price: 1_200,
            }],
            vec![],
        ),
        Category::Hotel => {
            let mut pools = Vec::new();
            for day in 0..30 {
                for room_type in ["STD", "DBL", "STE"] {
                    pools.push(PoolSpec {
                        id: format!("{room_type}-{}", night(day)),
                        // Some hotels are full some nights.
                        capacity: (n + day) % 5,
                        price: 9_900,
                    });
                }
            }
            (vec![], pools)
        }
        _ => (
            vec![],
            vec![PoolSpec {
                id: "GA".into(),
                capacity: n % 500,
                price: 2_500,
            }],
        ),
    };
    CreateEvent {
        event_id: format!("ev-{n}"),
        name: format!("Event number {n}"),
        category,
        starts_at_ms: Some(starts_at_ms),
        currency: "EUR".into(),
        seats: vec![],
        seat_blocks,
        pools,
        listing: Listing {
            venue: Some(format!("Venue {}", n % 1_000)),
            city: Some(CITIES[(n / 4 % 8) as usize].into()),
            ..Listing::default()
        },
    }
}

/// CPU time this process has used so far, user and kernel (Linux; clock ticks of 10 ms).
/// On a machine shared with other work, wall time mostly measures waiting for a core;
/// CPU time over many runs does not.
fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // After the parenthesised command name, `utime` and `stime` are the 12th and 13th fields.
    let mut fields = stat[stat.rfind(')')? + 1..].split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let kernel: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis((user + kernel) * 10))
}

fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * fraction) as usize]
}

fn main() {
    let options = options();
    let mut state = StateMachine::default();
    let started = Instant::now();
    for n in 0..options.events as u64 {
        let outcome = state.apply(&Entry {
            time_ms: START_MS,
            request_id: None,
            command: Command::CreateEvent(event(n)),
        });
        assert!(outcome.is_success(), "{outcome:?}");
    }
    println!(
        "{} events created in {:.2} s",
        options.events,
        started.elapsed().as_secs_f64()
    );
    let middle = START_MS + 180 * DAY_MS;
    let nights: Vec<String> = (3..6).map(night).collect();
    let queries: Vec<(&str, SearchQuery)> = vec![
        (
            "first page, no filter (50)",
            SearchQuery {
                limit: 50,
                ..SearchQuery::default()
            },
        ),
        (
            "category + city (50)",
            SearchQuery {
                category: Some(Category::Movie),
                city: Some("lyon".into()),
                limit: 50,
                ..SearchQuery::default()
            },
        ),
        (
            "time window of a week (500)",
            SearchQuery {
                starts_from_ms: Some(middle),
                starts_to_ms: Some(middle + 7 * DAY_MS),
                limit: 500,
                ..SearchQuery::default()
            },
        ),
        (
            "text in name or venue, rare (50)",
            SearchQuery {
                text: Some("venue 999".into()),
                limit: 50,
                ..SearchQuery::default()
            },
        ),
        (
            "min_available 450 (50)",
            SearchQuery {
                min_available: Some(450),
                limit: 50,
                ..SearchQuery::default()
            },
        ),
        (
            "hotels free 3 nights in Nice (50)",
            SearchQuery {
                category: Some(Category::Hotel),
                city: Some("nice".into()),
                nights,
                limit: 50,
                ..SearchQuery::default()
            },
        ),
        (
            "no match: walks every event",
            SearchQuery {
                text: Some("nothing like this".into()),
                limit: 50,
                ..SearchQuery::default()
            },
        ),
    ];
    println!(
        "{:<36} {:>8} {:>12} {:>12} {:>14}",
        "query", "events", "median", "p99", "CPU per query"
    );
    for (name, query) in &queries {
        let mut times = Vec::with_capacity(options.runs);
        let mut found = 0;
        let cpu_before = cpu_time();
        for _ in 0..options.runs {
            let started = Instant::now();
            let page = state.search(query).expect("valid query");
            times.push(started.elapsed());
            found = std::hint::black_box(page).events.len();
        }
        let cpu = cpu_before
            .zip(cpu_time())
            .map(|(before, after)| (after - before).as_secs_f64() * 1e6 / options.runs as f64);
        times.sort_unstable();
        println!(
            "{:<36} {:>8} {:>9.1} µs {:>9.1} µs {:>11.1} µs",
            name,
            found,
            percentile(&times, 0.5).as_secs_f64() * 1e6,
            percentile(&times, 0.99).as_secs_f64() * 1e6,
            cpu.unwrap_or(f64::NAN),
        );
    }
}
