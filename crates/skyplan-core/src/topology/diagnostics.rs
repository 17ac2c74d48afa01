//! Located topology errors and their plain-text rendering.
//!
//! Rendering is deliberately hand-written, colourless and deterministic so that it can be
//! snapshot-tested and piped; it follows rustc's layout, which users already know how to read.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use unicode_width::UnicodeWidthChar;

/// A 1-based position in a file, in characters (not bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Location {
    pub line: usize,
    pub column: usize,
}

/// The source line a diagnostic points into, with the part to underline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snippet {
    /// The offending line, without its line terminator.
    pub text: String,
    /// 1-based character column where the underline starts.
    pub column: usize,
    /// Number of characters to underline (at least 1).
    pub len: usize,
}

/// One problem in a topology file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub path: PathBuf,
    /// `None` when the problem concerns the file as a whole (for example it cannot be read).
    pub location: Option<Location>,
    pub message: String,
    pub snippet: Option<Snippet>,
    /// A hint on what to do, e.g. "did you mean `region`?".
    pub help: Option<String>,
}

impl Diagnostic {
    /// A problem with the file as a whole, without a position.
    pub fn whole_file(path: &Path, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            path: path.to_path_buf(),
            location: None,
            message: message.into(),
            snippet: None,
            help: None,
        }
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into());
        self
    }

    pub fn line(&self) -> Option<usize> {
        self.location.map(|l| l.line)
    }

    pub fn column(&self) -> Option<usize> {
        self.location.map(|l| l.column)
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Paths are shown with forward slashes so output is the same on every platform.
        let path = self.path.display().to_string().replace('\\', "/");
        writeln!(f, "error: {}", self.message)?;
        // The gutter holds the line number, right-aligned, at least two columns wide.
        let gutter = self.location.map_or(2, |l| l.line.to_string().len().max(2));
        let pad = " ".repeat(gutter);
        let Some(loc) = self.location else {
            writeln!(f, "{pad}--> {path}")?;
            if let Some(help) = &self.help {
                writeln!(f, "{pad} = help: {help}")?;
            }
            return Ok(());
        };
        writeln!(f, "{pad}--> {path}:{}:{}", loc.line, loc.column)?;
        if let Some(snippet) = &self.snippet {
            let (text, indent, width) = layout_snippet(snippet);
            writeln!(f, "{pad} |")?;
            writeln!(f, "{:>gutter$} |{}", loc.line, prefixed(&text))?;
            writeln!(f, "{pad} | {}{}", " ".repeat(indent), "^".repeat(width))?;
        }
        if let Some(help) = &self.help {
            writeln!(f, "{pad} = help: {help}")?;
        }
        Ok(())
    }
}

fn prefixed(text: &str) -> String {
    if text.is_empty() {
        String::new()
    } else {
        format!(" {text}")
    }
}

/// Longest snippet shown; longer lines (minified or binary files) are cut around the caret.
const MAX_SNIPPET_CHARS: usize = 100;

/// Returns the printable line, the caret indentation and the caret width, in terminal columns.
fn layout_snippet(snippet: &Snippet) -> (String, usize, usize) {
    let chars: Vec<char> = snippet.text.chars().map(printable).collect();
    let start = snippet.column.saturating_sub(1).min(chars.len());
    let end = (start + snippet.len.max(1)).min(chars.len());
    // Window of at most MAX_SNIPPET_CHARS characters that starts a little before the caret.
    let (from, to) = if chars.len() <= MAX_SNIPPET_CHARS {
        (0, chars.len())
    } else {
        let from = start.saturating_sub(20);
        (from, (from + MAX_SNIPPET_CHARS).min(chars.len()))
    };
    let mut text = String::new();
    let mut indent = 0;
    if from > 0 {
        text.push_str("...");
        indent += 3;
    }
    let width = |c: &char| c.width().unwrap_or(1);
    indent += chars[from..start].iter().map(width).sum::<usize>();
    let caret = chars[start..end.min(to)]
        .iter()
        .map(width)
        .sum::<usize>()
        .max(1);
    text.extend(&chars[from..to]);
    if to < chars.len() {
        text.push_str("...");
    }
    (text.trim_end().to_string(), indent, caret)
}

/// Keeps the snippet one character per character: tabs become spaces, controls become U+FFFD.
fn printable(c: char) -> char {
    match c {
        '\t' => ' ',
        c if c.is_control() => '\u{FFFD}',
        c => c,
    }
}

/// All problems found in one topology file (never empty when returned as an error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", render_all(.items))]
pub struct Diagnostics {
    items: Vec<Diagnostic>,
}

impl Diagnostics {
    /// Sorts by position (whole-file problems first) and drops exact duplicates, which arise
    /// when one `[defaults]` value is inherited, and checked, by several services.
    pub fn new(mut items: Vec<Diagnostic>) -> Diagnostics {
        items.sort_by_key(|d| d.location);
        items.dedup();
        Diagnostics { items }
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Diagnostic> {
        self.items.iter()
    }

    pub fn into_vec(self) -> Vec<Diagnostic> {
        self.items
    }
}

impl<'a> IntoIterator for &'a Diagnostics {
    type Item = &'a Diagnostic;
    type IntoIter = std::slice::Iter<'a, Diagnostic>;
    fn into_iter(self) -> Self::IntoIter {
        self.items.iter()
    }
}

impl From<Diagnostic> for Diagnostics {
    fn from(d: Diagnostic) -> Diagnostics {
        Diagnostics::new(vec![d])
    }
}

/// Every diagnostic, each ending with a newline and separated by a blank line. No summary
/// line: the caller knows best how to conclude (e.g. `validate` names the file and count).
fn render_all(items: &[Diagnostic]) -> String {
    items
        .iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

/// A topology file's text, able to turn byte spans into located diagnostics.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SourceFile<'a> {
    pub path: &'a Path,
    pub text: &'a str,
}

impl<'a> SourceFile<'a> {
    pub(crate) fn new(path: &'a Path, text: &'a str) -> SourceFile<'a> {
        SourceFile { path, text }
    }

    /// A diagnostic pointing at `span` (byte offsets into the text). Multi-line spans are
    /// underlined on their first line only.
    pub(crate) fn error(&self, span: Range<usize>, message: impl Into<String>) -> Diagnostic {
        let start = floor_boundary(self.text, span.start);
        let end = floor_boundary(self.text, span.end.max(start));
        let line_start = self.text[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = self.text[start..]
            .find('\n')
            .map_or(self.text.len(), |i| start + i);
        let line_text = self.text[line_start..line_end].trim_end_matches('\r');
        let line = self.text[..start].matches('\n').count() + 1;
        // A byte-order mark is invisible in editors, so it does not count as a column.
        let column = self.text[line_start..start]
            .chars()
            .filter(|c| *c != '\u{FEFF}')
            .count()
            + 1;
        let len = self.text[start..end.min(line_start + line_text.len()).max(start)]
            .chars()
            .count();
        Diagnostic {
            path: self.path.to_path_buf(),
            location: Some(Location { line, column }),
            message: message.into(),
            snippet: Some(Snippet {
                text: line_text.to_string(),
                column,
                len: len.max(1),
            }),
            help: None,
        }
    }

    /// Like [`SourceFile::error`], but the snippet shows `<hidden>` instead of the text in
    /// `hidden` (on the same line), for values that are probably secrets.
    pub(crate) fn error_hiding(
        &self,
        span: Range<usize>,
        hidden: Range<usize>,
        message: impl Into<String>,
    ) -> Diagnostic {
        let mut diag = self.error(span.clone(), message);
        let start = floor_boundary(self.text, span.start);
        let line_start = self.text[..start].rfind('\n').map_or(0, |i| i + 1);
        let (h_start, h_end) = (
            floor_boundary(self.text, hidden.start),
            floor_boundary(self.text, hidden.end),
        );
        if let Some(snippet) = diag.snippet.as_mut() {
            // Keep what precedes the secret, replace it, and drop the rest of the line.
            let keep = h_start.saturating_sub(line_start).min(snippet.text.len());
            if h_start >= line_start && h_end > h_start && snippet.text.is_char_boundary(keep) {
                snippet.text = format!("{}<hidden>", &snippet.text[..keep]);
            } else {
                let end = (span.end.max(start) - line_start).min(snippet.text.len());
                let end = if snippet.text.is_char_boundary(end) {
                    end
                } else {
                    0
                };
                snippet.text = format!("{} <hidden>", &snippet.text[..end]);
            }
        }
        diag
    }

    /// The span of a table header such as `[services.primary]` starting at `start`, so that
    /// "missing field" errors underline the header rather than the whole table body.
    pub(crate) fn header_span(&self, start: usize) -> Range<usize> {
        let start = floor_boundary(self.text, start);
        let rest = &self.text[start..];
        let line = &rest[..rest.find('\n').unwrap_or(rest.len())];
        let mut quote = None;
        for (i, c) in line.char_indices() {
            match (quote, c) {
                (None, '"' | '\'') => quote = Some(c),
                (Some(q), c) if c == q => quote = None,
                (None, ']') => {
                    let end = if line[i + 1..].starts_with(']') {
                        i + 2
                    } else {
                        i + 1
                    };
                    return start..start + end;
                }
                _ => {}
            }
        }
        start..start + line.trim_end().len()
    }
}

fn floor_boundary(text: &str, mut i: usize) -> usize {
    i = i.min(text.len());
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(text: &str) -> SourceFile<'_> {
        SourceFile::new(Path::new("examples/bad.toml"), text)
    }

    #[test]
    fn renders_like_rustc() {
        let text = "[services.primary]\nname = \"a\"\nregoin = \"us-east4\"\n";
        let at = text.find("regoin").unwrap();
        let d = src(text)
            .error(at..at + 6, "unknown key `regoin` in [services.primary]")
            .with_help("did you mean `region`?");
        let expected = [
            "error: unknown key `regoin` in [services.primary]",
            "  --> examples/bad.toml:3:1",
            "   |",
            " 3 | regoin = \"us-east4\"",
            "   | ^^^^^^",
            "   = help: did you mean `region`?",
            "",
        ];
        assert_eq!(d.to_string(), expected.join("\n"));
    }

    #[test]
    fn columns_count_characters_and_underline_wide_ones() {
        let text = "name = \"ü日x\"";
        let at = text.find('x').unwrap();
        let d = src(text).error(at..at + 1, "m");
        assert_eq!(
            d.location,
            Some(Location {
                line: 1,
                column: 11
            })
        );
        let rendered = d.to_string();
        // "name = \"ü日" is 10 characters but 11 terminal columns wide.
        assert!(
            rendered.contains(&format!("   | {}^\n", " ".repeat(11))),
            "{rendered}"
        );
    }

    #[test]
    fn empty_file_points_at_line_one() {
        let d = src("").error(0..0, "no services");
        assert_eq!(d.location, Some(Location { line: 1, column: 1 }));
        assert!(d.to_string().contains(" 1 |\n   | ^\n"));
    }

    #[test]
    fn long_lines_are_cut_around_the_caret() {
        let text = format!("{}BAD{}", "a".repeat(500), "b".repeat(500));
        let d = src(&text).error(500..503, "m");
        let rendered = d.to_string();
        assert!(
            rendered.lines().all(|l| l.chars().count() < 120),
            "{rendered}"
        );
        assert!(rendered.contains("...aaaaaaaaaaaaaaaaaaaaBAD"));
    }

    #[test]
    fn header_span_stops_at_closing_bracket() {
        let text = "[services.\"a]b\"] # comment\n";
        let s = src(text);
        assert_eq!(&text[s.header_span(0)], "[services.\"a]b\"]");
        assert_eq!(&"[[x]]\n"[src("[[x]]\n").header_span(0)], "[[x]]");
    }

    #[test]
    fn diagnostics_are_sorted_and_deduplicated() {
        let s = src("a = 1\nb = 2\n");
        let d2 = s.error(6..7, "second");
        let d1 = s.error(0..1, "first");
        let all = Diagnostics::new(vec![d2.clone(), d1, d2]);
        assert_eq!(all.len(), 2);
        let text = all.to_string();
        assert!(text.find("first").unwrap() < text.find("second").unwrap());
        assert!(text.ends_with("^\n"), "{text}");
        assert_eq!(text.matches("error:").count(), 2);
    }
}
