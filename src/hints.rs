//! Hints that print a command print one that works as printed. The rules and errors that
//! suggest `skyplan force-unlock --id …` or `skyplan apply --replace service.x` live in the
//! core, which does not know which file (or `-chdir`) this run was given; the printer passes
//! everything it writes through [`complete`], which adds them to each backquoted `skyplan …`
//! command that takes a topology file. The file may stand anywhere among the positionals, so
//! it goes at the end.

use std::borrow::Cow;
use std::path::Path;
use std::sync::Mutex;

#[derive(Default)]
struct Context {
    /// The topology file given on the command line (None: the default, which needs no word).
    file: Option<String>,
    /// `-chdir=DIR`, as given.
    chdir: Option<String>,
}

static CONTEXT: Mutex<Context> = Mutex::new(Context {
    file: None,
    chdir: None,
});

/// This run's topology file, as the user gave it.
pub fn set_file(path: &Path) {
    if let Ok(mut c) = CONTEXT.lock() {
        c.file = Some(path.display().to_string());
    }
}

/// This run's `-chdir=DIR`.
pub fn set_chdir(dir: &str) {
    if let Ok(mut c) = CONTEXT.lock() {
        c.chdir = Some(dir.to_string());
    }
}

/// `s` with this run's file and `-chdir` added to each hint command in it.
pub fn complete(s: &str) -> Cow<'_, str> {
    let Ok(c) = CONTEXT.lock() else {
        return Cow::Borrowed(s);
    };
    complete_with(s, c.file.as_deref(), c.chdir.as_deref(), &|p| {
        Path::new(p).is_file()
    })
}

/// Commands that take no topology file.
const NO_FILE: &[&str] = &["emulator", "version", "completions", "help"];

fn complete_with<'a>(
    s: &'a str,
    file: Option<&str>,
    chdir: Option<&str>,
    exists: &dyn Fn(&str) -> bool,
) -> Cow<'a, str> {
    if (file.is_none() && chdir.is_none()) || !s.contains("`skyplan ") {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 32);
    let mut rest = s;
    while let Some(at) = rest.find("`skyplan ") {
        let start = at + 1;
        out.push_str(&rest[..start]);
        let Some(len) = rest[start..].find('`') else {
            rest = &rest[start..];
            break;
        };
        let mut command = &rest[start..start + len];
        // In Markdown the closing backquote is escaped: the command ends before the backslash.
        let tail = if command.ends_with('\\') {
            command = &command[..command.len() - 1];
            "\\"
        } else {
            ""
        };
        out.push_str(&completed(command, file, chdir, exists));
        out.push_str(tail);
        rest = &rest[start + len..];
    }
    out.push_str(rest);
    Cow::Owned(out)
}

fn completed(
    command: &str,
    file: Option<&str>,
    chdir: Option<&str>,
    exists: &dyn Fn(&str) -> bool,
) -> String {
    let words: Vec<&str> = command.split_whitespace().collect();
    let Some(verb) = words.get(1) else {
        return command.to_string();
    };
    let mut c = command.to_string();
    if let Some(f) = file {
        let has_file = words[2..]
            .iter()
            .any(|w| !w.starts_with('-') && (w.ends_with(".toml") || *w == f || exists(w)));
        if !NO_FILE.contains(verb) && !has_file {
            c.push(' ');
            c.push_str(&quoted(f));
        }
    }
    if let Some(d) = chdir {
        if !words.iter().any(|w| w.starts_with("-chdir")) {
            c = c.replacen("skyplan ", &format!("skyplan -chdir={} ", quoted(d)), 1);
        }
    }
    c
}

/// A path as a shell reads it: as is when it holds nothing special, else in single quotes.
fn quoted(p: &str) -> String {
    if !p.is_empty()
        && p.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._/-+:@%".contains(c))
    {
        p.to_string()
    } else {
        format!("'{}'", p.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn none(_: &str) -> bool {
        false
    }

    #[test]
    fn hint_commands_get_the_file_and_chdir_of_this_run() {
        let s = "held by x: run `skyplan force-unlock --id abc` once it is gone, or `skyplan emulator stop`.";
        assert_eq!(
            complete_with(s, Some("prod.toml"), None, &none),
            "held by x: run `skyplan force-unlock --id abc prod.toml` once it is gone, or `skyplan emulator stop`."
        );
        assert_eq!(
            complete_with(s, Some("my dir/it's.toml"), Some("/srv/infra"), &none),
            "held by x: run `skyplan -chdir=/srv/infra force-unlock --id abc 'my dir/it'\\''s.toml'` once it is gone, or `skyplan -chdir=/srv/infra emulator stop`."
        );
        // Nothing given: the default file, the hint works as it is.
        assert_eq!(complete_with(s, None, None, &none), s);
        // A command that already names a file (or a saved plan) keeps it.
        assert_eq!(
            complete_with("`skyplan apply plan.out`", Some("a.toml"), None, &|p| p
                == "plan.out"),
            "`skyplan apply plan.out`"
        );
        assert_eq!(
            complete_with("`skyplan plan b.toml`", Some("a.toml"), None, &none),
            "`skyplan plan b.toml`"
        );
        // Markdown escapes the backquotes; an unclosed one is left alone.
        assert_eq!(
            complete_with(
                "\\`skyplan apply --replace service.x\\` and `skyplan plan",
                Some("a.toml"),
                None,
                &none
            ),
            "\\`skyplan apply --replace service.x a.toml\\` and `skyplan plan"
        );
    }
}
