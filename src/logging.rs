//! Log output of the daemon (and the hook's warnings) on stderr, in one of
//! three formats (`ipfail daemon --log-format`):
//!
//! - `journald`: every line starts with its syslog priority, `<3>` error,
//!   `<4>` warning, `<6>` info, `<7>` debug, which journald's stream reader
//!   turns into the entry's PRIORITY (systemd.exec(5) `SyslogLevelPrefix=`,
//!   on by default), so `journalctl -p warning` filters by level. No
//!   timestamp (the journal adds its own); the structured fields follow the
//!   message as `group=web vhid=10 ip=203.0.113.10/32`, so
//!   `journalctl -u ipfail -g 'group=web'` finds a group's lines. A message
//!   spanning several lines gets the prefix on each line: journald splits
//!   the stream at newlines.
//! - `json`: one JSON object per line, `{"timestamp":..., "level":"WARN",
//!   "message":..., "group":"web", ...}`, the fields at the top level.
//! - `text`: `TIMESTAMP LEVEL message key=value...`, for a terminal.
//!
//! Why the stream prefix rather than the journal's native socket (e.g. the
//! `tracing-journald` crate): it needs no running journal (tests and a
//! daemon started by hand write the same lines), nothing is lost when
//! journald restarts (the stream is systemd's, kept across), and stderr is
//! where systemd already connects a service. The price: group, vhid, ip
//! and state are in the message text, not separate journal fields.
//!
//! Without `--log-format`, `journald` is chosen when stderr is the journal
//! stream systemd set up: `$JOURNAL_STREAM` is `DEVICE:INODE` of that
//! stream, and systemd.exec(5) says to compare it with stderr's, so a
//! process whose stderr was redirected elsewhere (e.g. a script started
//! from a service) still writes text.

use std::os::unix::fs::MetadataExt;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::{self, FormatEvent, FormatFields, Writer};
use tracing_subscriber::fmt::FmtContext;
use tracing_subscriber::registry::LookupSpan;

/// `--log-format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// `<N>` syslog priority prefix per line, for systemd's journal.
    Journald,
    /// One JSON object per line.
    Json,
    /// Timestamp, level, message and fields.
    Text,
}

impl LogFormat {
    /// The default: `journald` when stderr is the stream `$JOURNAL_STREAM`
    /// names, else `text`.
    pub fn detect() -> LogFormat {
        let Some(wanted) = std::env::var_os("JOURNAL_STREAM") else {
            return LogFormat::Text;
        };
        let stderr = std::fs::metadata("/proc/self/fd/2")
            .ok()
            .map(|m| (m.dev(), m.ino()));
        if stderr.is_some_and(|s| is_journal_stream(&wanted.to_string_lossy(), s)) {
            LogFormat::Journald
        } else {
            LogFormat::Text
        }
    }
}

/// Whether `value` (`$JOURNAL_STREAM`, `DEVICE:INODE` in decimal) names
/// the file `(dev, ino)`.
pub fn is_journal_stream(value: &str, (dev, ino): (u64, u64)) -> bool {
    let Some((d, i)) = value.trim().split_once(':') else {
        return false;
    };
    d.parse::<u64>().ok() == Some(dev) && i.parse::<u64>().ok() == Some(ino)
}

/// The syslog priority of a level (syslog(3): 3 err, 4 warning, 6 info,
/// 7 debug).
pub fn syslog_priority(level: Level) -> u8 {
    match level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        Level::DEBUG | Level::TRACE => 7,
    }
}

/// The `journald` format: `<N>message key=value...`, the prefix on every
/// line of the event.
pub struct Journald {
    inner: format::Format<format::Full, ()>,
}

impl Default for Journald {
    fn default() -> Self {
        Journald {
            inner: format::Format::default()
                .without_time()
                .with_level(false)
                .with_target(false)
                .with_ansi(false),
        }
    }
}

impl<S, N> FormatEvent<S, N> for Journald
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let mut line = String::new();
        self.inner
            .format_event(ctx, Writer::new(&mut line), event)?;
        let prio = syslog_priority(*event.metadata().level());
        for part in line.trim_end_matches('\n').split('\n') {
            writeln!(writer, "<{prio}>{part}")?;
        }
        Ok(())
    }
}

/// Installs the global subscriber: `level` and up, to stderr, as `format`.
pub fn init(format: LogFormat, level: Level) {
    let builder = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_ansi(false);
    match format {
        LogFormat::Journald => builder.event_format(Journald::default()).init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .init(),
        LogFormat::Text => builder.init(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::fmt::MakeWriter;

    /// Collects what a subscriber writes.
    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl Write for Buf {
        fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| std::io::Error::other("poisoned"))?
                .extend_from_slice(data);
            Ok(data.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buf {
        type Writer = Buf;
        fn make_writer(&'a self) -> Buf {
            self.clone()
        }
    }

    impl Buf {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    /// The log lines of `f`, written in `format` (debug and up).
    fn capture(format: LogFormat, f: impl FnOnce()) -> String {
        let buf = Buf::default();
        let builder = tracing_subscriber::fmt()
            .with_max_level(Level::DEBUG)
            .with_writer(buf.clone())
            .with_ansi(false);
        match format {
            LogFormat::Journald => {
                let sub = builder.event_format(Journald::default()).finish();
                tracing::subscriber::with_default(sub, f);
            }
            LogFormat::Json => {
                let sub = builder
                    .json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .with_span_list(false)
                    .finish();
                tracing::subscriber::with_default(sub, f);
            }
            LogFormat::Text => {
                tracing::subscriber::with_default(builder.finish(), f);
            }
        }
        buf.text()
    }

    #[test]
    fn journald_lines_carry_the_priority_of_their_level() {
        let out = capture(LogFormat::Journald, || {
            tracing::error!("e");
            tracing::warn!("w");
            tracing::info!("i");
            tracing::debug!("d");
        });
        assert_eq!(out, "<3>e\n<4>w\n<6>i\n<7>d\n");
    }

    #[test]
    fn journald_keeps_the_fields_and_has_no_timestamp() {
        let name = "web";
        let out = capture(LogFormat::Journald, || {
            tracing::info!(group = %name, vhid = 10u8, "BACKUP -> MASTER: master down");
        });
        assert_eq!(
            out, "<6>BACKUP -> MASTER: master down group=web vhid=10\n",
            "{out:?}"
        );
    }

    #[test]
    fn journald_prefixes_every_line_of_a_multiline_message() {
        let out = capture(LogFormat::Journald, || {
            tracing::error!("refusing to start:\nline 1\nline 2");
        });
        assert_eq!(out, "<3>refusing to start:\n<3>line 1\n<3>line 2\n");
    }

    #[test]
    fn json_is_one_object_per_line_with_the_fields_on_top() {
        let ip = "203.0.113.10/32";
        let out = capture(LogFormat::Json, || {
            tracing::warn!(group = "web", ip = %ip, "could not add: busy");
            tracing::info!(group = "web", vhid = 10u8, state = "MASTER", "x\ny");
        });
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 2, "{out}");
        let first: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(first["level"], "WARN");
        assert_eq!(first["message"], "could not add: busy");
        assert_eq!(first["group"], "web");
        assert_eq!(first["ip"], "203.0.113.10/32");
        assert!(first["timestamp"].is_string(), "{first}");
        let second: serde_json::Value = serde_json::from_str(lines[1]).unwrap();
        assert_eq!(second["vhid"], 10);
        assert_eq!(second["state"], "MASTER");
        assert_eq!(second["message"], "x\ny");
    }

    #[test]
    fn text_has_level_and_fields() {
        let out = capture(LogFormat::Text, || {
            tracing::warn!(group = "web", "link down");
        });
        assert!(out.contains(" WARN "), "{out}");
        assert!(out.trim_end().ends_with("link down group=\"web\""), "{out}");
    }

    #[test]
    fn journal_stream_must_name_stderr() {
        assert!(is_journal_stream("8:12345", (8, 12345)));
        assert!(is_journal_stream("8:12345\n", (8, 12345)));
        assert!(!is_journal_stream("8:12345", (8, 1)));
        assert!(!is_journal_stream("8", (8, 12345)));
        assert!(!is_journal_stream("", (8, 12345)));
        assert!(!is_journal_stream("x:y", (8, 12345)));
    }
}
