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
    "lock-timeout",
    "out",
    "parallelism",
    "refresh",
    "refresh-only",
    "replace",
    "state-backend",
    "target",
];

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
