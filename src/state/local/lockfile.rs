//! The local lock: `<state file>.lock`, created atomically with its content, naming the holder.
//!
//! # Guarantees
//! - At most one holder: the lock file is published with `link(2)`, which fails if the file
//!   exists, so it appears complete (never empty or half-written) and only once.
//! - A lock left behind by a dead process on this host (its pid answers ESRCH) is taken over.
//!   Takeovers are serialised by an `flock` on the state directory, which the kernel releases
//!   if the taker dies, so two takers cannot both win and the guard itself cannot get stuck.
//! - A lock held on another host is never taken over automatically: only `force_unlock`.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::atomic::{parent_dir, sync_dir, with_suffix};
use crate::state::backend::{this_host, LockInfo, StateLock};
use crate::state::error::StateError;

const RETRY_INTERVAL: Duration = Duration::from_millis(200);

pub fn lock_path(state_path: &Path) -> PathBuf {
    with_suffix(state_path, ".lock")
}

/// A held local lock; removes its lock file on release or drop.
#[derive(Debug)]
pub(crate) struct LocalLock {
    path: PathBuf,
    info: LockInfo,
    took_over: Option<LockInfo>,
    released: bool,
}

#[async_trait]
impl StateLock for LocalLock {
    fn info(&self) -> &LockInfo {
        &self.info
    }
    fn took_over(&self) -> Option<&LockInfo> {
        self.took_over.as_ref()
    }
    async fn release(mut self: Box<Self>) -> Result<(), StateError> {
        self.released = true;
        remove_if_ours(&self.path, &self.info.id)
    }
}

impl Drop for LocalLock {
    fn drop(&mut self) {
        if !self.released {
            if let Err(e) = remove_if_ours(&self.path, &self.info.id) {
                tracing::warn!("could not release the state lock: {e}");
            }
        }
    }
}

/// Take the lock at `path`, retrying every 200 ms until `timeout` has passed.
pub(crate) async fn acquire(
    path: &Path,
    info: LockInfo,
    timeout: Duration,
    location: &str,
    ui: &crate::printer::Printer,
) -> Result<LocalLock, StateError> {
    let deadline = Instant::now() + timeout;
    let mut heartbeat = crate::state::lock_wait::LockWait::new(timeout, ui);
    loop {
        match try_acquire(path, &info)? {
            Attempt::Acquired { took_over } => {
                if let Some(stale) = &took_over {
                    tracing::warn!(
                        "took over the state lock {} left by pid {} on {} (`{}`), which is no \
                         longer running",
                        path.display(),
                        stale.pid,
                        stale.host,
                        stale.command
                    );
                }
                return Ok(LocalLock {
                    path: path.to_path_buf(),
                    info,
                    took_over,
                    released: false,
                });
            }
            Attempt::Held(holder) => {
                let now = Instant::now();
                if now >= deadline {
                    return Err(StateError::Locked {
                        location: location.to_string(),
                        holder: holder.map(Box::new),
                    });
                }
                heartbeat.tick(holder.as_ref());
                tokio::time::sleep(RETRY_INTERVAL.min(deadline - now)).await;
            }
        }
    }
}

enum Attempt {
    Acquired { took_over: Option<LockInfo> },
    Held(Option<LockInfo>),
}

enum Holder {
    Gone,
    Unreadable,
    Known(LockInfo),
}

fn try_acquire(path: &Path, info: &LockInfo) -> Result<Attempt, StateError> {
    if publish(path, info)? {
        return Ok(Attempt::Acquired { took_over: None });
    }
    match read_holder(path)? {
        // Released between our attempt and the read: the next round will get it.
        Holder::Gone => Ok(Attempt::Held(None)),
        Holder::Unreadable => Ok(Attempt::Held(None)),
        Holder::Known(h) if is_stale(&h) => take_over(path, h, info),
        Holder::Known(h) => Ok(Attempt::Held(Some(h))),
    }
}

fn take_over(path: &Path, stale: LockInfo, info: &LockInfo) -> Result<Attempt, StateError> {
    let _guard = DirGuard::lock(&parent_dir(path))?;
    // Under the guard, check again: another process may have taken over already.
    match read_holder(path)? {
        Holder::Known(h) if h.id == stale.id => remove(path)?,
        Holder::Gone => {}
        Holder::Known(h) => return Ok(Attempt::Held(Some(h))),
        Holder::Unreadable => return Ok(Attempt::Held(None)),
    }
    if publish(path, info)? {
        Ok(Attempt::Acquired {
            took_over: Some(stale),
        })
    } else {
        match read_holder(path)? {
            Holder::Known(h) => Ok(Attempt::Held(Some(h))),
            _ => Ok(Attempt::Held(None)),
        }
    }
}

/// Write `info` to a private temp file, then link it to `path`: false if `path` exists.
fn publish(path: &Path, info: &LockInfo) -> Result<bool, StateError> {
    let dir = parent_dir(path);
    fs::create_dir_all(&dir).map_err(|e| StateError::io("create the directory", &dir, e))?;
    let tmp = with_suffix(path, &format!(".{}.tmp", info.id));
    let json = serde_json::to_vec_pretty(info)?;
    let write = || -> std::io::Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&tmp)?;
        f.write_all(&json)?;
        f.sync_all()
    };
    if let Err(e) = write() {
        // A full disk leaves the file created and empty: never left behind.
        let _ = fs::remove_file(&tmp);
        return Err(StateError::io("write the lock file", &tmp, e));
    }
    let linked = fs::hard_link(&tmp, path);
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            sync_dir(&dir)?;
            Ok(true)
        }
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(StateError::io("create the lock file", path, e)),
    }
}

fn read_holder(path: &Path) -> Result<Holder, StateError> {
    match skyplan_os::read_bounded(path, skyplan_os::MAX_FILE_BYTES) {
        Ok(bytes) => Ok(serde_json::from_slice(&bytes).map_or(Holder::Unreadable, Holder::Known)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(Holder::Gone),
        Err(e) => Err(StateError::io("read the lock file", path, e)),
    }
}

/// The holder recorded in the lock file at `path`, if any (and readable).
pub(crate) fn holder(path: &Path) -> Result<Option<LockInfo>, StateError> {
    Ok(match read_holder(path)? {
        Holder::Known(h) => Some(h),
        _ => None,
    })
}

fn remove(path: &Path) -> Result<(), StateError> {
    match fs::remove_file(path) {
        Ok(()) => sync_dir(&parent_dir(path)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StateError::io("remove the lock file", path, e)),
    }
}

/// Remove the lock file only if it is still ours (a force-unlock may have handed it on).
fn remove_if_ours(path: &Path, id: &str) -> Result<(), StateError> {
    match read_holder(path)? {
        Holder::Known(h) if h.id == id => remove(path),
        _ => Ok(()),
    }
}

/// Remove the lock of the state file at `state_path`, whoever holds it. With `expected_id`,
/// only if the holder has that id. Returns the removed holder (`None`: no lock, or an
/// unreadable lock file, which is removed too).
pub fn force_unlock(
    state_path: &Path,
    expected_id: Option<&str>,
) -> Result<Option<LockInfo>, StateError> {
    let path = lock_path(state_path);
    // No directory means no lock; otherwise exclude a concurrent takeover while we remove it.
    let _guard = DirGuard::lock(&parent_dir(&path)).ok();
    match read_holder(&path)? {
        Holder::Gone => Ok(None),
        Holder::Known(h) => {
            if let Some(expected) = expected_id.filter(|e| *e != h.id) {
                return Err(StateError::LockIdMismatch {
                    location: state_path.display().to_string(),
                    expected: expected.to_string(),
                    found: h.id,
                });
            }
            remove(&path)?;
            Ok(Some(h))
        }
        Holder::Unreadable => {
            if let Some(expected) = expected_id {
                return Err(StateError::LockIdMismatch {
                    location: state_path.display().to_string(),
                    expected: expected.to_string(),
                    found: "(unreadable lock file)".into(),
                });
            }
            remove(&path)?;
            Ok(None)
        }
    }
}

/// The holder is gone: the host rebooted since the lock was taken, its pid is dead, or the pid
/// now belongs to another process (reused by something unrelated).
fn is_stale(holder: &LockInfo) -> bool {
    holder.host == this_host()
        && (other_boot(holder) || !pid_alive(holder.pid) || pid_reused(holder))
}

/// The lock names a boot of this host other than the current one (both known).
fn other_boot(holder: &LockInfo) -> bool {
    matches!(
        (&holder.boot_id, skyplan_os::boot_id()),
        (Some(theirs), Some(ours)) if *theirs != ours
    )
}

/// The holder's pid now runs another process. Exact when the lock records the holder's start
/// time: (boot, pid, start time) names one process, so any other start time is another one,
/// however soon the pid was reused. A lock written before skyplan recorded start times is
/// judged by its clock instead: a process started well after the lock was taken is not its
/// holder (with slack, because wall clocks step).
fn pid_reused(holder: &LockInfo) -> bool {
    match holder.pid_start_ticks {
        Some(recorded) => {
            skyplan_os::process_start_ticks(holder.pid).is_some_and(|now| now != recorded)
        }
        None => legacy_pid_reused(holder),
    }
}

const LEGACY_PID_REUSE_SLACK: i64 = 600;

fn legacy_pid_reused(holder: &LockInfo) -> bool {
    let taken = time::OffsetDateTime::parse(
        &holder.created_at,
        &time::format_description::well_known::Rfc3339,
    );
    match (taken, skyplan_os::process_started_at(holder.pid)) {
        (Ok(taken), Some(started)) => i64::try_from(started)
            .is_ok_and(|s| s > taken.unix_timestamp() + LEGACY_PID_REUSE_SLACK),
        _ => false,
    }
}

/// Whether a process with this pid exists on this host. Unknowable pids count as alive: a lock
/// is only taken over when its holder is certainly gone.
pub(crate) fn pid_alive(pid: u32) -> bool {
    i32::try_from(pid).map_or(true, |p| p <= 0) || skyplan_os::pid_alive(pid)
}

/// An exclusive `flock` on a directory, released when dropped or when the process dies.
struct DirGuard {
    _dir: File,
}

impl DirGuard {
    fn lock(dir: &Path) -> Result<DirGuard, StateError> {
        let f = File::open(dir).map_err(|e| StateError::io("open the directory", dir, e))?;
        // flock(2): held while the descriptor is open, released by the kernel if we die.
        f.lock()
            .map_err(|e| StateError::io("lock the directory", dir, e))?;
        Ok(DirGuard { _dir: f })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_pid_is_alive_and_reaped_child_is_not() {
        assert!(pid_alive(std::process::id()));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert!(!pid_alive(pid));
        assert!(
            pid_alive(0),
            "pid 0 is not a real holder and must not be taken over"
        );
    }

    #[test]
    fn a_live_pid_started_after_the_lock_was_taken_is_not_its_holder() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let holder = |created_at: &str| LockInfo {
            id: "x".into(),
            pid: child.id(),
            host: this_host(),
            user: "u".into(),
            command: "skyplan apply".into(),
            created_at: created_at.into(),
            boot_id: None,
            pid_start_ticks: None,
        };
        // Taken an hour ago by a process that has since gone; the pid now runs `sleep`.
        let hour_ago = (time::OffsetDateTime::now_utc() - time::Duration::hours(1))
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap();
        assert!(is_stale(&holder(&hour_ago)));
        // A live pid, a lock taken now, but by an earlier boot of this host: stale.
        let now = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap();
        let mut earlier_boot = holder(&now);
        earlier_boot.boot_id = Some("an-earlier-boot".into());
        assert_eq!(is_stale(&earlier_boot), skyplan_os::boot_id().is_some());
        let mut this_boot = holder(&now);
        this_boot.boot_id = skyplan_os::boot_id();
        assert!(!is_stale(&this_boot), "a live holder of this boot");
        // Taken just now by that very process: its holder, alive.
        let later = (time::OffsetDateTime::now_utc() + time::Duration::minutes(1))
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap();
        assert!(!is_stale(&holder(&later)));
        // An unreadable time never takes a lock over.
        assert!(!is_stale(&holder("not a time")));
        child.kill().unwrap();
        child.wait().unwrap();
    }

    #[test]
    fn a_recorded_start_time_names_the_holder_exactly_with_no_slack() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id();
        let ticks = skyplan_os::process_start_ticks(pid).expect("readable on Linux");
        let now = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap();
        let holder = |start: u64| LockInfo {
            id: "x".into(),
            pid,
            host: this_host(),
            user: "u".into(),
            command: "skyplan apply".into(),
            // Taken just now: the clock rule alone would call any live pid its holder.
            created_at: now.clone(),
            boot_id: skyplan_os::boot_id(),
            pid_start_ticks: Some(start),
        };
        assert!(!is_stale(&holder(ticks)), "the very process: alive");
        // The same pid, started one tick earlier or later: another process, stale at once.
        assert!(is_stale(&holder(ticks + 1)));
        assert!(is_stale(&holder(ticks.saturating_sub(1))));
        child.kill().unwrap();
        child.wait().unwrap();
        // Gone: stale whatever its start time.
        assert!(is_stale(&holder(ticks)));
    }
}
