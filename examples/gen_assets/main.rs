//! Writes ipfail's man pages and shell completions, generated from the clap
//! definitions, into a directory: `OUT/man/*.1`, `OUT/completions/{ipfail.bash,
//! _ipfail,ipfail.fish}`. `scripts/package` runs it before `cargo deb`.
//!
//! An example rather than a subcommand so that clap_mangen and clap_complete
//! (dev-dependencies) stay out of the release binary and its build.
//!
//! Usage: cargo run --release --example gen_assets -- OUT
mod render;

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let (Some(out), None) = (args.next(), args.next()) else {
        eprintln!("usage: gen_assets OUT_DIR");
        return ExitCode::from(2);
    };
    match render::generate(std::path::Path::new(&out)) {
        Ok(files) => {
            for f in files {
                println!("{}", f.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("gen_assets: {}: {e}", std::path::Path::new(&out).display());
            ExitCode::from(1)
        }
    }
}
