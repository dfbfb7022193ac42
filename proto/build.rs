//! Compiles the `.proto` files with `protox` (a protobuf compiler written in Rust), so no
//! hand-installed `protoc` is needed, then generates prost messages and tonic services.
//! The messages are plain prost types: every edge converts them to and from its domain
//! types by hand.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = ["proto/holdfast/raft.proto", "proto/holdfast/booking.proto"];
    for file in files {
        println!("cargo:rerun-if-changed={file}");
    }
    let descriptors = protox::compile(files, ["proto"])?;
    // A batch answer holds up to a thousand results: each result's answer is boxed, so a
    // result is as small as an error, not as large as a cancellation (a hold and a
    // booking inline, near a kilobyte), and the results' list stays a small allocation.
    let batch_result = ".holdfast.booking.v1.BatchResult.outcome";
    tonic_prost_build::configure()
        .boxed(format!("{batch_result}.hold"))
        .boxed(format!("{batch_result}.booking"))
        .boxed(format!("{batch_result}.cancelled"))
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;
    Ok(())
}
