//! Terraform's habits on the command line, so that muscle memory and scripts carry over:
//! single-dash long flags (`-auto-approve`, `-out=p.json`, `-replace=…`, `-target=…`,
//! `-detailed-exitcode`, `-json`, …) are read as their `--` spellings. clap itself only knows
//! `--long` and `-s`hort, hence this rewrite of the arguments before it parses them.

use std::ffi::OsString;

/// Long flags Terraform users type with one dash. Only these are rewritten: a single-dash
/// argument that is not one of them stays what it was (a short flag, a value, a file name).
const TERRAFORM_FLAGS: &[&str] = &[
    "allow-data-loss",
    "auto-approve",
    "destroy",
    "detailed-exitcode",
    "json",
    "input",
    "lock-timeout",
    "no-color",
    "out",
    "parallelism",
    "refresh",
    "refresh-only",
    "replace",
    "state-backend",
    "target",
];

/// Terraform options that have no skyplan meaning, refused with the reason rather than with a
/// clap error about short flags.
fn refused(flag: &str) -> Option<&'static str> {
    match flag {
        "lock" => Some("skyplan always locks the state: a second run fails at once naming the holder, or waits with --lock-timeout"),
        "var" | "var-file" => Some("skyplan has no variables: write the values in the topology file"),
        _ => None,
    }
}

/// Before clap: `-chdir=DIR` (Terraform's global option, before the command) changes the
/// working directory, and options skyplan has no use for are refused with their reason.
/// Returns the arguments left for [`normalize`].
pub(super) fn prepare(args: Vec<OsString>) -> Result<Vec<OsString>, String> {
    let mut out = Vec::new();
    let mut iter = args.into_iter();
    let mut command_seen = false;
    if let Some(program) = iter.next() {
        out.push(program);
    }
    while let Some(arg) = iter.next() {
        let Some(s) = arg.to_str().map(str::to_string) else {
            out.push(arg);
            continue;
        };
        if s == "--" {
            out.push(arg);
            out.extend(iter);
            break;
        }
        let name = s.trim_start_matches('-');
        let (flag, value) = match name.split_once('=') {
            Some((f, v)) => (f, Some(v.to_string())),
            None => (name, None),
        };
        if s.starts_with('-') {
            if let Some(why) = refused(flag) {
                return Err(format!("{s}: {why}"));
            }
            if flag == "chdir" && !command_seen {
                let dir = match value {
                    Some(v) => v,
                    None => iter
                        .next()
                        .and_then(|v| v.into_string().ok())
                        .ok_or("-chdir needs a directory: -chdir=DIR")?,
                };
                std::env::set_current_dir(&dir)
                    .map_err(|e| format!("-chdir={dir}: cannot change to it: {e}"))?;
                crate::hints::set_chdir(&dir);
                continue;
            }
        } else {
            command_seen = true;
        }
        out.push(arg);
    }
    Ok(out)
}

/// The arguments with Terraform's single-dash long flags spelled `--…`. Everything after a
/// bare `--` is left alone.
pub(super) fn normalize(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    let mut out = Vec::new();
    let mut rest = false;
    for arg in args {
        if rest {
            out.push(arg);
            continue;
        }
        let rewritten = arg.to_str().and_then(|s| {
            if s == "--" {
                rest = true;
                return None;
            }
            let name = s.strip_prefix('-').filter(|n| !n.starts_with('-'))?;
            let flag = name.split_once('=').map_or(name, |(f, _)| f);
            TERRAFORM_FLAGS
                .contains(&flag)
                .then(|| OsString::from(format!("-{s}")))
        });
        out.push(rewritten.unwrap_or(arg));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(args: &[&str]) -> Vec<String> {
        normalize(args.iter().map(OsString::from))
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect()
    }

    #[test]
    fn terraform_spellings_become_long_flags() {
        assert_eq!(
            norm(&[
                "skyplan",
                "apply",
                "-auto-approve",
                "-replace=service.a",
                "-target",
                "service.b",
                "-json",
                "-detailed-exitcode",
                "-out=p.json",
            ]),
            [
                "skyplan",
                "apply",
                "--auto-approve",
                "--replace=service.a",
                "--target",
                "service.b",
                "--json",
                "--detailed-exitcode",
                "--out=p.json",
            ]
        );
    }

    #[test]
    fn everything_else_is_left_alone() {
        assert_eq!(
            norm(&["skyplan", "-v", "-vv", "plan", "--json", "-", "-x", "--", "-json"]),
            ["skyplan", "-v", "-vv", "plan", "--json", "-", "-x", "--", "-json"]
        );
    }
}
