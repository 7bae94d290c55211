//! Compiles the wire contract with protox (pure Rust), so that building
//! samverka needs no system `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "proto/samverka/records/v1/records.proto",
        "proto/samverka/v1/exchange.proto",
        "proto/samverka/v1/consent.proto",
        "proto/samverka/v1/access_log.proto",
        "proto/samverka/adapter/v1/adapter.proto",
    ];
    let fds = protox::compile(protos, ["proto"])?;
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    // Reflection (grpcurl) needs the encoded descriptor set at run time.
    std::fs::write(
        out.join("samverka_descriptor.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;
    tonic_prost_build::configure().compile_fds(fds)?;
    for p in protos {
        println!("cargo:rerun-if-changed={p}");
    }
    Ok(())
}
