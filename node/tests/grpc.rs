//! The client-facing gRPC booking service, served on the HTTP port: the same operations,
//! answers and error codes as the JSON API, over a real socket.

mod common;

use common::{serve, serve_with};
use holdfast_node::HttpConfig;
use holdfast_proto::booking::admin_service_client::AdminServiceClient;
use holdfast_proto::booking::booking_service_client::BookingServiceClient;
use holdfast_proto::booking::cluster_service_client::ClusterServiceClient;
use holdfast_proto::booking::*;
use tonic::Code;

fn error_code(status: &tonic::Status) -> &str {
    status
        .metadata()
        .get("holdfast-error-code")
        .and_then(|value| value.to_str().ok())
        .unwrap_or("")
}

#[tokio::test]
async fn book_a_seat_over_grpc() {
    let (address, _stop) = serve().await;
    // Inventory through the JSON API on the same port.
    let created = reqwest_like_post(
        &address,
        "/admin/events",
        r#"{"event_id":"E","name":"Film","category":"movie","currency":"EUR",
            "seat_blocks":[{"section":"A","rows":["1"],"seats_per_row":4,"price":4500}]}"#,
    )
    .await;
    assert_eq!(created, 201);

    let mut client = BookingServiceClient::connect(address.clone())
        .await
        .unwrap();
    let keyed_hold = || HoldRequest {
        idempotency_key: Some("g-hold-1".into()),
        event_id: "E".into(),
        customer_id: "c-1".into(),
        seats: vec!["A-1-1".into(), "A-1-2".into()],
        ..HoldRequest::default()
    };
    let hold = client.create_hold(keyed_hold()).await.unwrap();
    assert!(hold.metadata().get("x-holdfast-applied-index").is_some());
    let hold = hold.into_inner();
    assert_eq!(hold.status, "HELD");
    assert_eq!(hold.amount, 9000);
    assert_eq!(hold.seats, ["A-1-1", "A-1-2"]);

    // The same key again: the first answer, not a second hold.
    let again = client.create_hold(keyed_hold()).await.unwrap().into_inner();
    assert_eq!(again.hold_id, hold.hold_id);

    // A taken seat: FAILED_PRECONDITION with API.md's code.
    let taken = client
        .create_hold(HoldRequest {
            event_id: "E".into(),
            customer_id: "c-2".into(),
            seats: vec!["A-1-2".into()],
            ..HoldRequest::default()
        })
        .await
        .unwrap_err();
    assert_eq!(taken.code(), Code::FailedPrecondition);
    assert_eq!(error_code(&taken), "SEAT_UNAVAILABLE");
    assert!(taken
        .metadata()
        .get("holdfast-error-details")
        .and_then(|details| details.to_str().ok())
        .is_some_and(|details| details.contains("A-1-2")));

    // Bad input: INVALID_ARGUMENT, nothing stored.
    let zero = client
        .create_hold(HoldRequest {
            event_id: "E".into(),
            customer_id: "c-3".into(),
            pools: vec![PoolQuantity {
                pool_id: "GA".into(),
                quantity: 0,
            }],
            ..HoldRequest::default()
        })
        .await
        .unwrap_err();
    assert_eq!(zero.code(), Code::InvalidArgument, "{zero:?}");

    let booking = client
        .confirm(ConfirmRequest {
            idempotency_key: Some("g-confirm-1".into()),
            hold_id: hold.hold_id.clone(),
            payment: Some(Payment {
                method: None,
                token: "tok_visa".into(),
            }),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(booking.status, "CONFIRMED");
    assert!(booking.payment_id.starts_with("pay_"));

    let declined_hold = client
        .create_hold(HoldRequest {
            event_id: "E".into(),
            customer_id: "c-4".into(),
            seats: vec!["A-1-3".into()],
            ..HoldRequest::default()
        })
        .await
        .unwrap()
        .into_inner();
    let declined = client
        .confirm(ConfirmRequest {
            idempotency_key: None,
            hold_id: declined_hold.hold_id.clone(),
            payment: Some(Payment {
                method: None,
                token: "tok_declined".into(),
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(error_code(&declined), "PAYMENT_DECLINED");

    let availability = client
        .get_availability(AvailabilityRequest {
            event_id: "E".into(),
            read: Some(Read {
                consistency: Some("linearizable".into()),
                ..Read::default()
            }),
            ..AvailabilityRequest::default()
        })
        .await
        .unwrap()
        .into_inner();
    let summary = availability.summary.unwrap();
    assert_eq!((summary.seats_booked, summary.seats_held), (2, 1));
    let statuses: Vec<&str> = availability
        .seats
        .iter()
        .map(|seat| seat.status.as_str())
        .collect();
    assert_eq!(statuses, ["BOOKED", "BOOKED", "HELD", "AVAILABLE"]);

    let history = client
        .customer_bookings(CustomerBookingsRequest {
            customer_id: "c-1".into(),
            ..CustomerBookingsRequest::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(history.bookings.len(), 1);
    assert_eq!(history.bookings[0].booking_id, booking.booking_id);

    let cancelled = client
        .cancel(CancelRequest {
            booking_id: Some(booking.booking_id.clone()),
            reason: Some("plans changed".into()),
            ..CancelRequest::default()
        })
        .await
        .unwrap()
        .into_inner();
    let cancelled = cancelled.booking.expect("a cancelled booking");
    assert_eq!(cancelled.status, "CANCELLED");
    assert_eq!(cancelled.refund.expect("a refund owed").status, "PENDING");

    let released = client
        .cancel(CancelRequest {
            hold_id: Some(declined_hold.hold_id.clone()),
            ..CancelRequest::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(released.hold.expect("a released hold").status, "CANCELLED");

    let missing = client
        .get_booking(GetBookingRequest {
            booking_id: "b_999".into(),
            read: None,
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    assert_eq!(error_code(&missing), "BOOKING_NOT_FOUND");

    let ready = client.ready(HealthRequest {}).await.unwrap().into_inner();
    assert_eq!(ready.status, "ok");
}

/// A JSON POST over HTTP/1.1 on the same port; returns the status.
async fn reqwest_like_post(base: &str, path: &str, body: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(host).await.unwrap();
    let request = format!(
        "POST {path} HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let text = String::from_utf8_lossy(&answer);
    text.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test]
async fn inventory_and_cluster_calls_over_grpc() {
    let (address, _stop) = serve().await;
    let mut admin = AdminServiceClient::connect(address.clone()).await.unwrap();
    let created = admin
        .create_event(CreateEventRequest {
            event_id: "H".into(),
            name: "Harbour hotel".into(),
            category: Some("hotel".into()),
            currency: "EUR".into(),
            pools: vec![PoolSpec {
                id: "DBL-N1".into(),
                capacity: 10,
                price: 12000,
            }],
            ..CreateEventRequest::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((created.event_id.as_str(), created.version), ("H", 1));
    let added = admin
        .add_pools(AddPoolsRequest {
            event_id: "H".into(),
            pools: vec![PoolSpec {
                id: "DBL-N2".into(),
                capacity: 10,
                price: 12000,
            }],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(added.version, 2);
    let seats = admin
        .add_seats(AddSeatsRequest {
            event_id: "H".into(),
            seat_blocks: vec![SeatBlock {
                section: "S".into(),
                rows: vec!["1".into()],
                seats_per_row: 2,
                price: 100,
            }],
            ..AddSeatsRequest::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(seats.version, 3);
    let resized = admin
        .set_pool_capacity(SetPoolCapacityRequest {
            event_id: "H".into(),
            pool_id: "DBL-N2".into(),
            capacity: 4,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resized.version, 4);
    admin
        .remove_seat(RemoveSeatRequest {
            event_id: "H".into(),
            seat_id: "S-1-2".into(),
        })
        .await
        .unwrap();
    admin
        .remove_pool(RemovePoolRequest {
            event_id: "H".into(),
            pool_id: "DBL-N1".into(),
        })
        .await
        .unwrap();
    let duplicate = admin
        .create_event(CreateEventRequest {
            event_id: "H".into(),
            name: "Again".into(),
            currency: "EUR".into(),
            ..CreateEventRequest::default()
        })
        .await
        .unwrap_err();
    assert_eq!(error_code(&duplicate), "EVENT_EXISTS");

    let mut booking = BookingServiceClient::connect(address.clone())
        .await
        .unwrap();
    let availability = booking
        .get_availability(AvailabilityRequest {
            event_id: "H".into(),
            view: Some("summary".into()),
            ..AvailabilityRequest::default()
        })
        .await
        .unwrap()
        .into_inner();
    let pools: Vec<(String, u64)> = availability
        .pools
        .iter()
        .map(|pool| (pool.id.clone(), pool.capacity))
        .collect();
    assert_eq!(pools, [("DBL-N2".to_string(), 4)]);
    assert_eq!(availability.summary.unwrap().seats_total, 1);

    let mut cluster = ClusterServiceClient::connect(address).await.unwrap();
    let status = cluster
        .status(ClusterStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!((status.node_id, status.role.as_str()), (1, "leader"));
    // The in-memory node keeps no snapshots, and says so with API.md's code.
    let snapshot = cluster.snapshot(SnapshotRequest {}).await.unwrap_err();
    assert_eq!(snapshot.code(), Code::InvalidArgument);
    assert_eq!(error_code(&snapshot), "INVALID_FIELD");
}

#[tokio::test]
async fn a_batch_over_grpc_answers_each_operation() {
    let (address, _stop) = serve().await;
    let created = reqwest_like_post(
        &address,
        "/admin/events",
        r#"{"event_id":"B","name":"Film","category":"movie","currency":"EUR",
            "seat_blocks":[{"section":"A","rows":["1"],"seats_per_row":3,"price":1000}]}"#,
    )
    .await;
    assert_eq!(created, 201);
    let mut client = BookingServiceClient::connect(address.clone())
        .await
        .unwrap();
    let hold = |key: Option<&str>, customer: &str, seat: &str| BatchOperation {
        operation: Some(batch_operation::Operation::Hold(HoldRequest {
            idempotency_key: key.map(str::to_string),
            event_id: "B".into(),
            customer_id: customer.into(),
            seats: vec![seat.into()],
            ..HoldRequest::default()
        })),
    };
    let batch = BatchRequest {
        operations: vec![
            hold(Some("b-1"), "c-1", "A-1-1"),
            hold(Some("b-2"), "c-2", "A-1-1"),
            hold(None, "c-3", "A-1-2"),
            BatchOperation { operation: None },
        ],
    };
    let answer = client.batch(batch.clone()).await.unwrap().into_inner();
    let statuses: Vec<u32> = answer.results.iter().map(|result| result.status).collect();
    assert_eq!(statuses, [201, 409, 201, 400]);
    let Some(batch_result::Outcome::Hold(first)) = &answer.results[0].outcome else {
        panic!("no hold in {:?}", answer.results[0]);
    };
    let Some(batch_result::Outcome::Error(conflict)) = &answer.results[1].outcome else {
        panic!("no error in {:?}", answer.results[1]);
    };
    assert_eq!(conflict.code, "SEAT_UNAVAILABLE");
    assert!(conflict.details_json.contains("A-1-1"));
    assert!(answer.header.unwrap().applied_index >= 2);

    // The keyed hold answers the same through the single call (same key scope).
    let again = client
        .create_hold(HoldRequest {
            idempotency_key: Some("b-1".into()),
            event_id: "B".into(),
            customer_id: "c-1".into(),
            seats: vec!["A-1-1".into()],
            ..HoldRequest::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.hold_id, first.hold_id);

    // A confirm inside a batch.
    let confirm = BatchRequest {
        operations: vec![BatchOperation {
            operation: Some(batch_operation::Operation::Confirm(ConfirmRequest {
                idempotency_key: Some("b-c".into()),
                hold_id: first.hold_id.clone(),
                payment: Some(Payment {
                    method: None,
                    token: "tok_visa".into(),
                }),
            })),
        }],
    };
    let confirmed = client.batch(confirm).await.unwrap().into_inner();
    let Some(batch_result::Outcome::Booking(booking)) = &confirmed.results[0].outcome else {
        panic!("no booking in {:?}", confirmed.results[0]);
    };
    assert_eq!(booking.status, "CONFIRMED");

    // Over the limit: refused whole.
    let too_many = BatchRequest {
        operations: vec![hold(None, "c-9", "A-1-3"); 1_001],
    };
    let refused = client.batch(too_many).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert_eq!(error_code(&refused), "TOO_MANY_ITEMS");
}

#[tokio::test]
async fn grpc_calls_are_rate_limited_per_caller_like_http_ones() {
    let (address, _stop) = serve_with(HttpConfig {
        admission: holdfast_node::rate::AdmissionConfig {
            writes_per_second: 2,
            reads_per_second: 1_000,
            ..holdfast_node::rate::AdmissionConfig::default()
        },
        ..HttpConfig::default()
    })
    .await;
    let created = reqwest_like_post(
        &address,
        "/admin/events",
        r#"{"event_id":"R","name":"Film","category":"movie","currency":"EUR",
            "seat_blocks":[{"section":"A","rows":["1"],"seats_per_row":20,"price":4500}]}"#,
    )
    .await;
    assert_eq!(created, 201);
    let mut client = BookingServiceClient::connect(address.clone())
        .await
        .unwrap();
    // The event's creation took one write of this address's two; a burst of holds runs
    // out of the rest at once.
    let mut refused = Vec::new();
    for seat in 1..=6 {
        let answer = client
            .create_hold(HoldRequest {
                idempotency_key: Some(format!("rate-{seat}")),
                event_id: "R".into(),
                customer_id: "c".into(),
                seats: vec![format!("A-1-{seat}")],
                ..HoldRequest::default()
            })
            .await;
        if let Err(status) = answer {
            refused.push(status);
        }
    }
    assert!(
        !refused.is_empty(),
        "six writes at once within a budget of two a second"
    );
    for status in &refused {
        assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
        assert_eq!(error_code(status), "RATE_LIMITED");
        assert!(status.metadata().get("retry-after").is_some(), "{status:?}");
    }
    // Reads have their own budget.
    let read = client
        .get_availability(AvailabilityRequest {
            event_id: "R".into(),
            ..AvailabilityRequest::default()
        })
        .await;
    assert!(read.is_ok(), "{read:?}");
}

/// A request with `key` as its bearer key.
fn keyed<T>(message: T, key: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {key}").parse().unwrap());
    request
}

fn has_node_metadata(metadata: &tonic::metadata::MetadataMap) -> bool {
    metadata.get("x-holdfast-node").is_some() && metadata.get("x-holdfast-applied-index").is_some()
}

#[tokio::test]
async fn reads_over_grpc_answer_and_refuse_as_http_does() {
    let (address, _stop) = serve().await;
    let mut admin = AdminServiceClient::connect(address.clone()).await.unwrap();
    admin
        .create_event(CreateEventRequest {
            event_id: "R".into(),
            name: "Film".into(),
            category: Some("movie".into()),
            starts_at: Some("2030-01-02T20:00:00Z".into()),
            currency: "EUR".into(),
            seat_blocks: vec![SeatBlock {
                section: "A".into(),
                rows: vec!["1".into()],
                seats_per_row: 3,
                price: 1000,
            }],
            pools: vec![PoolSpec {
                id: "GA".into(),
                capacity: 5,
                price: 500,
            }],
            ..CreateEventRequest::default()
        })
        .await
        .unwrap();
    let mut client = BookingServiceClient::connect(address).await.unwrap();
    let hold = client
        .create_hold(HoldRequest {
            event_id: "R".into(),
            customer_id: "c-1".into(),
            seats: vec!["A-1-1".into()],
            ..HoldRequest::default()
        })
        .await
        .unwrap()
        .into_inner();

    // A page of two seats of three, then the rest after it.
    let first = client
        .get_availability(AvailabilityRequest {
            event_id: "R".into(),
            limit: Some(2),
            ..AvailabilityRequest::default()
        })
        .await
        .unwrap();
    assert!(has_node_metadata(first.metadata()));
    let first = first.into_inner();
    assert_eq!(
        (first.name.as_str(), first.category.as_str()),
        ("Film", "movie")
    );
    assert_eq!(first.starts_at.as_deref(), Some("2030-01-02T20:00:00Z"));
    let seats: Vec<(&str, &str, &str)> = first
        .seats
        .iter()
        .map(|seat| {
            (
                seat.id.as_str(),
                seat.status.as_str(),
                seat.currency.as_str(),
            )
        })
        .collect();
    assert_eq!(
        seats,
        [("A-1-1", "HELD", "EUR"), ("A-1-2", "AVAILABLE", "EUR")]
    );
    assert_eq!(first.next_after.as_deref(), Some("A-1-2"));
    assert_eq!(first.pools.len(), 1);
    assert_eq!((first.pools[0].available, first.pools[0].price), (5, 500));
    assert!(first.applied_index >= 2 && first.version >= 1);
    let rest = client
        .get_availability(AvailabilityRequest {
            event_id: "R".into(),
            after: first.next_after.clone(),
            ..AvailabilityRequest::default()
        })
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<&str> = rest.seats.iter().map(|seat| seat.id.as_str()).collect();
    assert_eq!(ids, ["A-1-3"]);
    assert_eq!(rest.next_after, None);
    let summary = client
        .get_availability(AvailabilityRequest {
            event_id: "R".into(),
            view: Some("summary".into()),
            ..AvailabilityRequest::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(summary.seats.is_empty());
    assert_eq!(summary.summary.unwrap().seats_held, 1);

    // A lookup is the hold as HTTP shows it: no applied_index in the message.
    let looked_up = client
        .get_hold(GetHoldRequest {
            hold_id: hold.hold_id.clone(),
            read: Some(Read {
                consistency: Some("linearizable".into()),
                ..Read::default()
            }),
        })
        .await
        .unwrap();
    assert!(has_node_metadata(looked_up.metadata()));
    let looked_up = looked_up.into_inner();
    assert_eq!(looked_up.status, "HELD");
    assert_eq!(looked_up.seats, ["A-1-1"]);
    assert_eq!(looked_up.applied_index, None);

    // Refusals: the code's gRPC status, API.md's code, and where it was answered.
    let unknown = client
        .get_availability(AvailabilityRequest {
            event_id: "nope".into(),
            ..AvailabilityRequest::default()
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    assert_eq!(error_code(&unknown), "EVENT_NOT_FOUND");
    assert!(has_node_metadata(unknown.metadata()), "{unknown:?}");
    for (request, field) in [
        (
            AvailabilityRequest {
                event_id: "R".into(),
                view: Some("everything".into()),
                ..AvailabilityRequest::default()
            },
            "view",
        ),
        (
            AvailabilityRequest {
                event_id: String::new(),
                ..AvailabilityRequest::default()
            },
            "event_id",
        ),
        (
            AvailabilityRequest {
                event_id: "R".into(),
                limit: Some(0),
                ..AvailabilityRequest::default()
            },
            "limit",
        ),
        (
            AvailabilityRequest {
                event_id: "R".into(),
                read: Some(Read {
                    consistency: Some("eventual".into()),
                    ..Read::default()
                }),
                ..AvailabilityRequest::default()
            },
            "consistency",
        ),
    ] {
        let refused = client.get_availability(request).await.unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
        assert_eq!(error_code(&refused), "INVALID_FIELD");
        let details = refused.metadata().get("holdfast-error-details").unwrap();
        assert!(
            details.to_str().unwrap().contains(&format!("\"{field}\"")),
            "{details:?}"
        );
    }
    let missing = client
        .get_hold(GetHoldRequest {
            hold_id: "h_999".into(),
            read: None,
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    assert_eq!(error_code(&missing), "HOLD_NOT_FOUND");
    let bad_customer = client
        .customer_bookings(CustomerBookingsRequest {
            customer_id: "not an id".into(),
            ..CustomerBookingsRequest::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bad_customer.code(), Code::InvalidArgument);
    assert_eq!(error_code(&bad_customer), "INVALID_FIELD");
    let history = client
        .customer_bookings(CustomerBookingsRequest {
            customer_id: "c-1".into(),
            limit: Some(5),
            ..CustomerBookingsRequest::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(history.customer_id, "c-1");
    assert!(history.bookings.is_empty());
}

#[tokio::test]
async fn admin_and_cluster_calls_over_grpc_need_the_roles_http_needs() {
    let keys = holdfast_node::auth::AuthKeys::parse(
        "customer reader-key-0123456789\ncustomer alice-key-0123456789 alice\n\
         admin admin-key-0123456789\noperator ops-key-0123456789\nmonitor scrape-key-0123456789\n",
    )
    .unwrap();
    let (address, _stop) = serve_with(HttpConfig {
        auth_keys: Some(std::sync::Arc::new(keys)),
        ..HttpConfig::default()
    })
    .await;
    let mut admin = AdminServiceClient::connect(address.clone()).await.unwrap();
    let event = || CreateEventRequest {
        event_id: "K".into(),
        name: "Film".into(),
        currency: "EUR".into(),
        seat_blocks: vec![SeatBlock {
            section: "A".into(),
            rows: vec!["1".into()],
            seats_per_row: 2,
            price: 1000,
        }],
        ..CreateEventRequest::default()
    };

    // A reader's key may not change inventory; no key at all is not known.
    let denied = admin
        .create_event(keyed(event(), "reader-key-0123456789"))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");
    assert_eq!(error_code(&denied), "FORBIDDEN");
    let anonymous = admin.create_event(event()).await.unwrap_err();
    assert_eq!(anonymous.code(), Code::Unauthenticated);
    assert_eq!(error_code(&anonymous), "UNAUTHENTICATED");
    for denied in [
        admin
            .remove_seat(keyed(
                RemoveSeatRequest {
                    event_id: "K".into(),
                    seat_id: "A-1-1".into(),
                },
                "reader-key-0123456789",
            ))
            .await
            .unwrap_err(),
        admin
            .set_pool_capacity(keyed(
                SetPoolCapacityRequest {
                    event_id: "K".into(),
                    pool_id: "GA".into(),
                    capacity: 1,
                },
                "scrape-key-0123456789",
            ))
            .await
            .unwrap_err(),
    ] {
        assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");
    }

    let created = admin
        .create_event(keyed(event(), "admin-key-0123456789"))
        .await
        .unwrap();
    assert!(has_node_metadata(created.metadata()));
    assert_eq!(created.into_inner().version, 1);
    let unknown = admin
        .add_pools(keyed(
            AddPoolsRequest {
                event_id: "nope".into(),
                pools: vec![PoolSpec {
                    id: "GA".into(),
                    capacity: 1,
                    price: 1,
                }],
            },
            "admin-key-0123456789",
        ))
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    assert_eq!(error_code(&unknown), "EVENT_NOT_FOUND");
    let nothing = admin
        .add_seats(keyed(
            AddSeatsRequest {
                event_id: "K".into(),
                ..AddSeatsRequest::default()
            },
            "admin-key-0123456789",
        ))
        .await
        .unwrap_err();
    assert_eq!(nothing.code(), Code::InvalidArgument);
    assert_eq!(error_code(&nothing), "INVALID_FIELD");
    let negative = admin
        .set_pool_capacity(keyed(
            SetPoolCapacityRequest {
                event_id: "K".into(),
                pool_id: "GA".into(),
                capacity: -1,
            },
            "admin-key-0123456789",
        ))
        .await
        .unwrap_err();
    assert_eq!(negative.code(), Code::InvalidArgument, "{negative:?}");

    // Reads need a customer's key; a bound key sees only its customer's records.
    let mut booking = BookingServiceClient::connect(address.clone())
        .await
        .unwrap();
    let scraper = booking
        .get_availability(keyed(
            AvailabilityRequest {
                event_id: "K".into(),
                ..AvailabilityRequest::default()
            },
            "scrape-key-0123456789",
        ))
        .await
        .unwrap_err();
    assert_eq!(scraper.code(), Code::PermissionDenied);
    let hold = booking
        .create_hold(keyed(
            HoldRequest {
                event_id: "K".into(),
                customer_id: "bob".into(),
                seats: vec!["A-1-1".into()],
                ..HoldRequest::default()
            },
            "reader-key-0123456789",
        ))
        .await
        .unwrap()
        .into_inner();
    let not_alices = booking
        .get_hold(keyed(
            GetHoldRequest {
                hold_id: hold.hold_id.clone(),
                read: None,
            },
            "alice-key-0123456789",
        ))
        .await
        .unwrap_err();
    assert_eq!(not_alices.code(), Code::PermissionDenied);
    assert_eq!(error_code(&not_alices), "FORBIDDEN");
    let history = booking
        .customer_bookings(keyed(
            CustomerBookingsRequest {
                customer_id: "bob".into(),
                ..CustomerBookingsRequest::default()
            },
            "alice-key-0123456789",
        ))
        .await
        .unwrap_err();
    assert_eq!(error_code(&history), "FORBIDDEN");
    let own = booking
        .get_hold(keyed(
            GetHoldRequest {
                hold_id: hold.hold_id,
                read: None,
            },
            "reader-key-0123456789",
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(own.customer_id, "bob");
    // Readiness is a probe: open, as /readyz is.
    let ready = booking.ready(HealthRequest {}).await.unwrap();
    assert!(ready.metadata().get("x-holdfast-node").is_some());
    assert_eq!(ready.into_inner().node_id, 1);

    // Cluster status needs the monitor role (an admin's key is not one); changes need an
    // operator's.
    let mut cluster = ClusterServiceClient::connect(address).await.unwrap();
    let status = cluster
        .status(keyed(ClusterStatusRequest {}, "scrape-key-0123456789"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((status.node_id, status.role.as_str()), (1, "leader"));
    let admin_status = cluster
        .status(keyed(ClusterStatusRequest {}, "admin-key-0123456789"))
        .await
        .unwrap_err();
    assert_eq!(admin_status.code(), Code::PermissionDenied);
    let not_operator = cluster
        .change_membership(keyed(
            ChangeMembershipRequest { voters: vec![1] },
            "admin-key-0123456789",
        ))
        .await
        .unwrap_err();
    assert_eq!(not_operator.code(), Code::PermissionDenied);
    let ops = |message| keyed(message, "ops-key-0123456789");
    let voters = cluster
        .change_membership(ops(ChangeMembershipRequest { voters: vec![1] }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(voters.members.len(), 1);
    let no_voters = cluster
        .change_membership(ops(ChangeMembershipRequest { voters: vec![] }))
        .await
        .unwrap_err();
    assert_eq!(error_code(&no_voters), "INVALID_FIELD");
    let no_learner = cluster
        .add_learner(keyed(
            AddLearnerRequest { learner: None },
            "ops-key-0123456789",
        ))
        .await
        .unwrap_err();
    assert_eq!(no_learner.code(), Code::InvalidArgument);
    assert_eq!(error_code(&no_learner), "INVALID_FIELD");
    let refused = cluster
        .add_learner(keyed(
            AddLearnerRequest {
                learner: Some(Member {
                    id: 2,
                    raft_addr: "127.0.0.1:7102".into(),
                    http_addr: "127.0.0.1:7002".into(),
                    ..Member::default()
                }),
            },
            "ops-key-0123456789",
        ))
        .await
        .unwrap_err();
    assert_eq!(error_code(&refused), "MEMBERSHIP_REFUSED");
    let initialised = cluster
        .init(keyed(
            InitRequest {
                members: vec![Member {
                    id: 1,
                    raft_addr: "127.0.0.1:7101".into(),
                    http_addr: "127.0.0.1:7001".into(),
                    ..Member::default()
                }],
            },
            "ops-key-0123456789",
        ))
        .await
        .unwrap_err();
    assert_eq!(error_code(&initialised), "ALREADY_INITIALIZED");
    let unknown_node = cluster
        .remove_node(keyed(RemoveNodeRequest { id: 9 }, "ops-key-0123456789"))
        .await
        .unwrap_err();
    assert_eq!(unknown_node.code(), Code::NotFound);
    assert_eq!(error_code(&unknown_node), "NODE_NOT_FOUND");
    let nobody = cluster
        .transfer_leader(keyed(
            TransferLeaderRequest { node_id: 0 },
            "ops-key-0123456789",
        ))
        .await
        .unwrap_err();
    assert_eq!(error_code(&nobody), "INVALID_FIELD");
    let snapshot = cluster
        .snapshot(keyed(SnapshotRequest {}, "admin-key-0123456789"))
        .await
        .unwrap_err();
    assert_eq!(snapshot.code(), Code::PermissionDenied);
}
