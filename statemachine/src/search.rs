//! Search across events: indexes by start time and by category, kept up to date by every
//! command that creates, moves or cancels an event and rebuilt on restore (derived state,
//! never serialised), and the query that walks them.
//!
//! A search walks one time index (the category's, or all events') in order from its
//! lower bound and filters each event it meets, so a page costs the events it skips plus
//! the page, never a sort of every event; filters are checked cheapest first.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use compact_str::CompactString;
use serde::{Deserialize, Serialize};

use crate::command::{Category, Listing};
use crate::inventory::Event;
use crate::limits::{SEARCH_NIGHTS_MAX, SEARCH_PAGE_MAX, SEARCH_TEXT_BYTES_MAX};
use crate::outcome::{Rejection, Summary};
use crate::StateMachine;

/// The position of an event in a time index: its start (events without one last), then
/// its id.
type TimeKey = (u64, CompactString);

fn time_key(event_id: &str, starts_at_ms: Option<u64>) -> TimeKey {
    (
        starts_at_ms.unwrap_or(u64::MAX),
        CompactString::from(event_id),
    )
}

/// What the text and city filters compare, kept in the index itself: a search that
/// filters on them reads the index's own entries and looks an event up only when they
/// match (a lookup in the events map is most of the cost of a step otherwise).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SearchKeys {
    /// The name and the venue in lower case, with a separator no query can contain
    /// (control characters are refused), so a query never matches across the two.
    text: Box<str>,
    /// The city in lower case; empty without one.
    city: Box<str>,
}

impl SearchKeys {
    fn of(event: &Event) -> SearchKeys {
        let mut text = event.name.to_lowercase();
        if let Some(venue) = &event.listing.venue {
            text.push('\n');
            text.push_str(&venue.to_lowercase());
        }
        let city = event.listing.city.as_deref().map(str::to_lowercase);
        SearchKeys {
            text: text.into_boxed_str(),
            city: city.unwrap_or_default().into_boxed_str(),
        }
    }
}

/// Events that are not cancelled, by `(start, id)`: all of them, and per category, each
/// with its [`SearchKeys`] (shared by the two maps). Iterated in key order, so searches
/// are deterministic.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct SearchIndex {
    by_start: BTreeMap<TimeKey, Arc<SearchKeys>>,
    by_category: BTreeMap<Category, BTreeMap<TimeKey, Arc<SearchKeys>>>,
}

impl SearchIndex {
    /// The index of every event of `events` that is not cancelled.
    pub fn build(events: &BTreeMap<String, Event>) -> SearchIndex {
        let mut index = SearchIndex::default();
        for (event_id, event) in events {
            if event.cancelled_at_ms.is_none() {
                index.insert(event_id, event);
            }
        }
        index
    }

    /// Adds `event` (not cancelled) under `event_id`.
    pub fn insert(&mut self, event_id: &str, event: &Event) {
        let key = time_key(event_id, event.starts_at_ms);
        let keys = Arc::new(SearchKeys::of(event));
        self.by_category
            .entry(event.category)
            .or_default()
            .insert(key.clone(), keys.clone());
        self.by_start.insert(key, keys);
    }

    pub fn remove(&mut self, event_id: &str, category: Category, starts_at_ms: Option<u64>) {
        let key = time_key(event_id, starts_at_ms);
        self.by_start.remove(&key);
        if let Some(keys) = self.by_category.get_mut(&category) {
            keys.remove(&key);
            if keys.is_empty() {
                self.by_category.remove(&category);
            }
        }
    }
}

impl Event {
    fn pool_totals(&self) -> PoolTotals {
        let mut totals = PoolTotals::default();
        for pool in self.pools.values() {
            totals.capacity += pool.capacity;
            totals.available += pool.available();
            totals.held += pool.held;
            totals.booked += pool.booked;
        }
        totals
    }

    /// Whether some room type has a pool `{type}-{night}` with a room free for every night.
    fn room_type_free(&self, nights: &[String], key: &mut String) -> bool {
        let Some(first) = nights.first() else {
            return true;
        };
        self.pools.iter().any(|(pool_id, pool)| {
            let Some(room_type) = pool_id
                .strip_suffix(first.as_str())
                .and_then(|prefix| prefix.strip_suffix('-'))
            else {
                return false;
            };
            pool.available() > 0
                && nights[1..].iter().all(|night| {
                    key.clear();
                    key.push_str(room_type);
                    key.push('-');
                    key.push_str(night);
                    self.pools
                        .get(key.as_str())
                        .is_some_and(|pool| pool.available() > 0)
                })
        })
    }
}

/// Pool totals of an event's availability.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolTotals {
    /// Sum of the capacities of the event's pools, in units.
    pub capacity: u64,
    /// Units neither held nor booked: `capacity - held - booked`.
    pub available: u64,
    /// Units in active holds.
    pub held: u64,
    /// Units in confirmed bookings.
    pub booked: u64,
}

/// One event as a search lists it: metadata and availability summary.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventListing {
    /// The event's id.
    pub event_id: String,
    /// Display name.
    pub name: String,
    /// The event's category.
    pub category: Category,
    /// Start in Unix milliseconds, if it has one.
    pub starts_at_ms: Option<u64>,
    /// Venue, city, end, description and tags.
    pub listing: Listing,
    /// ISO 4217 code the event's prices are in.
    pub currency: String,
    /// When the event was cancelled, if it was.
    pub cancelled_at_ms: Option<u64>,
    /// The event's version (the ETag of its availability).
    pub version: u64,
    /// Seat counters.
    pub summary: Summary,
    /// Unit counters, summed over the event's pools.
    pub pools: PoolTotals,
}

/// What a search asks for. Every filter that is set must hold (AND).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SearchQuery {
    /// Only events of this category.
    pub category: Option<Category>,
    /// Text in the name or the venue, compared case-insensitively; at most
    /// [`SEARCH_TEXT_BYTES_MAX`] bytes.
    pub text: Option<String>,
    /// The city label, compared case-insensitively.
    pub city: Option<String>,
    /// Only events that start at or after this time (Unix milliseconds).
    pub starts_from_ms: Option<u64>,
    /// Only events that start at or before this time.
    pub starts_to_ms: Option<u64>,
    /// At least this many seats and pool units free, counted together.
    pub min_available: Option<u64>,
    /// Hotels only: the nights (`YYYY-MM-DD` labels of the pools `{room type}-{night}`)
    /// on each of which one room type must have a room free; at most
    /// [`SEARCH_NIGHTS_MAX`]. Empty: no such filter.
    pub nights: Vec<String>,
    /// The last event id of the previous page.
    pub after: Option<String>,
    /// Events in the page, 1 to [`SEARCH_PAGE_MAX`] (clamped).
    pub limit: usize,
}

/// A page of search results, by start time then id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchPage {
    /// The matching events, at most the query's `limit`.
    pub events: Vec<EventListing>,
    /// The event id to pass as `after` for the next page, while more events match.
    pub next_after: Option<String>,
}

/// The search's filters, prepared once per query.
struct Filter<'q> {
    text: Option<String>,
    city: Option<String>,
    require_start: bool,
    starts_to_ms: Option<u64>,
    min_available: Option<u64>,
    nights: &'q [String],
}

impl Filter<'_> {
    /// The filters the index entry answers by itself.
    fn matches_keys(&self, keys: &SearchKeys) -> bool {
        self.city.as_deref().is_none_or(|city| *keys.city == *city)
            && self
                .text
                .as_deref()
                .is_none_or(|text| keys.text.contains(text))
    }

    /// The filters that need the event.
    fn matches(&self, event: &Event, key: &mut String) -> bool {
        if self.require_start && event.starts_at_ms.is_none() {
            return false;
        }
        if let Some(min_available) = self.min_available {
            let free = event.summary.seats_available + event.pool_totals().available;
            if free < min_available {
                return false;
            }
        }
        if !self.nights.is_empty()
            && (event.category != Category::Hotel || !event.room_type_free(self.nights, key))
        {
            return false;
        }
        true
    }
}

impl StateMachine {
    /// One event's listing, cancelled or not.
    pub fn event_listing(&self, event_id: &str) -> Option<EventListing> {
        let event = self.events.get(event_id)?;
        Some(listing_of(event_id, event))
    }

    /// A page of the events that are not cancelled and match `query`, by start time then
    /// id (events without a start last). Refuses a query beyond its limits and an `after`
    /// that names no event.
    pub fn search(&self, query: &SearchQuery) -> Result<SearchPage, Rejection> {
        if query
            .text
            .as_ref()
            .is_some_and(|text| text.len() > SEARCH_TEXT_BYTES_MAX)
        {
            return Err(Rejection::invalid(
                "q",
                format!("must be at most {SEARCH_TEXT_BYTES_MAX} bytes"),
            ));
        }
        if query.nights.len() > SEARCH_NIGHTS_MAX {
            return Err(Rejection::invalid(
                "nights_to",
                format!("at most {SEARCH_NIGHTS_MAX} nights"),
            ));
        }
        let limit = query.limit.clamp(1, SEARCH_PAGE_MAX);
        let empty = BTreeMap::new();
        let index = match query.category {
            Some(category) => self
                .search_index
                .by_category
                .get(&category)
                .unwrap_or(&empty),
            None => &self.search_index.by_start,
        };
        let mut lower = match query.starts_from_ms {
            Some(from) => Bound::Included((from, CompactString::default())),
            None => Bound::Unbounded,
        };
        if let Some(after) = &query.after {
            let event = self
                .events
                .get(after)
                .ok_or_else(|| Rejection::invalid("after", "names no event"))?;
            let after_key = time_key(after, event.starts_at_ms);
            let past_lower = match &lower {
                Bound::Included(from) => after_key >= *from,
                _ => true,
            };
            if past_lower {
                lower = Bound::Excluded(after_key);
            }
        }
        let filter = Filter {
            text: query.text.as_deref().map(str::to_lowercase),
            city: query.city.as_deref().map(str::to_lowercase),
            require_start: query.starts_from_ms.is_some() || query.starts_to_ms.is_some(),
            starts_to_ms: query.starts_to_ms,
            min_available: query.min_available,
            nights: &query.nights,
        };
        let mut key = String::new();
        let mut events = Vec::with_capacity(limit.min(64));
        let mut next_after = None;
        for ((starts_at, event_id), keys) in index.range((lower, Bound::Unbounded)) {
            if filter.starts_to_ms.is_some_and(|to| *starts_at > to) {
                break;
            }
            if !filter.matches_keys(keys) {
                continue;
            }
            let event = &self.events[event_id.as_str()];
            if !filter.matches(event, &mut key) {
                continue;
            }
            if events.len() == limit {
                next_after = events
                    .last()
                    .map(|last: &EventListing| last.event_id.clone());
                break;
            }
            events.push(listing_of(event_id, event));
        }
        Ok(SearchPage { events, next_after })
    }

    /// Checks the search indexes against the events (for `check_invariants`).
    pub(crate) fn search_index_is_exact(&self) -> Result<(), String> {
        let rebuilt = SearchIndex::build(&self.events);
        if rebuilt != self.search_index {
            return Err(format!(
                "the search index lists {} events, the events say {}",
                self.search_index.by_start.len(),
                rebuilt.by_start.len()
            ));
        }
        Ok(())
    }
}

fn listing_of(event_id: &str, event: &Event) -> EventListing {
    EventListing {
        event_id: event_id.to_string(),
        name: event.name.clone(),
        category: event.category,
        starts_at_ms: event.starts_at_ms,
        listing: event.listing.clone(),
        currency: event.currency.clone(),
        cancelled_at_ms: event.cancelled_at_ms,
        version: event.version,
        summary: event.summary,
        pools: event.pool_totals(),
    }
}
