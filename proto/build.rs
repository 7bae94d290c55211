//! Compiles the wire contract with protox (pure Rust), so that building
//! samverka needs no system `protoc`.

/// The protos code is generated from.
const PROTOS: [&str; 5] = [
    "proto/samverka/records/v1/records.proto",
    "proto/samverka/v1/exchange.proto",
    "proto/samverka/v1/consent.proto",
    "proto/samverka/v1/access_log.proto",
    "proto/samverka/adapter/v1/adapter.proto",
];

/// Protos only in the descriptor set that reflection serves: the messages
/// of a refusal's error details (vendored from googleapis; their Rust
/// types come from `tonic-types`).
const REFLECTION_ONLY: [&str; 2] = [
    "proto/google/rpc/status.proto",
    "proto/google/rpc/error_details.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let all = PROTOS.iter().chain(&REFLECTION_ONLY);
    let mut fds = protox::compile(all.clone(), ["proto"])?;
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    // Reflection (grpcurl) needs the encoded descriptor set at run time:
    // every file, with the files they import (google/protobuf/...).
    std::fs::write(
        out.join("samverka_descriptor.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;
    fds.file.retain(|f| !f.name().starts_with("google/rpc/"));
    tonic_prost_build::configure().compile_fds(fds)?;
    for p in all {
        println!("cargo:rerun-if-changed={p}");
    }
    Ok(())
}
