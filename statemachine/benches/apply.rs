//! Single-threaded apply throughput of the booking state machine.
//!
//! `cargo bench -p holdfast-statemachine --bench apply [-- --seats N --holds N --keyed N --holds-only]`
//!
//! `--holds-only` stops after the hold phases, for profiling them (`perf record`, or
//! `valgrind --tool=callgrind` for instruction counts, which do not vary from run to run).
//! `--keyed N` sets how many of the holds carry an idempotency key (half by default).
//!
//! Reports holds, confirms and expiries applied per second, availability-summary latency
//! (on a small and on the large event, to show it does not grow with the venue), and the
//! snapshot size and build/restore time of the large event.
//!
//! Commands are applied as a node applies them: in batches of up to 512 (one Raft entry),
//! each batch made just before it is applied, so its commands are in the cache as a freshly
//! decoded log entry's are. Only the applying is timed.

use std::time::{Duration, Instant};

use holdfast_statemachine::*;

/// The allocator the `holdfast` binary uses, so the figures match what the node does.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Options {
    seats: u32,
    holds: u32,
    /// Holds with an idempotency key, the first phase; the rest have none.
    keyed: Option<u32>,
    holds_only: bool,
}

fn options() -> Options {
    let mut options = Options {
        seats: 1_000_000,
        holds: 500_000,
        keyed: None,
        holds_only: false,
    };
    let arguments: Vec<String> = std::env::args().collect();
    let mut index = 1;
    while index < arguments.len() {
        let value = || arguments.get(index + 1).and_then(|v| v.parse().ok());
        match arguments[index].as_str() {
            "--seats" => options.seats = value().expect("--seats N"),
            "--holds" => options.holds = value().expect("--holds N"),
            "--keyed" => options.keyed = Some(value().expect("--keyed N")),
            "--holds-only" => options.holds_only = true,
            _ => {} // `cargo bench` passes `--bench`.
        }
        index += 1;
    }
    options
}

fn venue(event_id: &str, seats: u32) -> Command {
    let per_row = 1000.min(seats);
    let rows = seats.div_ceil(per_row);
    Command::CreateEvent(CreateEvent {
        event_id: event_id.into(),
        name: "Bench arena".into(),
        category: Category::Event,
        starts_at_ms: None,
        currency: "EUR".into(),
        seats: vec![],
        seat_blocks: vec![SeatBlock {
            section: "A".into(),
            rows: (1..=rows).map(|r| r.to_string()).collect(),
            seats_per_row: per_row,
            price: 4500,
        }],
        pools: vec![PoolSpec {
            id: "GA".into(),
            capacity: 50_000,
            price: 2500,
        }],
    })
}

/// A fixed permutation of seat numbers (xorshift), so holds touch the venue in random order.
fn shuffled(count: u32, seats: u32) -> Vec<String> {
    let per_row = 1000.min(seats);
    let mut order: Vec<u32> = (0..seats).collect();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for i in (1..order.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        order.swap(i, (x % (i as u64 + 1)) as usize);
    }
    order.truncate(count as usize);
    order
        .iter()
        .map(|&s| format!("A-{}-{}", s / per_row + 1, s % per_row + 1))
        .collect()
}

/// Resident memory of this process (Linux), for the state's growth per hold.
fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// Commands per Raft entry in the node (its default `HOLDFAST_BATCH_ENTRIES_MAX`).
const BATCH: usize = 512;

/// Applies `entries` the way a node does: a batch at a time, each batch made just before it
/// is applied (a node decodes an entry from its log right before applying it, so its commands
/// are fresh in the cache). Only the applying is timed; `answer` sees every outcome, inside
/// the timing.
fn apply_batched(
    state: &mut StateMachine,
    count: usize,
    mut entry: impl FnMut(usize) -> Entry,
    mut answer: impl FnMut(Outcome),
) -> Duration {
    let mut elapsed = Duration::ZERO;
    let mut batch = Vec::with_capacity(BATCH);
    for start in (0..count).step_by(BATCH) {
        batch.extend((start..count.min(start + BATCH)).map(&mut entry));
        let started = Instant::now();
        for entry in &batch {
            answer(state.apply(entry));
        }
        elapsed += started.elapsed();
        batch.clear();
    }
    elapsed
}

fn rate(count: u64, elapsed: Duration) -> String {
    format!("{:>12.0}/s", count as f64 / elapsed.as_secs_f64())
}

fn main() {
    let options = options();
    let mut state = StateMachine::default();
    let mut time_ms = 1_700_000_000_000u64;
    let started = Instant::now();
    assert!(state
        .apply(&Entry {
            time_ms,
            request_id: None,
            command: venue("arena", options.seats)
        })
        .is_success());
    let create_elapsed = started.elapsed();
    assert!(state
        .apply(&Entry {
            time_ms,
            request_id: None,
            command: venue("small", 1000)
        })
        .is_success());
    println!(
        "state machine apply benchmark: {} seats, {} holds",
        options.seats, options.holds
    );
    println!(
        "{:<44} {:>14}",
        "create event (seat blocks)",
        format!("{:.1} ms", create_elapsed.as_secs_f64() * 1e3)
    );

    let seat_ids = shuffled(options.holds, options.seats);
    // Hold `n`: seat `n` of the shuffled venue for a new customer, with or without a key.
    let hold_entry = |n: usize, keyed: bool| Entry {
        time_ms,
        request_id: keyed.then(|| format!("hold:{n:016x}")),
        command: Command::Hold(HoldRequest {
            event_id: "arena".into(),
            customer_id: format!("customer-{n}"),
            seats: vec![seat_ids[n].clone()],
            pools: vec![],
            best_available: None,
            ttl_seconds: Some(600),
        }),
    };
    let keyed_count = options.keyed.map_or(seat_ids.len() / 2, |keyed| {
        (keyed as usize).min(seat_ids.len())
    });
    let plain_count = seat_ids.len() - keyed_count;
    // The answers the confirms below need, allocated up front so that the growth measured
    // across the hold phases is the state's.
    let mut holds: Vec<(CompactString, u64)> = Vec::with_capacity(seat_ids.len());
    let resident_before = resident_bytes();
    let keyed_elapsed = apply_batched(
        &mut state,
        keyed_count,
        |n| hold_entry(n, true),
        |outcome| match outcome {
            Outcome::Held(view) => holds.push((view.hold_id, view.amount)),
            other => panic!("{other:?}"),
        },
    );
    let resident_keyed = resident_bytes();
    let plain_elapsed = apply_batched(
        &mut state,
        plain_count,
        |n| hold_entry(keyed_count + n, false),
        |outcome| match outcome {
            Outcome::Held(view) => holds.push((view.hold_id, view.amount)),
            other => panic!("{other:?}"),
        },
    );
    let resident_plain = resident_bytes();
    println!(
        "{:<44} {:>14}",
        "holds, single seat, with idempotency key",
        rate(keyed_count as u64, keyed_elapsed)
    );
    println!(
        "{:<44} {:>14}",
        "holds, single seat, without key",
        rate(plain_count as u64, plain_elapsed)
    );
    if let (Some(before), Some(keyed), Some(after)) =
        (resident_before, resident_keyed, resident_plain)
    {
        let per_hold = |from: u64, to: u64, count: usize| {
            format!("{:.0} B", to.saturating_sub(from) as f64 / count as f64)
        };
        println!(
            "{:<44} {:>14}",
            "resident memory per hold, with key",
            per_hold(before, keyed, keyed_count)
        );
        println!(
            "{:<44} {:>14}",
            "resident memory per hold, without key",
            per_hold(keyed, after, plain_count)
        );
    }
    if options.holds_only {
        return;
    }

    let conflict = Entry {
        time_ms,
        request_id: None,
        command: hold_entry(0, false).command,
    };
    let started = Instant::now();
    let conflicts = 200_000u64;
    for _ in 0..conflicts {
        assert!(!state.apply(&conflict).is_success());
    }
    println!(
        "{:<44} {:>14}",
        "holds refused (one seat, taken)",
        rate(conflicts, started.elapsed())
    );

    // The same refusal over every held seat in random order: each lookup misses the caches,
    // as a successful hold's does, so this is what finding the customer and the seat costs
    // before anything is written.
    let refused_elapsed = apply_batched(
        &mut state,
        plain_count,
        |n| hold_entry(keyed_count + n, false),
        |outcome| assert!(!outcome.is_success()),
    );
    println!(
        "{:<44} {:>14}",
        "holds refused (random seats, all taken)",
        rate(plain_count as u64, refused_elapsed)
    );

    let confirm_entry = |n: usize| {
        let (hold_id, amount) = &holds[2 * n];
        Entry {
            time_ms,
            request_id: None,
            command: Command::Confirm {
                hold_id: hold_id.to_string(),
                payment: PaymentRecord {
                    provider: "sandbox".into(),
                    payment_id: format!("pay-{hold_id}"),
                    amount: *amount,
                },
            },
        }
    };
    let confirm_count = holds.len().div_ceil(2);
    let confirm_elapsed = apply_batched(&mut state, confirm_count, confirm_entry, |outcome| {
        assert!(outcome.is_success())
    });
    println!(
        "{:<44} {:>14}",
        "confirms",
        rate(confirm_count as u64, confirm_elapsed)
    );

    let summary_calls = 2_000_000u32;
    for event in ["small", "arena"] {
        let started = Instant::now();
        let mut sink = 0u64;
        for _ in 0..summary_calls {
            sink = sink.wrapping_add(
                std::hint::black_box(&state)
                    .summary(event)
                    .unwrap()
                    .0
                    .seats_available,
            );
        }
        let per_call = started.elapsed().as_nanos() as f64 / f64::from(summary_calls);
        println!(
            "{:<44} {:>14}",
            format!("availability summary ({event} event)"),
            format!("{per_call:.0} ns")
        );
        std::hint::black_box(sink);
    }
    // One page takes well under a millisecond, and the first ones after the holds pay for
    // the allocator's fresh pages: the median of 21 pages.
    let mut page_times: Vec<Duration> = (0..21)
        .map(|_| {
            let started = Instant::now();
            let page = state.availability("arena", None, None, 5000).unwrap();
            let elapsed = started.elapsed();
            assert_eq!(page.seats.len(), 5000);
            elapsed
        })
        .collect();
    page_times.sort_unstable();
    println!(
        "{:<44} {:>14}",
        "availability page of 5000 seats (median)",
        format!("{:.2} ms", page_times[10].as_secs_f64() * 1e3)
    );

    let started = Instant::now();
    let bytes = state.snapshot_bytes();
    let snapshot_elapsed = started.elapsed();
    let started = Instant::now();
    let restored = StateMachine::from_snapshot_bytes(&bytes).unwrap();
    let restore_elapsed = started.elapsed();
    assert_eq!(restored.summary("arena"), state.summary("arena"));
    println!(
        "{:<44} {:>14}",
        "snapshot size (incl. holds, bookings, keys)",
        format!("{:.1} MB", bytes.len() as f64 / 1e6)
    );
    println!(
        "{:<44} {:>14}",
        "snapshot build",
        format!("{:.0} ms", snapshot_elapsed.as_secs_f64() * 1e3)
    );
    println!(
        "{:<44} {:>14}",
        "snapshot restore (with invariant check)",
        format!("{:.0} ms", restore_elapsed.as_secs_f64() * 1e3)
    );
    drop(restored);

    time_ms += 601_000;
    let expire = Entry {
        time_ms,
        request_id: None,
        command: Command::ExpireHolds {
            max_holds: limits::EXPIRE_HOLDS_PER_ENTRY_MAX,
        },
    };
    let active = state.active_holds() as u64;
    let started = Instant::now();
    while state.active_holds() > 0 {
        assert!(state.apply(&expire).is_success());
    }
    println!(
        "{:<44} {:>14}",
        "expiries (10,000 per entry)",
        rate(active, started.elapsed())
    );

    let mut empty = StateMachine::default();
    empty.apply(&Entry {
        time_ms,
        request_id: None,
        command: venue("arena", options.seats),
    });
    let started = Instant::now();
    let bytes = empty.snapshot_bytes();
    println!(
        "{:<44} {:>14}",
        "snapshot of the bare event: size",
        format!("{:.1} MB", bytes.len() as f64 / 1e6)
    );
    println!(
        "{:<44} {:>14}",
        "snapshot of the bare event: build",
        format!("{:.0} ms", started.elapsed().as_secs_f64() * 1e3)
    );
}
