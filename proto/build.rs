//! Compiles the wire contract with protox (pure Rust), so that building
//! samverka needs no system `protoc`, and lists its `.proto` files for
//! `samverka proto export`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The protos code is generated from.
const PROTOS: [&str; 7] = [
    "proto/samverka/records/v1/records.proto",
    "proto/samverka/v1/exchange.proto",
    "proto/samverka/v1/consent.proto",
    "proto/samverka/v1/access_log.proto",
    "proto/samverka/v1/merits.proto",
    "proto/samverka/adapter/v1/adapter.proto",
    "proto/samverka/admin/v1/registry.proto",
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
    let mut fds = protox::compile(all, ["proto"])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    // Reflection (grpcurl) needs the encoded descriptor set at run time:
    // every file, with the files they import (google/protobuf/...).
    std::fs::write(
        out.join("samverka_descriptor.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;
    // Every file of that set is a file in proto/, so that the exported
    // contract compiles on its own.
    let names: Vec<&str> = fds.file.iter().map(|f| f.name()).collect();
    std::fs::write(
        out.join("proto_files.rs"),
        proto_files_table(&manifest_dir.join("proto"), &names)?,
    )?;
    for name in &names {
        println!("cargo:rerun-if-changed=proto/{name}");
    }
    fds.file.retain(|f| !f.name().starts_with("google/rpc/"));
    tonic_prost_build::configure().compile_fds(fds)?;
    Ok(())
}

/// The Rust expression of `samverka_proto::PROTO_FILES`: each file's name
/// (as imported) and its text, in the descriptor set's order. A file
/// protox resolved from its own well-known types instead of from `root`
/// stops the build: vendor it under `proto/proto/google/protobuf/`.
fn proto_files_table(root: &Path, names: &[&str]) -> Result<String, String> {
    let mut table = String::from("&[\n");
    for name in names {
        let path = root.join(name);
        if !path.is_file() {
            return Err(format!(
                "{name} is imported but not in {}: vendor it there (unchanged, \
                 from the protobuf or googleapis release), so that the \
                 exported contract compiles on its own",
                root.display()
            ));
        }
        let path = path
            .to_str()
            .ok_or_else(|| format!("{}: not UTF-8", path.display()))?;
        writeln!(table, "    ({name:?}, include_str!({path:?})),").map_err(|e| e.to_string())?;
    }
    table.push(']');
    Ok(table)
}
