//! An event's listing: the metadata a search shows (venue, city, start and end,
//! description, tags), the admin commands that change it, and cancelling a whole event.

use crate::command::{EventUpdate, Listing};
use crate::inventory::validate_text;
use crate::limits::{
    LISTING_LABEL_BYTES_MAX, LISTING_TEXT_BYTES_MAX, TAGS_PER_EVENT_MAX, TAG_BYTES_MAX,
};
use crate::outcome::{
    BookingStatus, EventCancellation, EventChange, HoldStatus, Outcome, Rejection,
};
use crate::state::BOOKING_ID_PREFIX;
use crate::StateMachine;

/// `text` is 1 to `max` bytes without control characters.
fn validate_label(field: &str, text: &str, max: usize) -> Result<(), Rejection> {
    if text.is_empty() || text.len() > max || text.chars().any(char::is_control) {
        return Err(Rejection::invalid(
            field,
            format!("must be 1 to {max} bytes without control characters"),
        ));
    }
    Ok(())
}

fn validate_optional(field: &str, text: Option<&str>, max: usize) -> Result<(), Rejection> {
    text.map_or(Ok(()), |text| validate_label(field, text, max))
}

fn validate_tags(tags: &[String]) -> Result<(), Rejection> {
    if tags.len() > TAGS_PER_EVENT_MAX {
        return Err(Rejection::invalid(
            "tags",
            format!("at most {TAGS_PER_EVENT_MAX} tags"),
        ));
    }
    for (index, tag) in tags.iter().enumerate() {
        validate_label("tags", tag, TAG_BYTES_MAX)?;
        if tags[..index].contains(tag) {
            return Err(Rejection::invalid(
                "tags",
                format!("tag {tag} is named twice"),
            ));
        }
    }
    Ok(())
}

fn validate_times(starts_at_ms: Option<u64>, ends_at_ms: Option<u64>) -> Result<(), Rejection> {
    match (starts_at_ms, ends_at_ms) {
        (Some(start), Some(end)) if end < start => Err(Rejection::invalid(
            "ends_at",
            "must not be before starts_at",
        )),
        _ => Ok(()),
    }
}

/// Checks every field of a listing and that it does not end before `starts_at_ms`.
pub(crate) fn validate_listing(
    listing: &Listing,
    starts_at_ms: Option<u64>,
) -> Result<(), Rejection> {
    validate_optional("venue", listing.venue.as_deref(), LISTING_LABEL_BYTES_MAX)?;
    validate_optional("city", listing.city.as_deref(), LISTING_LABEL_BYTES_MAX)?;
    validate_optional(
        "description",
        listing.description.as_deref(),
        LISTING_TEXT_BYTES_MAX,
    )?;
    validate_tags(&listing.tags)?;
    validate_times(starts_at_ms, listing.ends_at_ms)
}

impl Listing {
    /// Checks the listing as the state machine will, so that an edge can refuse it before
    /// proposing it: labels and texts within their limits, tags unique, no end before
    /// `starts_at_ms`.
    pub fn check(&self, starts_at_ms: Option<u64>) -> Result<(), Rejection> {
        validate_listing(self, starts_at_ms)
    }
}

impl EventUpdate {
    /// Checks the fields the update names, each on its own (the state machine checks the
    /// result against the event too: an end before its start is refused there).
    pub fn check(&self) -> Result<(), Rejection> {
        if let Some(name) = &self.name {
            validate_text("name", name)?;
        }
        validate_optional(
            "venue",
            self.venue.clone().flatten().as_deref(),
            LISTING_LABEL_BYTES_MAX,
        )?;
        validate_optional(
            "city",
            self.city.clone().flatten().as_deref(),
            LISTING_LABEL_BYTES_MAX,
        )?;
        validate_optional(
            "description",
            self.description.clone().flatten().as_deref(),
            LISTING_TEXT_BYTES_MAX,
        )?;
        if let Some(tags) = &self.tags {
            validate_tags(tags)?;
        }
        validate_times(self.starts_at_ms.flatten(), self.ends_at_ms.flatten())
    }
}

impl StateMachine {
    /// Applies an [`EventUpdate`]: all of it or, if any field is refused, none of it.
    pub(crate) fn update_event(&mut self, update: &EventUpdate) -> Result<Outcome, Rejection> {
        let event = self.event_mut(&update.event_id)?;
        if let Some(name) = &update.name {
            validate_text("name", name)?;
        }
        let mut listing = event.listing.clone();
        if let Some(venue) = &update.venue {
            listing.venue.clone_from(venue);
        }
        if let Some(city) = &update.city {
            listing.city.clone_from(city);
        }
        if let Some(ends_at_ms) = update.ends_at_ms {
            listing.ends_at_ms = ends_at_ms;
        }
        if let Some(description) = &update.description {
            listing.description.clone_from(description);
        }
        if let Some(tags) = &update.tags {
            listing.tags.clone_from(tags);
        }
        let starts_at_ms = update.starts_at_ms.unwrap_or(event.starts_at_ms);
        validate_listing(&listing, starts_at_ms)?;

        // Everything is checked: from here on the update cannot fail.
        let (category, old_start) = (event.category, event.starts_at_ms);
        if let Some(name) = &update.name {
            event.name.clone_from(name);
        }
        event.listing = listing;
        event.starts_at_ms = starts_at_ms;
        event.version += 1;
        let (version, cancelled) = (event.version, event.cancelled_at_ms.is_some());
        if !cancelled {
            // The start, the name, the venue or the city may have changed: re-index.
            self.search_index
                .remove(&update.event_id, category, old_start);
            let event = &self.events[&update.event_id];
            self.search_index.insert(&update.event_id, event);
        }
        Ok(Outcome::InventoryChanged(EventChange {
            event_id: update.event_id.clone(),
            version,
        }))
    }

    /// Cancels an event: every active hold on it is released, every confirmed booking is
    /// cancelled with its refund recorded (as `CancelBooking` does, outbox events included),
    /// and it leaves the search indexes. Holds are refused from then on.
    ///
    /// The work is linear in the event's holds and bookings, found by walking the active
    /// holds and the bookings table in id order (an admin command, rare, not on the hold
    /// path: no per-event index of bookings is kept for it).
    pub(crate) fn cancel_event(
        &mut self,
        event_id: &str,
        reason: &str,
    ) -> Result<Outcome, Rejection> {
        validate_text("reason", reason)?;
        let event = self
            .events
            .get(event_id)
            .ok_or_else(|| Rejection::EventNotFound {
                event_id: event_id.to_string(),
            })?;
        if event.cancelled_at_ms.is_some() {
            return Err(Rejection::EventCancelled {
                event_id: event_id.to_string(),
            });
        }
        let (category, starts_at_ms) = (event.category, event.starts_at_ms);
        let mut holds: Vec<u64> = self
            .expiry_queue
            .iter()
            .map(|(_, id)| id)
            .filter(|id| {
                self.holds.get(id).is_some_and(|hold| {
                    hold.status == HoldStatus::Active && *hold.event_id == *event_id
                })
            })
            .collect();
        holds.sort_unstable();
        let bookings: Vec<u64> = self
            .bookings
            .iter()
            .filter(|(_, booking)| {
                booking.status == BookingStatus::Confirmed && *booking.event_id == *event_id
            })
            .map(|(id, _)| id)
            .collect();

        for &id in &holds {
            self.end_hold(id, HoldStatus::Released, None);
            self.emit_released(id);
        }
        let (mut refunds_recorded, mut refund_amount) = (0u64, 0u64);
        for &id in &bookings {
            let booking_id = self.ids.format(BOOKING_ID_PREFIX, id);
            match self.cancel_booking(&booking_id, reason) {
                Ok(Outcome::BookingCancelled(view)) => {
                    if let Some(refund) = &view.refund {
                        refunds_recorded += 1;
                        refund_amount = refund_amount.saturating_add(refund.amount);
                    }
                }
                other => unreachable!("a confirmed booking cancels: {other:?}"),
            }
        }
        let now_ms = self.now_ms;
        let event = self.events.get_mut(event_id).expect("checked above");
        event.cancelled_at_ms = Some(now_ms);
        event.version += 1;
        let version = event.version;
        self.search_index.remove(event_id, category, starts_at_ms);
        Ok(Outcome::EventCancelled(EventCancellation {
            event_id: event_id.to_string(),
            version,
            holds_released: holds.len() as u64,
            bookings_cancelled: bookings.len() as u64,
            refunds_recorded,
            refund_amount,
        }))
    }
}
