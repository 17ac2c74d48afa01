//! Running a command as a child and measuring it: wall time and the child's own peak resident
//! memory.
//!
//! Peak memory comes from `wait4`'s `ru_maxrss`, which has a catch: Linux carries the
//! high-water mark of the address space a process had *before* `exec` into the new program's
//! figure, and a child spawned by this (large, busy) process starts as a copy of it. So the
//! command is started through a small launcher — this binary re-run with [`LAUNCH_FLAG`],
//! which spawns the command right after its own `exec`, while it is a few MiB — and the
//! launcher reports the command's `wait4` figures. The launcher's own size (the floor of the
//! measurement, see [`floor`]) is small next to what is measured.

use std::io::Read;
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// `skyplan-bench --launch REPORT PROGRAM ARGS…`: run PROGRAM, write its figures to REPORT.
pub const LAUNCH_FLAG: &str = "--launch";

#[derive(Debug, Clone)]
pub struct Measured {
    pub wall: Duration,
    /// Peak resident set size, in KiB (Linux reports `ru_maxrss` in KiB).
    pub peak_rss_kib: u64,
    pub exit_code: i32,
    pub stdout: Vec<u8>,
}

/// Runs `program args` in `dir` through the launcher `bench_exe`, stdout captured, stdin
/// closed, stderr discarded unless `show_stderr`.
pub fn run(
    bench_exe: &Path,
    program: &Path,
    args: &[&std::ffi::OsStr],
    dir: Option<&Path>,
    show_stderr: bool,
) -> Result<Measured> {
    let report = tempfile::NamedTempFile::new().context("creating a report file")?;
    let mut cmd = Command::new(bench_exe);
    cmd.arg(LAUNCH_FLAG)
        .arg(report.path())
        .arg(program)
        .args(args)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(if show_stderr {
            Stdio::inherit()
        } else {
            Stdio::null()
        });
    if let Some(dir) = dir {
        cmd.current_dir(dir);
    }
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting {}", program.display()))?;
    let mut stdout = Vec::new();
    if let Some(mut out) = child.stdout.take() {
        out.read_to_end(&mut stdout)
            .with_context(|| format!("reading the output of {}", program.display()))?;
    }
    let status = child.wait()?;
    let text = std::fs::read_to_string(report.path()).unwrap_or_default();
    let fields: Vec<u64> = text
        .split_whitespace()
        .filter_map(|f| f.parse().ok())
        .collect();
    let [wall_us, peak_rss_kib, code] = fields[..] else {
        bail!(
            "the launcher of {} failed ({status}) without a report",
            program.display()
        );
    };
    Ok(Measured {
        wall: Duration::from_micros(wall_us),
        peak_rss_kib,
        exit_code: i32::try_from(code).unwrap_or(-1),
        stdout,
    })
}

/// What the launcher itself adds: the peak memory measured for `true`.
pub fn floor(bench_exe: &Path) -> Result<u64> {
    Ok(run(bench_exe, Path::new("true"), &[], None, false)?.peak_rss_kib)
}

/// The launcher side: spawn, `wait4`, write `wall_us peak_kib exit_code` to the report file,
/// exit with the command's code. Stdio is inherited.
pub fn launcher_main(args: &[String]) -> ExitCode {
    let [report, program, rest @ ..] = args else {
        eprintln!("usage: {LAUNCH_FLAG} REPORT PROGRAM [ARGS…]");
        return ExitCode::FAILURE;
    };
    match launch(program, rest) {
        Ok((wall, peak, code)) => {
            let line = format!("{} {peak} {code}\n", wall.as_micros());
            if let Err(e) = std::fs::write(report, line) {
                eprintln!("launcher: writing {report}: {e}");
                return ExitCode::FAILURE;
            }
            ExitCode::from(u8::try_from(code).unwrap_or(1))
        }
        Err(e) => {
            eprintln!("launcher: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn launch(program: &str, args: &[String]) -> Result<(Duration, u64, i32)> {
    let start = Instant::now();
    let child = Command::new(program)
        .args(args)
        .spawn()
        .with_context(|| format!("starting {program}"))?;
    let reaped =
        skyplan_os::wait_with_rusage(child).with_context(|| format!("waiting for {program}"))?;
    Ok((start.elapsed(), reaped.max_rss_kib, reaped.code))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_launcher_reports_exit_code_and_memory() {
        let (_, peak, code) = launch("sh", &["-c".into(), "exit 3".into()]).unwrap();
        assert_eq!(code, 3);
        assert!(peak > 0);
        let (_, _, killed) = launch("sh", &["-c".into(), "kill -9 $$".into()]).unwrap();
        assert_eq!(killed, 128 + 9);
    }
}
