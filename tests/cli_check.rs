//! `ipfail check`: validates like `nginx -t`, no privileges needed; and
//! checks the file against this host (interfaces, state_dir, the host's own
//! addresses) unless `--other-host` turns those findings into warnings.

mod lab;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_ipfail")
}

fn check(path: &str) -> Output {
    Command::new(bin())
        .args(["check", "-c", path])
        .output()
        .expect("run ipfail check")
}

fn check_other_host(path: &str) -> Output {
    Command::new(bin())
        .args(["check", "--other-host", "-c", path])
        .output()
        .expect("run ipfail check --other-host")
}

/// A scratch directory for this test (removed first if it exists).
fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ipfail-check-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("mkdir");
    dir
}

fn write(dir: &Path, name: &str, body: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, body).expect("write config");
    path.to_string_lossy().into_owned()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn the_legacy_file_checks_ok_and_lists_its_groups() {
    // The legacy file is for a FreeBSD dispatcher with igb1: another host.
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/etc/mas_ip_manager.cfg");
    let out = check_other_host(path);
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
    let out = check_other_host(path);
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
    let dir = scratch("invalid");
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

/// The legacy file names igb1, which this host does not have: without
/// `--other-host` that is an error naming the line, and nothing is printed
/// on stdout.
#[test]
fn the_legacy_file_is_refused_on_a_host_without_its_interface() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/etc/mas_ip_manager.cfg");
    let out = check(path);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("key 'interface' in [carp1]: no interface igb1 on this host"),
        "{stderr}"
    );
    assert!(
        stderr.contains("--other-host"),
        "says how to check it anyway: {stderr}"
    );
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
}

#[test]
fn a_missing_interface_is_an_error_and_a_warning_with_other_host() {
    let dir = scratch("noiface");
    let state = dir.join("state");
    let body = format!(
        "[ipfail]\nstate_dir = {}\n\n[web]\ninterface = lo\nvhid = 10\n\
         carp_interface = ipfailnx0\nips = 203.0.113.77\n\
         [hook]\ninterface = ipfailnx1\nips = 203.0.113.78\n",
        state.display()
    );
    let p = write(&dir, "noiface.cfg", &body);
    let out = check(&p);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    for want in [
        format!("{p}:7: key 'carp_interface' in [web]: no interface ipfailnx0 on this host"),
        format!("{p}:10: key 'interface' in [hook]: no interface ipfailnx1 on this host"),
    ] {
        assert!(stderr.contains(&want), "missing {want:?} in:\n{stderr}");
    }
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));

    let out = check_other_host(&p);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(
        stderr.contains(&format!(
            "warning (another host's file): {p}:7: key 'carp_interface'"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("{p}:10: key 'interface'")),
        "{stderr}"
    );
    assert!(stdout.contains("configuration OK"), "{stdout}");
    // The check created nothing.
    assert!(!state.exists());

    // The same file with interfaces this host has passes without the flag.
    let fixed = body.replace("ipfailnx0", "lo").replace("ipfailnx1", "lo");
    let p = write(&dir, "fixed.cfg", &fixed);
    let out = check(&p);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(out.stderr.is_empty(), "{}", text(&out.stderr));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_state_dir_that_is_a_file_is_an_error_and_a_warning_with_other_host() {
    let dir = scratch("statefile");
    let file = dir.join("not-a-dir");
    std::fs::write(&file, "x").expect("write");
    let body = format!(
        "[ipfail]\nstate_dir = {}\n[web]\ninterface = lo\nvhid = 10\nips = 203.0.113.77\n",
        file.display()
    );
    let p = write(&dir, "statefile.cfg", &body);
    let out = check(&p);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let want = format!(
        "{p}:2: key 'state_dir' in [ipfail]: {}: exists and is not a directory",
        file.display()
    );
    assert!(stderr.contains(&want), "missing {want:?} in:\n{stderr}");
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));

    // Under a file, it cannot be created either.
    let under = body.replace("not-a-dir", "not-a-dir/state");
    let p2 = write(&dir, "under.cfg", &under);
    let out = check(&p2);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{p2}:2: key 'state_dir' in [ipfail]: {}/state: cannot be created: {} is not a directory",
            file.display(),
            file.display()
        )),
        "{stderr}"
    );

    let out = check_other_host(&p);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(
        stderr.contains(&format!("warning (another host's file): {want}")),
        "{stderr}"
    );
    assert!(stdout.contains("configuration OK"), "{stdout}");
    assert_eq!(std::fs::read_to_string(&file).ok().as_deref(), Some("x"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_missing_check_program_is_an_error_and_a_warning_with_other_host() {
    let dir = scratch("noprog");
    let missing = dir.join("check-missing");
    let body = format!(
        "[ipfail]\nstate_dir = {}\n[web]\ninterface = lo\nvhid = 10\nips = 203.0.113.77\n\
         check : tcp 127.0.0.1:443\n        exec {} --quick\n",
        dir.join("state").display(),
        missing.display()
    );
    let p = write(&dir, "noprog.cfg", &body);
    let out = check(&p);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let want = format!(
        "{p}:8: key 'check' in [web]: {} does not exist",
        missing.display()
    );
    assert!(stderr.contains(&want), "missing {want:?} in:\n{stderr}");
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));

    let out = check_other_host(&p);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(
        stderr.contains(&format!("warning (another host's file): {want}")),
        "{stderr}"
    );
    assert!(stdout.contains("configuration OK"), "{stdout}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_file_with_checks_passes_and_lists_them() {
    use std::os::unix::fs::PermissionsExt;
    let dir = scratch("checks");
    let script = dir.join("check-php-fpm");
    std::fs::write(&script, "#!/bin/sh\nexit 0\n").expect("write script");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let body = format!(
        "[ipfail]\nstate_dir = {}\n[DEFAULT]\ncheck_fall = 4\n\
         [web]\ninterface = lo\nvhid = 10\nips = 203.0.113.77\n\
         check : http http://127.0.0.1/health\n        tcp 127.0.0.1:443\n\
         \x20       exec {} --quick\ncheck_interval = 2\ncheck_timeout = 0.75\n\
         notify = {} changed\n\
         [mail]\ninterface = lo\nvhid = 11\nips = 203.0.113.78\n",
        dir.join("state").display(),
        script.display(),
        script.display()
    );
    let p = write(&dir, "checks.cfg", &body);
    let out = check(&p);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stderr.is_empty(), "{stderr}");
    for want in [
        "    checks every 2s, timeout 0.75s, fall 4, rise 2".to_string(),
        "      http http://127.0.0.1:80/health (line 9)".to_string(),
        "      tcp 127.0.0.1:443 (line 10)".to_string(),
        format!("      exec {} --quick (line 11)", script.display()),
        format!("    notify: {} changed", script.display()),
        format!("{p}: configuration OK"),
    ] {
        assert!(stdout.contains(&want), "missing {want:?} in:\n{stdout}");
    }
    // [mail] has no check: nothing listed for it.
    assert_eq!(stdout.matches("checks every").count(), 1, "{stdout}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// In a namespace whose eth0 is 192.0.2.1/24, a file that lists 192.0.2.1
/// as a floating IP is refused with the line, the address, the interface
/// and what to do, and the address stays on eth0.
#[test]
fn the_hosts_own_address_is_refused_and_left_alone() {
    if !lab::require_root() {
        return;
    }
    let lab = lab::Lab::new("chk-own");
    let a = lab.add_host("a", "192.0.2.1/24");
    let dir = scratch("own");
    let body = format!(
        "[ipfail]\nstate_dir = {}\ncontrol_socket = {}\n\n\
         [web]\ninterface = eth0\nvhid = 10\nips : 203.0.113.10\n      192.0.2.1/24\n",
        dir.join("state").display(),
        dir.join("run/ipfail.sock").display()
    );
    let p = write(&dir, "own.cfg", &body);
    let out = lab.sh(&a, &[bin(), "check", "-c", &p]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    for want in [
        format!("{p}:9: key 'ips' in [web]: 192.0.2.1 is an address of this host (on eth0)"),
        "remove it from the file".to_string(),
        "ip addr del 192.0.2.1/24 dev eth0".to_string(),
    ] {
        assert!(stderr.contains(&want), "missing {want:?} in:\n{stderr}");
    }
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
    assert!(
        lab.has_addr(&a, "192.0.2.1"),
        "the host's address is still there"
    );

    // For another host it is a warning; still nothing is touched.
    let out = lab.sh(&a, &[bin(), "check", "--other-host", "-c", &p]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(&format!("{p}:9: key 'ips' in [web]: 192.0.2.1")),
        "{stderr}"
    );
    assert!(lab.has_addr(&a, "192.0.2.1"));

    // Without that line the file passes in the namespace.
    let ok = body.replace("\n      192.0.2.1/24", "");
    let p = write(&dir, "ok.cfg", &ok);
    let out = lab.sh(&a, &[bin(), "check", "-c", &p]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The README section "Running it on a pair of hosts", up to the next `## `.
fn readme_pair_section() -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let start = readme
        .find("## Running it on a pair of hosts")
        .expect("the README has its pair section");
    let rest = &readme[start..];
    let end = rest[3..].find("\n## ").map_or(rest.len(), |i| i + 3);
    rest[..end].to_string()
}

/// The README's pair example, as a new user copies it, passes `ipfail
/// check` for both hosts (the standby with advskew 100, as its comment
/// says); the section builds and installs before it runs `ipfail check`,
/// and names the firewall rule and the client routing.
#[test]
fn the_readme_pair_example_passes_check_and_comes_in_order() {
    let section = readme_pair_section();
    let ini = section
        .split("```ini\n")
        .nth(1)
        .and_then(|s| s.split("```").next())
        .expect("an ini block in the pair section");
    let dir = scratch("readme-pair");
    for (name, body) in [
        ("master.cfg", ini.to_string()),
        ("standby.cfg", ini.replace("advskew = 0", "advskew = 100")),
    ] {
        let path = write(&dir, name, &body);
        let out = check_other_host(&path);
        let stdout = text(&out.stdout);
        assert!(
            out.status.success(),
            "{name}:\n{body}\n{stdout}{}",
            text(&out.stderr)
        );
        assert!(stdout.contains("configuration OK"), "{stdout}");
        let web = stdout.lines().find(|l| l.starts_with("web ")).unwrap_or("");
        assert!(web.contains("eth0") && web.contains(" 10 "), "{stdout}");
    }
    assert!(ini.contains("advskew = 0\n"), "{ini}");
    let at = |what: &str| {
        section
            .find(what)
            .unwrap_or_else(|| panic!("{what:?} not in the pair section"))
    };
    assert!(at("cargo build --release") < at("ipfail check -c"));
    assert!(at("install -m 755 target/release/ipfail") < at("ipfail check -c"));
    assert!(at("ipfail check -c") < at("systemctl enable --now ipfail"));
    for want in ["224.0.0.18", "ff02::12", "l4proto 112", "-p 112", "on-link"] {
        at(want);
    }
}
