//! Man pages and shell completions generated from the clap definitions in
//! `src/cli.rs`. Shared by `examples/gen_assets` (run by `scripts/package`)
//! and `tests/docs.rs`.
use clap::CommandFactory;
use clap_complete::Shell;
use ipfail::cli::Cli;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// The shells completions are written for, with the file name each gets
/// (the name its Debian directory expects, but bash's, which the package
/// installs as `ipfail`).
pub const SHELLS: [(Shell, &str); 3] = [
    (Shell::Bash, "ipfail.bash"),
    (Shell::Zsh, "_ipfail"),
    (Shell::Fish, "ipfail.fish"),
];

/// The command tree as the man pages see it (no `help` subcommand).
pub fn command() -> clap::Command {
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    cmd
}

/// Writes `OUT/man/ipfail.1`, one `OUT/man/ipfail-SUB.1` per visible
/// subcommand, and `OUT/completions/*`; returns the files written.
pub fn generate(out: &Path) -> io::Result<Vec<PathBuf>> {
    let man_dir = out.join("man");
    let comp_dir = out.join("completions");
    fs::create_dir_all(&man_dir)?;
    fs::create_dir_all(&comp_dir)?;
    let mut written = Vec::new();

    let cmd = command();
    let subs: Vec<clap::Command> = cmd
        .get_subcommands()
        .filter(|c| !c.is_hide_set())
        .cloned()
        .collect();
    let sub_pages: Vec<String> = subs
        .iter()
        .map(|c| format!("{}(1)", display_name(c)))
        .collect();

    let mut see_also = sub_pages.clone();
    see_also.push("ipfail.cfg(5)".to_string());
    written.push(page(&man_dir, cmd.clone(), &see_also)?);
    for sub in subs {
        let see_also = ["ipfail(1)".to_string(), "ipfail.cfg(5)".to_string()];
        written.push(page(&man_dir, sub, &see_also)?);
    }

    for (shell, file) in SHELLS {
        let mut buf = Vec::new();
        clap_complete::generate(shell, &mut Cli::command(), "ipfail", &mut buf);
        let path = comp_dir.join(file);
        fs::write(&path, buf)?;
        written.push(path);
    }
    Ok(written)
}

fn display_name(cmd: &clap::Command) -> String {
    cmd.get_display_name()
        .unwrap_or_else(|| cmd.get_name())
        .to_string()
}

/// One page: clap_mangen's rendering plus SEE ALSO and FILES sections.
fn page(dir: &Path, cmd: clap::Command, see_also: &[String]) -> io::Result<PathBuf> {
    let man = clap_mangen::Man::new(cmd).manual("ipfail manual");
    let path = dir.join(man.get_filename());
    let mut buf = Vec::new();
    man.render(&mut buf)?;
    buf.extend_from_slice(
        b".SH FILES\n\
          .TP\n\
          .I /etc/ipfail/ipfail.cfg\n\
          The configuration of the Debian package's service (see ipfail.cfg(5)).\n\
          .TP\n\
          .I /usr/local/etc/mas_ip_manager.cfg\n\
          The default of \\fB\\-c\\fR: the legacy ip_manager location.\n",
    );
    buf.extend_from_slice(b".SH \"SEE ALSO\"\n");
    let refs: Vec<String> = see_also.iter().map(|r| roff_ref(r)).collect();
    buf.extend_from_slice(refs.join(",\n").as_bytes());
    buf.push(b'\n');
    fs::write(&path, buf)?;
    Ok(path)
}

/// "ipfail-check(1)" -> ".BR ipfail\-check (1)".
fn roff_ref(r: &str) -> String {
    let (name, section) = r.split_once('(').unwrap_or((r, ""));
    format!(".BR {} ({}", name.replace('-', "\\-"), section)
}
