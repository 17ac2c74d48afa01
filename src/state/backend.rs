//! The backend contract: where the state lives and how it is locked. The engine talks to a
//! `dyn StateBackend` and never learns whether that is a local file or a MariaDB table.
//!
//! # Protocol
//! Lock first, then read, then write (as often as needed), then release the lock. Writes are
//! compare-and-swap on `serial`, so even a writer that skipped the lock cannot silently
//! overwrite a newer state.

use std::time::Duration;

pub(crate) use super::{HistoryEntry, LockInfo, Writer};
use super::{State, StateError};
use async_trait::async_trait;

#[async_trait]
pub trait StateBackend: Send + Sync {
    /// Where the state lives, for messages: `state/foo.state.json` or
    /// `mysql://user@host:3306/db (workspace foo)`. Never contains a password.
    fn describe(&self) -> String;

    /// The stored state; `None` when there is none yet.
    async fn read(&self) -> Result<Option<State>, StateError>;

    /// Persist `state` as the next version: compare-and-swap on the serial `state` was read at
    /// (a new `crate::state::new_state()` expects no stored state), refusing `StaleSerial` if it moved and
    /// `LineageMismatch` if the stored state is another lineage. On success `state.serial`
    /// is the new serial (previous + 1); on error `state` is unchanged.
    async fn write(&self, state: &mut State) -> Result<(), StateError>;

    /// Store `state` exactly as given, serial included (`state push`, `migrate`). Without
    /// `force` it is refused when the stored state has another lineage, a higher serial, or the
    /// same serial with different content; pushing the identical state is a no-op.
    async fn push(&self, state: &State, force: bool) -> Result<(), StateError>;

    /// Take the exclusive lock, retrying until `timeout` has passed (zero: one try).
    /// Refused with `StateError::Locked` naming the holder. Released by `StateLock::release`
    /// or, best effort, on drop.
    /// While it waits, it says so through `ui` (who holds the lock, then a heartbeat).
    async fn lock(
        &self,
        info: LockInfo,
        timeout: Duration,
        ui: &crate::printer::Printer,
    ) -> Result<Box<dyn StateLock>, StateError>;

    /// Who holds the lock now, if anyone (for `force-unlock` to show before confirming).
    async fn lock_holder(&self) -> Result<Option<LockInfo>, StateError>;

    /// Remove the lock record. With `expected_id`, only if the holder has that id. With
    /// `kill_holder` (MariaDB only), also kill the holder's lock connection so the server
    /// releases it. Returns the holder that was removed, `None` if nothing was locked.
    async fn force_unlock(
        &self,
        expected_id: Option<&str>,
        kill_holder: bool,
    ) -> Result<Option<LockInfo>, StateError>;

    /// Stored versions, newest first (MariaDB: the last N writes; local: the file and its
    /// `.backup`).
    async fn history(&self) -> Result<Vec<HistoryEntry>, StateError>;
}

#[async_trait]
pub trait StateLock: Send + Sync {
    fn info(&self) -> &LockInfo;
    /// The stale holder this lock replaced (its process was dead), if any.
    fn took_over(&self) -> Option<&LockInfo>;
    /// Release now and report failures (dropping releases too, silently).
    async fn release(self: Box<Self>) -> Result<(), StateError>;
}

/// Lock records for the running process (pid, host, user, clock): the I/O half of
/// [`LockInfo`], which is plain data in the core.
pub trait LockInfoExt {
    /// A lock record for this process running `command` (e.g. the CLI's command line).
    fn new(command: impl Into<String>) -> Self;
    /// A lock record naming this process's own command line.
    fn for_this_process() -> Self;
}

impl LockInfoExt for LockInfo {
    fn new(command: impl Into<String>) -> LockInfo {
        let w = Writer::current();
        LockInfo {
            id: uuid::Uuid::new_v4().to_string(),
            pid: w.pid,
            host: w.host,
            user: w.user,
            command: redact_url_passwords(&command.into()),
            created_at: now_rfc3339(),
            boot_id: skyplan_os::boot_id(),
            pid_start_ticks: skyplan_os::process_start_ticks(w.pid),
        }
    }

    fn for_this_process() -> LockInfo {
        LockInfo::new(Writer::current().command)
    }
}

/// The running process as the writer of a state version.
pub trait WriterExt {
    fn current() -> Self;
}

impl WriterExt for Writer {
    fn current() -> Writer {
        let args: Vec<String> = std::env::args().collect();
        Writer {
            user: current_user(),
            host: this_host(),
            pid: std::process::id(),
            command: redact_url_passwords(&args.join(" ")),
        }
    }
}

pub(crate) fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "unknown time".into())
}

pub(crate) fn this_host() -> String {
    gethostname::gethostname().to_string_lossy().into_owned()
}

fn current_user() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| format!("uid {}", skyplan_os::euid()))
}

/// Hide `password` in any `scheme://user:password@host` inside `s`: command lines are recorded
/// in lock and history rows and must not carry a secret someone typed there.
pub(crate) fn redact_url_passwords(s: &str) -> String {
    s.split(' ')
        .map(|word| {
            let Some(scheme_end) = word.find("://") else {
                return word.to_string();
            };
            let rest = &word[scheme_end + 3..];
            let authority_end = rest.find('/').unwrap_or(rest.len());
            let Some(at) = rest[..authority_end].rfind('@') else {
                return word.to_string();
            };
            match rest[..at].find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &word[..scheme_end + 3],
                    &rest[..colon],
                    &rest[at..]
                ),
                None => word.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords_in_urls_only() {
        assert_eq!(
            redact_url_passwords("skyplan plan --state-backend mysql://bob:s3cret@db:3306/x"),
            "skyplan plan --state-backend mysql://bob:***@db:3306/x"
        );
        assert_eq!(
            redact_url_passwords("mysql://bob@db/x a:b@c"),
            "mysql://bob@db/x a:b@c"
        );
    }

    #[test]
    fn lock_info_names_this_process() {
        let info = LockInfo::new("skyplan apply");
        assert_eq!(info.pid, std::process::id());
        assert_eq!(info.host, this_host());
        assert!(time::OffsetDateTime::parse(
            &info.created_at,
            &time::format_description::well_known::Rfc3339
        )
        .is_ok());
    }
}
