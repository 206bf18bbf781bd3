//! Which section `--carp NAME` means: a section name (`carp2`, FreeBSD ≤ 9
//! `carpN` interfaces) or `VHID@IFACE` (FreeBSD ≥ 10 devd `subsystem`),
//! which selects the section with that `vhid` on that interface.

use crate::config::ini::shown;
use crate::config::{Config, Group};

/// A `--carp` value that names no section.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("{}: no section [{name}] (sections: {known})", .path)]
    UnknownSection {
        name: String,
        path: String,
        known: String,
    },
    #[error(
        "{}: no section has vhid {vhid} on interface {iface} \
         (sections with a vhid: {known})",
        .path
    )]
    UnknownVhid {
        vhid: u8,
        iface: String,
        path: String,
        known: String,
    },
    #[error("'{0}' is not VHID@IFACE: the vhid must be a number 1..=255")]
    BadVhid(String),
}

/// Resolves `name` to its section. Section names cannot contain `@`
/// (the config refuses them), so the two forms never overlap.
pub fn resolve<'a>(config: &'a Config, name: &str) -> Result<&'a Group, TargetError> {
    let path = config.path.display().to_string();
    if let Some(g) = config.group(name) {
        return Ok(g);
    }
    let Some((vhid, iface)) = name.split_once('@') else {
        let known = config
            .groups
            .iter()
            .map(|g| g.name.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        return Err(TargetError::UnknownSection {
            name: shown(name),
            path,
            known,
        });
    };
    let vhid: u8 = vhid
        .parse()
        .ok()
        .filter(|&v| v > 0 && !vhid.starts_with('+'))
        .ok_or_else(|| TargetError::BadVhid(shown(name)))?;
    config
        .find_by_vhid(vhid, iface)
        .ok_or_else(|| TargetError::UnknownVhid {
            vhid,
            iface: shown(iface),
            path,
            known: known_vhids(config),
        })
}

/// `2@igb1 [carp2], 3@igb1 [carp3]`, or `none`.
fn known_vhids(config: &Config) -> String {
    let list: Vec<String> = config
        .carp_groups()
        .filter_map(|g| {
            Some(format!(
                "{}@{} [{}]",
                g.vhid()?,
                g.carp_interface()?,
                g.name
            ))
        })
        .collect();
    if list.is_empty() {
        "none".to_string()
    } else {
        list.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const CFG: &str = "[carp1]\ninterface = igb1\nips = 192.0.2.1\n\
                       [carp2]\ninterface = igb1\nvhid = 2\nips = 192.0.2.2\n\
                       [other]\ninterface = igb0\ncarp_interface = igb1\nvhid = 3\nips = 192.0.2.3\n";

    fn cfg() -> Config {
        crate::config::parse(CFG, Path::new("x.cfg")).unwrap_or_else(|e| panic!("{e}"))
    }

    fn name(r: Result<&Group, TargetError>) -> Result<&str, String> {
        r.map(|g| g.name.as_str()).map_err(|e| e.to_string())
    }

    #[test]
    fn section_names_and_vhid_at_iface() {
        let c = cfg();
        assert_eq!(name(resolve(&c, "carp1")), Ok("carp1"));
        assert_eq!(name(resolve(&c, "carp2")), Ok("carp2"));
        assert_eq!(name(resolve(&c, "2@igb1")), Ok("carp2"));
        // carp_interface is where the vhid lives; interface matches too.
        assert_eq!(name(resolve(&c, "3@igb1")), Ok("other"));
        assert_eq!(name(resolve(&c, "3@igb0")), Ok("other"));
    }

    #[test]
    fn unknown_names_list_what_exists() {
        let c = cfg();
        assert_eq!(
            name(resolve(&c, "carp9")),
            Err("x.cfg: no section [carp9] (sections: carp1, carp2, other)".into())
        );
        assert_eq!(
            name(resolve(&c, "2@igb7")),
            Err("x.cfg: no section has vhid 2 on interface igb7 \
                 (sections with a vhid: 2@igb1 [carp2], 3@igb1 [other])"
                .into())
        );
        assert_eq!(
            name(resolve(&c, "1@igb1")).map_err(|e| e.contains("no section has vhid 1")),
            Err(true)
        );
        for bad in ["0@igb1", "256@igb1", "x@igb1", "@igb1", "+2@igb1"] {
            assert_eq!(
                name(resolve(&c, bad)),
                Err(format!(
                    "'{bad}' is not VHID@IFACE: the vhid must be a number 1..=255"
                ))
            );
        }
        // Control characters from the command line are shown escaped.
        assert_eq!(
            name(resolve(&c, "carp\n1")),
            Err("x.cfg: no section [carp\\n1] (sections: carp1, carp2, other)".into())
        );
    }
}
