//! Tables, the seat map and JSON for `holdfastctl`.

use std::collections::BTreeMap;
use std::io::IsTerminal;

use clap::ValueEnum;
use holdfast_client::{
    Availability, Booking, BookingPage, ClusterStatus, EventPage, Hold, NodeReport, SeatStatus,
};
use serde::Serialize;

/// How answers are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Aligned columns for people.
    Table,
    /// The API's JSON answer, for scripts.
    Json,
}

/// Prints `value` as pretty JSON on stdout.
pub fn print_json(value: &impl Serialize) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => println!("{text}"),
        Err(error) => eprintln!("error: cannot encode the answer: {error}"),
    }
}

/// Prints rows under headers, each column as wide as its widest cell.
fn table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|header| header.len()).collect();
    for row in rows {
        for (column, cell) in row.iter().enumerate() {
            widths[column] = widths[column].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let text: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(column, cell)| format!("{cell:<width$}", width = widths[column]))
            .collect();
        println!("{}", text.join("  ").trim_end());
    };
    line(headers.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

fn or_dash(value: Option<impl ToString>) -> String {
    value.map_or_else(|| "-".into(), |value| value.to_string())
}

pub fn cluster_status(reports: &[NodeReport]) {
    let committed = reports
        .iter()
        .filter_map(|report| report.status.as_ref().ok())
        .map(|status| status.committed_index)
        .max()
        .unwrap_or(0);
    let members: BTreeMap<u64, holdfast_client::Member> = reports
        .iter()
        .filter_map(|report| report.status.as_ref().ok())
        .flat_map(|status| status.members.clone())
        .map(|member| (member.id, member))
        .collect();
    // When each member last answered the leader, as the leader's own status says.
    let contact: BTreeMap<u64, u64> = reports
        .iter()
        .filter_map(|report| report.status.as_ref().ok())
        .filter(|status| status.role == "leader")
        .flat_map(|status| status.members.clone())
        .filter_map(|member| Some((member.id, member.last_contact_ms?)))
        .collect();
    let rows: Vec<Vec<String>> = reports
        .iter()
        .map(|report| match &report.status {
            Ok(status) => {
                let member = members.get(&status.node_id);
                vec![
                    status.node_id.to_string(),
                    report.endpoint.clone(),
                    status.role.clone(),
                    member.map_or("-".into(), |member| {
                        if member.region.is_empty() {
                            "-".into()
                        } else {
                            member.region.clone()
                        }
                    }),
                    member.map_or("-".into(), |member| {
                        if member.voter { "voter" } else { "learner" }.into()
                    }),
                    status.term.to_string(),
                    or_dash(status.leader_id),
                    status.committed_index.to_string(),
                    status.applied_index.to_string(),
                    committed.saturating_sub(status.applied_index).to_string(),
                    contact
                        .get(&status.node_id)
                        .map_or("-".into(), |ms| format!("{ms} ms")),
                    match &report.ready {
                        Ok(_) => "ready".into(),
                        Err(error) => format!("not ready ({})", short(error)),
                    },
                ]
            }
            Err(error) => {
                let mut row = vec![or_dash(report.node_id), report.endpoint.clone()];
                row.extend(std::iter::repeat_n("-".to_string(), 9));
                row.push(format!("unreachable ({})", short(error)));
                row
            }
        })
        .collect();
    table(
        &[
            "ID",
            "ENDPOINT",
            "ROLE",
            "REGION",
            "KIND",
            "TERM",
            "LEADER",
            "COMMITTED",
            "APPLIED",
            "LAG",
            "CONTACT",
            "HEALTH",
        ],
        &rows,
    );
    let warnings: std::collections::BTreeSet<&String> = reports
        .iter()
        .filter_map(|report| report.status.as_ref().ok())
        .filter_map(|status| status.placement_warning.as_ref())
        .collect();
    for warning in warnings {
        eprintln!("warning: placement: {warning}");
    }
    for warning in identity_warnings(reports) {
        eprintln!("warning: {warning}");
    }
}

/// What the nodes' identities say is wrong: endpoints of more than one cluster, and nodes
/// whose data directory is not the one the membership recorded (wiped or replaced: their
/// peers refuse them until an operator replaces them under a new id).
fn identity_warnings(reports: &[NodeReport]) -> Vec<String> {
    let statuses: Vec<&holdfast_client::ClusterStatus> = reports
        .iter()
        .filter_map(|report| report.status.as_ref().ok())
        .collect();
    let mut warnings = Vec::new();
    let clusters: std::collections::BTreeSet<&str> = statuses
        .iter()
        .filter_map(|status| status.cluster_id.as_deref())
        .collect();
    if clusters.len() > 1 {
        warnings.push(format!(
            "the endpoints belong to {} clusters: {}",
            clusters.len(),
            clusters.into_iter().collect::<Vec<_>>().join(", ")
        ));
    }
    let recorded: BTreeMap<u64, &String> = statuses
        .iter()
        .flat_map(|status| status.recorded_incarnations.iter())
        .map(|(id, incarnation)| (*id, incarnation))
        .collect();
    for status in &statuses {
        let (Some(own), Some(expected)) = (&status.incarnation, recorded.get(&status.node_id))
        else {
            continue;
        };
        if own != *expected {
            warnings.push(format!(
                "node {} answers as data directory incarnation {own}, but the membership records \
                 {expected}: its data directory was wiped or replaced, and its peers refuse it; \
                 remove node {} and add it under a new id",
                status.node_id, status.node_id
            ));
        }
    }
    warnings
}

fn short(error: &holdfast_client::Error) -> String {
    match error.code() {
        Some(code) => code.to_string(),
        None => {
            let text = error.to_string();
            text.chars().take(60).collect()
        }
    }
}

pub fn health(reports: &[NodeReport]) {
    let rows: Vec<Vec<String>> = reports
        .iter()
        .map(|report| {
            vec![
                or_dash(report.node_id),
                report.endpoint.clone(),
                match &report.ready {
                    Ok(health) => health.status.clone(),
                    Err(error) => format!("not ready ({})", short(error)),
                },
            ]
        })
        .collect();
    table(&["ID", "ENDPOINT", "HEALTH"], &rows);
}

pub fn members(status: &ClusterStatus) {
    let rows: Vec<Vec<String>> = status
        .members
        .iter()
        .map(|member| {
            vec![
                member.id.to_string(),
                if member.voter { "voter" } else { "learner" }.into(),
                member.raft_addr.clone(),
                member.http_addr.clone(),
                member.region.clone(),
                if status.leader_id == Some(member.id) {
                    "yes"
                } else {
                    ""
                }
                .into(),
            ]
        })
        .collect();
    table(
        &["ID", "KIND", "RAFT_ADDR", "HTTP_ADDR", "REGION", "LEADER"],
        &rows,
    );
}

pub fn events(page: &EventPage) {
    let rows: Vec<Vec<String>> = page
        .events
        .iter()
        .map(|event| {
            vec![
                event.event_id.clone(),
                event.name.clone(),
                event.category.clone(),
                or_dash(event.city.as_ref()),
                or_dash(event.starts_at.as_ref()),
                format!(
                    "{}/{}",
                    event.summary.seats_available, event.summary.seats_total
                ),
                format!("{}/{}", event.pools.available, event.pools.capacity),
            ]
        })
        .collect();
    table(
        &[
            "EVENT",
            "NAME",
            "CATEGORY",
            "CITY",
            "STARTS",
            "SEATS FREE",
            "POOL FREE",
        ],
        &rows,
    );
    if let Some(after) = &page.next_after {
        println!("(more: --after {after})");
    }
}

pub fn hold(hold: &Hold) {
    let pools: Vec<String> = hold
        .pools
        .iter()
        .map(|pool| format!("{}:{}", pool.pool_id, pool.quantity))
        .collect();
    let rows = vec![vec![
        hold.hold_id.clone(),
        format!("{:?}", hold.status).to_uppercase(),
        hold.event_id.clone(),
        hold.customer_id.clone(),
        hold.seats.join(","),
        pools.join(","),
        format!("{} {}", hold.amount, hold.currency),
        hold.expires_at.clone(),
    ]];
    table(
        &[
            "HOLD", "STATUS", "EVENT", "CUSTOMER", "SEATS", "POOLS", "AMOUNT", "EXPIRES",
        ],
        &rows,
    );
}

fn booking_row(booking: &Booking) -> Vec<String> {
    vec![
        booking.booking_id.clone(),
        format!("{:?}", booking.status).to_uppercase(),
        booking.hold_id.clone(),
        booking.event_id.clone(),
        booking.customer_id.clone(),
        booking.seats.join(","),
        format!("{} {}", booking.amount, booking.currency),
        booking.payment_id.clone(),
        booking.refund.as_ref().map_or("-".into(), |refund| {
            format!("{} {}", refund.status, refund.amount)
        }),
    ]
}

const BOOKING_HEADERS: [&str; 9] = [
    "BOOKING", "STATUS", "HOLD", "EVENT", "CUSTOMER", "SEATS", "AMOUNT", "PAYMENT", "REFUND",
];

pub fn booking(booking: &Booking) {
    table(&BOOKING_HEADERS, &[booking_row(booking)]);
}

pub fn history(page: &BookingPage) {
    let rows: Vec<Vec<String>> = page.bookings.iter().map(booking_row).collect();
    table(&BOOKING_HEADERS, &rows);
    if let Some(after) = &page.next_after {
        println!("(more: --after {after})");
    }
}

/// A section's rows: row name → (seat number, status).
type Rows<'a> = BTreeMap<&'a str, Vec<(u32, SeatStatus)>>;

/// The seat map: one line per row of each section, a mark per seat coloured by status
/// (letters instead of colours when stdout is not a terminal or `NO_COLOR` is set).
pub fn seat_map(page: &Availability) {
    let colour = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let mark = |status: SeatStatus| -> String {
        match (status, colour) {
            (SeatStatus::Available, true) => "\x1b[32m●\x1b[0m".into(),
            (SeatStatus::Held, true) => "\x1b[33m●\x1b[0m".into(),
            (SeatStatus::Booked, true) => "\x1b[31m●\x1b[0m".into(),
            (SeatStatus::Unknown, true) => "?".into(),
            (SeatStatus::Available, false) => "o".into(),
            (SeatStatus::Held, false) => "h".into(),
            (SeatStatus::Booked, false) => "x".into(),
            (SeatStatus::Unknown, false) => "?".into(),
        }
    };
    println!(
        "{}{}  applied index {}",
        page.event_id,
        if page.name.is_empty() {
            String::new()
        } else {
            format!(" ({})", page.name)
        },
        page.applied_index
    );
    let summary = &page.summary;
    println!(
        "seats: {} total, {} available, {} held, {} booked",
        summary.seats_total, summary.seats_available, summary.seats_held, summary.seats_booked
    );
    // Section → row → seats by number.
    let mut sections: BTreeMap<&str, Rows> = BTreeMap::new();
    for seat in &page.seats {
        sections
            .entry(seat.section.as_str())
            .or_default()
            .entry(seat.row.as_str())
            .or_default()
            .push((seat.number, seat.status));
    }
    for (section, rows) in &sections {
        println!("section {section}");
        let width = rows.keys().map(|row| row.len()).max().unwrap_or(1);
        for (row, seats) in rows {
            let mut seats = seats.clone();
            seats.sort_by_key(|(number, _)| *number);
            let marks: Vec<String> = seats.iter().map(|(_, status)| mark(*status)).collect();
            println!("  {row:>width$} {}", marks.join(""));
        }
    }
    if !page.seats.is_empty() {
        println!(
            "legend: {} available  {} held  {} booked",
            mark(SeatStatus::Available),
            mark(SeatStatus::Held),
            mark(SeatStatus::Booked)
        );
    }
    if let Some(after) = &page.next_after {
        println!("(more seats after {after})");
    }
    if !page.pools.is_empty() {
        let rows: Vec<Vec<String>> = page
            .pools
            .iter()
            .map(|pool| {
                vec![
                    pool.id.clone(),
                    pool.capacity.to_string(),
                    pool.available.to_string(),
                    pool.held.to_string(),
                    pool.booked.to_string(),
                    format!("{} {}", pool.price, pool.currency),
                ]
            })
            .collect();
        table(
            &["POOL", "CAPACITY", "AVAILABLE", "HELD", "BOOKED", "PRICE"],
            &rows,
        );
    }
}
