//! Sets `IPFAIL_VERSION` for `ipfail --version`: the package version, plus the
//! git commit when the source is a git checkout of this crate ("0.1.0 (git
//! b1a6358)"). Without git, or outside a checkout (a source tarball, even one
//! unpacked inside some other repository), it is the package version alone.
//! `IPFAIL_GIT_COMMIT` in the environment overrides the lookup (for builds
//! from an exported tree that know their commit; empty means none).
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let version = std::env::var("CARGO_PKG_VERSION").unwrap_or_default();
    println!("cargo:rerun-if-env-changed=IPFAIL_GIT_COMMIT");
    let commit = match std::env::var("IPFAIL_GIT_COMMIT") {
        Ok(c) => Some(c.trim().to_string()).filter(|c| !c.is_empty()),
        Err(_) => git_commit(),
    };
    match commit {
        Some(c) => println!("cargo:rustc-env=IPFAIL_VERSION={version} (git {c})"),
        None => println!("cargo:rustc-env=IPFAIL_VERSION={version}"),
    }
}

/// The short commit of HEAD if the crate's directory is the top of a git work
/// tree, and tells cargo which files to watch so a new commit rebuilds.
fn git_commit() -> Option<String> {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR")?);
    // Without any rerun-if-changed line cargo would rerun this script on
    // every change of any file in the package; this one applies when there is
    // no checkout (a tarball never gains a commit).
    println!("cargo:rerun-if-changed=build.rs");
    let top = git(&manifest_dir, &["rev-parse", "--show-toplevel"])?;
    if !same_dir(Path::new(&top), &manifest_dir) {
        return None;
    }
    // HEAD changes on checkout; the branch's ref file (or packed-refs after
    // a gc) on commit; the HEAD reflog on both, even when the ref was packed
    // and the commit creates its loose file. --git-path resolves them for
    // linked work trees too.
    for p in ["HEAD", "logs/HEAD", "packed-refs"] {
        watch(&manifest_dir, p);
    }
    if let Some(head_ref) = git(&manifest_dir, &["symbolic-ref", "-q", "HEAD"]) {
        watch(&manifest_dir, &head_ref);
    }
    let commit = git(&manifest_dir, &["rev-parse", "--short", "HEAD"])?;
    commit
        .chars()
        .all(|c| c.is_ascii_hexdigit())
        .then_some(commit)
}

fn watch(dir: &Path, git_path: &str) {
    // Only files that exist: cargo reruns the script on every build for a
    // missing one (a branch whose ref is packed has no loose file).
    if let Some(p) = git(
        dir,
        &[
            "rev-parse",
            "--path-format=absolute",
            "--git-path",
            git_path,
        ],
    ) {
        if Path::new(&p).exists() {
            println!("cargo:rerun-if-changed={p}");
        }
    }
}

/// One line of a git command's stdout, or None if git is missing or fails.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?;
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_string())
}

fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}
