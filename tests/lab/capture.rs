//! CARP adverts captured on the wire by a lab host (`tcpdump -tt`), and
//! the intervals between one sender's adverts: what the advert-timing
//! tests measure.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{Host, Lab};

/// A running capture of IP protocol 112 on a host's eth0.
pub struct AdvertCapture {
    pid: u32,
    log: PathBuf,
}

/// The intervals between the captured adverts of one sender, in seconds.
#[derive(Debug)]
pub struct Gaps {
    pub gaps: Vec<f64>,
    /// The capture itself, for failure messages.
    pub text: String,
}

impl Gaps {
    pub fn worst(&self) -> f64 {
        self.gaps.iter().copied().fold(0.0, f64::max)
    }
    pub fn best(&self) -> f64 {
        self.gaps.iter().copied().fold(f64::MAX, f64::min)
    }
}

impl AdvertCapture {
    /// Starts `tcpdump` on `on`'s eth0, writing to `log`.
    pub fn start(lab: &Lab, on: &Host, log: &Path) -> AdvertCapture {
        let pid = lab.spawn(
            on,
            Path::new("/usr/bin/tcpdump"),
            &["-i", "eth0", "-n", "-tt", "-l", "ip", "proto", "112"],
            log,
        );
        AdvertCapture {
            pid,
            log: log.to_path_buf(),
        }
    }

    /// Stops the capture; the intervals between the adverts from `src`.
    pub fn stop(self, lab: &Lab, src: &str) -> Gaps {
        lab.signal(self.pid, "TERM");
        lab.wait_exit(self.pid, Duration::from_secs(5));
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let needle = format!("IP {src} > 224.0.0.18");
        let times: Vec<f64> = text
            .lines()
            .filter(|l| l.contains(&needle))
            .filter_map(|l| l.split_whitespace().next()?.parse().ok())
            .collect();
        Gaps {
            gaps: times.windows(2).map(|w| w[1] - w[0]).collect(),
            text,
        }
    }
}
