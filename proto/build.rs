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
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;
    Ok(())
}
