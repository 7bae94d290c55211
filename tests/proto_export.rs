//! `samverka proto export DIR`: the directory holds every file the
//! descriptor set names and nothing else, `samverka.binpb` is the
//! descriptor set the binary serves by reflection, and the directory
//! compiles on its own, with no other include path: by protox without its
//! bundled well-known types (always), and by buf and protoc where they are
//! installed (.ci/run installs both).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use prost::Message;
use prost_types::{FileDescriptorProto, FileDescriptorSet};

fn samverka(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_samverka"))
        .args(args)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A temporary directory with the contract exported into `contract/`.
fn exported() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("contract");
    let out = samverka(&["proto", "export", dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains(&format!(
            "{} .proto files and samverka.binpb written to {}",
            samverka_proto::PROTO_FILES.len(),
            dir.display()
        )),
        "{}",
        text(&out.stdout)
    );
    (tmp, dir)
}

fn served_set() -> FileDescriptorSet {
    FileDescriptorSet::decode(samverka_proto::FILE_DESCRIPTOR_SET).unwrap()
}

fn by_name(set: FileDescriptorSet) -> BTreeMap<String, FileDescriptorProto> {
    set.file
        .into_iter()
        .map(|f| (f.name().to_owned(), f))
        .collect()
}

/// Every `.proto` file under `dir`, by the name it is imported by.
fn proto_files_under(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, found: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, found);
            } else if path.extension().is_some_and(|e| e == "proto") {
                let name = path.strip_prefix(root).unwrap();
                found.push(name.to_str().unwrap().replace('\\', "/"));
            }
        }
    }
    let mut found = Vec::new();
    walk(dir, dir, &mut found);
    found.sort();
    found
}

/// Compiles every `.proto` file in `dir` with protox, resolving imports in
/// `dir` only (not from protox's own well-known types).
fn compile_alone(dir: &Path) -> Result<FileDescriptorSet, protox::Error> {
    let mut compiler = protox::Compiler::with_file_resolver(
        protox::file::IncludeFileResolver::new(dir.to_owned()),
    );
    compiler.include_imports(true).include_source_info(true);
    compiler.open_files(proto_files_under(dir))?;
    Ok(compiler.file_descriptor_set())
}

#[test]
fn export_writes_every_file_the_descriptor_set_names_and_the_set() {
    let (_tmp, dir) = exported();
    let binpb = std::fs::read(dir.join("samverka.binpb")).unwrap();
    assert!(
        binpb == samverka_proto::FILE_DESCRIPTOR_SET,
        "samverka.binpb is not the descriptor set the binary serves"
    );
    let set = FileDescriptorSet::decode(&binpb[..]).unwrap();
    let mut named: Vec<String> = set.file.iter().map(|f| f.name().to_owned()).collect();
    named.sort();
    // The contract, the google/rpc details and the well-known types it
    // uses, with their imports and comments.
    for name in [
        "samverka/v1/exchange.proto",
        "samverka/v1/consent.proto",
        "samverka/v1/access_log.proto",
        "samverka/adapter/v1/adapter.proto",
        "samverka/records/v1/records.proto",
        "google/rpc/status.proto",
        "google/rpc/error_details.proto",
        "google/protobuf/timestamp.proto",
        "google/protobuf/any.proto",
        "google/protobuf/duration.proto",
    ] {
        assert!(named.iter().any(|n| n == name), "{name} not in {named:?}");
    }
    for file in &set.file {
        assert!(
            file.source_code_info
                .as_ref()
                .is_some_and(|i| !i.location.is_empty()),
            "{}: no source info",
            file.name()
        );
        let dependencies_named = file.dependency.iter().all(|d| named.contains(d));
        assert!(dependencies_named, "{}: {:?}", file.name(), file.dependency);
    }
    // Exactly those files, each the one built into the binary.
    assert_eq!(proto_files_under(&dir), named);
    for (name, source) in samverka_proto::PROTO_FILES {
        let written = std::fs::read_to_string(dir.join(name)).unwrap();
        assert!(written == *source, "{name} differs from the built-in text");
    }
    let consent = std::fs::read_to_string(dir.join("samverka/v1/consent.proto")).unwrap();
    assert!(consent.contains("service Consents {"), "{consent}");

    // Exporting again into the same directory gives the same files.
    let out = samverka(&["proto", "export", dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(proto_files_under(&dir), named);
}

#[test]
fn the_exported_directory_compiles_on_its_own() {
    let (_tmp, dir) = exported();
    let compiled = compile_alone(&dir).unwrap_or_else(|e| panic!("{e:?}"));
    let compiled = by_name(compiled);
    let served = by_name(served_set());
    assert_eq!(
        compiled.keys().collect::<Vec<_>>(),
        served.keys().collect::<Vec<_>>()
    );
    for (name, file) in &served {
        assert!(
            compiled[name] == *file,
            "{name}: compiled from the export, it is not the file the binary serves"
        );
    }

    // The check would see a missing import: protox is not falling back on
    // well-known types of its own.
    std::fs::remove_file(dir.join("google/protobuf/timestamp.proto")).unwrap();
    let err = compile_alone(&dir).expect_err("compiled without google/protobuf/timestamp.proto");
    assert!(
        format!("{err:?}").contains("google/protobuf/timestamp.proto"),
        "{err:?}"
    );
}

/// `buf`: on PATH, or where .ci/run installs it from npm.
fn buf() -> Option<PathBuf> {
    let local = Path::new(env!("CARGO_MANIFEST_DIR")).join(".ci/.tools/node_modules/.bin/buf");
    let on_path = Command::new("buf").arg("--version").output().is_ok();
    if on_path {
        Some(PathBuf::from("buf"))
    } else {
        local.is_file().then_some(local)
    }
}

/// Checks a descriptor set another compiler made of the export: the same
/// files, each with the same definitions (source info aside: compilers
/// record spans and comments slightly differently).
fn assert_same_definitions(compiler: &str, made: &[u8]) {
    let strip = |mut f: FileDescriptorProto| {
        f.source_code_info = None;
        f
    };
    let made: BTreeMap<_, _> = by_name(FileDescriptorSet::decode(made).unwrap())
        .into_iter()
        .map(|(n, f)| (n, strip(f)))
        .collect();
    let served: BTreeMap<_, _> = by_name(served_set())
        .into_iter()
        .map(|(n, f)| (n, strip(f)))
        .collect();
    assert_eq!(
        made.keys().collect::<Vec<_>>(),
        served.keys().collect::<Vec<_>>(),
        "{compiler}"
    );
    for (name, file) in &served {
        assert_eq!(
            made[name].message_type, file.message_type,
            "{compiler}: {name}"
        );
        assert_eq!(made[name].enum_type, file.enum_type, "{compiler}: {name}");
        assert_eq!(made[name].service, file.service, "{compiler}: {name}");
        assert_eq!(made[name].dependency, file.dependency, "{compiler}: {name}");
        assert_eq!(made[name].package, file.package, "{compiler}: {name}");
    }
}

/// buf has the well-known types built in, so this shows the rest is
/// complete (google/rpc) and that buf reads the files as protox does.
#[test]
fn buf_builds_the_export_where_installed() {
    let Some(buf) = buf() else {
        eprintln!("no buf (npm install --prefix .ci/.tools @bufbuild/buf): not run");
        return;
    };
    let (tmp, dir) = exported();
    let image = tmp.path().join("buf.binpb");
    let out = Command::new(&buf)
        .arg("build")
        .arg(&dir)
        .args(["--as-file-descriptor-set", "-o"])
        .arg(&image)
        .output()
        .unwrap();
    assert!(out.status.success(), "buf build: {}", text(&out.stderr));
    assert_same_definitions("buf", &std::fs::read(&image).unwrap());
}

#[test]
fn protoc_compiles_the_export_with_no_other_include_path_where_installed() {
    // grpcio-tools' protoc, called without the include path of its own
    // well-known types that `python3 -m grpc_tools.protoc` adds.
    let have = Command::new("python3")
        .args(["-c", "import grpc_tools.protoc"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !have {
        eprintln!("no grpcio-tools (pip install grpcio-tools): not run");
        return;
    }
    let (tmp, dir) = exported();
    let set = tmp.path().join("protoc.binpb");
    let mut args = vec![
        "protoc".to_owned(),
        format!("-I{}", dir.display()),
        "--include_imports".to_owned(),
        format!("--descriptor_set_out={}", set.display()),
    ];
    args.extend(proto_files_under(&dir));
    let script = "import sys, json; from grpc_tools import protoc; \
                  sys.exit(protoc.main(json.loads(sys.argv[1])))";
    let out = Command::new("python3")
        .args(["-c", script, &serde_json::to_string(&args).unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "protoc: {}", text(&out.stderr));
    assert_same_definitions("protoc", &std::fs::read(&set).unwrap());
}

#[test]
fn an_unwritable_directory_is_a_usage_error() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let out = samverka(&["proto", "export", file.join("contract").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(64), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).starts_with("samverka proto: "),
        "{}",
        text(&out.stderr)
    );
}
