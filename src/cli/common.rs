//! What the commands share: logging, the runtime, the topology path, durations.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{Context, Result};

pub(super) const DEFAULT_TOPOLOGY: &str = "skyplan.toml";

pub(super) fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("SKYPLAN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("skyplan={level}")));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .try_init();
}

pub(super) fn block_on<T, F: std::future::Future<Output = Result<T>>>(f: F) -> Result<T> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(f)
}

pub(super) fn topology_path(file: Option<PathBuf>) -> PathBuf {
    // A hint printed by this run names the file it was given (the default needs no word).
    if let Some(f) = &file {
        crate::hints::set_file(f);
    }
    file.unwrap_or_else(|| PathBuf::from(DEFAULT_TOPOLOGY))
}

/// `--sql-parallelism N`: how many services' databases refresh reads at once (one SQL session
/// each). The API's calls stay bounded by `--parallelism`: at a distance the SQL round trips
/// dominate, and a database takes more sessions than the API takes calls.
#[derive(clap::Args, Debug, Clone, Copy)]
pub(super) struct SqlBound {
    /// How many services' databases refresh reads at once (one SQL session each; API calls
    /// stay bounded by --parallelism).
    #[arg(long, value_name = "N", value_parser = at_least_one, default_value_t = crate::remote::DEFAULT_SQL_PARALLELISM)]
    pub(super) sql_parallelism: usize,
}

fn at_least_one(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("`{s}` is not a number of sessions (1 or more)")),
    }
}

pub(super) fn lock_timeout(s: &str) -> Result<std::time::Duration, String> {
    parse_duration(s)
}

/// `30s`, `5m`, `1h`, `500ms` or plain seconds.
pub(super) fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit())
        .map(|i| s.split_at(i))
        .unwrap_or((s, "s"));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("invalid duration `{s}` (e.g. 30s, 5m)"))?;
    let d = match unit {
        "ms" => std::time::Duration::from_millis(n),
        "s" | "" => std::time::Duration::from_secs(n),
        "m" => std::time::Duration::from_secs(n * 60),
        "h" => std::time::Duration::from_secs(n * 3600),
        _ => {
            return Err(format!(
                "invalid duration unit in `{s}` (use ms, s, m or h)"
            ))
        }
    };
    Ok(d)
}

/// Load the workspace and tell the user what they should know about how it was found.
pub(super) fn load_workspace(
    ui: &crate::printer::Printer,
    file: &std::path::Path,
    backend_override: Option<&str>,
) -> Result<crate::ops::Workspace> {
    let ws = crate::ops::Workspace::load(file, backend_override)?;
    tell_notes(ui, &ws);
    Ok(ws)
}

/// [`load_workspace`] of a topology file the command has already read.
pub(super) fn workspace_from_bytes(
    ui: &crate::printer::Printer,
    file: &std::path::Path,
    bytes: Vec<u8>,
    backend_override: Option<&str>,
) -> Result<crate::ops::Workspace> {
    let ws = crate::ops::Workspace::from_bytes(file, bytes, backend_override)?;
    tell_notes(ui, &ws);
    Ok(ws)
}

fn tell_notes(ui: &crate::printer::Printer, ws: &crate::ops::Workspace) {
    for note in &ws.notes {
        ui.info(note);
    }
}
