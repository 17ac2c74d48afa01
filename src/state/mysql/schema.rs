//! The tables of the MariaDB backend, created on first use and versioned.
//!
//! `skyplan_schema_version` holds one row with the schema version. Each migration step brings
//! the schema from version N-1 to N; they run under a server-side named lock so two first
//! users do not race. A schema newer than this skyplan knows is refused, never altered.

use mysql_async::prelude::*;
use mysql_async::Conn;

use super::db_error;
use crate::state::error::StateError;

/// The schema version this skyplan writes.
pub const SCHEMA_VERSION: u32 = 1;

/// `MIGRATIONS[n]` brings the schema from version n to n + 1.
const MIGRATIONS: &[&[&str]] = &[&[
    "CREATE TABLE IF NOT EXISTS skyplan_state (
        workspace VARCHAR(255) NOT NULL PRIMARY KEY,
        lineage VARCHAR(64) NOT NULL,
        serial BIGINT UNSIGNED NOT NULL,
        state LONGTEXT NOT NULL,
        updated_at DATETIME(6) NOT NULL,
        updated_by_user VARCHAR(255) NOT NULL,
        updated_by_host VARCHAR(255) NOT NULL,
        updated_by_pid INT UNSIGNED NOT NULL,
        updated_by_command TEXT NOT NULL
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
    "CREATE TABLE IF NOT EXISTS skyplan_state_history (
        id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
        workspace VARCHAR(255) NOT NULL,
        lineage VARCHAR(64) NOT NULL,
        serial BIGINT UNSIGNED NOT NULL,
        state LONGTEXT NOT NULL,
        written_at DATETIME(6) NOT NULL,
        writer_user VARCHAR(255) NOT NULL,
        writer_host VARCHAR(255) NOT NULL,
        writer_pid INT UNSIGNED NOT NULL,
        writer_command TEXT NOT NULL,
        KEY workspace_id (workspace, id)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
    "CREATE TABLE IF NOT EXISTS skyplan_lock (
        workspace VARCHAR(255) NOT NULL PRIMARY KEY,
        lock_id VARCHAR(64) NOT NULL,
        connection_id BIGINT UNSIGNED NOT NULL,
        pid INT UNSIGNED NOT NULL,
        host VARCHAR(255) NOT NULL,
        user VARCHAR(255) NOT NULL,
        command TEXT NOT NULL,
        created_at VARCHAR(64) NOT NULL
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
]];

const VERSION_TABLE: &str = "CREATE TABLE IF NOT EXISTS skyplan_schema_version (
    id TINYINT UNSIGNED NOT NULL PRIMARY KEY,
    version INT UNSIGNED NOT NULL,
    updated_at DATETIME(6) NOT NULL
) ENGINE=InnoDB";

/// MariaDB's "table doesn't exist".
const ER_NO_SUCH_TABLE: u16 = 1146;

/// Bring the schema to `SCHEMA_VERSION` (or check it is there), refusing a newer one.
pub async fn ensure(conn: &mut Conn, location: &str, database: &str) -> Result<(), StateError> {
    match current_version(conn, location).await? {
        Some(v) if v == SCHEMA_VERSION => return Ok(()),
        Some(v) if v > SCHEMA_VERSION => return Err(too_new(location, v)),
        _ => {}
    }
    let guard = format!("skyplan-schema:{}", super::short_hash(database));
    let got: Option<i64> = conn
        .exec_first("SELECT GET_LOCK(?, 60)", (guard.as_str(),))
        .await
        .map_err(|e| db_error(location, "waiting for the schema migration lock", e))?;
    if got != Some(1) {
        return Err(StateError::Database {
            location: location.to_string(),
            action: "creating the schema",
            message: "another process held the schema migration lock for 60 s".into(),
        });
    }
    let result = migrate(conn, location).await;
    let _ = conn
        .exec_drop("DO RELEASE_LOCK(?)", (guard.as_str(),))
        .await;
    result
}

async fn migrate(conn: &mut Conn, location: &str) -> Result<(), StateError> {
    conn.query_drop(VERSION_TABLE)
        .await
        .map_err(|e| db_error(location, "creating the schema version table", e))?;
    // Checked again under the lock: another process may have migrated meanwhile.
    let from = current_version(conn, location).await?.unwrap_or(0);
    if from > SCHEMA_VERSION {
        return Err(too_new(location, from));
    }
    for (step, statements) in MIGRATIONS.iter().enumerate().skip(from as usize) {
        for sql in *statements {
            conn.query_drop(*sql)
                .await
                .map_err(|e| db_error(location, "creating the state schema", e))?;
        }
        conn.exec_drop(
            "REPLACE INTO skyplan_schema_version (id, version, updated_at) \
             VALUES (1, ?, UTC_TIMESTAMP(6))",
            (step as u32 + 1,),
        )
        .await
        .map_err(|e| db_error(location, "recording the schema version", e))?;
    }
    Ok(())
}

async fn current_version(conn: &mut Conn, location: &str) -> Result<Option<u32>, StateError> {
    match conn
        .query_first::<u32, _>("SELECT version FROM skyplan_schema_version WHERE id = 1")
        .await
    {
        Ok(v) => Ok(v),
        Err(mysql_async::Error::Server(e)) if e.code == ER_NO_SUCH_TABLE => Ok(None),
        Err(e) => Err(db_error(location, "reading the schema version", e)),
    }
}

fn too_new(location: &str, found: u32) -> StateError {
    StateError::SchemaTooNew {
        location: location.to_string(),
        found,
        supported: SCHEMA_VERSION,
    }
}
