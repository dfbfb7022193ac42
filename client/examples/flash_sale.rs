//! A flash sale: thousands of concurrent buyers race for the seats of a new event through
//! one SDK client (whose automatic batching turns them into few requests), some confirm
//! what they got, and the example prints what happened — held, refused, confirmed, hold
//! latency percentiles, requests sent — and checks that no seat was sold twice.
//!
//! ```text
//! holdfast dev &                                   # three local nodes on 7001-7003
//! cargo run --release -p holdfast-client --example flash_sale -- --buyers 5000 --seats 1000
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;
use hdrhistogram::Histogram;
use holdfast_client::{
    AvailabilityQuery, Client, ConfirmRequest, Consistency, Error, ErrorCode, HoldRequest,
    NewEvent, ReadOptions, SeatBlock, SeatStatus,
};
use rand::Rng;
use tokio::sync::Mutex;

const SEATS_PER_ROW: u32 = 50;

#[derive(Parser, Debug)]
#[command(about = "Thousands of concurrent buyers against a Holdfast cluster")]
struct Args {
    /// Nodes' HTTP addresses, comma-separated.
    #[arg(
        long,
        env = "HOLDFAST_ENDPOINTS",
        value_delimiter = ',',
        default_value = "127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003"
    )]
    endpoints: Vec<String>,
    /// Bearer key (admin, to create the event, and customer rights).
    #[arg(long, env = "HOLDFAST_KEY")]
    key: Option<String>,
    /// Concurrent buyers, each trying for one random seat.
    #[arg(long, default_value_t = 2000)]
    buyers: usize,
    /// Seats of the event.
    #[arg(long, default_value_t = 1000)]
    seats: u32,
    /// Share of successful holds that go on to confirm.
    #[arg(long, default_value_t = 0.5)]
    confirm_ratio: f64,
    /// Turn the SDK's batching off, to compare.
    #[arg(long)]
    no_batching: bool,
}

#[derive(Default)]
struct Tally {
    held: u64,
    refused: u64,
    failed: BTreeMap<String, u64>,
    confirmed: Vec<(String, String)>,
    confirm_refused: u64,
    hold_micros: Option<Histogram<u64>>,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let mut builder = Client::builder(&args.endpoints)
        .timeout(Duration::from_secs(30))
        .batching(!args.no_batching);
    if let Some(key) = &args.key {
        builder = builder.api_key(key);
    }
    let client = builder.connect().await?;
    let stamp = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let event_id = format!("flash-{stamp}");
    let rows = args.seats.div_ceil(SEATS_PER_ROW).max(1);
    let per_row = args.seats.clamp(1, SEATS_PER_ROW);
    client
        .create_event(NewEvent {
            category: Some("event".into()),
            seat_blocks: vec![SeatBlock {
                section: "A".into(),
                rows: (1..=rows).map(|row| row.to_string()).collect(),
                seats_per_row: per_row,
                price: 4500,
            }],
            ..NewEvent::new(&event_id, "Flash sale", "EUR")
        })
        .await?;
    let seats_total = rows * per_row;
    println!(
        "event {event_id}: {seats_total} seats, {} buyers, batching {}",
        args.buyers,
        if args.no_batching { "off" } else { "on" }
    );

    let tally = Arc::new(Mutex::new(Tally {
        hold_micros: Some(Histogram::new(3)?),
        ..Tally::default()
    }));
    let started = Instant::now();
    let mut buyers = Vec::with_capacity(args.buyers);
    for buyer in 0..args.buyers {
        let client = client.clone();
        let tally = tally.clone();
        let event_id = event_id.clone();
        let (seat, confirm) = {
            let mut rng = rand::thread_rng();
            let seat = rng.gen_range(0..seats_total);
            (
                format!("A-{}-{}", seat / per_row + 1, seat % per_row + 1),
                rng.gen_bool(args.confirm_ratio.clamp(0.0, 1.0)),
            )
        };
        buyers.push(tokio::spawn(async move {
            let sent = Instant::now();
            let answer = client
                .hold(HoldRequest::seats(
                    &event_id,
                    format!("buyer-{buyer}"),
                    [seat.clone()],
                ))
                .await;
            let micros = sent.elapsed().as_micros() as u64;
            let hold = {
                let mut tally = tally.lock().await;
                if let Some(histogram) = tally.hold_micros.as_mut() {
                    let _ = histogram.record(micros.max(1));
                }
                match answer {
                    Ok(hold) => {
                        tally.held += 1;
                        hold
                    }
                    Err(Error::Api(refusal)) if refusal.code == ErrorCode::SeatUnavailable => {
                        tally.refused += 1;
                        return;
                    }
                    Err(other) => {
                        let kind = other
                            .code()
                            .map_or_else(|| other.to_string(), |code| code.to_string());
                        *tally.failed.entry(kind).or_default() += 1;
                        return;
                    }
                }
            };
            if !confirm {
                return;
            }
            match client
                .confirm(ConfirmRequest::new(&hold.hold_id, "tok_visa"))
                .await
            {
                Ok(booking) => tally
                    .lock()
                    .await
                    .confirmed
                    .push((seat, booking.booking_id)),
                Err(_) => tally.lock().await.confirm_refused += 1,
            }
        }));
    }
    for buyer in buyers {
        buyer.await?;
    }
    let elapsed = started.elapsed();
    let tally = tally.lock().await;

    // No seat sold twice: every confirmed seat once, and the cluster agrees.
    let mut sold = BTreeSet::new();
    let mut twice = Vec::new();
    for (seat, _) in &tally.confirmed {
        if !sold.insert(seat.clone()) {
            twice.push(seat.clone());
        }
    }
    let reader = client.with_read(ReadOptions::at(Consistency::Linearizable));
    let mut booked = BTreeSet::new();
    let mut query = AvailabilityQuery::new(&event_id).limit(5000);
    loop {
        let page = reader.availability_with(query.clone()).await?;
        booked.extend(
            page.seats
                .iter()
                .filter(|seat| seat.status == SeatStatus::Booked)
                .map(|seat| seat.id.clone()),
        );
        match page.next_after {
            Some(after) => query = query.after(after),
            None => break,
        }
    }

    let histogram = tally.hold_micros.as_ref().expect("histogram");
    let ms = |quantile: f64| histogram.value_at_quantile(quantile) as f64 / 1000.0;
    let stats = client.stats();
    println!(
        "{} buyers in {:.2} s ({:.0} holds/s)",
        args.buyers,
        elapsed.as_secs_f64(),
        args.buyers as f64 / elapsed.as_secs_f64()
    );
    println!(
        "held {}, refused (seat taken) {}, failed {:?}",
        tally.held, tally.refused, tally.failed
    );
    println!(
        "confirmed {}, confirm refused {}",
        tally.confirmed.len(),
        tally.confirm_refused
    );
    println!(
        "hold latency ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}",
        ms(0.5),
        ms(0.9),
        ms(0.99),
        histogram.max() as f64 / 1000.0
    );
    println!(
        "requests: {} gRPC calls, {} batches carrying {} operations ({:.1} per batch), {} retries",
        stats.rpcs,
        stats.batch_rpcs,
        stats.batched_operations,
        stats.batched_operations as f64 / stats.batch_rpcs.max(1) as f64,
        stats.retries
    );
    if !twice.is_empty() {
        return Err(format!("seats sold twice: {twice:?}").into());
    }
    if booked != sold {
        return Err(format!(
            "the cluster's booked seats ({}) differ from the confirmed ones ({})",
            booked.len(),
            sold.len()
        )
        .into());
    }
    println!(
        "check: {} seats sold, each once; the cluster agrees",
        sold.len()
    );
    Ok(())
}
