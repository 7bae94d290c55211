//! `samverka proto export DIR`: the wire contract as a published artefact,
//! from the files built into this binary, so that it is exactly the
//! contract this release speaks.
//!
//! ```text
//! samverka proto export contract/
//! buf build contract/                    # or: protoc -I contract/ ...
//! ```
//!
//! DIR gets every `.proto` file of the contract under the path it is
//! imported by (`samverka/v1/exchange.proto`, ...), with the google ones
//! they import (`google/rpc/*.proto`, and the well-known types
//! `google/protobuf/*.proto` they use), so that DIR compiles with no other
//! include path; and `samverka.binpb`, the same files compiled: an encoded
//! `google.protobuf.FileDescriptorSet` with imports and source info (the
//! comments), the set server reflection serves.

use std::path::Path;

use clap::Subcommand;

use super::CliError;

/// The name of the descriptor set in the exported directory.
pub const DESCRIPTOR_SET_FILE: &str = "samverka.binpb";

/// `samverka proto ...`.
#[derive(Subcommand)]
pub enum ProtoCommand {
    /// Write the wire contract into DIR: every .proto file (samverka's and
    /// the google ones they import, so that DIR compiles with protoc or buf
    /// and no other include path) and samverka.binpb, their
    /// FileDescriptorSet with imports and source info. Files of the same
    /// name in DIR are overwritten.
    Export {
        /// Where to write them (created if missing).
        dir: std::path::PathBuf,
    },
}

/// Runs a `proto` command.
pub fn run(command: ProtoCommand) -> Result<String, CliError> {
    match command {
        ProtoCommand::Export { dir } => export(&dir),
    }
}

/// Writes [`samverka_proto::PROTO_FILES`] and
/// [`samverka_proto::FILE_DESCRIPTOR_SET`] (as [`DESCRIPTOR_SET_FILE`])
/// into `dir`.
pub fn export(dir: &Path) -> Result<String, CliError> {
    let write = |name: &str, contents: &[u8]| {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, contents)
    };
    let usage = |e: std::io::Error| CliError::Usage(format!("{}: {e}", dir.display()));
    std::fs::create_dir_all(dir).map_err(usage)?;
    for (name, text) in samverka_proto::PROTO_FILES {
        write(name, text.as_bytes()).map_err(usage)?;
    }
    write(DESCRIPTOR_SET_FILE, samverka_proto::FILE_DESCRIPTOR_SET).map_err(usage)?;
    Ok(format!(
        "{} .proto files and {DESCRIPTOR_SET_FILE} written to {}\n",
        samverka_proto::PROTO_FILES.len(),
        dir.display()
    ))
}
