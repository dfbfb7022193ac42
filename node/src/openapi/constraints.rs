//! The edge's input rules ([`crate::validate`], [`crate::extract`], the service layer and
//! the state machine's own checks) written as JSON Schema keywords into the generated
//! OpenAPI document, so that `/openapi.json` says what the node enforces: lengths, ranges,
//! character sets, formats and "exactly one of".
//!
//! Limits come from the same constants the checks use. Byte limits are given twice: as
//! `maxLength` (which JSON Schema counts in characters, exact for ASCII) and as
//! `x-max-bytes` (the rule itself: UTF-8 bytes). Rules between two fields (a time range's
//! ends, the total items of a hold) cannot be said in JSON Schema; their fields'
//! descriptions state them, and the node answers `400 INVALID_FIELD` naming the field.

use holdfast_statemachine::limits::*;
use serde_json::{json, Value};

use crate::extract::IDEMPOTENCY_KEY_CHARS_MAX;

/// Characters an id may not contain: control characters, Unicode white space and `/`
/// (`char::is_control`, `char::is_whitespace`).
const ID_PATTERN: &str = "^[^\\u0000-\\u0020\\u007F-\\u00A0/\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000]+$";
/// Text without control characters.
const TEXT_PATTERN: &str = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$";
/// An `http://` or `https://` URL without white space or control characters.
const URL_PATTERN: &str = "^https?://[^\\u0000-\\u0020\\u007F-\\u00A0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000]*$";
/// An RFC 3339 time in 1970 or later (the node keeps times as milliseconds since 1970).
const TIME_PATTERN: &str = concat!(
    "^(19[7-9][1-9]|19[89][0-9]|[2-9][0-9]{3})-",
    "((0[13578]|1[02])-(0[1-9]|[12][0-9]|3[01])|(0[469]|11)-(0[1-9]|[12][0-9]|30)|02-(0[1-9]|1[0-9]|2[0-8]))",
    "[Tt]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,9})?([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$"
);
/// A calendar date `YYYY-MM-DD`.
const DATE_PATTERN: &str = "^[0-9]{4}-((0[13578]|1[02])-(0[1-9]|[12][0-9]|3[01])|(0[469]|11)-(0[1-9]|[12][0-9]|30)|02-(0[1-9]|1[0-9]|2[0-8]))$";
/// An `Idempotency-Key`: printable ASCII (HTTP trims spaces at either end of a header).
const KEY_PATTERN: &str = "^[\\x21-\\x7E]([\\x20-\\x7E]*[\\x21-\\x7E])?$";

fn id() -> Value {
    json!({"type": "string", "minLength": 1, "maxLength": ID_BYTES_MAX,
           "x-max-bytes": ID_BYTES_MAX, "pattern": ID_PATTERN})
}

fn text(max_bytes: usize, min: usize) -> Value {
    json!({"type": "string", "minLength": min, "maxLength": max_bytes,
           "x-max-bytes": max_bytes, "pattern": TEXT_PATTERN})
}

fn time() -> Value {
    json!({"type": "string", "format": "date-time", "pattern": TIME_PATTERN})
}

fn integer(minimum: u64, maximum: u64) -> Value {
    json!({"type": "integer", "minimum": minimum, "maximum": maximum})
}

fn string_enum(values: &[&str]) -> Value {
    json!({"type": "string", "enum": values})
}

fn ids(max_items: usize) -> Value {
    json!({"type": "array", "items": id(), "maxItems": max_items, "uniqueItems": true})
}

/// Query, path and header parameters, by name, wherever they appear.
fn parameters() -> Vec<(&'static str, Value)> {
    let consistency = string_enum(&["stale", "bounded", "linearizable"]);
    vec![
        ("event_id", id()),
        ("customer_id", id()),
        ("hold_id", id()),
        ("booking_id", id()),
        ("seat_id", id()),
        ("pool_id", id()),
        ("webhook_id", id()),
        ("section", id()),
        ("after", id()),
        ("consistency", consistency),
        ("max_staleness_ms", integer(0, u64::MAX)),
        ("min_index", integer(0, u64::MAX)),
        ("min_available", integer(0, u64::MAX)),
        ("limit", integer(1, u64::MAX)),
        ("view", string_enum(&["summary", "full"])),
        (
            "category",
            string_enum(&["movie", "event", "hotel", "appointment", "other"]),
        ),
        ("q", text(SEARCH_TEXT_BYTES_MAX, 1)),
        ("city", text(LISTING_LABEL_BYTES_MAX, 1)),
        ("starts_from", time()),
        ("starts_to", time()),
        (
            "nights_from",
            json!({"type": "string", "format": "date", "pattern": DATE_PATTERN}),
        ),
        (
            "nights_to",
            json!({"type": "string", "format": "date", "pattern": DATE_PATTERN}),
        ),
        ("status", string_enum(&["PENDING", "REFUNDED", "FAILED"])),
        ("from", integer(0, u64::MAX)),
        (
            "Last-Event-ID",
            json!({"type": "string", "pattern": "^[0-9]{1,19}$"}),
        ),
        (
            "Idempotency-Key",
            json!({"type": "string", "minLength": 1, "maxLength": IDEMPOTENCY_KEY_CHARS_MAX,
                   "pattern": KEY_PATTERN}),
        ),
        ("node_id", integer(1, u64::MAX)),
        ("restore_id", integer(0, u64::MAX)),
        ("offset", integer(0, u64::MAX)),
        (
            "total_bytes",
            integer(1, holdfast_statemachine::RESTORE_BYTES_MAX),
        ),
        (
            "sha256",
            json!({"type": "string", "pattern": "^[0-9A-Fa-f]{64}$"}),
        ),
    ]
}

/// Body properties: (component, property, rule). A rule's `items` applies to an array's
/// items.
fn properties() -> Vec<(&'static str, &'static str, Value)> {
    let ttl = integer(
        u64::from(HOLD_TTL_SECONDS_MIN),
        u64::from(HOLD_TTL_SECONDS_MAX),
    );
    let price = integer(0, PRICE_MAX);
    let capacity = integer(0, POOL_CAPACITY_MAX);
    let address = json!({"type": "string", "maxLength": crate::service::cluster::ADDRESS_BYTES_MAX,
                         "pattern": crate::service::cluster::ADDRESS_PATTERN});
    let mut rules = vec![
        ("HoldBody", "event_id", id()),
        ("HoldBody", "customer_id", id()),
        ("HoldBody", "seats", ids(HOLD_ITEMS_MAX)),
        ("HoldBody", "pools", json!({"maxItems": HOLD_ITEMS_MAX})),
        ("HoldBody", "ttl_seconds", ttl.clone()),
        ("PoolQuantityBody", "pool_id", id()),
        (
            "PoolQuantityBody",
            "quantity",
            integer(1, u64::from(HOLD_POOL_QUANTITY_MAX)),
        ),
        (
            "BestAvailableBody",
            "count",
            integer(1, HOLD_ITEMS_MAX as u64),
        ),
        ("BestAvailableBody", "section", id()),
        ("ExtendBody", "hold_id", id()),
        ("ExtendBody", "ttl_seconds", ttl),
        ("ConfirmBody", "hold_id", id()),
        ("PaymentBody", "token", text(TEXT_BYTES_MAX, 1)),
        ("PaymentBody", "method", text(TEXT_BYTES_MAX, 0)),
        ("CancelBody", "hold_id", id()),
        ("CancelBody", "booking_id", id()),
        ("CancelBody", "reason", text(TEXT_BYTES_MAX, 0)),
        ("CreateEventBody", "event_id", id()),
        (
            "CreateEventBody",
            "category",
            string_enum(&["movie", "event", "hotel", "appointment", "other"]),
        ),
        (
            "CreateEventBody",
            "currency",
            json!({"type": "string", "pattern": "^[A-Z]{3}$"}),
        ),
        (
            "CreateEventBody",
            "seats",
            json!({"maxItems": SEATS_PER_COMMAND_MAX}),
        ),
        (
            "CreateEventBody",
            "pools",
            json!({"maxItems": POOLS_PER_EVENT_MAX}),
        ),
        ("SeatBody", "id", id()),
        ("SeatBody", "section", id()),
        ("SeatBody", "row", id()),
        ("SeatBody", "number", integer(0, u64::from(u32::MAX))),
        ("SeatBody", "price", price.clone()),
        ("SeatBlockBody", "section", id()),
        (
            "SeatBlockBody",
            "rows",
            json!({"type": "array", "items": id(), "minItems": 1, "maxItems": SEAT_BLOCK_ROWS_MAX,
                   "uniqueItems": true}),
        ),
        (
            "SeatBlockBody",
            "seats_per_row",
            integer(1, u64::from(SEAT_BLOCK_SEATS_PER_ROW_MAX)),
        ),
        ("SeatBlockBody", "price", price.clone()),
        ("PoolBody", "id", id()),
        ("PoolBody", "capacity", capacity.clone()),
        ("PoolBody", "price", price),
        (
            "AddSeatsBody",
            "seats",
            json!({"maxItems": SEATS_PER_COMMAND_MAX}),
        ),
        (
            "AddPoolsBody",
            "pools",
            json!({"minItems": 1, "maxItems": POOLS_PER_EVENT_MAX}),
        ),
        ("PoolCapacityBody", "capacity", capacity),
        ("MemberBody", "id", integer(1, u64::MAX)),
        ("MemberBody", "raft_addr", address.clone()),
        ("MemberBody", "http_addr", address),
        ("MemberBody", "region", text(TEXT_BYTES_MAX, 0)),
        (
            "ClusterInitBody",
            "members",
            json!({"minItems": 1, "maxItems": 100}),
        ),
        (
            "MembershipBody",
            "voters",
            json!({"type": "array", "minItems": 1, "maxItems": 100,
                   "items": integer(1, u64::MAX)}),
        ),
        ("TransferLeaderBody", "node_id", integer(1, u64::MAX)),
        (
            "WebhookBody",
            "url",
            json!({"type": "string", "maxLength": WEBHOOK_URL_BYTES_MAX,
                   "x-max-bytes": WEBHOOK_URL_BYTES_MAX, "pattern": URL_PATTERN}),
        ),
        ("WebhookBody", "secret", text(WEBHOOK_SECRET_BYTES_MAX, 1)),
        (
            "WebhookBody",
            "events",
            json!({"maxItems": WEBHOOK_EVENT_TYPES_MAX,
                   "items": string_enum(&holdfast_statemachine::EventType::ALL.map(|event| event.as_str()))}),
        ),
        ("CancelEventBody", "reason", text(TEXT_BYTES_MAX, 0)),
    ];
    // The listing: the same rules whether an event is created or changed.
    for component in ["CreateEventBody", "UpdateEventBody"] {
        rules.extend([
            (component, "name", text(TEXT_BYTES_MAX, 0)),
            (component, "starts_at", time()),
            (component, "ends_at", time()),
            (component, "venue", text(LISTING_LABEL_BYTES_MAX, 1)),
            (component, "city", text(LISTING_LABEL_BYTES_MAX, 1)),
            (component, "description", text(LISTING_TEXT_BYTES_MAX, 1)),
            (
                component,
                "tags",
                json!({"type": "array", "maxItems": TAGS_PER_EVENT_MAX, "uniqueItems": true,
                       "items": text(TAG_BYTES_MAX, 1)}),
            ),
        ]);
    }
    rules
}

/// Rules over a whole body (component, keywords merged into the component).
fn components() -> Vec<(&'static str, Value)> {
    vec![
        (
            "HoldBody",
            json!({"anyOf": [
                {"required": ["seats"], "properties": {"seats": {"minItems": 1}}},
                {"required": ["pools"], "properties": {"pools": {"minItems": 1}}},
                {"required": ["best_available"], "properties": {"best_available": {"type": "object"}}},
            ]}),
        ),
        (
            "CancelBody",
            json!({"oneOf": [
                {"required": ["hold_id"], "properties": {"hold_id": {"type": "string"}}},
                {"required": ["booking_id"], "properties": {"booking_id": {"type": "string"}}},
            ]}),
        ),
        (
            "UpdateEventBody",
            json!({"anyOf": [
                {"required": ["name"], "properties": {"name": {"type": "string"}}},
                {"required": ["starts_at"]},
                {"required": ["ends_at"]},
                {"required": ["venue"]},
                {"required": ["city"]},
                {"required": ["description"]},
                {"required": ["tags"], "properties": {"tags": {"type": "array"}}},
            ]}),
        ),
        (
            "AddSeatsBody",
            json!({"anyOf": [
                {"required": ["seats"], "properties": {"seats": {"minItems": 1}}},
                {"required": ["seat_blocks"], "properties": {"seat_blocks": {"minItems": 1}}},
            ]}),
        ),
    ]
}

/// Rules between fields, or between a field and the state of the node, that JSON Schema
/// cannot state: (method, path, field the refusal names, rule). Published per operation
/// as `x-holdfast-rules`; each is refused with `400 INVALID_FIELD` naming the field.
fn cross_field_rules() -> Vec<(&'static str, &'static str, &'static str, String)> {
    vec![
        ("post", "/booking/hold", "seats", format!("seats, pool lines and best_available.count together name at most {HOLD_ITEMS_MAX} items")),
        ("post", "/booking/hold", "pools", "a pool is named once".into()),
        ("get", "/events", "starts_to", "not before starts_from".into()),
        ("get", "/events", "nights_from", "given with nights_to".into()),
        ("get", "/events", "nights_to", format!("given with nights_from, not before it, at most {SEARCH_NIGHTS_MAX} nights after it")),
        ("post", "/admin/events", "ends_at", "not before starts_at".into()),
        ("post", "/admin/events", "seat_blocks", format!("a block's seat ids `{{section}}-{{row}}-{{number}}` are at most {ID_BYTES_MAX} bytes")),
        ("post", "/admin/events", "seats", format!("seats and seat blocks together at most {SEATS_PER_EVENT_MAX} seats")),
        ("post", "/admin/events/{event_id}/seats", "seat_blocks", format!("a block's seat ids `{{section}}-{{row}}-{{number}}` are at most {ID_BYTES_MAX} bytes")),
        ("post", "/admin/events/{event_id}/seats", "seats", format!("the event's seats stay at most {SEATS_PER_EVENT_MAX}")),
        ("patch", "/admin/events/{event_id}", "ends_at", "not before the (new or stored) starts_at".into()),
        ("post", "/cluster/init", "members", "unique ids, and this node among them".into()),
        ("post", "/cluster/restore", "offset", "offset + the piece's length at most total_bytes; pieces in order".into()),
        ("post", "/cluster/restore", "data", "the bytes of a backup (`GET /cluster/backup`), which open with its header".into()),
        ("post", "/cluster/restore", "sha256", "the SHA-256 of the whole backup, checked with its last piece".into()),
    ]
}

/// Writes the rules into `document` (an OpenAPI 3.1 document as JSON).
pub fn apply(document: &mut Value) {
    let parameters = parameters();
    if let Some(paths) = document.get_mut("paths").and_then(Value::as_object_mut) {
        for item in paths.values_mut().filter_map(Value::as_object_mut) {
            for operation in item.values_mut() {
                let Some(list) = operation
                    .get_mut("parameters")
                    .and_then(Value::as_array_mut)
                else {
                    continue;
                };
                for parameter in list {
                    let name = parameter["name"].as_str().unwrap_or("").to_string();
                    if let Some((_, rule)) = parameters.iter().find(|(known, _)| *known == name) {
                        let schema = &mut parameter["schema"];
                        let nullable = is_nullable(schema);
                        *schema = rule.clone();
                        if nullable {
                            make_nullable(schema);
                        }
                    }
                }
            }
        }
    }
    for (method, path, field, rule) in cross_field_rules() {
        let pointer = format!(
            "/paths/{}/{method}",
            path.replace('~', "~0").replace('/', "~1")
        );
        let operation = document
            .pointer_mut(&pointer)
            .and_then(Value::as_object_mut)
            .unwrap_or_else(|| panic!("the OpenAPI document has no operation {method} {path}"));
        let rules = operation
            .entry("x-holdfast-rules")
            .or_insert_with(|| json!([]));
        if let Some(rules) = rules.as_array_mut() {
            rules.push(json!({"field": field, "rule": rule}));
        }
    }
    // A restore piece is raw bytes.
    if let Some(body) = document.pointer_mut(
        "/paths/~1cluster~1restore/post/requestBody/content/application~1octet-stream/schema",
    ) {
        *body = json!({"type": "string", "format": "binary", "minLength": 1,
                       "maxLength": crate::backup::RESTORE_CHUNK_BYTES_MAX});
    }
    let Some(schemas) = document
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    for (component, property, rule) in properties() {
        let Some(target) = schemas
            .get_mut(component)
            .and_then(|schema| schema.pointer_mut(&format!("/properties/{property}")))
        else {
            panic!("the OpenAPI document has no property {component}.{property}");
        };
        merge(target, &rule);
    }
    // A batch answers each operation's own refusal in that operation's result: its body
    // may be any JSON value (a non-object is that operation's `400`).
    if let Some(body) = schemas
        .get_mut("BatchOperationBody")
        .and_then(|schema| schema.pointer_mut("/properties/body"))
    {
        *body = json!({"description": "The body of the operation's own route (any JSON value; one its route refuses is answered with that route's 400 in this operation's result)."});
    }
    for (component, rule) in components() {
        let target = schemas
            .get_mut(component)
            .unwrap_or_else(|| panic!("the OpenAPI document has no schema {component}"));
        merge(target, &rule);
    }
    fit_integer_formats(document);
}

/// Gives every integer schema the format its range fits, or none: OpenAPI's `int32` and
/// `int64` are signed, and utoipa labels a `u32` field `int32` and a `u64` one `int64`, so a
/// seat number the node takes up to 4,294,967,295 read as at most 2,147,483,647 to a client
/// (schemathesis sent 2,147,483,648 as a request the node should refuse, and it was right
/// to accept it).
fn fit_integer_formats(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            let integer = match map.get("type") {
                Some(Value::String(kind)) => kind == "integer",
                Some(Value::Array(kinds)) => kinds.iter().any(|kind| kind == "integer"),
                _ => false,
            };
            if integer {
                // A bound that is not a whole number fits no integer format.
                let bound = |key: &str| {
                    map.get(key).map(|value| {
                        value
                            .as_i64()
                            .map(i128::from)
                            .or_else(|| value.as_u64().map(i128::from))
                    })
                };
                let (minimum, maximum) = (bound("minimum"), bound("maximum"));
                let fits = |bits: u32| {
                    let (min, max) = (-(1i128 << (bits - 1)), (1i128 << (bits - 1)) - 1);
                    minimum.is_none_or(|minimum| minimum.is_some_and(|minimum| minimum >= min))
                        && maximum
                            .is_none_or(|maximum| maximum.is_some_and(|maximum| maximum <= max))
                };
                let format = if fits(32) && map.get("format") == Some(&json!("int32")) {
                    Some("int32")
                } else if fits(64) {
                    Some("int64")
                } else {
                    None
                };
                match format {
                    Some(format) if map.contains_key("format") => {
                        map.insert("format".into(), json!(format));
                    }
                    Some(_) => {}
                    None => {
                        map.remove("format");
                    }
                }
            }
            for value in map.values_mut() {
                fit_integer_formats(value);
            }
        }
        Value::Array(values) => values.iter_mut().for_each(fit_integer_formats),
        _ => {}
    }
}

/// `type: [T, "null"]`: the property may be `null` (an `Option` without a value).
fn is_nullable(schema: &Value) -> bool {
    schema["type"]
        .as_array()
        .is_some_and(|types| types.iter().any(|kind| kind == "null"))
}

fn make_nullable(schema: &mut Value) {
    if let Some(kind) = schema.get("type").and_then(Value::as_str) {
        schema["type"] = json!([kind, "null"]);
    }
    if let Some(values) = schema.get_mut("enum").and_then(Value::as_array_mut) {
        if !values.contains(&Value::Null) {
            values.push(Value::Null);
        }
    }
}

/// Merges `rule` into `target`: keywords are added or replaced; a `type` that allows
/// `null` keeps allowing it; `items` is merged the same way.
fn merge(target: &mut Value, rule: &Value) {
    let nullable = is_nullable(target);
    let (Some(target_map), Some(rule_map)) = (target.as_object_mut(), rule.as_object()) else {
        return;
    };
    for (key, value) in rule_map {
        match (key.as_str(), target_map.get_mut(key)) {
            ("items", Some(existing)) if existing.get("$ref").is_none() => merge(existing, value),
            ("items", Some(_)) => {}
            _ => {
                target_map.insert(key.clone(), value.clone());
            }
        }
    }
    if nullable {
        make_nullable(target);
    }
}
