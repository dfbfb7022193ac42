//! One table of behaviour cases, driven through both client edges: every case runs on a
//! fresh node twice, once as an HTTP/JSON request and once as the gRPC call of the same
//! operation, and both must give the outcome the table expects — the same success
//! (compared field by field) or the same refusal (the registry's HTTP status and gRPC code
//! for the same error code). The edges are thin siblings over one service layer; this is
//! what keeps them so.

mod common;

use common::serve;
use holdfast_proto::booking::booking_service_client::BookingServiceClient;
use holdfast_proto::booking::*;
use holdfast_statemachine::ErrorCode;
use serde_json::{json, Value};

/// An id a case refers to: the hold or booking its setup made, or a literal.
#[derive(Clone, Copy, Debug)]
enum Ref {
    Held,
    Booked,
    Literal(&'static str),
}

#[derive(Clone, Debug)]
enum Call {
    Hold {
        key: Option<&'static str>,
        event: &'static str,
        customer: &'static str,
        seats: &'static [&'static str],
        pools: &'static [(&'static str, i64)],
        best: Option<i64>,
        ttl: Option<i64>,
    },
    Extend {
        hold: Ref,
        ttl: Option<i64>,
    },
    Confirm {
        hold: Ref,
        token: &'static str,
    },
    Cancel {
        hold: Option<Ref>,
        booking: Option<Ref>,
    },
    GetHold(Ref),
    GetBooking(Ref),
    Availability {
        event: &'static str,
        consistency: Option<&'static str>,
    },
}

/// What the node holds before the call: the event `E` (seats `A-1-1`…`A-1-4` in one row,
/// pool `GA` of 2) always; then nothing, a hold of `A-1-1` by `c-1` (key `setup`), or that
/// hold confirmed.
#[derive(Clone, Copy, Debug)]
enum Setup {
    Event,
    Held,
    Booked,
}

#[derive(Clone, Copy, Debug)]
enum Expect {
    /// Success with this HTTP status (gRPC: OK).
    Ok(u16),
    Refused(ErrorCode),
}

struct Case {
    name: &'static str,
    setup: Setup,
    call: Call,
    expect: Expect,
}

const fn hold(
    seats: &'static [&'static str],
    pools: &'static [(&'static str, i64)],
    best: Option<i64>,
    ttl: Option<i64>,
) -> Call {
    Call::Hold {
        key: None,
        event: "E",
        customer: "c-2",
        seats,
        pools,
        best,
        ttl,
    }
}

fn cases() -> Vec<Case> {
    use ErrorCode::*;
    use Expect::*;
    let case = |name, setup, call, expect| Case {
        name,
        setup,
        call,
        expect,
    };
    vec![
        case(
            "hold seats",
            Setup::Event,
            hold(&["A-1-2", "A-1-3"], &[], None, None),
            Ok(201),
        ),
        case(
            "hold a pool",
            Setup::Event,
            hold(&[], &[("GA", 2)], None, Some(60)),
            Ok(201),
        ),
        case(
            "hold best available",
            Setup::Event,
            hold(&[], &[], Some(2), None),
            Ok(201),
        ),
        case(
            "hold a taken seat",
            Setup::Held,
            hold(&["A-1-1"], &[], None, None),
            Refused(SeatUnavailable),
        ),
        case(
            "hold past a pool",
            Setup::Event,
            hold(&[], &[("GA", 3)], None, None),
            Refused(PoolExhausted),
        ),
        case(
            "hold an unknown seat",
            Setup::Event,
            hold(&["Z-9-9"], &[], None, None),
            Refused(SeatNotFound),
        ),
        case(
            "hold an unknown pool",
            Setup::Event,
            hold(&[], &[("VIP", 1)], None, None),
            Refused(PoolNotFound),
        ),
        case(
            "hold at an unknown event",
            Setup::Event,
            Call::Hold {
                key: None,
                event: "nope",
                customer: "c-2",
                seats: &["A-1-1"],
                pools: &[],
                best: None,
                ttl: None,
            },
            Refused(EventNotFound),
        ),
        case(
            "hold nothing",
            Setup::Event,
            hold(&[], &[], None, None),
            Refused(InvalidField),
        ),
        case(
            "hold with ttl 0",
            Setup::Event,
            hold(&["A-1-2"], &[], None, Some(0)),
            Refused(InvalidTtl),
        ),
        case(
            "hold a pool quantity 0",
            Setup::Event,
            hold(&[], &[("GA", 0)], None, None),
            Refused(InvalidQuantity),
        ),
        case(
            "hold a seat twice",
            Setup::Event,
            hold(&["A-1-2", "A-1-2"], &[], None, None),
            Refused(InvalidField),
        ),
        case(
            "best available past a row",
            Setup::Event,
            hold(&[], &[], Some(5), None),
            Refused(NoAdjacentSeats),
        ),
        case(
            "hold with an empty customer",
            Setup::Event,
            Call::Hold {
                key: None,
                event: "E",
                customer: "",
                seats: &["A-1-2"],
                pools: &[],
                best: None,
                ttl: None,
            },
            Refused(InvalidField),
        ),
        case(
            "a key reused for another hold",
            Setup::Held,
            Call::Hold {
                key: Some("setup"),
                event: "E",
                customer: "c-1",
                seats: &["A-1-4"],
                pools: &[],
                best: None,
                ttl: None,
            },
            Refused(IdempotencyKeyReused),
        ),
        case(
            "a key replayed with the same hold",
            Setup::Held,
            Call::Hold {
                key: Some("setup"),
                event: "E",
                customer: "c-1",
                seats: &["A-1-1"],
                pools: &[],
                best: None,
                ttl: None,
            },
            Ok(201),
        ),
        case(
            "extend a hold",
            Setup::Held,
            Call::Extend {
                hold: Ref::Held,
                ttl: Some(900),
            },
            Ok(200),
        ),
        case(
            "extend an unknown hold",
            Setup::Event,
            Call::Extend {
                hold: Ref::Literal("h_404"),
                ttl: None,
            },
            Refused(HoldNotFound),
        ),
        case(
            "extend a confirmed hold",
            Setup::Booked,
            Call::Extend {
                hold: Ref::Held,
                ttl: None,
            },
            Refused(HoldNotActive),
        ),
        case(
            "confirm a hold",
            Setup::Held,
            Call::Confirm {
                hold: Ref::Held,
                token: "tok_visa",
            },
            Ok(200),
        ),
        case(
            "confirm a declined card",
            Setup::Held,
            Call::Confirm {
                hold: Ref::Held,
                token: "tok_declined",
            },
            Refused(PaymentDeclined),
        ),
        case(
            "confirm twice",
            Setup::Booked,
            Call::Confirm {
                hold: Ref::Held,
                token: "tok_visa",
            },
            Refused(HoldNotActive),
        ),
        case(
            "confirm an unknown hold",
            Setup::Event,
            Call::Confirm {
                hold: Ref::Literal("h_404"),
                token: "tok_visa",
            },
            Refused(HoldNotFound),
        ),
        case(
            "release a hold",
            Setup::Held,
            Call::Cancel {
                hold: Some(Ref::Held),
                booking: None,
            },
            Ok(200),
        ),
        case(
            "cancel a booking",
            Setup::Booked,
            Call::Cancel {
                hold: None,
                booking: Some(Ref::Booked),
            },
            Ok(200),
        ),
        case(
            "cancel naming both",
            Setup::Booked,
            Call::Cancel {
                hold: Some(Ref::Held),
                booking: Some(Ref::Booked),
            },
            Refused(InvalidField),
        ),
        case(
            "cancel naming neither",
            Setup::Event,
            Call::Cancel {
                hold: None,
                booking: None,
            },
            Refused(InvalidField),
        ),
        case(
            "cancel an unknown booking",
            Setup::Event,
            Call::Cancel {
                hold: None,
                booking: Some(Ref::Literal("b_404")),
            },
            Refused(BookingNotFound),
        ),
        case(
            "release a confirmed hold",
            Setup::Booked,
            Call::Cancel {
                hold: Some(Ref::Held),
                booking: None,
            },
            Refused(HoldNotActive),
        ),
        case(
            "look up a hold",
            Setup::Held,
            Call::GetHold(Ref::Held),
            Ok(200),
        ),
        case(
            "look up an unknown hold",
            Setup::Event,
            Call::GetHold(Ref::Literal("h_404")),
            Refused(HoldNotFound),
        ),
        case(
            "look up a booking",
            Setup::Booked,
            Call::GetBooking(Ref::Booked),
            Ok(200),
        ),
        case(
            "look up an unknown booking",
            Setup::Event,
            Call::GetBooking(Ref::Literal("b_404")),
            Refused(BookingNotFound),
        ),
        case(
            "availability",
            Setup::Held,
            Call::Availability {
                event: "E",
                consistency: None,
            },
            Ok(200),
        ),
        case(
            "linearizable availability",
            Setup::Held,
            Call::Availability {
                event: "E",
                consistency: Some("linearizable"),
            },
            Ok(200),
        ),
        case(
            "availability of an unknown event",
            Setup::Event,
            Call::Availability {
                event: "nope",
                consistency: None,
            },
            Refused(EventNotFound),
        ),
        case(
            "availability at an unknown level",
            Setup::Event,
            Call::Availability {
                event: "E",
                consistency: Some("eventual"),
            },
            Refused(InvalidField),
        ),
    ]
}

struct Node {
    address: String,
    http: reqwest::Client,
    hold_id: String,
    booking_id: String,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Node {
    async fn post(&self, path: &str, key: Option<&str>, body: Value) -> (u16, Value) {
        let mut request = self
            .http
            .post(format!("{}{path}", self.address))
            .json(&body);
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        answer(request.send().await.unwrap()).await
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        answer(
            self.http
                .get(format!("{}{path}", self.address))
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    fn id(&self, reference: Ref) -> String {
        match reference {
            Ref::Held => self.hold_id.clone(),
            Ref::Booked => self.booking_id.clone(),
            Ref::Literal(id) => id.to_string(),
        }
    }
}

async fn answer(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn node(setup: Setup) -> Node {
    let (address, stop) = serve().await;
    let mut node = Node {
        address,
        http: reqwest::Client::new(),
        hold_id: String::new(),
        booking_id: String::new(),
        _stop: stop,
    };
    let (status, body) = node
        .post(
            "/admin/events",
            None,
            json!({"event_id": "E", "name": "Film", "category": "movie", "currency": "EUR",
                   "seat_blocks": [{"section": "A", "rows": ["1"], "seats_per_row": 4, "price": 1000}],
                   "pools": [{"id": "GA", "capacity": 2, "price": 500}]}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    if matches!(setup, Setup::Held | Setup::Booked) {
        let (status, body) = node
            .post(
                "/booking/hold",
                Some("setup"),
                json!({"event_id": "E", "customer_id": "c-1", "seats": ["A-1-1"]}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        node.hold_id = body["hold_id"].as_str().unwrap().to_string();
    }
    if matches!(setup, Setup::Booked) {
        let (status, body) = node
            .post(
                "/booking/confirm",
                None,
                json!({"hold_id": node.hold_id, "payment": {"token": "tok_visa"}}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        node.booking_id = body["booking_id"].as_str().unwrap().to_string();
    }
    node
}

/// What a case's answer is, as both edges can say it: success with the fields that
/// matter, or the refusal's code with the status each edge gave it.
#[derive(Debug, PartialEq)]
enum Outcome {
    Ok(Value),
    Refused { code: String, status: i64 },
}

fn hold_fields(status: &str, seats: Vec<String>, pools: Vec<(String, i64)>, amount: u64) -> Value {
    json!({"status": status, "seats": seats, "pools": pools, "amount": amount})
}

fn hold_of_json(body: &Value) -> Value {
    let strings = |value: &Value| -> Vec<String> {
        value
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|item| item.as_str().map(str::to_string))
            .collect()
    };
    let pools = body["pools"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|line| {
            (
                line["pool_id"].as_str().unwrap_or("").to_string(),
                line["quantity"].as_i64().unwrap_or(0),
            )
        })
        .collect();
    hold_fields(
        body["status"].as_str().unwrap_or(""),
        strings(&body["seats"]),
        pools,
        body["amount"].as_u64().unwrap_or(0),
    )
}

fn hold_of_grpc(hold: &Hold) -> Value {
    hold_fields(
        &hold.status,
        hold.seats.clone(),
        hold.pools
            .iter()
            .map(|line| (line.pool_id.clone(), line.quantity))
            .collect(),
        hold.amount,
    )
}

fn booking_fields(status: &str, seats: &[String], amount: u64) -> Value {
    json!({"status": status, "seats": seats, "amount": amount})
}

fn booking_of_json(body: &Value) -> Value {
    booking_fields(
        body["status"].as_str().unwrap_or(""),
        &serde_json::from_value::<Vec<String>>(body["seats"].clone()).unwrap_or_default(),
        body["amount"].as_u64().unwrap_or(0),
    )
}

async fn over_http(node: &Node, call: &Call) -> (u16, Outcome) {
    let (status, body) = match call {
        Call::Hold {
            key,
            event,
            customer,
            seats,
            pools,
            best,
            ttl,
        } => {
            let mut request = json!({"event_id": event, "customer_id": customer, "seats": seats,
                "pools": pools.iter().map(|(pool, quantity)| json!({"pool_id": pool, "quantity": quantity})).collect::<Vec<_>>()});
            if let Some(count) = best {
                request["best_available"] = json!({"count": count});
            }
            if let Some(ttl) = ttl {
                request["ttl_seconds"] = json!(ttl);
            }
            node.post("/booking/hold", *key, request).await
        }
        Call::Extend { hold, ttl } => {
            let mut request = json!({"hold_id": node.id(*hold)});
            if let Some(ttl) = ttl {
                request["ttl_seconds"] = json!(ttl);
            }
            node.post("/booking/extend", None, request).await
        }
        Call::Confirm { hold, token } => {
            node.post(
                "/booking/confirm",
                None,
                json!({"hold_id": node.id(*hold), "payment": {"token": token}}),
            )
            .await
        }
        Call::Cancel { hold, booking } => {
            let mut request = json!({});
            if let Some(hold) = hold {
                request["hold_id"] = json!(node.id(*hold));
            }
            if let Some(booking) = booking {
                request["booking_id"] = json!(node.id(*booking));
            }
            node.post("/booking/cancel", None, request).await
        }
        Call::GetHold(hold) => node.get(&format!("/holds/{}", node.id(*hold))).await,
        Call::GetBooking(booking) => node.get(&format!("/bookings/{}", node.id(*booking))).await,
        Call::Availability { event, consistency } => {
            let mut path = format!("/availability?event_id={event}&view=summary");
            if let Some(level) = consistency {
                path.push_str(&format!("&consistency={level}"));
            }
            node.get(&path).await
        }
    };
    if status >= 400 {
        let code = body["error"]["code"].as_str().unwrap_or("").to_string();
        return (
            status,
            Outcome::Refused {
                code,
                status: i64::from(status),
            },
        );
    }
    let fields = match call {
        Call::Hold { .. } | Call::Extend { .. } | Call::GetHold(_) => hold_of_json(&body),
        Call::Cancel {
            booking: Some(_), ..
        } => booking_of_json(&body),
        Call::Cancel { .. } => hold_of_json(&body),
        Call::Confirm { .. } | Call::GetBooking(_) => booking_of_json(&body),
        Call::Availability { .. } => json!({
            "available": body["summary"]["seats_available"],
            "held": body["summary"]["seats_held"],
            "booked": body["summary"]["seats_booked"],
        }),
    };
    (status, Outcome::Ok(fields))
}

async fn over_grpc(node: &Node, call: &Call) -> Outcome {
    let mut client = BookingServiceClient::connect(node.address.clone())
        .await
        .unwrap();
    let answer: Result<Value, tonic::Status> = match call {
        Call::Hold {
            key,
            event,
            customer,
            seats,
            pools,
            best,
            ttl,
        } => client
            .create_hold(HoldRequest {
                idempotency_key: key.map(str::to_string),
                event_id: event.to_string(),
                customer_id: customer.to_string(),
                seats: seats.iter().map(|seat| seat.to_string()).collect(),
                pools: pools
                    .iter()
                    .map(|(pool, quantity)| PoolQuantity {
                        pool_id: pool.to_string(),
                        quantity: *quantity,
                    })
                    .collect(),
                best_available: best.map(|count| BestAvailable {
                    count,
                    ..BestAvailable::default()
                }),
                ttl_seconds: *ttl,
            })
            .await
            .map(|reply| hold_of_grpc(reply.get_ref())),
        Call::Extend { hold, ttl } => client
            .extend_hold(ExtendRequest {
                idempotency_key: None,
                hold_id: node.id(*hold),
                ttl_seconds: *ttl,
            })
            .await
            .map(|reply| hold_of_grpc(reply.get_ref())),
        Call::Confirm { hold, token } => client
            .confirm(ConfirmRequest {
                idempotency_key: None,
                hold_id: node.id(*hold),
                payment: Some(Payment {
                    method: None,
                    token: token.to_string(),
                }),
            })
            .await
            .map(|reply| {
                let booking = reply.get_ref();
                booking_fields(&booking.status, &booking.seats, booking.amount)
            }),
        Call::Cancel { hold, booking } => client
            .cancel(CancelRequest {
                idempotency_key: None,
                hold_id: hold.map(|hold| node.id(hold)),
                booking_id: booking.map(|booking| node.id(booking)),
                reason: None,
            })
            .await
            .map(|reply| {
                let cancelled = reply.into_inner();
                match (cancelled.hold, cancelled.booking) {
                    (_, Some(booking)) => {
                        booking_fields(&booking.status, &booking.seats, booking.amount)
                    }
                    (Some(hold), None) => hold_of_grpc(&hold),
                    (None, None) => Value::Null,
                }
            }),
        Call::GetHold(hold) => client
            .get_hold(GetHoldRequest {
                hold_id: node.id(*hold),
                read: None,
            })
            .await
            .map(|reply| hold_of_grpc(reply.get_ref())),
        Call::GetBooking(booking) => client
            .get_booking(GetBookingRequest {
                booking_id: node.id(*booking),
                read: None,
            })
            .await
            .map(|reply| {
                let booking = reply.get_ref();
                booking_fields(&booking.status, &booking.seats, booking.amount)
            }),
        Call::Availability { event, consistency } => client
            .get_availability(AvailabilityRequest {
                event_id: event.to_string(),
                view: Some("summary".into()),
                read: Some(Read {
                    consistency: consistency.map(str::to_string),
                    ..Read::default()
                }),
                ..AvailabilityRequest::default()
            })
            .await
            .map(|reply| {
                let summary = reply.into_inner().summary.unwrap_or_default();
                json!({
                    "available": summary.seats_available,
                    "held": summary.seats_held,
                    "booked": summary.seats_booked,
                })
            }),
    };
    match answer {
        Ok(fields) => Outcome::Ok(fields),
        Err(status) => Outcome::Refused {
            code: status
                .metadata()
                .get("holdfast-error-code")
                .and_then(|value| value.to_str().ok())
                .unwrap_or("")
                .to_string(),
            status: status.code() as i64,
        },
    }
}

#[tokio::test]
async fn every_case_answers_the_same_through_http_and_grpc() {
    let mut failures = Vec::new();
    for case in cases() {
        let http_node = node(case.setup).await;
        let (http_status, http) = over_http(&http_node, &case.call).await;
        let grpc_node = node(case.setup).await;
        let grpc = over_grpc(&grpc_node, &case.call).await;
        let expected = match case.expect {
            Expect::Ok(status) => {
                let same = matches!((&http, &grpc), (Outcome::Ok(a), Outcome::Ok(b)) if a == b);
                http_status == status && same
            }
            Expect::Refused(code) => {
                http == Outcome::Refused {
                    code: code.as_str().into(),
                    status: i64::from(code.http_status()),
                } && grpc
                    == Outcome::Refused {
                        code: code.as_str().into(),
                        status: code.grpc_code() as i64,
                    }
            }
        };
        if !expected {
            failures.push(format!(
                "{}: expected {:?}\n  HTTP {http_status}: {http:?}\n  gRPC: {grpc:?}",
                case.name, case.expect
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
