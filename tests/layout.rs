//! The layout stays readable: no import circle between the gateway
//! library's source files, no hand-written source file over 600 lines, and
//! a thin `main.rs`.
//!
//! The import graph is read from the source: file A depends on file B when
//! A names an item of B through a `crate::` or `super::` path (re-exports
//! followed to the file that defines the item). A module's own submodules
//! are not counted as its dependencies: a `mod.rs` that re-exports its
//! children is their front, and the children may use its items.
//! `cargo test --test layout` prints any circle it finds.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const MAX_LINES: usize = 600;
const MAX_MAIN_LINES: usize = 120;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            if !matches!(name.as_str(), "target" | ".git" | "node_modules") {
                rust_files(&path, out);
            }
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
}

/// The module path of a file under `src`: `lib.rs` is `[]`, `a/mod.rs`
/// and `a.rs` are `[a]`, `a/b.rs` is `[a, b]`.
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap();
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().unwrap();
    match last.as_str() {
        "lib.rs" | "mod.rs" => {}
        other => parts.push(other.trim_end_matches(".rs").to_owned()),
    }
    parts
}

/// The source without comments and string literals, so that paths in
/// docs and messages do not count.
fn code_of(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let mut in_str = false;
        let mut prev = ' ';
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            if !in_str && c == '/' && chars.peek() == Some(&'/') {
                break;
            }
            if c == '"' && prev != '\\' {
                in_str = !in_str;
            } else if !in_str {
                out.push(c);
            }
            prev = c;
        }
        out.push('\n');
    }
    out
}

/// Every path written from `start` on: `a::b::c`, or a use tree
/// `a::{b, c::{d, e}}`, each as its segments.
fn paths_at(code: &[u8], start: usize, prefix: Vec<String>, out: &mut Vec<Vec<String>>) -> usize {
    let mut i = start;
    let mut path = prefix;
    loop {
        while i < code.len() && code[i].is_ascii_whitespace() {
            i += 1;
        }
        if i < code.len() && code[i] == b'{' {
            i += 1;
            loop {
                i = paths_at(code, i, path.clone(), out);
                while i < code.len() && code[i].is_ascii_whitespace() {
                    i += 1;
                }
                match code.get(i) {
                    Some(b',') => i += 1,
                    Some(b'}') => return i + 1,
                    _ => return i,
                }
                while i < code.len() && code[i].is_ascii_whitespace() {
                    i += 1;
                }
                if code.get(i) == Some(&b'}') {
                    return i + 1;
                }
            }
        }
        let s = i;
        while i < code.len() && (code[i].is_ascii_alphanumeric() || code[i] == b'_') {
            i += 1;
        }
        if s == i {
            out.push(path);
            return i;
        }
        path.push(String::from_utf8_lossy(&code[s..i]).into_owned());
        if code[i..].starts_with(b"::") {
            i += 2;
        } else {
            out.push(path);
            return i;
        }
    }
}

/// A path with its inner `super` and `self` segments applied
/// (`b::super::a::A` is `a::A`).
fn normalise(path: Vec<String>) -> Vec<String> {
    let mut out = Vec::new();
    for segment in path {
        match segment.as_str() {
            "super" => {
                out.pop();
            }
            "self" => {}
            _ => out.push(segment),
        }
    }
    out
}

/// The absolute module paths a file names.
fn references(module: &[String], code: &str) -> Vec<Vec<String>> {
    let bytes = code.as_bytes();
    let mut out = Vec::new();
    for (at, word) in [("crate::", 0usize), ("super::", 1), ("self::", 2)] {
        let mut from = 0;
        while let Some(pos) = code[from..].find(at) {
            let p = from + pos;
            from = p + at.len();
            let boundary = p == 0
                || !(bytes[p - 1].is_ascii_alphanumeric()
                    || bytes[p - 1] == b'_'
                    || bytes[p - 1] == b':');
            if !boundary {
                continue;
            }
            // The module a relative path starts from.
            let base: Vec<String> = match word {
                0 => Vec::new(),
                // The parent, for `a/mod.rs` (module `a`) and `a/b.rs` alike.
                1 => module[..module.len().saturating_sub(1)].to_vec(),
                _ => module.to_vec(),
            };
            let mut found = Vec::new();
            paths_at(bytes, p + at.len(), base, &mut found);
            out.extend(found.into_iter().map(normalise));
        }
    }
    out
}

struct Tree {
    /// Module path → file.
    files: BTreeMap<Vec<String>, PathBuf>,
    /// (module, name) → the path a `pub use` there names.
    reexports: BTreeMap<(Vec<String>, String), Vec<String>>,
}

impl Tree {
    /// The file defining what `path` names, following re-exports.
    fn resolve(&self, path: &[String], depth: usize) -> Option<Vec<String>> {
        let mut module: Vec<String> = path.to_vec();
        while !module.is_empty() && !self.files.contains_key(&module) {
            module.pop();
        }
        if !self.files.contains_key(&module) {
            return None;
        }
        if depth < 8
            && let Some(name) = path.get(module.len())
            && let Some(target) = self.reexports.get(&(module.clone(), name.clone()))
        {
            let mut full = target.clone();
            full.extend_from_slice(&path[module.len() + 1..]);
            return self.resolve(&full, depth + 1).or(Some(module));
        }
        Some(module)
    }
}

type Module = Vec<String>;
type Edges = BTreeMap<Module, BTreeSet<Module>>;

/// Records the `pub use a::b::{C, D};` statements of `module`: C and D
/// are a::b's.
fn read_reexports(module: &Module, code: &str, tree: &mut Tree) {
    for stmt in code.split(';') {
        let stmt = stmt.trim();
        let Some(rest) = stmt
            .strip_prefix("pub use ")
            .or_else(|| stmt.strip_prefix("pub(crate) use "))
        else {
            continue;
        };
        let rest = rest.trim();
        let (base, skip) = if let Some(r) = rest.strip_prefix("crate::") {
            (Vec::new(), rest.len() - r.len())
        } else if let Some(r) = rest.strip_prefix("super::") {
            (
                module[..module.len().saturating_sub(1)].to_vec(),
                rest.len() - r.len(),
            )
        } else if rest.starts_with(|c: char| c.is_ascii_lowercase()) {
            (module.clone(), 0)
        } else {
            continue;
        };
        let mut found = Vec::new();
        paths_at(rest.as_bytes(), skip, base, &mut found);
        for target in found.into_iter().map(normalise) {
            if let Some(name) = target.last() {
                tree.reexports
                    .insert((module.clone(), name.clone()), target.clone());
            }
        }
    }
}

/// Which module of the crate in `src` depends on which, and every module.
fn import_graph(src: &Path) -> (Edges, Vec<Module>) {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut tree = Tree {
        files: BTreeMap::new(),
        reexports: BTreeMap::new(),
    };
    let mut codes = BTreeMap::new();
    for file in &files {
        let module = module_of(src, file);
        let code = code_of(&std::fs::read_to_string(file).unwrap());
        read_reexports(&module, &code, &mut tree);
        tree.files.insert(module.clone(), file.clone());
        codes.insert(module, code);
    }
    let mut edges = Edges::new();
    for (module, code) in &codes {
        for path in references(module, code) {
            // Itself, or one of its own submodules: not a dependency.
            if let Some(target) = tree.resolve(&path, 0)
                && !target.starts_with(module)
            {
                edges.entry(module.clone()).or_default().insert(target);
            }
        }
    }
    (edges, tree.files.into_keys().collect())
}

/// Every circle a depth-first search meets, as `crate::a -> crate::b ->
/// crate::a`.
fn circles(edges: &Edges, modules: &[Module]) -> Vec<String> {
    fn visit(
        node: &Module,
        edges: &Edges,
        state: &mut BTreeMap<Module, u8>,
        stack: &mut Vec<Module>,
        circles: &mut Vec<String>,
    ) {
        state.insert(node.clone(), 1);
        stack.push(node.clone());
        for next in edges.get(node).into_iter().flatten() {
            match state.get(next).copied().unwrap_or(0) {
                0 => visit(next, edges, state, stack, circles),
                1 => {
                    let from = stack.iter().position(|n| n == next).unwrap_or(0);
                    let names: Vec<String> = stack[from..]
                        .iter()
                        .chain(std::iter::once(next))
                        .map(|m| format!("crate::{}", m.join("::")))
                        .collect();
                    circles.push(names.join(" -> "));
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(node.clone(), 2);
    }
    let mut state = BTreeMap::new();
    let mut found = Vec::new();
    for module in modules {
        if state.get(module).copied().unwrap_or(0) == 0 {
            visit(module, edges, &mut state, &mut Vec::new(), &mut found);
        }
    }
    found
}

fn module(path: &str) -> Module {
    path.split("::").map(str::to_owned).collect()
}

#[test]
fn the_gateway_library_has_no_import_circle() {
    let (edges, modules) = import_graph(&root().join("gateway/src"));
    let edge_count: usize = edges.values().map(BTreeSet::len).sum();
    assert!(
        edge_count > 50,
        "the graph was not read: {edge_count} edges"
    );
    assert!(
        edges[&module("service::exchange")].contains(&module("pipeline::consent")),
        "the exchange's dependency on the consent check was not seen"
    );
    let found = circles(&edges, &modules);
    assert!(found.is_empty(), "import circles:\n{}", found.join("\n"));
}

/// The reader on a small crate: a circle through a re-export and a `super`
/// path is found; a front module and its own children are not a circle.
#[test]
fn a_circle_through_a_reexport_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let write = |path: &str, text: &str| {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    write(
        "lib.rs",
        "pub mod a;\npub mod b;\npub mod c;\npub use b::Thing;\n",
    );
    // a -> (crate::Thing, re-exported from b) ; b::inner -> a via super::super.
    write("a.rs", "use crate::Thing;\npub struct A(Thing);\n");
    write("b/mod.rs", "pub mod inner;\npub use inner::Thing;\n");
    write(
        "b/inner.rs",
        "// crate::c::Unused in a comment does not count\npub struct Thing(super::super::a::A);\n",
    );
    // c fronts its child and the child uses c's items: no circle.
    write("c/mod.rs", "pub mod d;\npub use d::D;\npub struct C;\n");
    write("c/d.rs", "pub struct D(super::C);\n");
    let (edges, modules) = import_graph(dir.path());
    // The comment's path is not read; `super::super::a` is `a`.
    assert_eq!(
        edges[&module("b::inner")],
        BTreeSet::from([module("a")]),
        "{edges:?}"
    );
    let found = circles(&edges, &modules);
    assert_eq!(
        found,
        vec!["crate::a -> crate::b::inner -> crate::a"],
        "{edges:?}"
    );
}

#[test]
fn no_hand_written_source_file_is_too_long() {
    let mut files = Vec::new();
    rust_files(&root(), &mut files);
    let long: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let lines = std::fs::read_to_string(f).unwrap().lines().count();
            (lines > MAX_LINES).then(|| format!("{} ({lines} lines)", f.display()))
        })
        .collect();
    assert!(files.len() > 50, "{} files found", files.len());
    assert!(
        long.is_empty(),
        "over {MAX_LINES} lines:\n{}",
        long.join("\n")
    );
    let main = std::fs::read_to_string(root().join("src/main.rs")).unwrap();
    assert!(main.lines().count() <= MAX_MAIN_LINES);
}
