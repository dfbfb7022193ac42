//! Validation at the edge: turns request bodies into commands, refusing malformed input with
//! `400` before anything is proposed. A refusal here stores nothing — not even in the
//! idempotency table, so a corrected retry with the same key is evaluated afresh.
//!
//! The checks mirror the state machine's own (which stay the authority, with the same
//! limits from `holdfast_statemachine::limits`); what needs the state (unknown event, seat
//! taken) is left to the state machine.

use holdfast_statemachine::ErrorCode;
use std::collections::HashSet;

use holdfast_statemachine::limits::*;
use holdfast_statemachine::{
    BestAvailable, Category, Command, CreateEvent, HoldRequest, PoolQuantity, PoolSpec, SeatBlock,
    SeatSpec,
};
use serde_json::json;

use crate::error::{ttl_details, ApiError};
use crate::wire::{parse_rfc3339_ms, CreateEventBody, HoldBody, PoolBody, SeatBlockBody, SeatBody};

/// An identifier: 1–64 bytes, no whitespace, control characters or `/`.
pub fn id(field: &str, value: &str) -> Result<(), ApiError> {
    if value.is_empty() || value.len() > ID_BYTES_MAX {
        return Err(ApiError::invalid_field(
            field,
            format!("must be 1 to {ID_BYTES_MAX} bytes"),
        ));
    }
    if value
        .chars()
        .any(|c| c.is_control() || c.is_whitespace() || c == '/')
    {
        return Err(ApiError::invalid_field(
            field,
            "must not contain spaces, control characters or '/'",
        ));
    }
    Ok(())
}

/// Free text: at most 256 bytes, no control characters.
pub fn text(field: &str, value: &str) -> Result<(), ApiError> {
    if value.len() > TEXT_BYTES_MAX || value.chars().any(char::is_control) {
        return Err(ApiError::invalid_field(
            field,
            format!("must be at most {TEXT_BYTES_MAX} bytes without control characters"),
        ));
    }
    Ok(())
}

fn price(field: &str, value: u64) -> Result<(), ApiError> {
    if value > PRICE_MAX {
        return Err(ApiError::invalid_field(
            field,
            format!("must be at most {PRICE_MAX}"),
        ));
    }
    Ok(())
}

fn currency(value: &str) -> Result<(), ApiError> {
    if value.len() != 3 || !value.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(ApiError::invalid_field(
            "currency",
            "must be an ISO 4217 code such as EUR",
        ));
    }
    Ok(())
}

/// A TTL in seconds (default 600), 1–7200, else `400 INVALID_TTL`.
pub fn ttl_seconds(value: Option<i64>) -> Result<u32, ApiError> {
    let value = value.unwrap_or(i64::from(HOLD_TTL_SECONDS_DEFAULT));
    let range = i64::from(HOLD_TTL_SECONDS_MIN)..=i64::from(HOLD_TTL_SECONDS_MAX);
    if !range.contains(&value) {
        return Err(ApiError::new(
            ErrorCode::InvalidTtl,
            format!(
                "ttl_seconds must be {HOLD_TTL_SECONDS_MIN} to {HOLD_TTL_SECONDS_MAX}, not {value}"
            ),
        )
        .with_details(ttl_details(value)));
    }
    Ok(value as u32)
}

fn quantity(field: &str, value: i64, max: u32) -> Result<u32, ApiError> {
    if value < 1 || value > i64::from(max) {
        return Err(ApiError::invalid_quantity(
            field,
            format!("must be 1 to {max}, not {value}"),
        ));
    }
    Ok(value as u32)
}

/// `POST /booking/hold`.
pub fn hold(body: HoldBody) -> Result<Command, ApiError> {
    id("event_id", &body.event_id)?;
    id("customer_id", &body.customer_id)?;
    let ttl_seconds = ttl_seconds(body.ttl_seconds)?;
    for seat in &body.seats {
        id("seats", seat)?;
    }
    let mut pools = Vec::with_capacity(body.pools.len());
    for (index, line) in body.pools.iter().enumerate() {
        id(&format!("pools[{index}].pool_id"), &line.pool_id)?;
        let quantity = quantity(
            &format!("pools[{index}].quantity"),
            line.quantity,
            HOLD_POOL_QUANTITY_MAX,
        )?;
        pools.push(PoolQuantity {
            pool_id: line.pool_id.clone(),
            quantity,
        });
    }
    let best_available = match &body.best_available {
        None => None,
        Some(best) => {
            let count = quantity("best_available.count", best.count, HOLD_ITEMS_MAX as u32)?;
            if let Some(section) = &best.section {
                id("best_available.section", section)?;
            }
            Some(BestAvailable {
                count,
                section: best.section.clone(),
                allow_split: best.allow_split,
            })
        }
    };
    let items =
        body.seats.len() + pools.len() + best_available.as_ref().map_or(0, |b| b.count as usize);
    if items > HOLD_ITEMS_MAX {
        return Err(too_many_items(items, HOLD_ITEMS_MAX));
    }
    if items == 0 {
        return Err(ApiError::invalid_field(
            "seats",
            "name at least one seat, pool or best_available",
        ));
    }
    if let Some(seat) = first_duplicate(body.seats.iter().map(String::as_str)) {
        return Err(ApiError::invalid_field(
            "seats",
            format!("seat {seat} is named twice"),
        ));
    }
    if let Some(pool) = first_duplicate(pools.iter().map(|line| line.pool_id.as_str())) {
        return Err(ApiError::invalid_field(
            "pools",
            format!("pool {pool} is named twice"),
        ));
    }
    Ok(Command::Hold(HoldRequest {
        event_id: body.event_id,
        customer_id: body.customer_id,
        seats: body.seats,
        pools,
        best_available,
        ttl_seconds: Some(ttl_seconds),
    }))
}

fn first_duplicate<'a>(names: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let mut seen = HashSet::new();
    names.into_iter().find(|name| !seen.insert(*name))
}

fn too_many_items(items: usize, max: usize) -> ApiError {
    ApiError::new(
        ErrorCode::TooManyItems,
        format!("{items} items is more than the {max} allowed"),
    )
    .with_details(json!({"items": items, "max": max}))
}

/// A hold or booking id in a body.
pub fn record_id(field: &str, value: &str) -> Result<(), ApiError> {
    id(field, value)
}

/// `POST /admin/events`.
pub fn create_event(body: CreateEventBody) -> Result<Command, ApiError> {
    id("event_id", &body.event_id)?;
    text("name", &body.name)?;
    currency(&body.currency)?;
    let category = match body.category.as_deref() {
        None => Category::Other,
        Some(name) => Category::parse(name).ok_or_else(|| {
            ApiError::invalid_field(
                "category",
                "must be movie, event, hotel, appointment or other",
            )
        })?,
    };
    let starts_at_ms = match body.starts_at.as_deref() {
        None => None,
        Some(time) => Some(parse_rfc3339_ms(time).ok_or_else(|| {
            ApiError::invalid_field("starts_at", "must be an RFC 3339 time after 1970")
        })?),
    };
    let listing = crate::events::listing(
        body.venue,
        body.city,
        body.ends_at.as_deref(),
        body.description,
        body.tags,
        starts_at_ms,
    )?;
    let (seats, seat_blocks) = seats(&body.seats, &body.seat_blocks)?;
    let pools = pools(&body.pools)?;
    Ok(Command::CreateEvent(CreateEvent {
        event_id: body.event_id,
        name: body.name,
        category,
        starts_at_ms,
        currency: body.currency,
        seats,
        seat_blocks,
        pools,
        listing,
    }))
}

/// Listed seats and seat blocks of an admin request.
pub fn seats(
    listed: &[SeatBody],
    blocks: &[SeatBlockBody],
) -> Result<(Vec<SeatSpec>, Vec<SeatBlock>), ApiError> {
    if listed.len() > SEATS_PER_COMMAND_MAX {
        return Err(too_many_items(listed.len(), SEATS_PER_COMMAND_MAX));
    }
    let mut seats = Vec::with_capacity(listed.len());
    for (index, seat) in listed.iter().enumerate() {
        id(&format!("seats[{index}].id"), &seat.id)?;
        id(&format!("seats[{index}].section"), &seat.section)?;
        id(&format!("seats[{index}].row"), &seat.row)?;
        price(&format!("seats[{index}].price"), seat.price)?;
        seats.push(SeatSpec {
            id: seat.id.clone(),
            section: seat.section.clone(),
            row: seat.row.clone(),
            number: seat.number,
            price: seat.price,
        });
    }
    let mut total = listed.len() as u64;
    let mut seat_blocks = Vec::with_capacity(blocks.len());
    for (index, block) in blocks.iter().enumerate() {
        id(&format!("seat_blocks[{index}].section"), &block.section)?;
        price(&format!("seat_blocks[{index}].price"), block.price)?;
        if block.rows.is_empty() || block.rows.len() > SEAT_BLOCK_ROWS_MAX {
            return Err(ApiError::invalid_field(
                &format!("seat_blocks[{index}].rows"),
                format!("must name 1 to {SEAT_BLOCK_ROWS_MAX} rows"),
            ));
        }
        for row in &block.rows {
            id(&format!("seat_blocks[{index}].rows"), row)?;
        }
        let seats_per_row = quantity(
            &format!("seat_blocks[{index}].seats_per_row"),
            block.seats_per_row,
            SEAT_BLOCK_SEATS_PER_ROW_MAX,
        )?;
        total += block.rows.len() as u64 * u64::from(seats_per_row);
        seat_blocks.push(SeatBlock {
            section: block.section.clone(),
            rows: block.rows.clone(),
            seats_per_row,
            price: block.price,
        });
    }
    if total > SEATS_PER_EVENT_MAX as u64 {
        return Err(too_many_items(total as usize, SEATS_PER_EVENT_MAX));
    }
    Ok((seats, seat_blocks))
}

/// Pools of an admin request.
pub fn pools(pools: &[PoolBody]) -> Result<Vec<PoolSpec>, ApiError> {
    if pools.len() > POOLS_PER_EVENT_MAX {
        return Err(too_many_items(pools.len(), POOLS_PER_EVENT_MAX));
    }
    pools
        .iter()
        .enumerate()
        .map(|(index, pool)| {
            id(&format!("pools[{index}].id"), &pool.id)?;
            price(&format!("pools[{index}].price"), pool.price)?;
            Ok(PoolSpec {
                id: pool.id.clone(),
                capacity: capacity(&format!("pools[{index}].capacity"), pool.capacity)?,
                price: pool.price,
            })
        })
        .collect()
}

/// A pool capacity: 0 to [`POOL_CAPACITY_MAX`].
pub fn capacity(field: &str, value: i64) -> Result<u64, ApiError> {
    if value < 0 || value as u64 > POOL_CAPACITY_MAX {
        return Err(ApiError::invalid_quantity(
            field,
            format!("must be 0 to {POOL_CAPACITY_MAX}, not {value}"),
        ));
    }
    Ok(value as u64)
}
