//! Compiles KEDA's external scaler proto with a pure-Rust parser (protox), so that building
//! needs no `protoc` binary.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/externalscaler.proto");
    let fds = protox::compile(["proto/externalscaler.proto"], ["proto"])?;
    tonic_prost_build::configure()
        .build_server(true)
        // The client is for the integration tests; transport is the caller's (real TLS).
        .build_client(true)
        .build_transport(false)
        .compile_fds(fds)?;
    Ok(())
}
