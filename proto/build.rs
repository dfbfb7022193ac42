//! Compiles the `.proto` files with `protox` (a protobuf compiler written in Rust), so no
//! hand-installed `protoc` is needed, then generates prost messages and tonic services.

/// The messages of the client-facing `BookingService`.
const CLIENT_MESSAGES: &[&str] = &[
    "Read",
    "AvailabilityRequest",
    "Summary",
    "Seat",
    "Pool",
    "Availability",
    "PoolQuantity",
    "BestAvailable",
    "HoldRequest",
    "Hold",
    "ExtendRequest",
    "Payment",
    "ConfirmRequest",
    "Refund",
    "Booking",
    "CancelRequest",
    "Cancelled",
    "GetHoldRequest",
    "GetBookingRequest",
    "CustomerBookingsRequest",
    "BookingPage",
    "HealthRequest",
    "Health",
    "SeatSpec",
    "SeatBlock",
    "PoolSpec",
    "CreateEventRequest",
    "AddSeatsRequest",
    "AddPoolsRequest",
    "SetPoolCapacityRequest",
    "RemoveSeatRequest",
    "RemovePoolRequest",
    "EventChange",
    "SnapshotRequest",
    "SnapshotTaken",
    "Member",
    "ClusterStatusRequest",
    "ClusterStatusResponse",
    "InitRequest",
    "AddLearnerRequest",
    "ChangeMembershipRequest",
    "RemoveNodeRequest",
    "TransferLeaderRequest",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = ["proto/holdfast/raft.proto", "proto/holdfast/booking.proto"];
    for file in files {
        println!("cargo:rerun-if-changed={file}");
    }
    let descriptors = protox::compile(files, ["proto"])?;
    let mut config = tonic_prost_build::configure()
        .build_client(true)
        .build_server(true);
    // The client-facing messages are named as API.md's JSON, so the node maps them to and
    // from the HTTP API's bodies with serde.
    for message in CLIENT_MESSAGES {
        config = config.type_attribute(
            format!(".holdfast.booking.v1.{message}"),
            "#[derive(serde::Serialize, serde::Deserialize)] #[serde(default)]",
        );
    }
    config.compile_fds(descriptors)?;
    Ok(())
}
