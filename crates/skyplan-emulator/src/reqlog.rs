//! The request log: one JSON line per API request in `<dir>/requests.log`, so tests and
//! benchmarks can count calls. Only method, path (no query string), status and latency are
//! written: never headers (the API key) or bodies (passwords).

use serde::Serialize;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use time::format_description::well_known::Rfc3339;

pub const FILE_NAME: &str = "requests.log";

/// One line of the log.
#[derive(Debug, Serialize)]
pub struct Entry<'a> {
    pub time: String,
    pub method: &'a str,
    pub path: &'a str,
    pub status: u16,
    pub latency_ms: u64,
}

pub struct ReqLog {
    path: PathBuf,
    file: Mutex<File>,
}

impl ReqLog {
    pub fn open(dir: &Path) -> std::io::Result<ReqLog> {
        let path = dir.join(FILE_NAME);
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        Ok(ReqLog {
            path,
            file: Mutex::new(file),
        })
    }

    /// Appends one line. A failing log must not fail the request, so errors go to stderr.
    pub fn record(&self, method: &str, path: &str, status: u16, latency_ms: u64) {
        let entry = Entry {
            time: time::OffsetDateTime::now_utc()
                .format(&Rfc3339)
                .unwrap_or_default(),
            method,
            path,
            status,
            latency_ms,
        };
        let Ok(mut line) = serde_json::to_string(&entry) else {
            return;
        };
        line.push('\n');
        let mut file = self.file.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = file.write_all(line.as_bytes()) {
            // The emulator's stderr is its log; a lost request-log line is worth a line there.
            #[allow(clippy::print_stderr)]
            {
                eprintln!("emulator: cannot append to {}: {e}", self.path.display());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_one_json_line_per_request() {
        let dir = tempfile::tempdir().unwrap();
        let log = ReqLog::open(dir.path()).unwrap();
        log.record("GET", "/provisioning/v1/services", 200, 3);
        log.record("POST", "/skybackup/v1/restores", 500, 12);
        let text = std::fs::read_to_string(dir.path().join(FILE_NAME)).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1]["status"], 500);
        assert_eq!(lines[0]["path"], "/provisioning/v1/services");
    }
}
