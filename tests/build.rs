//! Generates the Greeter's gRPC code from `proto/helloworld.proto`. protox is a protobuf compiler
//! in Rust, so the build needs no system `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    const PROTO: &str = "proto/helloworld.proto";
    println!("cargo:rerun-if-changed={PROTO}");
    let descriptors = protox::compile([PROTO], ["proto"])?;
    // The client runs over a `Channel` we build, so tonic's `connect` helper is not needed.
    tonic_prost_build::configure()
        .build_transport(false)
        .compile_fds(descriptors)?;
    Ok(())
}
