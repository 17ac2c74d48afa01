//! The MariaDB lock: `GET_LOCK()` on a connection of its own, held for the whole operation.
//!
//! # Guarantees
//! - The server owns the lock: when the holder's process dies (even kill -9) or its connection
//!   drops, the server releases it at once. Nothing to clean up, nothing to get stuck.
//! - The `skyplan_lock` row only *describes* the holder, so a refused locker can name it. It is
//!   trusted only while its `connection_id` is the connection that holds the named lock; a row
//!   left by a dead holder is therefore ignored (and reported as taken over).

use std::time::{Duration, Instant};

use async_trait::async_trait;
use mysql_async::prelude::*;
use mysql_async::Conn;

use super::{db_error, MysqlBackend};
use crate::state::backend::{LockInfo, StateLock};
use crate::state::error::StateError;

/// MariaDB's "unknown thread id" and "you are not owner of thread" (KILL of another user's
/// connection without CONNECTION ADMIN).
const ER_NO_SUCH_THREAD: u16 = 1094;
const ER_KILL_DENIED: u16 = 1095;

/// The server's longest idle time for a session: a long apply must not lose its lock.
const LOCK_SESSION_WAIT_TIMEOUT: usize = 31_536_000;

pub(crate) struct MysqlLock {
    conn: Option<Conn>,
    name: String,
    workspace: String,
    location: String,
    info: LockInfo,
    took_over: Option<LockInfo>,
}

#[async_trait]
impl StateLock for MysqlLock {
    fn info(&self) -> &LockInfo {
        &self.info
    }
    fn took_over(&self) -> Option<&LockInfo> {
        self.took_over.as_ref()
    }
    async fn release(mut self: Box<Self>) -> Result<(), StateError> {
        let Some(conn) = self.conn.take() else {
            return Ok(());
        };
        release(
            conn,
            self.name.clone(),
            self.workspace.clone(),
            self.info.id.clone(),
        )
        .await
        .map_err(|e| db_error(&self.location, "releasing the lock", e))
    }
}

impl Drop for MysqlLock {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else { return };
        // Best effort: without a runtime the connection just closes, which releases the lock
        // on the server too (the info row is then ignored as stale).
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let (name, ws, id) = (
                self.name.clone(),
                self.workspace.clone(),
                self.info.id.clone(),
            );
            handle.spawn(async move {
                if let Err(e) = release(conn, name, ws, id).await {
                    tracing::warn!("could not release the state lock cleanly: {e}");
                }
            });
        }
    }
}

async fn release(
    mut conn: Conn,
    name: String,
    workspace: String,
    id: String,
) -> Result<(), mysql_async::Error> {
    conn.exec_drop(
        "DELETE FROM skyplan_lock WHERE workspace = ? AND lock_id = ?",
        (workspace.as_str(), id.as_str()),
    )
    .await?;
    conn.exec_drop("DO RELEASE_LOCK(?)", (name.as_str(),))
        .await?;
    conn.disconnect().await
}

/// The recorded holder of the lock, when the lock is held. A holder that left no (or a stale)
/// record is described by its connection, with the id `connection-N`.
pub(crate) async fn holder(
    conn: &mut Conn,
    backend: &MysqlBackend,
) -> Result<Option<(LockInfo, u64)>, StateError> {
    let loc = backend.location();
    let used: Option<u64> = conn
        .exec_first("SELECT IS_USED_LOCK(?)", (backend.lock_name(),))
        .await
        .map_err(|e| db_error(&loc, "checking the lock", e))?
        .flatten();
    let Some(connection) = used else {
        return Ok(None);
    };
    let row = info_row(conn, backend).await?;
    Ok(Some(match row {
        Some((info, recorded)) if recorded == connection => (info, connection),
        _ => (unknown_holder(connection), connection),
    }))
}

fn unknown_holder(connection: u64) -> LockInfo {
    LockInfo {
        id: format!("connection-{connection}"),
        pid: 0,
        host: "(unknown)".into(),
        user: "(unknown)".into(),
        command: format!("MariaDB connection {connection}, which left no skyplan lock record"),
        created_at: "(unknown)".into(),
        boot_id: None,
        pid_start_ticks: None,
    }
}

type LockRow = (String, u64, u32, String, String, String, String);

async fn info_row(
    conn: &mut Conn,
    backend: &MysqlBackend,
) -> Result<Option<(LockInfo, u64)>, StateError> {
    let row: Option<LockRow> = conn
        .exec_first(
            "SELECT lock_id, connection_id, pid, host, user, command, created_at \
             FROM skyplan_lock WHERE workspace = ?",
            (backend.workspace(),),
        )
        .await
        .map_err(|e| db_error(&backend.location(), "reading the lock record", e))?;
    Ok(
        row.map(|(id, connection, pid, host, user, command, created_at)| {
            (
                LockInfo {
                    id,
                    pid,
                    host,
                    user,
                    command,
                    created_at,
                    // The lock is the connection's: it ends with the connection, not a pid.
                    boot_id: None,
                    pid_start_ticks: None,
                },
                connection,
            )
        }),
    )
}

pub(crate) async fn acquire(
    backend: &MysqlBackend,
    mut info: LockInfo,
    timeout: Duration,
    ui: &crate::printer::Printer,
) -> Result<MysqlLock, StateError> {
    // This lock is the connection's (it ends with it), never judged by pid or boot: the
    // record keeps no boot id or start time.
    info.boot_id = None;
    info.pid_start_ticks = None;
    let loc = backend.location();
    let opts = mysql_async::OptsBuilder::from_opts(backend.opts())
        .wait_timeout(Some(LOCK_SESSION_WAIT_TIMEOUT));
    let mut conn = backend.connect_with(opts.into()).await?;
    let mut deadline = Instant::now() + timeout;
    let mut dead_holder_waited = false;
    let mut heartbeat = crate::state::lock_wait::LockWait::new(timeout, ui);
    loop {
        // In slices, so that a long --lock-timeout says what it waits for.
        let wait = deadline
            .saturating_duration_since(Instant::now())
            .min(Duration::from_secs(10))
            .as_secs_f64();
        // The server waits for us, and hands the lock over the moment it is released.
        let got: Option<i64> = conn
            .exec_first("SELECT GET_LOCK(?, ?)", (backend.lock_name(), wait))
            .await
            .map_err(|e| db_error(&loc, "taking the lock", e))?
            .flatten();
        if got == Some(1) {
            break;
        }
        // Timed out. The holder may have taken the lock a moment ago and not yet written its
        // record: give it a moment so we can name it.
        let mut holder_now = holder(&mut conn, backend).await?;
        if holder_now.as_ref().is_some_and(|(h, _)| h.pid == 0) {
            tokio::time::sleep(Duration::from_millis(200)).await;
            holder_now = holder(&mut conn, backend).await?;
        }
        if Instant::now() < deadline {
            heartbeat.tick(holder_now.as_ref().map(|(h, _)| h));
            continue;
        }
        match holder_now {
            // Released between GET_LOCK and the check: try again.
            None if Instant::now() < deadline + Duration::from_secs(1) => continue,
            // Its holder ran on this host and is gone (kill -9): its connection is closed,
            // and the server lets the lock go as soon as it notices. Give it that moment
            // rather than fail on a lock nobody holds (seen in CI right after a kill -9).
            Some((ref h, _))
                if !dead_holder_waited
                    && h.pid != 0
                    && h.host == info.host
                    && !crate::state::local::lockfile::pid_alive(h.pid) =>
            {
                dead_holder_waited = true;
                deadline = Instant::now() + DEAD_HOLDER_RELEASE_WAIT;
                continue;
            }
            h => {
                return Err(StateError::Locked {
                    location: loc,
                    holder: h.map(|(info, _)| Box::new(info)),
                })
            }
        }
    }
    // We hold it. A record still there was left by a holder whose connection died.
    let took_over = info_row(&mut conn, backend).await?.map(|(i, _)| i);
    conn.exec_drop(
        "REPLACE INTO skyplan_lock \
         (workspace, lock_id, connection_id, pid, host, user, command, created_at) \
         VALUES (?, ?, CONNECTION_ID(), ?, ?, ?, ?, ?)",
        (
            backend.workspace(),
            info.id.as_str(),
            info.pid,
            info.host.as_str(),
            info.user.as_str(),
            info.command.as_str(),
            info.created_at.as_str(),
        ),
    )
    .await
    .map_err(|e| db_error(&loc, "recording the lock holder", e))?;
    tracing::debug!("holding the state lock on {loc} (lock id {})", info.id);
    // `took_over()` lets the caller tell the user; this is for the log.
    if let Some(stale) = &took_over {
        tracing::info!(
            "the previous holder of {loc} (pid {} on {}, `{}`) died; its lock was released by \
             the server",
            stale.pid,
            stale.host,
            stale.command
        );
    }
    Ok(MysqlLock {
        conn: Some(conn),
        name: backend.lock_name(),
        workspace: backend.workspace().to_string(),
        location: loc,
        info,
        took_over,
    })
}

/// How long the server may take to notice that a holder that died on this host closed its
/// connection, before the lock it held counts as held.
const DEAD_HOLDER_RELEASE_WAIT: Duration = Duration::from_secs(5);

/// How long a killed holder's connection may take to let its lock go.
const KILLED_RELEASE_WAIT: Duration = Duration::from_secs(10);

/// Until connection `killed` no longer holds the lock (or [`KILLED_RELEASE_WAIT`] passed:
/// the caller looks again and says so).
async fn wait_released(conn: &mut Conn, backend: &MysqlBackend, killed: u64) {
    let deadline = Instant::now() + KILLED_RELEASE_WAIT;
    while Instant::now() < deadline {
        let holder: Option<Option<u64>> = conn
            .exec_first("SELECT IS_USED_LOCK(?)", (backend.lock_name(),))
            .await
            .ok()
            .flatten();
        if holder.flatten() != Some(killed) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Clear the lock record and, with `kill_holder`, kill the connection holding the named lock.
pub(crate) async fn force_unlock(
    backend: &MysqlBackend,
    expected_id: Option<&str>,
    kill_holder: bool,
) -> Result<Option<LockInfo>, StateError> {
    let loc = backend.location();
    let mut conn = backend.connect().await?;
    let current = holder(&mut conn, backend).await?;
    let row = info_row(&mut conn, backend).await?;
    let found = current
        .as_ref()
        .map(|(h, _)| h.clone())
        .or_else(|| row.as_ref().map(|(i, _)| i.clone()));
    if let (Some(expected), Some(found)) = (expected_id, &found) {
        if found.id != expected {
            return Err(StateError::LockIdMismatch {
                location: loc,
                expected: expected.to_string(),
                found: found.id.clone(),
            });
        }
    }
    // Kill first: if the server refuses, the record still names the holder.
    if let (true, Some((_, connection))) = (kill_holder, &current) {
        // The id is a number the server gave us, not user input.
        match conn
            .query_drop(format!("KILL CONNECTION {connection}"))
            .await
        {
            // KILL returns once the connection is marked; the killed thread releases its
            // locks when it notices, a moment later on a busy server.
            Ok(()) => wait_released(&mut conn, backend, *connection).await,
            // It ended meanwhile, which is what we wanted.
            Err(mysql_async::Error::Server(e)) if e.code == ER_NO_SUCH_THREAD => {}
            Err(mysql_async::Error::Server(e)) if e.code == ER_KILL_DENIED => {
                return Err(StateError::Database {
                    location: loc,
                    action: "killing the lock holder's connection",
                    message: format!(
                        "{} (connection {connection} belongs to another MariaDB user; ending \
                         it needs the CONNECTION ADMIN privilege for user {}); nothing was \
                         unlocked",
                        e.message,
                        backend.config().user
                    ),
                });
            }
            Err(e) => return Err(db_error(&loc, "killing the lock holder's connection", e)),
        }
    }
    conn.exec_drop(
        "DELETE FROM skyplan_lock WHERE workspace = ?",
        (backend.workspace(),),
    )
    .await
    .map_err(|e| db_error(&loc, "removing the lock record", e))?;
    let _ = conn.disconnect().await;
    Ok(found)
}
