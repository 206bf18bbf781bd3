//! A ConfigParser-dialect INI reader that keeps line numbers.
//!
//! The reference is Python's `configparser.ConfigParser` in strict mode with
//! interpolation off and no inline comments, which is what the legacy
//! `ip_manager` script used. One deliberate difference, from docs/design.md §2.1: a
//! blank line ends a multi-line value (`empty_lines_in_values=False`).
//!
//! - `[name]` starts a section; `[DEFAULT]` holds keys every other section
//!   inherits unless it sets them itself.
//! - `key = value` or `key : value`; the first `=` or `:` splits. Keys are
//!   lower-cased, keys and values are trimmed.
//! - A line indented deeper than its key line continues the value; the
//!   pieces are joined with `'\n'`. A blank line ends the value.
//! - A line whose first non-blank character is `#` or `;` is a comment, also
//!   inside a multi-line value. There are no inline comments.
//! - A UTF-8 BOM is skipped; `\n`, `\r\n` and `\r` all end a line.
//!
//! Values are literal (no `%(name)s` interpolation). Duplicate sections,
//! duplicate keys in a section, key lines before the first section and lines
//! that are neither header nor `key = value` are errors with a line number.

/// The section whose keys every other section inherits.
pub const DEFAULT_SECTION: &str = "DEFAULT";

/// A parsed file: its sections in file order, `[DEFAULT]` kept apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ini {
    pub sections: Vec<Section>,
    pub defaults: Option<Section>,
    /// Number of the last line of the text (at least 1), for errors about
    /// something missing from the whole file.
    pub last_line: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub name: String,
    /// Line of the `[name]` header.
    pub line: usize,
    /// Own keys in file order, then inherited `[DEFAULT]` keys in their order.
    pub entries: Vec<Entry>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Lower-cased key.
    pub key: String,
    /// The whole value: the value lines joined with `'\n'` (ConfigParser's
    /// view; the first piece is empty for `key =` followed by indented lines).
    pub value: String,
    /// Line of the key (in `[DEFAULT]` if inherited).
    pub line: usize,
    /// The value line by line, so an error can point at the exact line. The
    /// first item is the part after the separator on the key line.
    pub lines: Vec<ValueLine>,
    /// Taken from `[DEFAULT]` rather than set in this section.
    pub inherited: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueLine {
    pub line: usize,
    /// Trimmed text of this piece of the value.
    pub text: String,
}

impl Section {
    /// The entry for `key` (already lower-case), own or inherited.
    pub fn get(&self, key: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.key == key)
    }
}

/// A syntax error and the line it is on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {kind}")]
pub struct IniError {
    pub line: usize,
    pub kind: SyntaxError,
}

/// What is wrong with a line. Text from the file is shown escaped and cut
/// short (see [`shown`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SyntaxError {
    #[error("'{0}' comes before the first [section] header")]
    BeforeSection(String),
    #[error("expected '[section]' or 'key = value', found '{0}'")]
    NoSeparator(String),
    #[error("'{0}' has no key name before the '=' or ':'")]
    EmptyKey(String),
    #[error("section header '{0}' has no closing ']'")]
    Unclosed(String),
    #[error("section header '{0}' has an empty name")]
    EmptySection(String),
    #[error("unexpected text '{text}' after section header [{name}]")]
    AfterHeader { name: String, text: String },
    #[error("section [{name}] appears twice (first at line {first})")]
    DuplicateSection { name: String, first: usize },
    #[error("key '{key}' appears twice in [{section}] (first at line {first})")]
    DuplicateKey {
        key: String,
        section: String,
        first: usize,
    },
}

/// File text made safe and short for an error message: control characters
/// and quotes escaped, at most 60 characters.
pub fn shown(text: &str) -> String {
    const MAX: usize = 60;
    let mut out: String = text
        .chars()
        .take(MAX)
        .flat_map(char::escape_debug)
        .collect();
    if text.chars().nth(MAX).is_some() {
        out.push_str("...");
    }
    out
}

/// Parses INI text (see the module documentation for the dialect).
pub fn parse(text: &str) -> Result<Ini, IniError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut parser = Parser::default();
    let mut count = 0;
    for (index, raw) in lines(text).enumerate() {
        count = index + 1;
        parser.line(count, raw)?;
    }
    // A final line break does not start another line.
    if text.ends_with(['\n', '\r']) {
        count = count.saturating_sub(1);
    }
    Ok(parser.finish(count.max(1)))
}

/// Splits on `\n`, `\r\n` and lone `\r`, as Python's universal newlines do.
fn lines(text: &str) -> impl Iterator<Item = &str> {
    text.split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .flat_map(|l| l.split('\r'))
}

#[derive(Clone, Copy)]
enum Target {
    Defaults,
    Section(usize),
}

#[derive(Default)]
struct Parser {
    sections: Vec<Section>,
    defaults: Option<Section>,
    current: Option<Target>,
    /// Indentation of the key line whose value may still continue.
    open: Option<usize>,
}

impl Parser {
    fn current_mut(&mut self) -> Option<&mut Section> {
        match self.current? {
            Target::Defaults => self.defaults.as_mut(),
            Target::Section(i) => self.sections.get_mut(i),
        }
    }

    fn line(&mut self, line: usize, raw: &str) -> Result<(), IniError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            self.open = None;
            return Ok(());
        }
        // A comment neither ends nor continues a value (as ConfigParser).
        if trimmed.starts_with(['#', ';']) {
            return Ok(());
        }
        // ConfigParser counts characters, so a tab is one column.
        let indent = raw.chars().take_while(|c| c.is_whitespace()).count();
        if self.open.is_some_and(|key_indent| indent > key_indent) {
            if let Some(entry) = self.current_mut().and_then(|s| s.entries.last_mut()) {
                entry.lines.push(ValueLine {
                    line,
                    text: trimmed.to_string(),
                });
                return Ok(());
            }
        }
        self.open = None;
        match trimmed.strip_prefix('[') {
            Some(inner) => self.header(line, trimmed, inner),
            None => self.key(line, indent, trimmed),
        }
    }

    fn header(&mut self, line: usize, trimmed: &str, inner: &str) -> Result<(), IniError> {
        let err = |kind| Err(IniError { line, kind });
        let Some((name, rest)) = inner.rsplit_once(']') else {
            return err(SyntaxError::Unclosed(shown(trimmed)));
        };
        let name = name.trim();
        let rest = rest.trim();
        if name.is_empty() {
            return err(SyntaxError::EmptySection(shown(trimmed)));
        }
        // ConfigParser silently ignores text after `]`; accept only a comment.
        if !rest.is_empty() && !rest.starts_with(['#', ';']) {
            return err(SyntaxError::AfterHeader {
                name: shown(name),
                text: shown(rest),
            });
        }
        let first = if name == DEFAULT_SECTION {
            self.defaults.as_ref().map(|s| s.line)
        } else {
            self.sections
                .iter()
                .find(|s| s.name == name)
                .map(|s| s.line)
        };
        if let Some(first) = first {
            return err(SyntaxError::DuplicateSection {
                name: shown(name),
                first,
            });
        }
        let section = Section {
            name: name.to_string(),
            line,
            entries: Vec::new(),
        };
        if name == DEFAULT_SECTION {
            self.defaults = Some(section);
            self.current = Some(Target::Defaults);
        } else {
            self.sections.push(section);
            self.current = Some(Target::Section(self.sections.len() - 1));
        }
        Ok(())
    }

    fn key(&mut self, line: usize, indent: usize, trimmed: &str) -> Result<(), IniError> {
        let err = |kind| Err(IniError { line, kind });
        let Some(section) = self.current_mut() else {
            return err(SyntaxError::BeforeSection(shown(trimmed)));
        };
        let Some((key, value)) = trimmed
            .find(['=', ':'])
            .and_then(|pos| trimmed.split_at_checked(pos))
        else {
            return err(SyntaxError::NoSeparator(shown(trimmed)));
        };
        // `value` still starts with the one-byte separator.
        let value = value.get(1..).unwrap_or("").trim();
        let key = key.trim().to_lowercase();
        if key.is_empty() {
            return err(SyntaxError::EmptyKey(shown(trimmed)));
        }
        if let Some(first) = section.get(&key) {
            return err(SyntaxError::DuplicateKey {
                key: shown(&key),
                section: shown(&section.name),
                first: first.line,
            });
        }
        section.entries.push(Entry {
            key,
            value: String::new(),
            line,
            lines: vec![ValueLine {
                line,
                text: value.to_string(),
            }],
            inherited: false,
        });
        self.open = Some(indent);
        Ok(())
    }

    fn finish(mut self, last_line: usize) -> Ini {
        let all = self.sections.iter_mut().chain(self.defaults.as_mut());
        for entry in all.flat_map(|s| s.entries.iter_mut()) {
            let pieces: Vec<&str> = entry.lines.iter().map(|l| l.text.as_str()).collect();
            entry.value = pieces.join("\n");
        }
        if let Some(defaults) = &self.defaults {
            for section in &mut self.sections {
                for entry in &defaults.entries {
                    if section.get(&entry.key).is_none() {
                        section.entries.push(Entry {
                            inherited: true,
                            ..entry.clone()
                        });
                    }
                }
            }
        }
        Ini {
            sections: self.sections,
            defaults: self.defaults,
            last_line,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> Ini {
        match parse(text) {
            Ok(ini) => ini,
            Err(e) => panic!("{e}"),
        }
    }

    fn err(text: &str) -> IniError {
        match parse(text) {
            Ok(ini) => panic!("parsed, expected an error: {ini:?}"),
            Err(e) => e,
        }
    }

    fn values(section: &Section) -> Vec<(&str, &str, usize)> {
        section
            .entries
            .iter()
            .map(|e| (e.key.as_str(), e.value.as_str(), e.line))
            .collect()
    }

    #[test]
    fn legacy_file_sections_values_and_lines() {
        let ini = ok("[carp1]\ninterface = igb1\nips : 208.43.48.2\n      208.43.48.3\n      \
                      208.43.48.4\n[carp2]\ninterface = igb1\nips : 208.43.48.5\n      208.43.48.6\n");
        assert_eq!(ini.sections.len(), 2);
        assert_eq!(ini.last_line, 9);
        let (c1, c2) = (&ini.sections[0], &ini.sections[1]);
        assert_eq!((c1.name.as_str(), c1.line), ("carp1", 1));
        assert_eq!(
            values(c1),
            [
                ("interface", "igb1", 2),
                ("ips", "208.43.48.2\n208.43.48.3\n208.43.48.4", 3)
            ]
        );
        let lines: Vec<usize> = c1.entries[1].lines.iter().map(|l| l.line).collect();
        assert_eq!(lines, [3, 4, 5]);
        assert_eq!((c2.name.as_str(), c2.line), ("carp2", 6));
        assert_eq!(values(c2)[1], ("ips", "208.43.48.5\n208.43.48.6", 8));
    }

    #[test]
    fn separators_case_and_whitespace() {
        let ini = ok("[s]\nA: 1\nB  =  two words  \nc=x=y:z\nd : e = f\nE_mpty =\t\n");
        assert_eq!(
            values(&ini.sections[0]),
            [
                ("a", "1", 2),
                ("b", "two words", 3),
                ("c", "x=y:z", 4),
                ("d", "e = f", 5),
                ("e_mpty", "", 6)
            ]
        );
    }

    #[test]
    fn hash_inside_value_is_kept() {
        let ini = ok("[s]\npass = ab#cd ;x\n");
        assert_eq!(ini.sections[0].entries[0].value, "ab#cd ;x");
    }

    #[test]
    fn continuation_comments_blank_lines_and_tabs() {
        let text = "[s]\nips =\n  a\n  # b\n; c\n\tc\n\nd = 1\n";
        let ini = ok(text);
        assert_eq!(
            values(&ini.sections[0]),
            [("ips", "\na\nc", 2), ("d", "1", 8)]
        );
        let lines: Vec<usize> = ini.sections[0].entries[0]
            .lines
            .iter()
            .map(|l| l.line)
            .collect();
        assert_eq!(lines, [2, 3, 6]);
    }

    #[test]
    fn blank_line_ends_value_and_indented_line_after_it_is_a_key() {
        let ini = ok("[s]\na = 1\n  2\n\n  b = 3\n");
        assert_eq!(values(&ini.sections[0]), [("a", "1\n2", 2), ("b", "3", 5)]);
        // ... and without a separator it is an error, not a continuation.
        assert_eq!(err("[s]\na = 1\n\n  2\n").line, 4);
    }

    #[test]
    fn continuation_must_be_deeper_than_its_key() {
        // Like ConfigParser: an indented key continues only on deeper lines.
        let ini = ok("[s]\n  a = 1\n  b = 2\n    c\n");
        assert_eq!(values(&ini.sections[0]), [("a", "1", 2), ("b", "2\nc", 3)]);
    }

    #[test]
    fn indented_line_right_after_header_is_not_a_continuation() {
        let ini = ok("[s]\n  a = 1\n");
        assert_eq!(values(&ini.sections[0]), [("a", "1", 2)]);
    }

    #[test]
    fn crlf_lone_cr_and_bom() {
        let ini = ok("\u{feff}[s]\r\na = 1\r\n  2\r\n\r\nb = 3\rc = 4\r\n");
        assert_eq!(ini.sections[0].name, "s");
        assert_eq!(
            values(&ini.sections[0]),
            [("a", "1\n2", 2), ("b", "3", 5), ("c", "4", 6)]
        );
        assert_eq!(ini.last_line, 6);
    }

    #[test]
    fn default_section_is_inherited_with_its_own_lines() {
        let ini = ok("[DEFAULT]\ninterface = igb1\nadvskew = 5\n[a]\nadvskew = 7\n[b]\n");
        assert_eq!(ini.sections.len(), 2);
        let a = &ini.sections[0];
        assert_eq!(values(a), [("advskew", "7", 5), ("interface", "igb1", 2)]);
        assert!(!a.entries[0].inherited && a.entries[1].inherited);
        let b = &ini.sections[1];
        assert_eq!(values(b), [("interface", "igb1", 2), ("advskew", "5", 3)]);
        assert!(b.entries.iter().all(|e| e.inherited));
        assert_eq!(ini.defaults.map(|d| d.line), Some(1));
    }

    #[test]
    fn header_forms() {
        let ini = ok("[ spaced ]\n[x] # comment\n[y]; comment\n");
        let names: Vec<&str> = ini.sections.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["spaced", "x", "y"]);
    }

    #[test]
    fn errors_carry_line_numbers() {
        let cases: &[(&str, usize, &str)] = &[
            (
                "# c\n\nkey = 1\n",
                3,
                "'key = 1' comes before the first [section] header",
            ),
            (
                "[s]\na = 1\njunk\n",
                3,
                "expected '[section]' or 'key = value', found 'junk'",
            ),
            (
                "[s]\n = 1\n",
                2,
                "'= 1' has no key name before the '=' or ':'",
            ),
            ("[s]\n[t\n", 2, "section header '[t' has no closing ']'"),
            ("[s]\n[ ]\n", 2, "section header '[ ]' has an empty name"),
            ("[s] x\n", 1, "unexpected text 'x' after section header [s]"),
            (
                "[s]\n[t]\n[s]\n",
                3,
                "section [s] appears twice (first at line 1)",
            ),
            (
                "[DEFAULT]\n[DEFAULT]\n",
                2,
                "section [DEFAULT] appears twice (first at line 1)",
            ),
            (
                "[s]\nA = 1\n\na = 2\n",
                4,
                "key 'a' appears twice in [s] (first at line 2)",
            ),
        ];
        for &(text, line, message) in cases {
            let e = err(text);
            assert_eq!(
                (e.line, e.kind.to_string().as_str()),
                (line, message),
                "{text:?}"
            );
        }
    }

    #[test]
    fn error_text_is_escaped_and_short() {
        let e = err("[s]\n\u{1b}[31m\"x\u{7f}\n");
        assert_eq!(e.line, 2);
        assert!(!e.to_string().contains('\u{1b}'), "{e}");
        let long = "x".repeat(500);
        let e = err(&format!("[s]\n{long}\n"));
        assert!(e.to_string().len() < 150, "{e}");
    }

    #[test]
    fn empty_and_comment_only_text() {
        let ini = ok("");
        assert!(ini.sections.is_empty() && ini.defaults.is_none());
        assert_eq!(ini.last_line, 1);
        assert_eq!(ok("# a\n; b\n\n").last_line, 3);
    }
}
