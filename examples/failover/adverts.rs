//! The adverts (CARP or VRRP: IP protocol 112) that the standby receives,
//! captured with tcpdump on its eth0: when did the master's last one
//! arrive.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::lab::{Host, Lab};

pub struct Capture {
    pid: u32,
    log: PathBuf,
}

impl Capture {
    /// Starts capturing on `on`; returns once tcpdump has shown an advert
    /// from `src` (or after 3 s).
    pub fn start(lab: &Lab, on: &Host, src: &str, log: &Path) -> Capture {
        let _ = std::fs::remove_file(log);
        let pid = lab.spawn(
            on,
            Path::new("/usr/bin/tcpdump"),
            &[
                "-i",
                "eth0",
                "-n",
                "-tt",
                "-l",
                "--immediate-mode",
                "ip",
                "proto",
                "112",
            ],
            log,
        );
        let cap = Capture {
            pid,
            log: log.to_path_buf(),
        };
        let end = Instant::now() + Duration::from_secs(3);
        while cap.times(src).is_empty() && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(10));
        }
        cap
    }

    /// Arrival times of the adverts from `src` captured so far.
    pub fn times(&self, src: &str) -> Vec<SystemTime> {
        let needle = format!("IP {src} > 224.0.0.18");
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(&needle))
            .filter_map(|l| l.split_whitespace().next()?.parse::<f64>().ok())
            .map(|s| UNIX_EPOCH + Duration::from_secs_f64(s))
            .collect()
    }

    pub fn stop(self, lab: &Lab) {
        lab.signal(self.pid, "TERM");
        lab.wait_exit(self.pid, Duration::from_secs(5));
    }
}
