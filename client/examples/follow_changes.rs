//! Follows the cluster's outbox through the SDK's change stream and prints one line per
//! event — the e-mail or SMS a notification service would send — resuming by itself when
//! the node it reads from goes away. Stop it with Ctrl-C; start it again with `--from` set
//! to the index it printed last plus one to carry on without a gap.
//!
//! ```text
//! holdfast dev &                                   # three local nodes on 7001-7003
//! cargo run -p holdfast-client --example follow_changes -- --from 1
//! ```

use clap::Parser;
use futures::StreamExt;
use holdfast_client::{ChangeData, Client};

#[derive(Parser, Debug)]
#[command(about = "Print the change stream of a Holdfast cluster")]
struct Args {
    /// Nodes' HTTP addresses, comma-separated.
    #[arg(
        long,
        env = "HOLDFAST_ENDPOINTS",
        value_delimiter = ',',
        default_value = "127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003"
    )]
    endpoints: Vec<String>,
    /// An admin bearer key.
    #[arg(long, env = "HOLDFAST_KEY")]
    key: Option<String>,
    /// The first outbox index to print (0 or 1: the oldest the outbox holds).
    #[arg(long, default_value_t = 1)]
    from: u64,
}

#[tokio::main]
async fn main() -> holdfast_client::Result<()> {
    let args = Args::parse();
    let mut builder = Client::builder(&args.endpoints);
    if let Some(key) = &args.key {
        builder = builder.api_key(key);
    }
    let client = builder.connect().await?;
    let mut changes = client.watch_changes(args.from);
    while let Some(change) = changes.next().await {
        let change = change?;
        let line = match &change.data {
            ChangeData::HoldPlaced {
                customer_id,
                hold_id,
                expires_at,
                ..
            } => format!("to {customer_id}: your hold {hold_id} is kept until {expires_at}"),
            ChangeData::BookingConfirmed {
                customer_id,
                booking_id,
                amount,
                currency,
                ..
            } => format!("to {customer_id}: booking {booking_id} confirmed, {amount} {currency}"),
            ChangeData::BookingCancelled {
                customer_id,
                booking_id,
                ..
            } => format!("to {customer_id}: booking {booking_id} cancelled"),
            ChangeData::HoldExpired {
                customer_id,
                hold_id,
                ..
            } => format!("to {customer_id}: hold {hold_id} expired"),
            other => format!("{other:?}"),
        };
        println!("#{} {} {line}", change.index, change.event_type);
    }
    Ok(())
}
