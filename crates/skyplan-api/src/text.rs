//! Strings from the outside world (the API's answers, the servers' messages) are data, never
//! terminal control: before they reach a terminal, a log or a text file, every control
//! character (C0, DEL, C1: ESC sequences, carriage returns, newlines that would fake a line)
//! is shown escaped. One rule, used wherever such a string is printed.

use std::borrow::Cow;

/// `s` with every control character escaped (`\n`, `\r`, `\t`, `\x1b`, `\u{9b}`, …);
/// borrowed when there is none.
pub fn escape_controls(s: &str) -> Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x80 && c.is_control() => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Whether `s` is a DNS host name (RFC 1123 labels of letters, digits and `-`, dot-separated,
/// at most 253 bytes, an optional final dot) or an IP address: what an `fqdn` must be before it
/// is stored, printed or connected to.
pub fn is_hostname(s: &str) -> bool {
    if s.parse::<std::net::IpAddr>().is_ok() {
        return true;
    }
    let s = s.strip_suffix('.').unwrap_or(s);
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_shown_escaped_and_nothing_else_changes() {
        assert_eq!(escape_controls("plain ümlaut"), "plain ümlaut");
        assert!(matches!(escape_controls("plain"), Cow::Borrowed(_)));
        assert_eq!(escape_controls("a\x1b[2Jb"), "a\\x1b[2Jb");
        assert_eq!(
            escape_controls("x\nError: fake"),
            "x\\nError: fake",
            "a newline cannot fake a line"
        );
        assert_eq!(escape_controls("\x1b]0;title\x07"), "\\x1b]0;title\\x07");
        assert_eq!(escape_controls("\u{9b}31m"), "\\u{9b}31m");
        assert_eq!(escape_controls("\x7f\r\t"), "\\x7f\\r\\t");
    }

    #[test]
    fn host_names_follow_the_grammar() {
        for ok in [
            "db.example.com",
            "localhost",
            "127.0.0.1",
            "::1",
            "a-b.c.",
            "x1",
        ] {
            assert!(is_hostname(ok), "{ok}");
        }
        for bad in [
            "",
            "a..b",
            "-a.b",
            "a\x1b[2J.com",
            "a b",
            "host\n",
            "a_b.com",
        ] {
            assert!(!is_hostname(bad), "{bad:?}");
        }
    }
}
