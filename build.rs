//! Names the commit `samverka --version` was built from:
//! `SAMVERKA_COMMIT` is `<short hash> <commit date>` (the commit's date,
//! not the build's, so that building again changes nothing), or `unknown`
//! outside a git checkout or without git.
//!
//! Cargo runs this again only when the commit changes: it watches
//! `.git/HEAD` and the file of the branch it points to (or, for a branch
//! kept in `packed-refs`, that file and the folder a new commit's loose
//! ref appears in).

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let root = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let commit = match git_dir(&root) {
        Some(git) => {
            watch(&git);
            describe(&root).unwrap_or_else(|| "unknown".into())
        }
        None => "unknown".into(),
    };
    println!("cargo:rustc-env=SAMVERKA_COMMIT={commit}");
}

/// The git directory of the checkout at `root`: `.git`, or where a `.git`
/// file (a worktree, a submodule) points.
fn git_dir(root: &Path) -> Option<PathBuf> {
    let dot_git = root.join(".git");
    if dot_git.is_dir() {
        return Some(dot_git);
    }
    let text = std::fs::read_to_string(&dot_git).ok()?;
    let dir = PathBuf::from(text.strip_prefix("gitdir:")?.trim());
    Some(if dir.is_absolute() {
        dir
    } else {
        root.join(dir)
    })
}

/// Tells cargo which files change when the commit does. A path that does
/// not exist would make cargo run this on every build, so only existing
/// ones are named.
fn watch(git: &Path) {
    let head = git.join("HEAD");
    println!("cargo:rerun-if-changed={}", head.display());
    let Some(reference) = std::fs::read_to_string(&head)
        .ok()
        .and_then(|h| h.strip_prefix("ref:").map(|r| r.trim().to_owned()))
    else {
        return; // a detached HEAD holds the commit itself
    };
    // A worktree keeps its HEAD apart but its refs in the common directory.
    let common = std::fs::read_to_string(git.join("commondir"))
        .map(|c| git.join(c.trim()))
        .unwrap_or_else(|_| git.to_owned());
    let loose = common.join(&reference);
    if loose.is_file() {
        println!("cargo:rerun-if-changed={}", loose.display());
        return;
    }
    let packed = common.join("packed-refs");
    if packed.is_file() {
        println!("cargo:rerun-if-changed={}", packed.display());
    }
    if let Some(folder) = loose.parent().filter(|f| f.is_dir()) {
        println!("cargo:rerun-if-changed={}", folder.display());
    }
}

/// `<short hash> <YYYY-MM-DD>` of HEAD, if git answers.
fn describe(root: &Path) -> Option<String> {
    let git = |args: &[&str]| {
        let out = Command::new("git")
            .arg("-C")
            .arg(root)
            .args(args)
            .output()
            .ok()?;
        let text = String::from_utf8(out.stdout).ok()?.trim().to_owned();
        (out.status.success() && !text.is_empty()).then_some(text)
    };
    let hash = git(&["rev-parse", "--short", "HEAD"])?;
    let date = git(&["log", "-1", "--format=%cs", "HEAD"])?;
    Some(format!("{hash} {date}"))
}
