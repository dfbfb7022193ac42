//! Demo inventory for `holdfast dev`: a cinema, a concert, a hotel and a clinic, so that a
//! new user has something to search, hold and book right away.

use chrono::{DateTime, Datelike, Duration, TimeZone, Utc};
use holdfast_statemachine::{Category, Command, CreateEvent, Listing, PoolSpec, SeatBlock};

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// The demo events, dated from `today_ms` (Unix milliseconds).
pub fn demo_events(today_ms: u64) -> Vec<CreateEvent> {
    let today = Utc
        .timestamp_millis_opt(today_ms as i64)
        .single()
        .unwrap_or_else(Utc::now);
    let midnight = Utc
        .with_ymd_and_hms(today.year(), today.month(), today.day(), 0, 0, 0)
        .single()
        .unwrap_or(today);
    vec![
        cinema(midnight),
        concert(midnight),
        hotel(midnight),
        clinic(midnight),
    ]
}

/// The commands that create them.
pub fn demo_commands(today_ms: u64) -> Vec<Command> {
    demo_events(today_ms)
        .into_iter()
        .map(Command::CreateEvent)
        .collect()
}

fn at(day: DateTime<Utc>, days: i64, hour: i64) -> u64 {
    (day + Duration::days(days) + Duration::hours(hour)).timestamp_millis() as u64
}

fn listing(
    venue: &str,
    city: &str,
    ends_at_ms: Option<u64>,
    description: &str,
    tags: &[&str],
) -> Listing {
    Listing {
        venue: Some(venue.into()),
        city: Some(city.into()),
        ends_at_ms,
        description: Some(description.into()),
        tags: tags.iter().map(|tag| tag.to_string()).collect(),
    }
}

fn rows(names: &str) -> Vec<String> {
    names.chars().map(|c| c.to_string()).collect()
}

/// 400 seats: stalls (rows A–L × 25), premium (rows M–O × 20), and boxes (rows P–S × 10).
fn cinema(day: DateTime<Utc>) -> CreateEvent {
    CreateEvent {
        event_id: "cinema-dune".into(),
        name: "Dune: Part Three — 20:00, Screen 1".into(),
        category: Category::Movie,
        starts_at_ms: Some(at(day, 1, 20)),
        currency: "EUR".into(),
        seats: vec![],
        seat_blocks: vec![
            SeatBlock {
                section: "STALLS".into(),
                rows: rows("ABCDEFGHIJKL"),
                seats_per_row: 25,
                price: 1_200,
            },
            SeatBlock {
                section: "PREMIUM".into(),
                rows: rows("MNO"),
                seats_per_row: 20,
                price: 1_800,
            },
            SeatBlock {
                section: "BOX".into(),
                rows: rows("PQRS"),
                seats_per_row: 10,
                price: 2_500,
            },
        ],
        pools: vec![],
        listing: listing(
            "Odeon Screen 1",
            "Lyon",
            Some(at(day, 1, 23)),
            "The third part of the saga, in the original version with subtitles.",
            &["science fiction", "subtitled"],
        ),
    }
}

/// A general-admission floor of 5,000 and a seated balcony.
fn concert(day: DateTime<Utc>) -> CreateEvent {
    CreateEvent {
        event_id: "concert-aurora".into(),
        name: "Aurora — Live at the Arena".into(),
        category: Category::Event,
        starts_at_ms: Some(at(day, 14, 19)),
        currency: "EUR".into(),
        seats: vec![],
        seat_blocks: vec![SeatBlock {
            section: "BALCONY".into(),
            rows: rows("ABCDE"),
            seats_per_row: 40,
            price: 8_900,
        }],
        pools: vec![PoolSpec {
            id: "GA".into(),
            capacity: 5_000,
            price: 5_900,
        }],
        listing: listing(
            "Halle Tony Garnier",
            "Lyon",
            Some(at(day, 14, 23)),
            "Aurora's European tour: standing floor and a seated balcony.",
            &["concert", "pop"],
        ),
    }
}

/// Three room types for each of the next 30 nights: pool `<TYPE>-<YYYY-MM-DD>`.
fn hotel(day: DateTime<Utc>) -> CreateEvent {
    let room_types = [("STD", 40, 9_900), ("DBL", 25, 13_900), ("STE", 5, 29_900)];
    let mut pools = Vec::new();
    for night in 1..=30 {
        let date = (day + Duration::milliseconds(night * DAY_MS))
            .format("%Y-%m-%d")
            .to_string();
        for (room_type, rooms, price) in room_types {
            pools.push(PoolSpec {
                id: format!("{room_type}-{date}"),
                capacity: rooms,
                price,
            });
        }
    }
    CreateEvent {
        event_id: "hotel-harbour".into(),
        name: "Harbour Hotel".into(),
        category: Category::Hotel,
        starts_at_ms: Some(at(day, 1, 15)),
        currency: "EUR".into(),
        seats: vec![],
        seat_blocks: vec![],
        pools,
        listing: listing(
            "Harbour Hotel",
            "Marseille",
            Some(at(day, 31, 11)),
            "Standard, double and suite rooms by the old port; search by night with \
             nights_from and nights_to.",
            &["hotel", "sea view"],
        ),
    }
}

/// Two doctors' 20-minute slots, 09:00–12:00, for the next 5 days: pool `<DOCTOR>-<YYYY-MM-DD>T<HH:MM>`.
fn clinic(day: DateTime<Utc>) -> CreateEvent {
    let mut pools = Vec::new();
    for offset in 1..=5 {
        let date = day + Duration::days(offset);
        for doctor in ["DR-OKAFOR", "DR-LINDQVIST"] {
            for slot in 0..9 {
                let start = date + Duration::hours(9) + Duration::minutes(20 * slot);
                pools.push(PoolSpec {
                    id: format!("{doctor}-{}", start.format("%Y-%m-%dT%H:%M")),
                    capacity: 1,
                    price: 6_000,
                });
            }
        }
    }
    CreateEvent {
        event_id: "clinic-northside".into(),
        name: "Northside Clinic — general practice".into(),
        category: Category::Appointment,
        starts_at_ms: Some(at(day, 1, 9)),
        currency: "EUR".into(),
        seats: vec![],
        seat_blocks: vec![],
        pools,
        listing: listing(
            "Northside Clinic",
            "Lyon",
            Some(at(day, 5, 12)),
            "Twenty-minute appointments with two general practitioners, 09:00 to 12:00.",
            &["health"],
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use holdfast_statemachine::{Entry, StateMachine};

    #[test]
    fn demo_inventory_applies_cleanly() {
        let today = 1_790_000_000_000;
        let mut state = StateMachine::default();
        for command in demo_commands(today) {
            let outcome = state.apply(&Entry {
                time_ms: today,
                request_id: None,
                command,
            });
            assert!(outcome.is_success(), "{outcome:?}");
        }
        assert_eq!(state.summary("cinema-dune").unwrap().0.seats_total, 400);
        let concert = state.availability("concert-aurora", None, None, 1).unwrap();
        assert_eq!(concert.pools[0].capacity, 5_000);
        assert_eq!(
            state
                .availability("hotel-harbour", None, None, 1)
                .unwrap()
                .pools
                .len(),
            90
        );
        assert_eq!(
            state
                .availability("clinic-northside", None, None, 1)
                .unwrap()
                .pools
                .len(),
            90
        );
    }
}
