//! What the daemon keeps across restarts in `state_dir`: the groups the
//! operator demoted (`ipfail demote`), one name per line in
//! `STATE_DIR/demoted`, until `ipfail promote` removes them.
//!
//! The file is replaced atomically (temporary file, fsync, rename, fsync of
//! the directory), so a crash leaves either the old or the new list.

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// File name of the demotion list inside `state_dir`.
pub const DEMOTED_FILE: &str = "demoted";
/// A larger file is not ours; refuse it rather than read it all.
const MAX_SIZE: u64 = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("{}: cannot read: {source}", .path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("{}: larger than {MAX_SIZE} bytes; not a demotion list", .path.display())]
    TooLarge { path: PathBuf },
    #[error("{}: cannot write: {source}", .path.display())]
    Write { path: PathBuf, source: io::Error },
}

/// `STATE_DIR/demoted`.
pub fn demoted_path(state_dir: &Path) -> PathBuf {
    state_dir.join(DEMOTED_FILE)
}

/// The demoted group names; a missing file is an empty list. Blank lines
/// and `#` comments are skipped.
pub fn load_demoted(state_dir: &Path) -> Result<BTreeSet<String>, StateError> {
    let path = demoted_path(state_dir);
    let read = |source| StateError::Read {
        path: path.clone(),
        source,
    };
    let file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(BTreeSet::new()),
        Err(e) => return Err(read(e)),
    };
    let mut bytes = Vec::new();
    file.take(MAX_SIZE + 1)
        .read_to_end(&mut bytes)
        .map_err(read)?;
    if bytes.len() as u64 > MAX_SIZE {
        return Err(StateError::TooLarge { path });
    }
    Ok(parse(&String::from_utf8_lossy(&bytes)))
}

fn parse(text: &str) -> BTreeSet<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect()
}

/// Replaces the list atomically; an empty list removes the file. Creates
/// `state_dir` (mode 0755) if needed.
pub fn save_demoted(state_dir: &Path, groups: &BTreeSet<String>) -> Result<(), StateError> {
    let path = demoted_path(state_dir);
    let write = |p: &Path, source| StateError::Write {
        path: p.to_path_buf(),
        source,
    };
    if groups.is_empty() {
        return match fs::remove_file(&path) {
            Ok(()) => sync_dir(state_dir).map_err(|e| write(state_dir, e)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(write(&path, e)),
        };
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(state_dir)
        .map_err(|e| write(state_dir, e))?;
    let tmp = state_dir.join(format!(".{DEMOTED_FILE}.tmp.{}", std::process::id()));
    let mut text =
        String::from("# groups demoted by `ipfail demote`; `ipfail promote` removes them\n");
    for g in groups {
        text.push_str(g);
        text.push('\n');
    }
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        fs::rename(&tmp, &path)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(write(&path, e));
    }
    sync_dir(state_dir).map_err(|e| write(state_dir, e))
}

/// fsync of a directory makes a rename or unlink in it durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("ipfail-state-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn demotion_list_round_trips_and_survives_a_reload_from_disk() {
        let d = dir("roundtrip").join("nested");
        assert_eq!(load_demoted(&d).ok(), Some(BTreeSet::new()), "missing dir");
        save_demoted(&d, &set(&["web", "db"])).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(load_demoted(&d).ok(), Some(set(&["db", "web"])));
        let text = fs::read_to_string(demoted_path(&d)).unwrap_or_default();
        assert!(text.ends_with("db\nweb\n"), "{text}");
        // Nothing is left behind but the file itself.
        let names: Vec<_> = fs::read_dir(&d)
            .map(|r| r.filter_map(|e| e.ok()).map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert_eq!(names, vec![std::ffi::OsString::from(DEMOTED_FILE)]);

        save_demoted(&d, &set(&["db"])).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(load_demoted(&d).ok(), Some(set(&["db"])));
        save_demoted(&d, &BTreeSet::new()).unwrap_or_else(|e| panic!("{e}"));
        assert!(!demoted_path(&d).exists(), "an empty list removes the file");
        save_demoted(&d, &BTreeSet::new()).unwrap_or_else(|e| panic!("{e}"));
        let _ = fs::remove_dir_all(d.parent().unwrap_or(&d));
    }

    #[test]
    fn hand_edited_files_are_read_leniently_and_huge_ones_refused() {
        assert_eq!(parse("# c\n\n  web  \r\ndb\n#x\n"), set(&["web", "db"]));
        let d = dir("huge");
        fs::create_dir_all(&d).unwrap_or_else(|e| panic!("{e}"));
        let size = usize::try_from(MAX_SIZE).unwrap_or(usize::MAX) + 1;
        fs::write(demoted_path(&d), vec![b'a'; size]).unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(load_demoted(&d), Err(StateError::TooLarge { .. })));
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn an_unwritable_state_dir_is_an_error_naming_the_path() {
        let d = dir("ro");
        fs::create_dir_all(&d).unwrap_or_else(|e| panic!("{e}"));
        // A regular file where the directory should be: fails even for root.
        let blocked = d.join("file");
        fs::write(&blocked, "x").unwrap_or_else(|e| panic!("{e}"));
        let e = save_demoted(&blocked, &set(&["web"]))
            .err()
            .unwrap_or_else(|| panic!("wrote below a regular file"));
        assert!(
            e.to_string().contains(&blocked.display().to_string()),
            "{e}"
        );
        let _ = fs::remove_dir_all(&d);
    }
}
