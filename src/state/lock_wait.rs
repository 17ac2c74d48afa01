//! What a run waiting for the state lock says, whichever backend holds the lock (the local
//! lock file or MariaDB's `GET_LOCK`).

use std::time::{Duration, Instant};

use super::LockInfo;

/// What a run waiting for the lock (`--lock-timeout`) says: once when it starts waiting,
/// naming the holder, then every [`LockWait::EVERY`] — never silence while it waits.
pub(crate) struct LockWait<'a> {
    ui: &'a crate::printer::Printer,
    started: Instant,
    timeout: Duration,
    last: Option<Instant>,
}

impl<'a> LockWait<'a> {
    const EVERY: Duration = Duration::from_secs(10);

    pub(crate) fn new(timeout: Duration, ui: &'a crate::printer::Printer) -> LockWait<'a> {
        LockWait {
            ui,
            started: Instant::now(),
            timeout,
            last: None,
        }
    }

    pub(crate) fn tick(&mut self, holder: Option<&LockInfo>) {
        let now = Instant::now();
        match self.last {
            None => {
                let who = holder.map_or("another run".to_string(), |h| {
                    format!("pid {} on {} (`{}`)", h.pid, h.host, h.command)
                });
                self.ui.note(&format!(
                    "Acquiring the state lock: held by {who}; waiting up to {} s (--lock-timeout)",
                    self.timeout.as_secs()
                ));
            }
            Some(last) if now - last >= Self::EVERY => self.ui.note(&format!(
                "still waiting for the state lock ({} s so far)",
                (now - self.started).as_secs()
            )),
            Some(_) => return,
        }
        self.last = Some(now);
    }
}
