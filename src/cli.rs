//! Command-line interface: `ipfail daemon | check | hook | status | demote | promote | reload`.
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// The default configuration path: the legacy ip_manager file's location.
pub const DEFAULT_CONFIG: &str = "/usr/local/etc/mas_ip_manager.cfg";

/// `ipfail --version`: the package version and, when built from a git
/// checkout, the commit ("0.1.0 (git b1a6358)"); set by build.rs.
pub const VERSION: &str = env!("IPFAIL_VERSION");

#[derive(Debug, Parser)]
#[command(
    name = "ipfail",
    version = VERSION,
    about = "Floating-IP failover agent speaking CARP v2 (pairs with ucarp and BSD kernel CARP)"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the CARP election for every group with a `vhid` and move its IPs.
    Daemon {
        /// Configuration file (legacy mas_ip_manager.cfg format plus daemon keys).
        #[arg(short = 'c', long = "config", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// Log every received advert too.
        #[arg(short, long)]
        verbose: bool,
        /// Log line format on stderr. Default: journald when stderr is systemd's journal
        /// stream ($JOURNAL_STREAM), else text.
        #[arg(long, value_enum, value_name = "FORMAT")]
        log_format: Option<crate::logging::LogFormat>,
    },
    /// Validate a configuration file and print the groups it defines (like `nginx -t`).
    ///
    /// Passing means the daemon will start on this host: besides the file itself, every
    /// `interface` and `carp_interface` must exist here, `state_dir` must be (or be able to
    /// become) a writable directory, and no address of `ips` may be a fixed address of this
    /// host (one ipfail did not add). Exit status: 0 OK, 1 an error (file:line on stderr).
    Check {
        #[arg(short = 'c', long = "config", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// The file is meant for another host: report this host's checks (interfaces,
        /// state_dir, the host's own addresses) as warnings on stderr; exit 0 if the file
        /// itself is valid.
        #[arg(long)]
        other_host: bool,
    },
    /// One shot for devd, udev, ucarp and other notifiers: acquire or release one group's IPs.
    ///
    /// Exit status: 0 the group ended in the requested state; 1 some IP could not be
    /// added or removed (one line per IP says why); 2 usage or config error (nothing
    /// touched); 3 the running daemon owns the group, or another hook run kept its lock
    /// for 30 s (nothing touched).
    Hook {
        /// The group: a section name (`carp2`) or VHID@IFACE (`2@igb1`, FreeBSD >= 10 devd).
        #[arg(long, value_name = "NAME")]
        carp: String,
        /// LINK_UP or MASTER: take the group's IPs; LINK_DOWN, BACKUP or INIT: release them.
        #[arg(long, value_name = "EVENT")]
        action: crate::hook::Event,
        /// Configuration file (the daemon's; the legacy mas_ip_manager.cfg works as is).
        #[arg(short = 'c', long = "config", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// Say what would be added or removed (the probe still runs); change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Skip the probe: take the IPs even if another host still answers for them.
        #[arg(long)]
        force: bool,
        /// Format of the warnings on stderr (the report lines on stdout stay plain).
        /// Default: journald when stderr is systemd's journal stream, else text.
        #[arg(long, value_enum, value_name = "FORMAT")]
        log_format: Option<crate::logging::LogFormat>,
    },
    /// Show every group's state and why, from the running daemon (or, without one, which
    /// configured IPs are on this host now).
    ///
    /// Exit status: 0 the daemon answered, 1 it did not. With --check: 0 OK, 1 WARNING,
    /// 2 CRITICAL, 3 UNKNOWN (Nagios/Zabbix plugin convention).
    Status {
        #[arg(short = 'c', long = "config", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// Print the status document as JSON (stable field names; see README).
        #[arg(long, conflicts_with = "check")]
        json: bool,
        /// Print one line and exit with a monitoring plugin's code.
        #[arg(long)]
        check: bool,
    },
    /// Advertise a group as least preferred so peers take over at once; kept across daemon
    /// restarts until `ipfail promote`.
    Demote(Targets),
    /// Undo `ipfail demote`: a preferred host with preempt takes the group back.
    Promote(Targets),
    /// Take a group's IPs on this MASTER although another host still answers for them (a
    /// "zombie": `ipfail status` names it), and defend them with gratuitous ARP until
    /// `--undo` or the other host falls silent. Needs --despite-answers.
    Takeover {
        /// The group (section name).
        group: String,
        /// Confirm: you checked that the host answering for the IPs is dead to its service.
        #[arg(long, conflicts_with = "undo")]
        despite_answers: bool,
        /// End the forced takeover: IPs still claimed by the other host are given back.
        #[arg(long)]
        undo: bool,
        #[arg(short = 'c', long = "config", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Re-read the configuration and apply what changed (the same as SIGHUP).
    Reload {
        #[arg(short = 'c', long = "config", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
}

/// The groups a demote/promote applies to.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["group", "all"])))]
pub struct Targets {
    /// The group (section name).
    pub group: Option<String>,
    /// Every group with a vhid.
    #[arg(long)]
    pub all: bool,
    #[arg(short = 'c', long = "config", default_value = DEFAULT_CONFIG)]
    pub config: PathBuf,
}
