//! Progress on stderr: a live line per running action with elapsed time on a terminal
//! (indicatif), plain timestamped lines otherwise (CI logs, pipes).

use std::collections::HashMap;
use std::io::Write;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::plan::{Action, ActionId};

pub trait Progress: Send + Sync {
    fn started(&self, action: &Action);
    /// What a running action is waiting for ("pending_create", "backup Running", …).
    fn status(&self, id: ActionId, msg: &str);
    fn finished(&self, action: &Action, result: Result<&str, &str>, took: Duration);
    fn message(&self, msg: &str);
    fn done(&self) {}
}

/// Reports nothing.
pub struct Silent;

impl Progress for Silent {
    fn started(&self, _: &Action) {}
    fn status(&self, _: ActionId, _: &str) {}
    fn finished(&self, _: &Action, _: Result<&str, &str>, _: Duration) {}
    fn message(&self, _: &str) {}
}

/// Timestamped lines, one per event.
pub struct Lines {
    addresses: Mutex<HashMap<ActionId, String>>,
}

impl Lines {
    pub fn new() -> Lines {
        Lines {
            addresses: Mutex::new(HashMap::new()),
        }
    }
    fn line(&self, msg: &str) {
        let now = time::OffsetDateTime::now_utc();
        let ts = now
            .format(&time::macros::format_description!(
                "[hour]:[minute]:[second]"
            ))
            .unwrap_or_default();
        let _ = writeln!(std::io::stderr(), "[{ts}] {msg}");
    }
}

impl Default for Lines {
    fn default() -> Self {
        Lines::new()
    }
}

impl Progress for Lines {
    fn started(&self, a: &Action) {
        if let Ok(mut m) = self.addresses.lock() {
            m.insert(a.id, a.address.clone());
        }
        self.line(&format!("{}: starting ({})", a.address, a.summary.trim()));
    }
    fn status(&self, id: ActionId, msg: &str) {
        let addr = self
            .addresses
            .lock()
            .ok()
            .and_then(|m| m.get(&id).cloned())
            .unwrap_or_default();
        self.line(&format!("{addr}: {msg}"));
    }
    fn finished(&self, a: &Action, result: Result<&str, &str>, took: Duration) {
        match result {
            Ok("") => self.line(&format!("{}: done after {}", a.address, secs(took))),
            Ok(note) => self.line(&format!(
                "{}: done after {} ({note})",
                a.address,
                secs(took)
            )),
            Err(e) => self.line(&format!("{}: FAILED after {}: {e}", a.address, secs(took))),
        }
    }
    fn message(&self, msg: &str) {
        self.line(msg);
    }
}

/// Live spinners on a terminal.
pub struct Bars {
    multi: MultiProgress,
    bars: Mutex<HashMap<ActionId, ProgressBar>>,
}

impl Bars {
    pub fn new() -> Bars {
        Bars {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            bars: Mutex::new(HashMap::new()),
        }
    }
}

impl Default for Bars {
    fn default() -> Self {
        Bars::new()
    }
}

impl Progress for Bars {
    fn started(&self, a: &Action) {
        let bar = self.multi.add(ProgressBar::new_spinner());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {prefix:.bold} [{elapsed}] {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_prefix(a.address.clone());
        bar.set_message("starting");
        bar.enable_steady_tick(Duration::from_millis(120));
        if let Ok(mut m) = self.bars.lock() {
            m.insert(a.id, bar);
        }
    }
    fn status(&self, id: ActionId, msg: &str) {
        if let Some(b) = self.bars.lock().ok().and_then(|m| m.get(&id).cloned()) {
            b.set_message(msg.to_string());
        }
    }
    fn finished(&self, a: &Action, result: Result<&str, &str>, took: Duration) {
        let bar = self.bars.lock().ok().and_then(|mut m| m.remove(&a.id));
        let line = match result {
            Ok("") => format!("✓ {} ({})", a.address, secs(took)),
            Ok(note) => format!("✓ {} ({}, {note})", a.address, secs(took)),
            Err(e) => format!("✗ {} failed after {}: {e}", a.address, secs(took)),
        };
        if let Some(b) = bar {
            b.finish_and_clear();
        }
        let _ = self.multi.println(line);
    }
    fn message(&self, msg: &str) {
        let _ = self.multi.println(msg);
    }
    fn done(&self) {
        let _ = self.multi.clear();
    }
}

pub fn secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}
