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
pub(crate) fn set_file(path: &Path) {
    if let Ok(mut c) = CONTEXT.lock() {
        c.file = Some(path.display().to_string());
    }
}

/// This run's `-chdir=DIR`.
pub(crate) fn set_chdir(dir: &str) {
    if let Ok(mut c) = CONTEXT.lock() {
        c.chdir = Some(dir.to_string());
    }
}

/// `s` with this run's file and `-chdir` added to each hint command in it.
pub(crate) fn complete(s: &str) -> Cow<'_, str> {
    let Ok(c) = CONTEXT.lock() else {
        return Cow::Borrowed(s);
    };
    complete_with(s, c.file.as_deref(), c.chdir.as_deref())
}

/// How each command takes its topology file, and what it needs before it is a command one
/// could run (a mention such as "`skyplan import` prints it" is not): the positionals it
/// requires, the flags it requires, and the flags that take a value (skipped when counting
/// positionals). `None`: the command takes no topology file.
struct Shape {
    words: &'static [&'static str],
    positionals: usize,
    required_flags: &'static [&'static str],
    /// How the file is given: a positional, or this flag (`show --topology FILE`).
    file_flag: Option<&'static str>,
}

const VALUE_FLAGS: &[&str] = &[
    "--out",
    "--replace",
    "--target",
    "--format",
    "--parallelism",
    "--lock-timeout",
    "--state-backend",
    "--id",
    "--from",
    "--to",
    "--timeout",
    "--topology",
    "--dir",
    "--mode",
];

const SHAPES: &[Shape] = &[
    Shape {
        words: &["state", "rm"],
        positionals: 1,
        required_flags: &[],
        file_flag: None,
    },
    Shape {
        words: &["state", "mv"],
        positionals: 2,
        required_flags: &[],
        file_flag: None,
    },
    Shape {
        words: &["state", "show"],
        positionals: 1,
        required_flags: &[],
        file_flag: None,
    },
    Shape {
        words: &["state", "push"],
        positionals: 0,
        required_flags: &["--from"],
        file_flag: None,
    },
    Shape {
        words: &["state", "migrate"],
        positionals: 0,
        required_flags: &["--to"],
        file_flag: None,
    },
    Shape {
        words: &["state", "list"],
        positionals: 0,
        required_flags: &[],
        file_flag: None,
    },
    Shape {
        words: &["state", "pull"],
        positionals: 0,
        required_flags: &[],
        file_flag: None,
    },
    Shape {
        words: &["state", "history"],
        positionals: 0,
        required_flags: &[],
        file_flag: None,
    },
    Shape {
        words: &["import"],
        positionals: 2,
        required_flags: &[],
        file_flag: None,
    },
    Shape {
        words: &["show"],
        positionals: 0,
        required_flags: &[],
        file_flag: Some("--topology"),
    },
    Shape {
        words: &["plan"],
        positionals: 0,
        required_flags: &[],
        file_flag: None,
    },
    Shape {
        words: &["apply"],
        positionals: 0,
        required_flags: &[],
        file_flag: None,
    },
    Shape {
        words: &["destroy"],
        positionals: 0,
        required_flags: &[],
        file_flag: None,
    },
    Shape {
        words: &["force-unlock"],
        positionals: 0,
        required_flags: &[],
        file_flag: None,
    },
    Shape {
        words: &["output"],
        positionals: 0,
        required_flags: &[],
        file_flag: None,
    },
    Shape {
        words: &["verify"],
        positionals: 0,
        required_flags: &[],
        file_flag: None,
    },
    Shape {
        words: &["graph"],
        positionals: 0,
        required_flags: &[],
        file_flag: None,
    },
    Shape {
        words: &["validate"],
        positionals: 0,
        required_flags: &[],
        file_flag: None,
    },
];

fn complete_with<'a>(s: &'a str, file: Option<&str>, chdir: Option<&str>) -> Cow<'a, str> {
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
        let command = &rest[start..start + len];
        // In Markdown the closing backquote is escaped: the command ends before the backslash.
        match command.strip_suffix('\\') {
            Some(c) => {
                out.push_str(&completed(c, file, chdir));
                out.push('\\');
            }
            None => out.push_str(&completed(command, file, chdir)),
        }
        rest = &rest[start + len..];
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// The command with the file (where it takes one and names none yet) and `-chdir`; as it
/// was when it is not a complete command.
fn completed(command: &str, file: Option<&str>, chdir: Option<&str>) -> String {
    let words: Vec<&str> = command.split_whitespace().skip(1).collect();
    let Some(shape) = SHAPES.iter().find(|s| words.starts_with(s.words)) else {
        // A command without a file (emulator, version, completions) or an unknown one: only
        // -chdir, which any command accepts.
        return with_chdir(command, chdir, &words);
    };
    let args = &words[shape.words.len()..];
    let (mut positionals, mut flags) = (Vec::new(), Vec::new());
    let mut i = 0;
    while i < args.len() {
        let w = args[i];
        if w.starts_with('-') {
            let name = w.split('=').next().unwrap_or(w);
            flags.push(name);
            if VALUE_FLAGS.contains(&name) && !w.contains('=') {
                i += 1;
            }
        } else {
            positionals.push(w);
        }
        i += 1;
    }
    let complete = positionals.len() >= shape.positionals
        && shape.required_flags.iter().all(|f| flags.contains(f));
    if !complete {
        return command.to_string();
    }
    let mut c = command.to_string();
    if let Some(f) = file {
        let named = match shape.file_flag {
            Some(flag) => flags.contains(&flag),
            None => positionals.iter().any(|p| p.ends_with(".toml") || *p == f),
        };
        if !named {
            match shape.file_flag {
                Some(flag) => c.push_str(&format!(" {flag} {}", quoted(f))),
                None => c.push_str(&format!(" {}", quoted(f))),
            }
        }
    }
    with_chdir(&c, chdir, &words)
}

fn with_chdir(command: &str, chdir: Option<&str>, words: &[&str]) -> String {
    match chdir {
        Some(d) if !words.iter().any(|w| w.starts_with("-chdir")) => {
            command.replacen("skyplan ", &format!("skyplan -chdir={} ", quoted(d)), 1)
        }
        _ => command.to_string(),
    }
}

/// `skyplan`, with this run's `-chdir`: for a command printed whole (not in backquotes).
pub(crate) fn program() -> String {
    match CONTEXT.lock().ok().and_then(|c| c.chdir.clone()) {
        Some(d) => format!("skyplan -chdir={}", quoted(&d)),
        None => "skyplan".to_string(),
    }
}

/// A path as a shell reads it: as is when it holds nothing special, else in single quotes.
fn quoted(p: &str) -> String {
    if !p.is_empty()
        && p.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._/-+:@%,=".contains(c))
    {
        p.to_string()
    } else {
        format!("'{}'", p.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hint_commands_get_the_file_and_chdir_of_this_run() {
        let s = "held by x: run `skyplan force-unlock --id abc` once it is gone, or `skyplan emulator stop`.";
        assert_eq!(
            complete_with(s, Some("prod.toml"), None),
            "held by x: run `skyplan force-unlock --id abc prod.toml` once it is gone, or `skyplan emulator stop`."
        );
        assert_eq!(
            complete_with(s, Some("my dir/it's.toml"), Some("/srv/infra")),
            "held by x: run `skyplan -chdir=/srv/infra force-unlock --id abc 'my dir/it'\\''s.toml'` once it is gone, or `skyplan -chdir=/srv/infra emulator stop`."
        );
        // Nothing given: the default file, the hint works as it is.
        assert_eq!(complete_with(s, None, None), s);
        // A command that already names a topology keeps it.
        assert_eq!(
            complete_with("`skyplan plan b.toml`", Some("a.toml"), None),
            "`skyplan plan b.toml`"
        );
        // show takes its topology by flag.
        assert_eq!(
            complete_with("`skyplan show`", Some("a.toml"), None),
            "`skyplan show --topology a.toml`"
        );
        // Flags' values are not files; the file comes after them.
        assert_eq!(
            complete_with(
                "`skyplan state push --from backup.json`",
                Some("a.toml"),
                None
            ),
            "`skyplan state push --from backup.json a.toml`"
        );
        assert_eq!(
            complete_with(
                "`skyplan apply --replace service.x --allow-data-loss`",
                Some("a.toml"),
                None
            ),
            "`skyplan apply --replace service.x --allow-data-loss a.toml`"
        );
    }

    #[test]
    fn mentions_that_are_not_whole_commands_are_left_alone() {
        for s in [
            "`skyplan import` prints it",
            "use `skyplan state rm` or `skyplan state mv service.a`",
            "`skyplan state push` needs a file",
            "an unclosed `skyplan plan",
        ] {
            assert_eq!(complete_with(s, Some("a.toml"), Some("/d")), s, "{s}");
        }
        // A whole command among them is completed.
        assert_eq!(
            complete_with(
                "`skyplan import` prints `skyplan import service.a dbx`",
                Some("a.toml"),
                None
            ),
            "`skyplan import` prints `skyplan import service.a dbx a.toml`"
        );
        // Markdown escapes the backquotes.
        assert_eq!(
            complete_with(
                "\\`skyplan apply --replace service.x\\`",
                Some("a.toml"),
                None
            ),
            "\\`skyplan apply --replace service.x a.toml\\`"
        );
    }
}
