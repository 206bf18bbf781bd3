//! The shipped documentation matches the code: the generated man pages and
//! completions cover every subcommand and option, the hand-written
//! ipfail.cfg(5) documents every key the validator accepts, and
//! `ipfail --version` carries the git commit when built from a checkout.

#[path = "../examples/gen_assets/render.rs"]
mod render;

use std::path::{Path, PathBuf};
use std::process::Command;

/// A scratch directory for this test (removed first if it exists).
fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ipfail-docs-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("mkdir");
    dir
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// How a word appears in roff source: clap_mangen escapes every `-`.
fn roff(word: &str) -> String {
    word.replace('-', "\\-")
}

#[test]
fn man_pages_name_every_subcommand_and_option() {
    let out = scratch("man");
    let files = render::generate(&out).expect("generate");
    let cmd = render::command();
    let subs: Vec<&clap::Command> = cmd.get_subcommands().filter(|c| !c.is_hide_set()).collect();
    assert!(subs.len() >= 8, "subcommands: {}", subs.len());

    let main = read(&out.join("man/ipfail.1"));
    let section = main
        .split(".SH SUBCOMMANDS")
        .nth(1)
        .expect("ipfail.1 has a SUBCOMMANDS section");
    for sub in &subs {
        let name = sub.get_name();
        assert!(
            section.contains(&format!("ipfail\\-{}(1)", roff(name))),
            "ipfail.1 SUBCOMMANDS does not name {name}"
        );
        assert!(
            main.contains(&format!(".BR ipfail\\-{} (1)", roff(name))),
            "ipfail.1 SEE ALSO does not name {name}"
        );
        let page = out.join(format!("man/ipfail-{name}.1"));
        assert!(files.contains(&page), "{} not written", page.display());
        let text = read(&page);
        assert!(text.contains(".TH "), "{} is not roff", page.display());
        for arg in sub.get_arguments().filter(|a| !a.is_hide_set()) {
            let shown = match (arg.get_long(), arg.get_short()) {
                (Some(long), _) => format!("\\-\\-{}", roff(long)),
                (None, Some(short)) => format!("\\-{short}"),
                (None, None) => arg.get_id().as_str().to_string(),
            };
            assert!(
                text.contains(&shown),
                "{} does not show {shown}",
                page.display()
            );
        }
        assert!(
            text.contains("ipfail.cfg (5)"),
            "{name}: no SEE ALSO ipfail.cfg(5)"
        );
    }
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn completions_offer_every_subcommand() {
    let out = scratch("completions");
    render::generate(&out).expect("generate");
    let subs: Vec<String> = render::command()
        .get_subcommands()
        .filter(|c| !c.is_hide_set())
        .map(|c| c.get_name().to_string())
        .collect();
    for (_, file) in render::SHELLS {
        let text = read(&out.join("completions").join(file));
        for sub in &subs {
            assert!(text.contains(sub.as_str()), "{file} does not offer {sub}");
        }
        assert!(
            text.contains("other-host"),
            "{file} lacks check --other-host"
        );
    }
    let _ = std::fs::remove_dir_all(&out);
}

/// The keys the validator lists in its "unknown key" error for a section.
fn known_keys(body: &str) -> Vec<String> {
    let dir = scratch("keys");
    let path = dir.join("t.cfg");
    std::fs::write(&path, body).expect("write");
    let err = match ipfail::config::load(&path) {
        Ok(_) => panic!("an unknown key was accepted"),
        Err(e) => e.to_string(),
    };
    let _ = std::fs::remove_dir_all(&dir);
    let list = err
        .split("known: ")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .unwrap_or_else(|| panic!("no key list in: {err}"));
    list.split(',').map(|k| k.trim().to_string()).collect()
}

#[test]
fn cfg_man_page_documents_every_key() {
    let page = read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/man/ipfail.cfg.5"));
    let group = known_keys("[g]\ninterface = eth0\nips = 192.0.2.1\nno_such_key = 1\n");
    let global = known_keys("[ipfail]\nno_such_key = 1\n");
    assert!(group.contains(&"vhid".to_string()), "{group:?}");
    assert!(global.contains(&"state_dir".to_string()), "{global:?}");
    for key in group.iter().chain(&global) {
        // Each key is the tag of a .TP entry: `.BI key ARG` or `.BR key ...`.
        let documented = page.lines().any(|l| {
            [".BI ", ".BR ", ".B "]
                .iter()
                .any(|m| l.strip_prefix(m).and_then(|r| r.split_whitespace().next()) == Some(key))
        });
        assert!(documented, "ipfail.cfg.5 does not document the key {key}");
    }
}

#[test]
fn version_names_the_git_commit_of_a_checkout() {
    let out = Command::new(env!("CARGO_BIN_EXE_ipfail"))
        .arg("--version")
        .output()
        .expect("run ipfail --version");
    assert!(out.status.success());
    let line = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(line, format!("ipfail {}", ipfail::cli::VERSION));
    assert!(
        ipfail::cli::VERSION.starts_with(env!("CARGO_PKG_VERSION")),
        "{line}"
    );

    // What build.rs should have found: an override, else the checkout's HEAD.
    let expected = match option_env!("IPFAIL_GIT_COMMIT") {
        Some(c) => Some(c.trim().to_string()).filter(|c| !c.is_empty()),
        None => {
            let dir = env!("CARGO_MANIFEST_DIR");
            let git = |args: &[&str]| {
                Command::new("git")
                    .arg("-C")
                    .arg(dir)
                    .args(args)
                    .output()
                    .ok()
                    .filter(|o| o.status.success())
                    .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            };
            let top = git(&["rev-parse", "--show-toplevel"]).map(PathBuf::from);
            let is_top =
                top.and_then(|t| t.canonicalize().ok()) == Path::new(dir).canonicalize().ok();
            if is_top {
                git(&["rev-parse", "--short", "HEAD"])
            } else {
                None
            }
        }
    };
    match expected {
        Some(commit) => assert_eq!(
            ipfail::cli::VERSION,
            format!("{} (git {commit})", env!("CARGO_PKG_VERSION"))
        ),
        None => assert_eq!(ipfail::cli::VERSION, env!("CARGO_PKG_VERSION")),
    }
}
