//! The topology file: parse (TOML with spans), merge defaults, validate with located errors.
//!
//! ```text
//! text ──parse──► RawTopology (values + spans) ──defaults + validate──► Topology
//!                     └──────────── every problem ─────────────► Diagnostics
//! ```
//! Nothing stops at the first problem: a user fixing a file sees all of them at once.

pub(crate) mod defaults;
pub(crate) mod diagnostics;
pub(crate) mod model;
mod parse;
mod raw;
mod replication;
pub mod rules;
mod schema;
mod suggest;
#[cfg(test)]
mod tests;
mod validate;

use std::path::Path;

pub use diagnostics::{Diagnostic, Diagnostics, Location, Snippet};
pub use model::*;
pub(crate) use schema::file_schema;

use diagnostics::SourceFile;

/// The candidate closest to `word`, if close enough to be a typo (see `suggest`).
pub fn nearest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    suggest::did_you_mean(word, candidates.iter().copied())
}

/// Validates the bytes of the topology file at `path` (read by the caller: the core does no
/// I/O). A non-UTF-8 file is reported as a [`Diagnostic`] like any other problem. Messages show
/// `path` as given.
pub fn parse_bytes(bytes: Vec<u8>, path: &Path) -> Result<Topology, Diagnostics> {
    match String::from_utf8(bytes) {
        Ok(text) => parse(&text, path),
        Err(err) => {
            let at = err.utf8_error().valid_up_to();
            let text = String::from_utf8_lossy(err.as_bytes());
            let diag = SourceFile::new(path, &text)
                .error(at..at + 1, "the file is not valid UTF-8 text")
                .with_help("topology files are TOML, which must be UTF-8 encoded");
            Err(diag.into())
        }
    }
}

/// A problem with the value of `field` of service `key`, found after parsing (the SkySQL
/// catalog at plan time), located where that value is written: in the service's table, else
/// in `[defaults]` (where it came from), else at the service's header.
pub fn locate(
    source: &str,
    path: &Path,
    key: &str,
    field: &str,
    message: impl Into<String>,
    help: Option<String>,
) -> Diagnostic {
    let src = SourceFile::new(path, source);
    let mut ignored = Vec::new();
    let raw = parse::parse_raw(&src, &mut ignored);
    let span = raw.as_ref().and_then(|raw| {
        let svc = raw.services.iter().find(|s| s.key.value == key)?;
        raw::span_of(&svc.fields, field)
            .or_else(|| raw::span_of(&raw.defaults, field))
            .or_else(|| Some(svc.header.clone()))
    });
    let diag = match span {
        Some(span) => src.error(span, message),
        None => Diagnostic::whole_file(path, message),
    };
    match help {
        Some(h) => diag.with_help(h),
        None => diag,
    }
}

/// Parses and validates topology `source`; `path` is used in messages and as
/// [`Topology::source`]. Returns every problem found, not only the first.
pub fn parse(source: &str, path: &Path) -> Result<Topology, Diagnostics> {
    let src = SourceFile::new(path, source);
    let mut diags = Vec::new();
    let topology = parse::parse_raw(&src, &mut diags)
        .and_then(|raw| validate::resolve(&raw, &src, &mut diags));
    match topology {
        Some(topology) if diags.is_empty() => Ok(topology),
        _ => {
            if diags.is_empty() {
                // Unreachable by construction (a failed step always reports); never return an
                // error without a message.
                diags.push(Diagnostic::whole_file(
                    path,
                    "the topology could not be resolved",
                ));
            }
            Err(Diagnostics::new(diags))
        }
    }
}
