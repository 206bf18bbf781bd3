//! `ipfail check`: validates like `nginx -t`, no privileges needed.

use std::process::{Command, Output};

fn check(path: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ipfail"))
        .args(["check", "-c", path])
        .output()
        .expect("run ipfail check")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn the_legacy_file_checks_ok_and_lists_its_groups() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/etc/mas_ip_manager.cfg");
    let out = check(path);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    for want in [
        "carp1",
        "carp2",
        "igb1",
        "208.43.48.2",
        "208.43.48.6",
        "configuration OK",
    ] {
        assert!(stdout.contains(want), "missing {want:?} in:\n{stdout}");
    }
}

#[test]
fn the_daemon_example_lists_vhid_advbase_advskew_preempt() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/etc/ipfail.cfg");
    let out = check(path);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    let web = stdout
        .lines()
        .find(|l| l.starts_with("web "))
        .unwrap_or_else(|| panic!("no row for web:\n{stdout}"));
    let cols: Vec<&str> = web.split_whitespace().collect();
    assert_eq!(&cols[..6], ["web", "eth0", "10", "1", "0", "yes"], "{web}");
}

#[test]
fn an_invalid_file_fails_with_file_and_line() {
    let dir = std::env::temp_dir().join(format!("ipfail-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let cases = [
        (
            "range.cfg",
            "[g]\ninterface = eth0\nips = 192.0.2.1\nvhid = 256\n",
            4,
            "vhid",
        ),
        (
            "unknown.cfg",
            "[g]\ninterface = eth0\nips = 192.0.2.1\nvhdi = 1\n",
            4,
            "vhdi",
        ),
        (
            "syntax.cfg",
            "[g]\ninterface = eth0\nthis line has no separator\n",
            3,
            "",
        ),
        ("noips.cfg", "[g]\ninterface = eth0\n", 1, "ips"),
    ];
    for (name, body, line, key) in cases {
        let path = dir.join(name);
        std::fs::write(&path, body).expect("write");
        let p = path.to_string_lossy().into_owned();
        let out = check(&p);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{name}: {stderr}");
        assert!(stderr.contains(&format!("{p}:{line}:")), "{name}: {stderr}");
        assert!(stderr.contains(key), "{name}: {stderr}");
        assert!(
            out.stdout.is_empty(),
            "{name}: nothing printed on success channel"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_missing_file_is_named() {
    let out = check("/nonexistent/ipfail.cfg");
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("/nonexistent/ipfail.cfg"));
}
