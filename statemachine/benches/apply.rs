//! Single-threaded apply throughput of the booking state machine.
//!
//! `cargo bench -p holdfast-statemachine --bench apply [-- --seats N --holds N --keyed N --holds-only --one-by-one --transparent-huge-pages]`
//!
//! `--holds-only` stops after the hold phases, for profiling them (`perf record`, or
//! `valgrind --tool=callgrind` for instruction counts, which do not vary from run to run).
//! `--keyed N` sets how many of the holds carry an idempotency key (half by default).
//! `--transparent-huge-pages` leaves the kernel's transparent huge pages on, which the
//! node switches off for itself (see `holdfast serve --transparent-huge-pages`).
//!
//! Reports holds, confirms and expiries applied per second, availability-summary latency
//! (on a small and on the large event, to show it does not grow with the venue), and the
//! snapshot size, freeze, encode and restore time of the large event.
//!
//! Holds are measured twice. The first sale writes every hold into memory the process never
//! touched before, so each new page costs a page fault (in a virtual machine, often a fault
//! in the host as well); the share of the phase spent in the kernel is reported with it. The second sale comes
//! after the first one's holds ended and were forgotten, as in a node that has been running:
//! its holds reuse the memory the first sale's released.
//!
//! Commands are applied as a node applies them: in batches of up to 512 (one Raft entry)
//! through `StateMachine::apply_batch`, which prefetches each command's memory a couple of
//! commands ahead; each batch is made just before it is applied, so its commands are in the
//! cache as a freshly decoded log entry's are. Only the applying is timed. `--one-by-one`
//! applies each command with `StateMachine::apply` instead, without prefetching.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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
    one_by_one: bool,
    /// Leave transparent huge pages on, as the node does only when asked.
    huge_pages: bool,
}

fn options() -> Options {
    let mut options = Options {
        seats: 1_000_000,
        holds: 500_000,
        keyed: None,
        holds_only: false,
        one_by_one: false,
        huge_pages: false,
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
            "--one-by-one" => options.one_by_one = true,
            "--transparent-huge-pages" => options.huge_pages = true,
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
        listing: Default::default(),
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

/// CPU time this process has spent in the kernel so far (Linux; in clock ticks of 10 ms):
/// mostly page faults, which here means zeroing memory touched for the first time.
fn kernel_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // After the parenthesised command name, `stime` is the 13th field.
    let after_name = &stat[stat.rfind(')')? + 1..];
    let ticks: u64 = after_name.split_whitespace().nth(12)?.parse().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

/// Commands per Raft entry in the node (its default `HOLDFAST_BATCH_ENTRIES_MAX`).
const BATCH: usize = 512;

/// `--one-by-one`: apply without prefetching.
static ONE_BY_ONE: AtomicBool = AtomicBool::new(false);

/// The longest one batch took to apply since it was last reset (nanoseconds): how long a
/// node's apply held the state's lock at once — growth that copies a table shows here.
static LONGEST_BATCH_NS: AtomicU64 = AtomicU64::new(0);

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
        if ONE_BY_ONE.load(Ordering::Relaxed) {
            for entry in &batch {
                answer(state.apply(entry));
            }
        } else {
            state.apply_batch(&batch, &mut answer);
        }
        let took = started.elapsed();
        LONGEST_BATCH_NS.fetch_max(took.as_nanos() as u64, Ordering::Relaxed);
        elapsed += took;
        batch.clear();
    }
    elapsed
}

/// Prints [`LONGEST_BATCH_NS`] for the phase `what`.
fn report_longest_batch(what: &str) {
    println!(
        "{:<44} {:>14}",
        format!("  longest batch of {BATCH} ({what})"),
        format!(
            "{:.2} ms",
            LONGEST_BATCH_NS.load(Ordering::Relaxed) as f64 / 1e6
        )
    );
}

fn expire_entry(time_ms: u64) -> Entry {
    Entry {
        time_ms,
        request_id: None,
        command: Command::ExpireHolds {
            max_holds: limits::EXPIRE_HOLDS_PER_ENTRY_MAX,
        },
    }
}

/// A sale: seat `n` of `seat_ids` held for a new customer `n`, the first `keyed` holds with
/// an idempotency key.
#[derive(Clone, Copy)]
struct Sale<'a> {
    key_prefix: &'static str,
    customer_prefix: &'static str,
    time_ms: u64,
    seat_ids: &'a [String],
    keyed: usize,
}

/// What one phase of a sale measured.
struct Phase {
    count: usize,
    elapsed: Duration,
    /// CPU time in the kernel while the phase ran (its batches' making included).
    kernel: Option<Duration>,
    resident: Option<u64>,
}

impl Phase {
    fn report(&self, what: &str) {
        if self.count == 0 {
            return;
        }
        println!("{what:<44} {:>14}", rate(self.count as u64, self.elapsed));
        if let Some(kernel) = self.kernel {
            let share = kernel.as_secs_f64() / self.elapsed.as_secs_f64() * 100.0;
            println!(
                "{:<44} {:>14}",
                "  time in the kernel",
                format!("{share:.0} %")
            );
        }
        if let Some(resident) = self.resident {
            let per_hold = resident as f64 / self.count as f64;
            println!(
                "{:<44} {:>14}",
                "  resident memory growth per hold",
                format!("{per_hold:.0} B")
            );
        }
    }
}

impl Sale<'_> {
    fn entry(&self, n: usize, keyed: bool) -> Entry {
        Entry {
            time_ms: self.time_ms,
            request_id: keyed.then(|| format!("{}:{n:016x}", self.key_prefix)),
            command: Command::Hold(HoldRequest {
                event_id: "arena".into(),
                customer_id: format!("{}-{n}", self.customer_prefix),
                seats: vec![self.seat_ids[n].clone()],
                pools: vec![],
                best_available: None,
                ttl_seconds: Some(600),
            }),
        }
    }

    /// Applies the keyed holds and then the plain ones, pushing `(hold id, amount)` of each.
    fn run(&self, state: &mut StateMachine, holds: &mut Vec<(CompactString, u64)>) -> [Phase; 2] {
        let mut phase = |from: usize, to: usize, keyed: bool| {
            let (kernel, resident) = (kernel_time(), resident_bytes());
            let elapsed = apply_batched(
                state,
                to - from,
                |n| self.entry(from + n, keyed),
                |outcome| match outcome {
                    Outcome::Held(view) => holds.push((view.hold_id, view.amount)),
                    other => panic!("{other:?}"),
                },
            );
            Phase {
                count: to - from,
                elapsed,
                kernel: kernel_time()
                    .zip(kernel)
                    .map(|(after, before)| after - before),
                resident: resident_bytes()
                    .zip(resident)
                    .map(|(after, before)| after.saturating_sub(before)),
            }
        };
        let keyed = phase(0, self.keyed, true);
        let plain = phase(self.keyed, self.seat_ids.len(), false);
        [keyed, plain]
    }
}

fn rate(count: u64, elapsed: Duration) -> String {
    format!("{:>12.0}/s", count as f64 / elapsed.as_secs_f64())
}

fn main() {
    let options = options();
    // As the node does at its start (`holdfast serve`), unless asked to keep them.
    if !options.huge_pages {
        nix::sys::prctl::set_thp_disable(true).expect("prctl(PR_SET_THP_DISABLE)");
    }
    ONE_BY_ONE.store(options.one_by_one, Ordering::Relaxed);
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
    let keyed_count = options.keyed.map_or(seat_ids.len() / 2, |keyed| {
        (keyed as usize).min(seat_ids.len())
    });
    // The answers the confirms below need, allocated up front so that the growth measured
    // across the hold phases is the state's.
    let mut holds: Vec<(CompactString, u64)> = Vec::with_capacity(seat_ids.len());
    let first = Sale {
        key_prefix: "hold",
        customer_prefix: "customer",
        time_ms,
        seat_ids: &seat_ids,
        keyed: keyed_count,
    };
    LONGEST_BATCH_NS.store(0, Ordering::Relaxed);
    let [keyed, plain] = first.run(&mut state, &mut holds);
    keyed.report("holds, single seat, with idempotency key");
    plain.report("holds, single seat, without key");
    report_longest_batch("first sale");
    if options.holds_only {
        return;
    }

    // The first sale's holds run out: expiries, then (untimed) the entries that forget
    // ended holds and old request ids once their retention has passed.
    time_ms += 601_000;
    let active = state.active_holds() as u64;
    let started = Instant::now();
    while state.active_holds() > 0 {
        assert!(state.apply(&expire_entry(time_ms)).is_success());
    }
    println!(
        "{:<44} {:>14}",
        "expiries (10,000 per entry)",
        rate(active, started.elapsed())
    );
    time_ms += state.config().ended_hold_retention_ms;
    let last_hold = holds.last().map(|(id, _)| id.to_string());
    while last_hold
        .as_deref()
        .is_some_and(|id| state.hold_by_id(id).is_some())
    {
        state.apply(&expire_entry(time_ms));
    }

    // The second sale: the same seats for returning customers, in memory the first sale's
    // holds released. Its holds are the ones confirmed below.
    holds.clear();
    let second = Sale {
        key_prefix: "again",
        customer_prefix: "returning",
        time_ms,
        ..first
    };
    let [keyed, plain] = second.run(&mut state, &mut holds);
    keyed.report("second sale, memory reused: with key");
    plain.report("second sale, memory reused: without key");

    let plain_count = plain.count;
    let conflict = second.entry(0, false);
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
        |n| second.entry(keyed_count + n, false),
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
    LONGEST_BATCH_NS.store(0, Ordering::Relaxed);
    let confirm_elapsed = apply_batched(&mut state, confirm_count, confirm_entry, |outcome| {
        assert!(outcome.is_success())
    });
    println!(
        "{:<44} {:>14}",
        "confirms",
        rate(confirm_count as u64, confirm_elapsed)
    );
    report_longest_batch("confirms");

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

    // A node builds a snapshot by freezing the state under its read lock (apply pauses for
    // exactly this), then encoding the frozen copy into a buffer sized by its last snapshot
    // while apply goes on. A clone of the state is timed beside it.
    let bytes = state.snapshot_bytes();
    let started = Instant::now();
    let frozen = state.frozen();
    let freeze_elapsed = started.elapsed();
    let started = Instant::now();
    let mut encoded = Vec::with_capacity(bytes.len());
    frozen.write_snapshot(&mut encoded).unwrap();
    let encode_elapsed = started.elapsed();
    assert!(encoded == bytes);
    drop(encoded);
    drop(frozen);
    let started = Instant::now();
    let clone = state.clone();
    let clone_elapsed = started.elapsed();
    drop(clone);
    let started = Instant::now();
    let restored = StateMachine::from_snapshot_bytes(&bytes).unwrap();
    let restore_elapsed = started.elapsed();
    assert_eq!(restored.summary("arena"), state.summary("arena"));
    let millis = |elapsed: Duration| format!("{:.0} ms", elapsed.as_secs_f64() * 1e3);
    println!(
        "{:<44} {:>14}",
        "snapshot size (incl. holds, bookings, keys)",
        format!("{:.1} MB", bytes.len() as f64 / 1e6)
    );
    println!(
        "{:<44} {:>14}",
        "snapshot freeze (apply pauses for it)",
        format!("{:.0} µs", freeze_elapsed.as_secs_f64() * 1e6)
    );
    println!(
        "{:<44} {:>14}",
        "snapshot encode of the frozen copy",
        millis(encode_elapsed)
    );
    println!(
        "{:<44} {:>14}",
        "state clone (for comparison)",
        millis(clone_elapsed)
    );
    println!(
        "{:<44} {:>14}",
        "snapshot restore (with invariant check)",
        millis(restore_elapsed)
    );
    drop(restored);

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
