//! What the commands share: terminal detection, colour, logging, loading a workspace.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use anyhow::{Context, Result};

pub(super) const DEFAULT_TOPOLOGY: &str = "skyplan.toml";

/// The printer: where output goes and whether it is coloured. Results go to stdout, progress
/// and diagnostics to stderr; every other module writes through this (clippy's
/// `print_stdout`/`print_stderr` lints hold everywhere else).
pub(super) struct Ui {
    pub colors: bool,
    pub stderr_tty: bool,
}

impl Ui {
    pub(super) fn new(no_color: bool) -> Ui {
        let no_color_env = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let colors = !no_color && !no_color_env && std::io::stdout().is_terminal();
        console::set_colors_enabled(colors);
        console::set_colors_enabled_stderr(colors && std::io::stderr().is_terminal());
        Ui {
            colors,
            stderr_tty: std::io::stderr().is_terminal(),
        }
    }
    pub(super) fn out(&self, s: &str) {
        let mut o = std::io::stdout().lock();
        let _ = o.write_all(s.as_bytes());
        let _ = o.flush();
    }
    pub(super) fn info(&self, s: &str) {
        let _ = writeln!(std::io::stderr(), "{s}");
    }
    /// `s` on stderr as it is (it carries its own line ends).
    pub(super) fn info_raw(&self, s: &str) {
        let mut e = std::io::stderr().lock();
        let _ = e.write_all(s.as_bytes());
        let _ = e.flush();
    }
    pub(super) fn error(&self, s: &str) {
        let style = console::Style::new().red().bold().for_stderr();
        let _ = writeln!(std::io::stderr(), "{} {s}", style.apply_to("Error:"));
    }
}

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

pub(super) fn block_on<F: std::future::Future<Output = Result<i32>>>(f: F) -> Result<i32> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(f)
}

pub(super) fn topology_path(file: Option<PathBuf>) -> PathBuf {
    file.unwrap_or_else(|| PathBuf::from(DEFAULT_TOPOLOGY))
}

/// Ask for "yes" on a terminal; refuse (false) when stdin is not a terminal.
pub(super) fn confirm(ui: &Ui, question: &str) -> Result<bool> {
    if !std::io::stdin().is_terminal() {
        ui.error("refusing to proceed without confirmation: stdin is not a terminal (use --auto-approve)");
        return Ok(false);
    }
    ui.info_raw(&format!(
        "{question}\n  Only 'yes' will be accepted to approve.\n\n  Enter a value: "
    ));
    let mut answer = String::new();
    std::io::stdin()
        .read_line(&mut answer)
        .context("cannot read the answer")?;
    Ok(answer.trim() == "yes")
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
