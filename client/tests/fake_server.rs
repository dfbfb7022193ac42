//! The SDK against an in-process gRPC server that plays a node: a test double of the
//! booking and cluster services that records what it receives, so batching, per-call
//! answers, retries with the same key, the fallback when `Batch` is not implemented and
//! connecting past a dead endpoint can be checked exactly.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use holdfast_client::{Client, ConfirmRequest, Error, ErrorCode, HoldRequest, HoldStatus};
use holdfast_proto::booking as pb;
use holdfast_proto::booking::batch_operation::Operation;
use holdfast_proto::booking::booking_service_server::{BookingService, BookingServiceServer};
use holdfast_proto::booking::cluster_service_server::{ClusterService, ClusterServiceServer};
use tokio::sync::Notify;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};

/// What the fake node does and saw.
#[derive(Default)]
struct State {
    /// Answer `Batch` with UNIMPLEMENTED, as today's node does.
    no_batch: bool,
    /// Holds the first `Batch` call until notified.
    gate: Option<Arc<Notify>>,
    gate_used: AtomicBool,
    batch_calls: AtomicUsize,
    batch_sizes: Mutex<Vec<usize>>,
    hold_calls: AtomicUsize,
    /// Keys whose first attempt is answered OUTCOME_UNKNOWN after applying (a lost answer).
    lose_first_answer: Mutex<Vec<String>>,
    /// Every attempt's key, in order.
    keys_seen: Mutex<Vec<String>>,
    /// Applied writes by key: a replay answers the remembered hold.
    applied: Mutex<HashMap<String, pb::Hold>>,
    /// Seats held, to refuse a second hold of the same seat.
    taken: Mutex<HashMap<String, String>>,
}

#[derive(Clone, Default)]
struct Fake {
    state: Arc<State>,
}

fn refusal(code: &str) -> pb::Error {
    pb::Error {
        code: code.into(),
        message: format!("{code} from the fake"),
        details_json: "{}".into(),
        retry_after_seconds: None,
    }
}

fn status_of(error: &pb::Error, code: tonic::Code) -> Status {
    let mut status = Status::new(code, format!("{}: {}", error.code, error.message));
    status
        .metadata_mut()
        .insert("holdfast-error-code", error.code.parse().unwrap());
    status
        .metadata_mut()
        .insert("holdfast-error-details", "{}".parse().unwrap());
    status
}

impl Fake {
    /// Applies one hold as a node would: idempotent by key, seats taken once.
    fn apply_hold(&self, request: &pb::HoldRequest) -> Result<pb::Hold, (pb::Error, u32)> {
        let key = request.idempotency_key.clone().unwrap_or_default();
        self.state.keys_seen.lock().unwrap().push(key.clone());
        if let Some(hold) = self.state.applied.lock().unwrap().get(&key) {
            return Ok(hold.clone());
        }
        let mut taken = self.state.taken.lock().unwrap();
        if request.seats.iter().any(|seat| taken.contains_key(seat)) {
            return Err((refusal("SEAT_UNAVAILABLE"), 409));
        }
        let hold = pb::Hold {
            hold_id: format!("h-{key}"),
            status: "HELD".into(),
            event_id: request.event_id.clone(),
            customer_id: request.customer_id.clone(),
            seats: request.seats.clone(),
            amount: 100 * request.seats.len() as u64,
            currency: "EUR".into(),
            expires_at: "2026-12-03T10:00:00Z".into(),
            ..pb::Hold::default()
        };
        for seat in &request.seats {
            taken.insert(seat.clone(), key.clone());
        }
        self.state
            .applied
            .lock()
            .unwrap()
            .insert(key.clone(), hold.clone());
        let mut lose = self.state.lose_first_answer.lock().unwrap();
        if let Some(position) = lose.iter().position(|lost| *lost == key) {
            lose.remove(position);
            return Err((refusal("OUTCOME_UNKNOWN"), 503));
        }
        Ok(hold)
    }
}

fn unimplemented<T>() -> Result<Response<T>, Status> {
    Err(Status::unimplemented("not in the fake"))
}

#[tonic::async_trait]
impl BookingService for Fake {
    async fn get_availability(
        &self,
        _: Request<pb::AvailabilityRequest>,
    ) -> Result<Response<pb::Availability>, Status> {
        unimplemented()
    }

    async fn create_hold(
        &self,
        request: Request<pb::HoldRequest>,
    ) -> Result<Response<pb::Hold>, Status> {
        self.state.hold_calls.fetch_add(1, Ordering::SeqCst);
        match self.apply_hold(request.get_ref()) {
            Ok(hold) => Ok(Response::new(hold)),
            Err((error, 409)) => Err(status_of(&error, tonic::Code::FailedPrecondition)),
            Err((error, _)) => Err(status_of(&error, tonic::Code::Unavailable)),
        }
    }

    async fn extend_hold(
        &self,
        _: Request<pb::ExtendRequest>,
    ) -> Result<Response<pb::Hold>, Status> {
        unimplemented()
    }

    async fn confirm(
        &self,
        _: Request<pb::ConfirmRequest>,
    ) -> Result<Response<pb::Booking>, Status> {
        unimplemented()
    }

    async fn batch(
        &self,
        request: Request<pb::BatchRequest>,
    ) -> Result<Response<pb::BatchResponse>, Status> {
        if self.state.no_batch {
            return Err(Status::unimplemented("Batch is being built"));
        }
        self.state.batch_calls.fetch_add(1, Ordering::SeqCst);
        let operations = request.into_inner().operations;
        self.state
            .batch_sizes
            .lock()
            .unwrap()
            .push(operations.len());
        if let Some(gate) = &self.state.gate {
            if !self.state.gate_used.swap(true, Ordering::SeqCst) {
                gate.notified().await;
            }
        }
        let results = operations
            .into_iter()
            .map(|operation| match operation.operation {
                Some(Operation::Hold(hold)) => match self.apply_hold(&hold) {
                    Ok(hold) => pb::BatchResult {
                        status: 201,
                        outcome: Some(pb::batch_result::Outcome::Hold(Box::new(hold))),
                    },
                    Err((error, status)) => pb::BatchResult {
                        status,
                        outcome: Some(pb::batch_result::Outcome::Error(error)),
                    },
                },
                _ => pb::BatchResult {
                    status: 400,
                    outcome: Some(pb::batch_result::Outcome::Error(refusal("INVALID_FIELD"))),
                },
            })
            .collect();
        Ok(Response::new(pb::BatchResponse {
            results,
            header: Some(pb::ResponseHeader {
                node_id: 1,
                leader_id: Some(1),
                applied_index: 7,
            }),
        }))
    }

    async fn search_events(
        &self,
        _: Request<pb::SearchEventsRequest>,
    ) -> Result<Response<pb::EventPage>, Status> {
        unimplemented()
    }

    async fn get_event(
        &self,
        _: Request<pb::GetEventRequest>,
    ) -> Result<Response<pb::EventListing>, Status> {
        unimplemented()
    }

    async fn cancel(
        &self,
        _: Request<pb::CancelRequest>,
    ) -> Result<Response<pb::Cancelled>, Status> {
        unimplemented()
    }

    async fn get_hold(&self, _: Request<pb::GetHoldRequest>) -> Result<Response<pb::Hold>, Status> {
        unimplemented()
    }

    async fn get_booking(
        &self,
        _: Request<pb::GetBookingRequest>,
    ) -> Result<Response<pb::Booking>, Status> {
        unimplemented()
    }

    async fn customer_bookings(
        &self,
        _: Request<pb::CustomerBookingsRequest>,
    ) -> Result<Response<pb::BookingPage>, Status> {
        unimplemented()
    }

    async fn ready(&self, _: Request<pb::HealthRequest>) -> Result<Response<pb::Health>, Status> {
        Ok(Response::new(pb::Health {
            status: "ready".into(),
            node_id: 1,
        }))
    }
}

#[tonic::async_trait]
impl ClusterService for Fake {
    async fn status(
        &self,
        _: Request<pb::ClusterStatusRequest>,
    ) -> Result<Response<pb::ClusterStatusResponse>, Status> {
        Ok(Response::new(pb::ClusterStatusResponse {
            node_id: 1,
            leader_id: Some(1),
            term: 1,
            role: "leader".into(),
            applied_index: 7,
            committed_index: 7,
            members: Vec::new(),
            placement_warning: None,
            incarnation: String::new(),
            cluster_id: "fake".into(),
        }))
    }

    async fn init(
        &self,
        _: Request<pb::InitRequest>,
    ) -> Result<Response<pb::ClusterStatusResponse>, Status> {
        unimplemented()
    }

    async fn add_learner(
        &self,
        _: Request<pb::AddLearnerRequest>,
    ) -> Result<Response<pb::ClusterStatusResponse>, Status> {
        unimplemented()
    }

    async fn change_membership(
        &self,
        _: Request<pb::ChangeMembershipRequest>,
    ) -> Result<Response<pb::ClusterStatusResponse>, Status> {
        unimplemented()
    }

    async fn remove_node(
        &self,
        _: Request<pb::RemoveNodeRequest>,
    ) -> Result<Response<pb::ClusterStatusResponse>, Status> {
        unimplemented()
    }

    async fn transfer_leader(
        &self,
        _: Request<pb::TransferLeaderRequest>,
    ) -> Result<Response<pb::ClusterStatusResponse>, Status> {
        unimplemented()
    }

    async fn snapshot(
        &self,
        _: Request<pb::SnapshotRequest>,
    ) -> Result<Response<pb::SnapshotTaken>, Status> {
        unimplemented()
    }

    type BackupStream = std::pin::Pin<
        Box<dyn futures::Stream<Item = Result<pb::BackupChunk, Status>> + Send + 'static>,
    >;

    async fn backup(
        &self,
        _: Request<pb::BackupRequest>,
    ) -> Result<Response<Self::BackupStream>, Status> {
        unimplemented()
    }

    async fn restore(
        &self,
        _: Request<pb::RestoreRequest>,
    ) -> Result<Response<pb::RestoreProgress>, Status> {
        unimplemented()
    }
}

/// Serves `fake` on 127.0.0.1; returns its address.
fn serve(fake: Fake) -> SocketAddr {
    let incoming = TcpIncoming::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let address = incoming.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(BookingServiceServer::new(fake.clone()))
            .add_service(ClusterServiceServer::new(fake))
            .serve_with_incoming(incoming),
    );
    address
}

/// An address nothing listens on.
fn dead_address() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    address
}

#[tokio::test]
async fn concurrent_holds_share_few_batches_and_each_gets_its_own_answer() {
    let gate = Arc::new(Notify::new());
    let fake = Fake {
        state: Arc::new(State {
            gate: Some(gate.clone()),
            ..State::default()
        }),
    };
    let address = serve(fake.clone());
    // A dead endpoint first: connect succeeds through the live one. One batch in flight,
    // so that everything below gathers behind the first one, which the node holds.
    let client = Client::builder([dead_address().to_string(), address.to_string()])
        .max_in_flight_batches(1)
        .connect()
        .await
        .expect("connect past a dead endpoint");

    // A lone caller is sent at once: its batch reaches the node and is held there.
    let first = tokio::spawn({
        let client = client.clone();
        async move { client.hold(HoldRequest::seats("E", "c-0", ["S-0"])).await }
    });
    while fake.state.batch_calls.load(Ordering::SeqCst) == 0 {
        tokio::task::yield_now().await;
    }
    // While it is in flight, 199 more callers queue; seat S-7 is asked for twice.
    let mut callers = Vec::new();
    for caller in 1..200 {
        let client = client.clone();
        let seat = if caller == 150 {
            "S-7".to_string()
        } else {
            format!("S-{caller}")
        };
        callers.push(tokio::spawn(async move {
            (
                seat.clone(),
                client
                    .hold(HoldRequest::seats("E", format!("c-{caller}"), [seat]))
                    .await,
            )
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    gate.notify_one();

    let first = first.await.unwrap().expect("the first hold");
    assert_eq!(first.seats, vec!["S-0".to_string()]);
    let mut held = 0;
    let mut refused = 0;
    for caller in callers {
        let (seat, answer) = caller.await.unwrap();
        match answer {
            Ok(hold) => {
                assert_eq!(hold.seats, vec![seat], "each caller gets its own hold");
                assert_eq!(hold.status, HoldStatus::Held);
                held += 1;
            }
            Err(Error::Api(error)) => {
                assert_eq!(error.code, ErrorCode::SeatUnavailable);
                assert_eq!(seat, "S-7");
                refused += 1;
            }
            Err(other) => panic!("unexpected {other}"),
        }
    }
    assert_eq!(
        (held, refused),
        (198, 1),
        "one refusal does not fail its neighbours"
    );
    let sizes = fake.state.batch_sizes.lock().unwrap().clone();
    assert_eq!(
        sizes.iter().sum::<usize>(),
        200,
        "every hold sent once: {sizes:?}"
    );
    assert_eq!(sizes[0], 1, "the lone first caller was sent alone at once");
    assert!(
        sizes.len() <= 3,
        "200 concurrent holds travelled in {} batches: {sizes:?}",
        sizes.len()
    );
    let stats = client.stats();
    assert_eq!(stats.batch_rpcs, sizes.len() as u64);
    assert_eq!(stats.batched_operations, 200);
    assert_eq!(fake.state.hold_calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn an_answer_lost_in_a_batch_is_retried_with_the_same_key_and_applies_once() {
    let fake = Fake::default();
    fake.state
        .lose_first_answer
        .lock()
        .unwrap()
        .push("order-17".into());
    let address = serve(fake.clone());
    let client = Client::connect([address.to_string()]).await.unwrap();
    let hold = client
        .hold(HoldRequest::seats("E", "c-1", ["A-1"]).idempotency_key("order-17"))
        .await
        .expect("the retry gets the original answer");
    assert_eq!(hold.hold_id, "h-order-17");
    let keys = fake.state.keys_seen.lock().unwrap().clone();
    assert_eq!(keys, vec!["order-17".to_string(), "order-17".to_string()]);
    assert_eq!(fake.state.applied.lock().unwrap().len(), 1);
    assert!(client.stats().retries >= 1);
}

#[tokio::test]
async fn without_batch_on_the_node_writes_go_one_by_one_with_generated_keys() {
    let fake = Fake {
        state: Arc::new(State {
            no_batch: true,
            ..State::default()
        }),
    };
    let address = serve(fake.clone());
    let client = Client::connect([address.to_string()]).await.unwrap();
    let mut tasks = Vec::new();
    for caller in 0..20 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            client
                .hold(HoldRequest::seats("E", "c", [format!("B-{caller}")]))
                .await
        }));
    }
    for task in tasks {
        task.await.unwrap().expect("hold");
    }
    assert_eq!(fake.state.hold_calls.load(Ordering::SeqCst), 20);
    let keys = fake.state.keys_seen.lock().unwrap().clone();
    let distinct: std::collections::HashSet<&String> = keys.iter().collect();
    assert_eq!(distinct.len(), 20, "every write has its own generated key");
    assert!(keys.iter().all(|key| key.starts_with("sdk-")));
}

#[tokio::test]
async fn a_refusal_is_typed_and_not_retried() {
    let fake = Fake::default();
    let address = serve(fake.clone());
    let client = Client::builder([address.to_string()])
        .batching(false)
        .connect()
        .await
        .unwrap();
    client
        .hold(HoldRequest::seats("E", "c-1", ["Z-1"]))
        .await
        .unwrap();
    let error = client
        .hold(HoldRequest::seats("E", "c-2", ["Z-1"]))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some(&ErrorCode::SeatUnavailable));
    assert_eq!(fake.state.hold_calls.load(Ordering::SeqCst), 2);
    // An unimplemented call is a typed refusal too, not a hang or a retry loop.
    let error = client
        .confirm(ConfirmRequest::new("h-1", "tok_visa"))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some(&ErrorCode::RouteNotFound));
}

#[tokio::test]
async fn connect_fails_only_when_no_endpoint_answers() {
    let error = Client::builder([dead_address().to_string(), dead_address().to_string()])
        .connect_timeout(Duration::from_millis(500))
        .connect()
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Unreachable { .. }), "{error}");
}
