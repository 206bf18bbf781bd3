//! The control protocol between the daemon and `ipfail status | demote |
//! promote | reload`: JSON lines over a Unix socket, version 1.
//!
//! One request line per connection, one reply line, then the daemon closes:
//!
//! ```text
//! {"v":1,"cmd":"status"}
//! {"v":1,"cmd":"demote","group":"web"}     {"v":1,"cmd":"demote","all":true}
//! {"v":1,"cmd":"promote","group":"web"}    {"v":1,"cmd":"promote","all":true}
//! {"v":1,"cmd":"reload"}
//! {"v":1,"cmd":"takeover","group":"web","despite_answers":true}
//! {"v":1,"cmd":"takeover","group":"web","undo":true}
//! ```
//!
//! `takeover` without `"despite_answers":true` or `"undo":true` is refused
//! here, before the daemon sees it: a forced takeover is never implied.
//!
//! Replies are `{"v":1,"ok":true,...}` or `{"v":1,"ok":false,"error":"..."}`.
//! Unknown fields in a request are ignored (newer clients may add optional
//! ones); an unknown version or command, bad JSON or a line over
//! [`MAX_LINE`] bytes get an error reply.

pub mod client;
mod metrics_http;
pub mod schema;
pub(crate) mod server;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use schema::Status;

/// Protocol version spoken here.
pub const VERSION: u64 = 1;
/// Longest request line accepted, without its newline.
pub const MAX_LINE: usize = 64 * 1024;

/// Which groups a demote/promote applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Group(String),
    All,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Status,
    Demote(Target),
    Promote(Target),
    Reload,
    /// Take (or, `undo`, give back) a group's IPs although another host
    /// still answers for them (docs/safety.md, "Forced takeover").
    Takeover {
        group: String,
        undo: bool,
    },
}

/// Why a request line was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("request is not valid JSON: {0}")]
    BadJson(String),
    #[error("request must be a JSON object like {{\"v\":1,\"cmd\":\"status\"}}")]
    NotObject,
    #[error("request has no protocol version \"v\" (this daemon speaks version {VERSION})")]
    NoVersion,
    #[error("unsupported protocol version {0} (this daemon speaks version {VERSION})")]
    Version(String),
    #[error("request has no \"cmd\" (known: status, demote, promote, reload, takeover)")]
    NoCommand,
    #[error("unknown command {0} (known: status, demote, promote, reload, takeover)")]
    UnknownCommand(String),
    #[error("takeover needs \"despite_answers\":true (take the IPs although another host answers) or \"undo\":true, not both")]
    TakeoverUnconfirmed,
    #[error("{0} needs \"group\":NAME or \"all\":true")]
    NoTarget(&'static str),
    #[error("{0} takes \"group\" or \"all\", not both")]
    BothTargets(&'static str),
    #[error("\"group\" must be a non-empty string")]
    BadGroup,
    #[error("request line longer than {MAX_LINE} bytes")]
    TooLong,
    #[error("empty request")]
    Empty,
}

impl Request {
    /// Parses one request line (without its newline).
    pub fn parse(line: &[u8]) -> Result<Request, ProtocolError> {
        if line.len() > MAX_LINE {
            return Err(ProtocolError::TooLong);
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            return Err(ProtocolError::Empty);
        }
        let value: Value =
            serde_json::from_slice(line).map_err(|e| ProtocolError::BadJson(e.to_string()))?;
        let Value::Object(obj) = value else {
            return Err(ProtocolError::NotObject);
        };
        match obj.get("v") {
            None => return Err(ProtocolError::NoVersion),
            Some(v) if v.as_u64() == Some(VERSION) => {}
            Some(v) => return Err(ProtocolError::Version(shorten(&v.to_string()))),
        }
        let cmd = match obj.get("cmd") {
            None => return Err(ProtocolError::NoCommand),
            Some(Value::String(s)) => s.as_str(),
            Some(other) => return Err(ProtocolError::UnknownCommand(shorten(&other.to_string()))),
        };
        let target = |cmd: &'static str| -> Result<Target, ProtocolError> {
            let all = matches!(obj.get("all"), Some(Value::Bool(true)));
            match (obj.get("group"), all) {
                (Some(_), true) => Err(ProtocolError::BothTargets(cmd)),
                (Some(Value::String(g)), false) if !g.is_empty() => Ok(Target::Group(g.clone())),
                (Some(_), false) => Err(ProtocolError::BadGroup),
                (None, true) => Ok(Target::All),
                (None, false) => Err(ProtocolError::NoTarget(cmd)),
            }
        };
        match cmd {
            "status" => Ok(Request::Status),
            "demote" => Ok(Request::Demote(target("demote")?)),
            "promote" => Ok(Request::Promote(target("promote")?)),
            "reload" => Ok(Request::Reload),
            "takeover" => {
                let Target::Group(group) = target("takeover")? else {
                    return Err(ProtocolError::BadGroup);
                };
                let flag = |k: &str| matches!(obj.get(k), Some(Value::Bool(true)));
                match (flag("despite_answers"), flag("undo")) {
                    (true, false) => Ok(Request::Takeover { group, undo: false }),
                    (false, true) => Ok(Request::Takeover { group, undo: true }),
                    _ => Err(ProtocolError::TakeoverUnconfirmed),
                }
            }
            other => Err(ProtocolError::UnknownCommand(shorten(&format!(
                "{other:?}"
            )))),
        }
    }

    /// The request as one line, newline included.
    pub fn to_line(&self) -> String {
        let target = |cmd: &str, t: &Target| match t {
            Target::Group(g) => serde_json::json!({"v": VERSION, "cmd": cmd, "group": g}),
            Target::All => serde_json::json!({"v": VERSION, "cmd": cmd, "all": true}),
        };
        let value = match self {
            Request::Status => serde_json::json!({"v": VERSION, "cmd": "status"}),
            Request::Demote(t) => target("demote", t),
            Request::Promote(t) => target("promote", t),
            Request::Reload => serde_json::json!({"v": VERSION, "cmd": "reload"}),
            Request::Takeover { group, undo: false } => serde_json::json!(
                {"v": VERSION, "cmd": "takeover", "group": group, "despite_answers": true}
            ),
            Request::Takeover { group, undo: true } => {
                serde_json::json!({"v": VERSION, "cmd": "takeover", "group": group, "undo": true})
            }
        };
        format!("{value}\n")
    }
}

/// Echoed input is cut short: an error reply must not be a megabyte long.
fn shorten(s: &str) -> String {
    const MAX: usize = 60;
    match s.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_string(),
    }
}

/// One reply line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    pub v: u64,
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What a command did, for the operator (one line per group or change).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub messages: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Box<Status>>,
}

impl Reply {
    pub fn ok(messages: Vec<String>) -> Reply {
        Reply {
            v: VERSION,
            ok: true,
            error: None,
            messages,
            status: None,
        }
    }

    pub fn status(status: Status) -> Reply {
        Reply {
            status: Some(Box::new(status)),
            ..Reply::ok(Vec::new())
        }
    }

    pub fn error(error: impl Into<String>) -> Reply {
        Reply {
            v: VERSION,
            ok: false,
            error: Some(error.into()),
            messages: Vec::new(),
            status: None,
        }
    }

    /// The reply as one line, newline included.
    pub fn to_line(&self) -> String {
        match serde_json::to_string(self) {
            Ok(s) => s + "\n",
            // Serializing these plain structs cannot fail; answer anyway.
            Err(e) => format!(
                "{{\"v\":{VERSION},\"ok\":false,\"error\":{}}}\n",
                Value::String(format!("cannot encode the reply: {e}"))
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Request, ProtocolError> {
        Request::parse(s.as_bytes())
    }

    #[test]
    fn requests_round_trip() {
        for req in [
            Request::Status,
            Request::Reload,
            Request::Demote(Target::Group("web".into())),
            Request::Demote(Target::All),
            Request::Promote(Target::Group("db-2".into())),
            Request::Promote(Target::All),
            Request::Takeover {
                group: "web".into(),
                undo: false,
            },
            Request::Takeover {
                group: "web".into(),
                undo: true,
            },
        ] {
            let line = req.to_line();
            assert!(line.ends_with('\n') && !line.trim_end().contains('\n'));
            assert_eq!(parse(line.trim_end()), Ok(req), "{line}");
        }
        assert_eq!(
            parse(r#"{"v":1,"cmd":"status","future":"field"}"#),
            Ok(Request::Status),
            "unknown fields are ignored"
        );
        assert_eq!(
            parse(r#"  {"cmd":"demote","v":1,"group":"web","all":false}  "#),
            Ok(Request::Demote(Target::Group("web".into())))
        );
    }

    #[test]
    fn malformed_requests_get_a_reason() {
        let cases: &[(&str, ProtocolError)] = &[
            ("", ProtocolError::Empty),
            (" \t", ProtocolError::Empty),
            ("[1,2]", ProtocolError::NotObject),
            ("\"status\"", ProtocolError::NotObject),
            (r#"{"cmd":"status"}"#, ProtocolError::NoVersion),
            (
                r#"{"v":2,"cmd":"status"}"#,
                ProtocolError::Version("2".into()),
            ),
            (
                r#"{"v":"1","cmd":"status"}"#,
                ProtocolError::Version("\"1\"".into()),
            ),
            (
                r#"{"v":1.5,"cmd":"status"}"#,
                ProtocolError::Version("1.5".into()),
            ),
            (r#"{"v":1}"#, ProtocolError::NoCommand),
            (
                r#"{"v":1,"cmd":"reboot"}"#,
                ProtocolError::UnknownCommand("\"reboot\"".into()),
            ),
            (
                r#"{"v":1,"cmd":7}"#,
                ProtocolError::UnknownCommand("7".into()),
            ),
            (
                r#"{"v":1,"cmd":"demote"}"#,
                ProtocolError::NoTarget("demote"),
            ),
            // A forced takeover is never implied.
            (
                r#"{"v":1,"cmd":"takeover","group":"web"}"#,
                ProtocolError::TakeoverUnconfirmed,
            ),
            (
                r#"{"v":1,"cmd":"takeover","group":"web","despite_answers":"yes"}"#,
                ProtocolError::TakeoverUnconfirmed,
            ),
            (
                r#"{"v":1,"cmd":"takeover","group":"web","despite_answers":true,"undo":true}"#,
                ProtocolError::TakeoverUnconfirmed,
            ),
            (
                r#"{"v":1,"cmd":"takeover","all":true,"despite_answers":true}"#,
                ProtocolError::BadGroup,
            ),
            (
                r#"{"v":1,"cmd":"promote","all":false}"#,
                ProtocolError::NoTarget("promote"),
            ),
            (
                r#"{"v":1,"cmd":"demote","group":"a","all":true}"#,
                ProtocolError::BothTargets("demote"),
            ),
            (
                r#"{"v":1,"cmd":"demote","group":""}"#,
                ProtocolError::BadGroup,
            ),
            (
                r#"{"v":1,"cmd":"demote","group":5}"#,
                ProtocolError::BadGroup,
            ),
        ];
        for (line, want) in cases {
            assert_eq!(parse(line).as_ref(), Err(want), "{line}");
        }
        for garbage in [
            &b"\xff\xfe{"[..],
            b"{\"v\":1,\"cmd\":\"sta",
            b"{\"v\":1,\"cmd\":\"status\"}}",
            b"\0\0\0",
            b"{\"v\":1e999}",
        ] {
            assert!(
                matches!(Request::parse(garbage), Err(ProtocolError::BadJson(_))),
                "{garbage:?}"
            );
        }
    }

    #[test]
    fn hostile_input_is_refused_without_echoing_it_whole() {
        let long = format!(r#"{{"v":1,"cmd":"{}"}}"#, "x".repeat(MAX_LINE));
        assert_eq!(parse(&long), Err(ProtocolError::TooLong));
        let cmd = format!(r#"{{"v":1,"cmd":"{}"}}"#, "y".repeat(1000));
        let e = parse(&cmd).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.len() < 200, "{e}");
        // Deep nesting hits serde_json's recursion limit, not the stack.
        let deep = "[".repeat(10_000);
        assert!(matches!(parse(&deep), Err(ProtocolError::BadJson(_))));
        let deep_obj = format!(r#"{{"v":1,"cmd":"status","x":{}}}"#, "[".repeat(5000));
        assert!(matches!(parse(&deep_obj), Err(ProtocolError::BadJson(_))));
        // A pseudo-random byte soup never panics.
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        for len in 0..2000usize {
            let bytes: Vec<u8> = (0..len % 97)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    b"{}[]\":,v1cmdstatu \\\xff"[(x % 20) as usize]
                })
                .collect();
            let _ = Request::parse(&bytes);
        }
    }

    #[test]
    fn replies_are_one_line_and_parse_back() {
        let r = Reply::error("bad \"thing\"\nhappened");
        let line = r.to_line();
        assert_eq!(line.matches('\n').count(), 1);
        assert!(line.starts_with(r#"{"v":1,"ok":false,"error":"#), "{line}");
        let back: Reply = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, r);
        let ok = Reply::ok(vec!["web: demoted".into()]).to_line();
        assert_eq!(
            ok,
            "{\"v\":1,\"ok\":true,\"messages\":[\"web: demoted\"]}\n"
        );
    }
}
