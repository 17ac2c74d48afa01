//! The MariaDB state backend, for teams and scheduled jobs sharing one state.
//!
//! One row per workspace (topology file stem) in `skyplan_state` holds the state JSON (the
//! same bytes a local file would hold), its lineage and serial; `skyplan_state_history` keeps
//! the last N versions with their writer; `skyplan_lock` names the lock holder. Each operation
//! uses a short-lived connection; a lock keeps its own connection for as long as it is held.
//!
//! # Guarantees
//! - Writes are compare-and-swap: the stored row is read `FOR UPDATE` inside the transaction
//!   that replaces it, so a writer holding a stale serial fails instead of overwriting.
//! - The password lives only in memory (never in `describe()`, errors, logs or the state).

pub(crate) mod config;
pub(crate) mod lock;
pub mod schema;

use crate::state::WriterExt;
use async_trait::async_trait;
use mysql_async::prelude::*;
use mysql_async::{Conn, Opts, TxOpts};
use sha2::{Digest, Sha256};
use std::time::Duration;
use tokio::sync::OnceCell;

pub use config::{
    MysqlConfig, Password, SslMode, DEFAULT_HISTORY_LIMIT, DEFAULT_PASSWORD_ENV, DEFAULT_PORT,
};

use super::backend::{HistoryEntry, LockInfo, StateBackend, StateLock, Writer};
use super::codec;
use super::error::StateError;
use super::model::State;
use super::rules::{check_cas, check_push};

pub struct MysqlBackend {
    config: MysqlConfig,
    workspace: String,
    password: Option<Password>,
    schema_ready: OnceCell<()>,
}

impl std::fmt::Debug for MysqlBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

/// MariaDB error codes a concurrent first write can produce.
const ER_DUP_ENTRY: u16 = 1062;
const ER_LOCK_DEADLOCK: u16 = 1213;

impl MysqlBackend {
    pub fn new(
        config: MysqlConfig,
        workspace: impl Into<String>,
        password: Option<Password>,
    ) -> Self {
        MysqlBackend {
            config,
            workspace: workspace.into(),
            password,
            schema_ready: OnceCell::new(),
        }
    }

    /// Parse `url` and read the password from the env var `password_env` (which must be set)
    /// or, when `None`, from `SKYPLAN_STATE_PASSWORD` if that is set.
    pub fn from_url(
        url: &str,
        workspace: impl Into<String>,
        password_env: Option<&str>,
    ) -> Result<MysqlBackend, StateError> {
        let config = MysqlConfig::parse(url)?;
        let password = match password_env {
            Some(env) => {
                Some(Password::new(std::env::var(env).map_err(|_| {
                    StateError::MissingPassword { env: env.into() }
                })?))
            }
            None => std::env::var(DEFAULT_PASSWORD_ENV).ok().map(Password::new),
        };
        Ok(MysqlBackend::new(config, workspace, password))
    }

    pub fn config(&self) -> &MysqlConfig {
        &self.config
    }
    pub fn workspace(&self) -> &str {
        &self.workspace
    }

    /// The `GET_LOCK()` name of this workspace: server-wide, so it is derived from the database
    /// and the workspace, hashed to fit MariaDB's 64-character limit.
    pub fn lock_name(&self) -> String {
        lock_name(&self.config.database, &self.workspace)
    }

    pub(crate) fn location(&self) -> String {
        self.describe()
    }

    pub(crate) fn opts(&self) -> Opts {
        self.config.opts(self.password.as_ref())
    }

    pub(crate) async fn connect(&self) -> Result<Conn, StateError> {
        self.connect_with(self.opts()).await
    }

    /// A new connection, with the schema checked (once per backend) before first use.
    pub(crate) async fn connect_with(&self, opts: Opts) -> Result<Conn, StateError> {
        let loc = self.location();
        let mut conn = Conn::new(opts)
            .await
            .map_err(|e| db_error(&loc, "connecting", e))?;
        tracing::debug!("connected to the state database {loc}");
        if !self.schema_ready.initialized() {
            schema::ensure(&mut conn, &loc, &self.config.database).await?;
            let _ = self.schema_ready.set(());
        }
        Ok(conn)
    }

    /// Store the state `decide` returns (given the stored one) in one transaction, with a
    /// history row, trimming history to the limit. `decide` returning `None` stores nothing.
    async fn transact(
        &self,
        decide: impl FnOnce(Option<&State>) -> Result<Option<State>, StateError> + Send,
    ) -> Result<Option<State>, StateError> {
        let loc = self.location();
        let ws = self.workspace.as_str();
        let mut conn = self.connect().await?;
        let mut tx = conn
            .start_transaction(TxOpts::default())
            .await
            .map_err(|e| db_error(&loc, "starting a transaction", e))?;
        let stored: Option<String> = tx
            .exec_first(
                "SELECT state FROM skyplan_state WHERE workspace = ? FOR UPDATE",
                (ws,),
            )
            .await
            .map_err(|e| db_error(&loc, "reading the state", e))?;
        let stored = stored
            .map(|json| codec::from_json(json.as_bytes(), &loc))
            .transpose()?;
        let Some(next) = decide(stored.as_ref())? else {
            return Ok(None);
        };
        let json = codec::to_json(&next)?;
        let w = Writer::current();
        let row = (
            ws,
            next.lineage.as_str(),
            next.serial,
            json.as_str(),
            w.user.as_str(),
            w.host.as_str(),
            w.pid,
            w.command.as_str(),
        );
        let result = async {
            tx.exec_drop(
                "INSERT INTO skyplan_state (workspace, lineage, serial, state, updated_at, \
                 updated_by_user, updated_by_host, updated_by_pid, updated_by_command) \
                 VALUES (?, ?, ?, ?, UTC_TIMESTAMP(6), ?, ?, ?, ?) \
                 ON DUPLICATE KEY UPDATE lineage = VALUES(lineage), serial = VALUES(serial), \
                 state = VALUES(state), updated_at = VALUES(updated_at), \
                 updated_by_user = VALUES(updated_by_user), \
                 updated_by_host = VALUES(updated_by_host), \
                 updated_by_pid = VALUES(updated_by_pid), \
                 updated_by_command = VALUES(updated_by_command)",
                row,
            )
            .await?;
            tx.exec_drop(
                "INSERT INTO skyplan_state_history (workspace, lineage, serial, state, \
                 written_at, writer_user, writer_host, writer_pid, writer_command) \
                 VALUES (?, ?, ?, ?, UTC_TIMESTAMP(6), ?, ?, ?, ?)",
                row,
            )
            .await?;
            // Everything older than the N newest versions of this workspace goes.
            tx.exec_drop(
                "DELETE FROM skyplan_state_history WHERE workspace = ? AND id <= \
                 (SELECT id FROM (SELECT id FROM skyplan_state_history WHERE workspace = ? \
                 ORDER BY id DESC LIMIT 1 OFFSET ?) AS oldest_kept)",
                (ws, ws, self.config.history_limit),
            )
            .await?;
            tx.commit().await
        }
        .await;
        match result {
            Ok(()) => {
                tracing::debug!("stored serial {} in {loc}", next.serial);
                Ok(Some(next))
            }
            Err(mysql_async::Error::Server(e))
                if e.code == ER_DUP_ENTRY || e.code == ER_LOCK_DEADLOCK =>
            {
                Err(StateError::Database {
                    location: loc,
                    action: "writing the state",
                    message: "another writer created this state at the same moment; read it \
                              again and retry"
                        .into(),
                })
            }
            Err(e) => Err(db_error(&loc, "writing the state", e)),
        }
    }
}

pub fn lock_name(database: &str, workspace: &str) -> String {
    format!(
        "skyplan:{}",
        short_hash(&format!("{database}\0{workspace}"))
    )
}

pub(crate) fn short_hash(s: &str) -> String {
    hex::encode(&Sha256::digest(s.as_bytes())[..20])
}

pub(crate) fn db_error(location: &str, action: &'static str, e: mysql_async::Error) -> StateError {
    StateError::Database {
        location: location.to_string(),
        action,
        message: e.to_string(),
    }
}

#[async_trait]
impl StateBackend for MysqlBackend {
    fn describe(&self) -> String {
        format!("{} (workspace {})", self.config.describe(), self.workspace)
    }

    async fn read(&self) -> Result<Option<State>, StateError> {
        let loc = self.location();
        let mut conn = self.connect().await?;
        let json: Option<String> = conn
            .exec_first(
                "SELECT state FROM skyplan_state WHERE workspace = ?",
                (&self.workspace,),
            )
            .await
            .map_err(|e| db_error(&loc, "reading the state", e))?;
        let _ = conn.disconnect().await;
        json.map(|j| codec::from_json(j.as_bytes(), &loc))
            .transpose()
    }

    async fn write(&self, state: &mut State) -> Result<(), StateError> {
        let loc = self.location();
        let given = state.clone();
        let stored = self
            .transact(move |stored| {
                check_cas(&loc, stored, &given)?;
                let mut next = given;
                next.serial += 1;
                Ok(Some(next))
            })
            .await?;
        if let Some(next) = stored {
            state.serial = next.serial;
        }
        Ok(())
    }

    async fn push(&self, state: &State, force: bool) -> Result<(), StateError> {
        let loc = self.location();
        let given = state.clone();
        self.transact(move |stored| {
            match stored {
                Some(s) if !force && check_push(&loc, s, &given)? => return Ok(None),
                Some(s) if *s == given => return Ok(None),
                _ => {}
            }
            Ok(Some(given))
        })
        .await?;
        Ok(())
    }

    async fn lock(
        &self,
        info: LockInfo,
        timeout: Duration,
        ui: &crate::printer::Printer,
    ) -> Result<Box<dyn StateLock>, StateError> {
        Ok(Box::new(lock::acquire(self, info, timeout, ui).await?))
    }

    async fn lock_holder(&self) -> Result<Option<LockInfo>, StateError> {
        let mut conn = self.connect().await?;
        let holder = lock::holder(&mut conn, self).await?;
        let _ = conn.disconnect().await;
        Ok(holder.map(|(h, _)| h))
    }

    async fn force_unlock(
        &self,
        expected_id: Option<&str>,
        kill_holder: bool,
    ) -> Result<Option<LockInfo>, StateError> {
        lock::force_unlock(self, expected_id, kill_holder).await
    }

    async fn history(&self) -> Result<Vec<HistoryEntry>, StateError> {
        let loc = self.location();
        let mut conn = self.connect().await?;
        type Row = (u64, String, String, String, String, u32, String);
        let rows: Vec<Row> = conn
            .exec(
                "SELECT serial, lineage, DATE_FORMAT(written_at, '%Y-%m-%dT%H:%i:%s.%fZ'), \
                 writer_user, writer_host, writer_pid, writer_command \
                 FROM skyplan_state_history WHERE workspace = ? ORDER BY id DESC",
                (&self.workspace,),
            )
            .await
            .map_err(|e| db_error(&loc, "reading the history", e))?;
        let _ = conn.disconnect().await;
        Ok(rows
            .into_iter()
            .map(
                |(serial, lineage, at, user, host, pid, command)| HistoryEntry {
                    serial,
                    lineage,
                    written_at: Some(at),
                    writer: Some(Writer {
                        user,
                        host,
                        pid,
                        command,
                    }),
                },
            )
            .collect())
    }
}
