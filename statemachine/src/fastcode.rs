//! bincode's standard encoding of the two values every keyed hold encodes — the command
//! (for its fingerprint) and the answer (to remember it) — written directly.
//!
//! Through serde, bincode spends about 850 instructions on a hold's answer and 500 on its
//! command, most of them in the serde layers around each integer and string; these writers
//! produce the same bytes in a fraction of that. Everything else is encoded by bincode
//! itself, and bincode decodes what these write. The tests compare the bytes with
//! bincode's for generated values, so a new field that is not written here fails them (the
//! struct literals there also stop compiling).
//!
//! The format (bincode 2, `config::standard()`): integers little-endian and variable-length
//! (below 251 one byte; else a marker 251/252/253 and 2/4/8 bytes); strings and sequences
//! as their length and then their items; `Option` as a byte 0 or 1 and then the value; an
//! enum as its variant's index (an integer) and then its fields; a struct as its fields in
//! order.

use crate::command::{HoldRequest, PoolQuantity};
use crate::outcome::{HoldStatus, HoldView};

/// `Outcome::Held`'s variant index.
const OUTCOME_HELD: u64 = 2;
/// `Command::Hold`'s variant index.
const COMMAND_HOLD: u64 = 6;

#[inline(always)]
fn integer(value: u64, out: &mut Vec<u8>) {
    if value < 251 {
        out.push(value as u8);
    } else if value <= u64::from(u16::MAX) {
        out.push(251);
        out.extend_from_slice(&(value as u16).to_le_bytes());
    } else if value <= u64::from(u32::MAX) {
        out.push(252);
        out.extend_from_slice(&(value as u32).to_le_bytes());
    } else {
        out.push(253);
        out.extend_from_slice(&value.to_le_bytes());
    }
}

#[inline(always)]
fn text(value: &str, out: &mut Vec<u8>) {
    integer(value.len() as u64, out);
    out.extend_from_slice(value.as_bytes());
}

fn texts<'a>(items: impl ExactSizeIterator<Item = &'a str>, out: &mut Vec<u8>) {
    integer(items.len() as u64, out);
    for item in items {
        text(item, out);
    }
}

/// An `Option`: its tag, then the value written by `write`.
fn option<T>(value: Option<T>, out: &mut Vec<u8>, write: impl FnOnce(T, &mut Vec<u8>)) {
    match value {
        None => out.push(0),
        Some(value) => {
            out.push(1);
            write(value, out);
        }
    }
}

fn pool_lines(lines: &[PoolQuantity], out: &mut Vec<u8>) {
    integer(lines.len() as u64, out);
    for line in lines {
        text(&line.pool_id, out);
        integer(u64::from(line.quantity), out);
    }
}

fn status(status: HoldStatus) -> u64 {
    match status {
        HoldStatus::Active => 0,
        HoldStatus::Confirmed => 1,
        HoldStatus::Released => 2,
        HoldStatus::Expired => 3,
    }
}

/// The fields of an `Outcome::Held` answer, borrowed from wherever they are kept.
pub(crate) struct HeldFields<'a, Seats> {
    pub hold_id: &'a str,
    pub status: HoldStatus,
    pub event_id: &'a str,
    pub customer_id: &'a str,
    pub seats: Seats,
    pub pools: &'a [PoolQuantity],
    pub amount: u64,
    pub currency: &'a str,
    pub created_at_ms: u64,
    pub expires_at_ms: u64,
    pub life_ends_at_ms: u64,
    pub booking_id: Option<&'a str>,
}

/// Appends `Outcome::Held` with these fields.
pub(crate) fn held_fields<'a>(
    fields: HeldFields<'a, impl ExactSizeIterator<Item = &'a str>>,
    out: &mut Vec<u8>,
) {
    integer(OUTCOME_HELD, out);
    text(fields.hold_id, out);
    integer(status(fields.status), out);
    text(fields.event_id, out);
    text(fields.customer_id, out);
    texts(fields.seats, out);
    pool_lines(fields.pools, out);
    integer(fields.amount, out);
    text(fields.currency, out);
    integer(fields.created_at_ms, out);
    integer(fields.expires_at_ms, out);
    integer(fields.life_ends_at_ms, out);
    option(fields.booking_id, out, text);
}

/// Appends `Outcome::Held(view)`.
pub(crate) fn held(view: &HoldView, out: &mut Vec<u8>) {
    held_fields(
        HeldFields {
            hold_id: &view.hold_id,
            status: view.status,
            event_id: &view.event_id,
            customer_id: &view.customer_id,
            seats: view.seats.iter().map(|seat| seat.as_str()),
            pools: &view.pools,
            amount: view.amount,
            currency: &view.currency,
            created_at_ms: view.created_at_ms,
            expires_at_ms: view.expires_at_ms,
            life_ends_at_ms: view.life_ends_at_ms,
            booking_id: view.booking_id.as_deref(),
        },
        out,
    );
}

/// Appends `Command::Hold(request)`.
pub(crate) fn hold_command(request: &HoldRequest, out: &mut Vec<u8>) {
    integer(COMMAND_HOLD, out);
    text(&request.event_id, out);
    text(&request.customer_id, out);
    texts(request.seats.iter().map(String::as_str), out);
    pool_lines(&request.pools, out);
    option(request.best_available.as_ref(), out, |best, out| {
        integer(u64::from(best.count), out);
        option(best.section.as_deref(), out, text);
        out.push(u8::from(best.allow_split));
    });
    option(request.ttl_seconds, out, |ttl, out| {
        integer(u64::from(ttl), out)
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::{BestAvailable, Command};
    use crate::outcome::Outcome;
    use crate::CompactString;
    use proptest::prelude::*;

    fn bincode_bytes<T: serde::Serialize>(value: &T) -> Vec<u8> {
        bincode::serde::encode_to_vec(value, bincode::config::standard()).unwrap()
    }

    /// Integers around every width boundary of the encoding.
    fn number() -> impl Strategy<Value = u64> {
        prop_oneof![
            0..300u64,
            60_000..70_000u64,
            4_294_960_000..4_294_970_000u64,
            any::<u64>(),
        ]
    }

    fn small() -> impl Strategy<Value = u32> {
        prop_oneof![0..300u32, 60_000..70_000u32, any::<u32>()]
    }

    /// Strings of every length class, Unicode included.
    fn name() -> impl Strategy<Value = String> {
        prop_oneof!["[a-z0-9-]{0,30}", "\\PC{0,10}", "[a-z]{250,260}"]
    }

    fn lines() -> impl Strategy<Value = Vec<PoolQuantity>> {
        proptest::collection::vec(
            (name(), small()).prop_map(|(pool_id, quantity)| PoolQuantity { pool_id, quantity }),
            0..3,
        )
    }

    fn status() -> impl Strategy<Value = HoldStatus> {
        prop_oneof![
            Just(HoldStatus::Active),
            Just(HoldStatus::Confirmed),
            Just(HoldStatus::Released),
            Just(HoldStatus::Expired),
        ]
    }

    proptest! {
        #[test]
        fn held_is_encoded_as_bincode_encodes_it(
            (hold_id, event_id, customer_id, currency) in (name(), name(), name(), name()),
            seats in proptest::collection::vec(name(), 0..4),
            pools in lines(),
            status in status(),
            (amount, created_at_ms, expires_at_ms, life_ends_at_ms) in (number(), number(), number(), number()),
            booking_id in proptest::option::of(name()),
        ) {
            let view = HoldView {
                hold_id: hold_id.into(),
                status,
                event_id: event_id.into(),
                customer_id: customer_id.into(),
                seats: seats.into_iter().map(CompactString::from).collect(),
                pools,
                amount,
                currency: currency.into(),
                created_at_ms,
                expires_at_ms,
                life_ends_at_ms,
                booking_id: booking_id.map(CompactString::from),
            };
            let mut fast = Vec::new();
            held(&view, &mut fast);
            prop_assert_eq!(fast, bincode_bytes(&Outcome::Held(Box::new(view))));
        }

        #[test]
        fn a_hold_command_is_encoded_as_bincode_encodes_it(
            (event_id, customer_id) in (name(), name()),
            seats in proptest::collection::vec(name(), 0..4),
            pools in lines(),
            best_available in proptest::option::of(
                (small(), proptest::option::of(name()), any::<bool>())
                    .prop_map(|(count, section, allow_split)| BestAvailable { count, section, allow_split }),
            ),
            ttl_seconds in proptest::option::of(small()),
        ) {
            let request = HoldRequest { event_id, customer_id, seats, pools, best_available, ttl_seconds };
            let mut fast = Vec::new();
            hold_command(&request, &mut fast);
            prop_assert_eq!(fast, bincode_bytes(&Command::Hold(request)));
        }
    }
}
