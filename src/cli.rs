//! Command-line interface: `ipfail daemon | check`.
use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// The default configuration path: the legacy ip_manager file's location.
pub const DEFAULT_CONFIG: &str = "/usr/local/etc/mas_ip_manager.cfg";

#[derive(Debug, Parser)]
#[command(
    name = "ipfail",
    version,
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
    },
    /// Validate a configuration file and print the groups it defines (like `nginx -t`).
    Check {
        #[arg(short = 'c', long = "config", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
}
