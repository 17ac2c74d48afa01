//! A service's role for clients: a primary accepts writes, a replica is read-only for them
//! (replication and accounts with `READ_ONLY ADMIN` still write). Fencing a primary makes it
//! read-only and ends its client sessions, so no client write is accepted after that point.
//!
//! Uses ordinary SQL (`SET GLOBAL read_only`, `information_schema.PROCESSLIST`) and the
//! documented `sky.kill_session` procedure.

use mysql_async::Params;

use super::error::SqlError;
use super::SqlConn;

/// `PROCESSLIST.COMMAND` values of server threads and of replicas reading the binlog: a fence
/// must not end those (the candidate is catching up through one).
const NOT_CLIENTS: &str =
    "'Binlog Dump', 'Binlog Dump GTID', 'Daemon', 'Slave_IO', 'Slave_SQL', 'Slave_worker'";

impl SqlConn {
    pub async fn set_read_only(&mut self, on: bool) -> Result<(), SqlError> {
        let sql = if on {
            "SET GLOBAL read_only = ON"
        } else {
            "SET GLOBAL read_only = OFF"
        };
        self.execute(sql, sql).await
    }

    /// Open a caught-up replica as the primary in one round trip: its replication stopped
    /// and reset (`sky.stop_replication`, `sky.reset_replication`) and `read_only` OFF, sent
    /// as one multi-statement text query. The statements run in order and stop at the first
    /// error; after any of them the candidate no longer replicates (the caller rolls back
    /// with that in mind). At a WAN distance each round trip is the application's write gap.
    pub async fn promote(&mut self) -> Result<(), SqlError> {
        let what =
            "CALL sky.stop_replication(); CALL sky.reset_replication(); SET GLOBAL read_only = OFF";
        self.execute(what, what).await
    }

    /// Whether this account may change `read_only` (fence a primary, open a new one):
    /// `ALL PRIVILEGES`, `SUPER` or `READ_ONLY ADMIN` on `*.*`, per `SHOW GRANTS`.
    pub async fn can_set_read_only(&mut self) -> Result<bool, SqlError> {
        let what = "SHOW GRANTS";
        let sets = self.call(what, what, Params::Empty).await?;
        Ok(sets.iter().flatten().any(|r| {
            let g = r.first_value().unwrap_or("").to_ascii_uppercase();
            g.contains(" ON *.*")
                && (g.contains("ALL PRIVILEGES")
                    || g.contains("SUPER")
                    || g.contains("READ_ONLY ADMIN"))
        }))
    }

    pub async fn read_only(&mut self) -> Result<bool, SqlError> {
        let what = "SELECT @@GLOBAL.read_only";
        let sets = self
            .call(what, "SELECT @@GLOBAL.read_only AS ro", Params::Empty)
            .await?;
        let v = sets
            .iter()
            .flatten()
            .find_map(|r| r.get("ro").ok().flatten().map(str::to_string));
        Ok(matches!(v.as_deref(), Some("1" | "ON")))
    }

    /// How long the server has been up (`Uptime`), in seconds.
    pub async fn uptime_seconds(&mut self) -> Result<u64, SqlError> {
        let what = "SHOW GLOBAL STATUS LIKE 'Uptime'";
        let sets = self.call(what, what, Params::Empty).await?;
        let v = sets
            .iter()
            .flatten()
            .find_map(|r| r.get("Value").ok().flatten().map(str::to_string));
        v.as_deref()
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| self.unexpected(what, format!("no Uptime value: {v:?}")))
    }

    /// End every client session but this one (`sky.kill_session`); returns how many ended.
    /// A session that ended meanwhile is not an error.
    pub async fn end_client_sessions(&mut self) -> Result<usize, SqlError> {
        let what = "SELECT ID FROM information_schema.PROCESSLIST";
        let sql = format!(
            "SELECT ID FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID() \
             AND COMMAND NOT IN ({NOT_CLIENTS}) \
             AND USER NOT IN ('system user', 'event_scheduler', 'sky_definer', 'unauthenticated user')"
        );
        let sets = self.call(what, &sql, Params::Empty).await?;
        let ids: Vec<u64> = sets
            .iter()
            .flatten()
            .filter_map(|r| r.get("ID").ok().flatten()?.parse().ok())
            .collect();
        let mut ended = 0;
        for id in ids {
            let call = "CALL sky.kill_session(?)";
            match self
                .call(call, call, Params::Positional(vec![id.into()]))
                .await
            {
                Ok(_) => ended += 1,
                // Gone meanwhile (or turned out not to be a client's): nothing to end.
                Err(SqlError::Query {
                    code: Some(1094 | 1644),
                    ..
                }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(ended)
    }
}
