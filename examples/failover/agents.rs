//! The failover agents compared, and how each is configured and started
//! on a lab host. The preferred host `a` and the standby `b` differ like
//! CARP advskew 0 and 10: for keepalived, priority 254 and 246, whose
//! VRRP skew time is the same 10/256 of an advert interval.

use std::path::Path;

use crate::lab::{Host, Lab};

#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Agent {
    Ipfail,
    Ucarp,
    /// keepalived VRRP: `fast` = VRRPv3 with 0.1 s adverts, else VRRPv2, 1 s.
    Keepalived {
        fast: bool,
    },
}

/// The standby's advskew (the preferred host's is 0).
pub const STANDBY_SKEW: u8 = 10;
pub const UCARP: &str = "/usr/sbin/ucarp";
pub const KEEPALIVED: &str = "/usr/sbin/keepalived";

impl Agent {
    pub fn name(self) -> &'static str {
        match self {
            Agent::Ipfail => "ipfail",
            Agent::Ucarp => "ucarp 1.5.2",
            Agent::Keepalived { fast: false } => "keepalived, 1 s adverts",
            Agent::Keepalived { fast: true } => "keepalived, 0.1 s adverts",
        }
    }

    pub fn short(self) -> &'static str {
        match self {
            Agent::Ipfail => "i",
            Agent::Ucarp => "u",
            Agent::Keepalived { fast: false } => "k",
            Agent::Keepalived { fast: true } => "f",
        }
    }

    pub fn installed(self) -> bool {
        match self {
            Agent::Ipfail => true,
            Agent::Ucarp => Path::new(UCARP).is_file(),
            Agent::Keepalived { .. } => Path::new(KEEPALIVED).is_file(),
        }
    }

    /// Writes what the agent of `host` needs into `dir` (configs, scripts).
    pub fn configure(self, dir: &Path, host: &str, preferred: bool, ips: &[String]) {
        let skew = if preferred { 0 } else { STANDBY_SKEW };
        match self {
            Agent::Ipfail => {
                let cfg = format!(
                    "[ipfail]\ncontrol_socket = {sock}\nstate_dir = {state}\n\n\
                     [web]\ninterface = eth0\nvhid = 10\nadvskew = {skew}\npass = bench\n\
                     ips : {list}\n",
                    sock = dir.join(host).join("ipfail.sock").display(),
                    state = dir.join(format!("{host}-state")).display(),
                    list = ips.join("\n      ")
                );
                write(&dir.join(format!("{host}.cfg")), &cfg, 0o644);
            }
            Agent::Ucarp => {
                write(
                    &dir.join("up.sh"),
                    "#!/bin/sh\nip addr add \"$2\"/32 dev \"$1\"\n",
                    0o755,
                );
                write(
                    &dir.join("down.sh"),
                    "#!/bin/sh\nip addr del \"$2\"/32 dev \"$1\" 2>/dev/null || true\n",
                    0o755,
                );
            }
            Agent::Keepalived { fast } => {
                let (version, advert) = if fast { (3, "0.1") } else { (2, "1") };
                // VRRP skew time = (256 - priority)/256 of an interval.
                let priority = if preferred {
                    254
                } else {
                    256 - u16::from(skew)
                };
                let vips: String = ips
                    .iter()
                    .map(|ip| format!("        {ip}/32 dev eth0\n"))
                    .collect();
                let cfg = format!(
                    "global_defs {{\n    router_id bench_{host}\n    vrrp_version {version}\n\
                     \x20   vrrp_garp_master_delay 1\n    vrrp_garp_master_repeat 3\n\
                     \x20   vrrp_garp_interval 0\n    max_auto_priority -1\n}}\n\
                     vrrp_instance web {{\n    state BACKUP\n    interface eth0\n\
                     \x20   virtual_router_id 10\n    priority {priority}\n    advert_int {advert}\n\
                     \x20   virtual_ipaddress {{\n{vips}    }}\n}}\n"
                );
                write(&dir.join(format!("{host}.keepalived.conf")), &cfg, 0o644);
            }
        }
    }

    /// Starts the agent on `host` (configured by [`Agent::configure`] in
    /// `dir`); returns its PID (for keepalived the parent's).
    pub fn start(self, lab: &Lab, dir: &Path, host: &Host, preferred: bool, ips: &[String]) -> u32 {
        let log = dir.join(format!("{}.log", host.name));
        match self {
            Agent::Ipfail => {
                let cfg = dir.join(format!("{}.cfg", host.name));
                let cfg = cfg.to_string_lossy().into_owned();
                lab.spawn(
                    host,
                    &crate::lab::ipfail_bin(),
                    &["daemon", "-c", &cfg],
                    &log,
                )
            }
            Agent::Ucarp => {
                let skew = if preferred { 0 } else { STANDBY_SKEW };
                let src = format!("--srcip={}", host.addr);
                let addr = format!("--addr={}", ips[0]);
                let skew = format!("--advskew={skew}");
                let up = format!("--upscript={}", dir.join("up.sh").display());
                let down = format!("--downscript={}", dir.join("down.sh").display());
                let args = [
                    "--interface=eth0",
                    &src,
                    "--vhid=10",
                    "--pass=bench",
                    &addr,
                    "--advbase=1",
                    &skew,
                    "--preempt",
                    "--shutdown",
                    &up,
                    &down,
                ];
                lab.spawn(host, Path::new(UCARP), &args, &log)
            }
            Agent::Keepalived { .. } => {
                let h = &host.name;
                let f = |x: &str| dir.join(format!("{h}.{x}")).to_string_lossy().into_owned();
                let (cfg, pid, vrrp, chk) = (
                    f("keepalived.conf"),
                    f("pid"),
                    f("vrrp.pid"),
                    f("checkers.pid"),
                );
                // In the host's namespace only; no fork, no syslog, no
                // respawn; pid files of its own.
                let args = [
                    "--dont-fork",
                    "--log-console",
                    "--no-syslog",
                    "--log-detail",
                    "--vrrp",
                    "--dont-respawn",
                    "-f",
                    &cfg,
                    "-p",
                    &pid,
                    "-r",
                    &vrrp,
                    "-c",
                    &chk,
                ];
                lab.spawn(host, Path::new(KEEPALIVED), &args, &log)
            }
        }
    }
}

pub fn write(path: &Path, text: &str, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode));
}
