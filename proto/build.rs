// Generates the tonic/prost code for podroute's gRPC APIs at build time.
// protox compiles the .proto files in pure Rust (no system protoc); the
// resulting FileDescriptorSet feeds tonic-prost-build.

use std::path::Path;

const PROTO_DIR: &str = "proto";
const PROTOS: &[&str] = &["common.proto", "ipam.proto", "bgpd.proto", "policy.proto"];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed={PROTO_DIR}");
    for proto in PROTOS {
        println!(
            "cargo:rerun-if-changed={}",
            Path::new(PROTO_DIR).join(proto).display()
        );
    }
    let fds = protox::compile(PROTOS, [PROTO_DIR])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
