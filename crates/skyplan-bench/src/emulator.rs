//! A private emulator for one benchmark, in its own directory, always cleaned up: dropping
//! the guard (normal return, error, panic, or the benchmark future dropped on Ctrl-C) stops
//! it and kills any mariadbd it left behind.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result};
use serde::Deserialize;

use skyplan_emulator::{LocalEmulator, ServeOptions};

pub struct Emulator {
    dir: PathBuf,
    skyplan: PathBuf,
    pub info: LocalEmulator,
}

/// One line of the emulator's `requests.log`.
#[derive(Debug, Clone, Deserialize)]
pub struct Logged {
    pub method: String,
    pub path: String,
    pub status: u16,
}

/// Cleans up `dir`'s emulator when dropped, even if starting it failed half-way.
struct Cleanup<'a> {
    dir: &'a Path,
    skyplan: &'a Path,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        stop(self.skyplan, self.dir);
    }
}

fn stop(skyplan: &Path, dir: &Path) {
    let _ = Command::new(skyplan)
        .args(["emulator", "stop", "--dir"])
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    skyplan_emulator::kill_strays(dir);
}

impl Emulator {
    /// Starts `skyplan emulator serve` in the background for `opts.dir`.
    pub async fn start(skyplan: &Path, opts: ServeOptions) -> Result<Emulator> {
        let dir = opts.dir.clone();
        let cleanup = Cleanup { dir: &dir, skyplan };
        let (info, _) = skyplan_emulator::start_background(&opts, skyplan)
            .await
            .with_context(|| format!("starting an emulator in {}", dir.display()))?;
        std::mem::forget(cleanup);
        Ok(Emulator {
            dir: dir.clone(),
            skyplan: skyplan.to_path_buf(),
            info,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The request log's length now: pass it to [`Emulator::requests_since`] later.
    pub fn log_mark(&self) -> u64 {
        std::fs::metadata(self.log_path()).map_or(0, |m| m.len())
    }

    /// The requests logged after `mark`.
    pub fn requests_since(&self, mark: u64) -> Result<Vec<Logged>> {
        let bytes = std::fs::read(self.log_path())?;
        let start = usize::try_from(mark).unwrap_or(usize::MAX).min(bytes.len());
        String::from_utf8_lossy(&bytes[start..])
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).context("a request log line"))
            .collect()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join(skyplan_emulator::reqlog::FILE_NAME)
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        stop(&self.skyplan, &self.dir);
    }
}
