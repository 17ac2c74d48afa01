//! The SQL of `skyplan verify`, read-only on both sides: list the user tables, read GTID
//! positions (the wait is `SqlConn::master_gtid_wait` in `gtids.rs`), and measure a table
//! (`COUNT(*)` and `CHECKSUM TABLE`) inside a read-only consistent snapshot. Nothing here writes: no temporary
//! tables, no checksum table, no `SET GLOBAL`.

use mysql_async::{Params, Value};
use skyplan_core::verify::{TableId, TableSide};

use super::error::SqlError;
use super::status::NamedRow;
use super::SqlConn;

/// Schemas that hold no user data: the server's own, and SkySQL's `sky`.
pub(crate) const SYSTEM_SCHEMAS: [&str; 5] = [
    "mysql",
    "information_schema",
    "performance_schema",
    "sys",
    "sky",
];

/// MariaDB's "table doesn't exist".
const ER_NO_SUCH_TABLE: u16 = 1146;

/// `` `name` ``, with backticks inside doubled.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// `` `schema`.`name` ``.
pub(crate) fn quote_table(t: &TableId) -> String {
    format!("{}.{}", quote_ident(&t.schema), quote_ident(&t.name))
}

fn first_value(sets: &[Vec<NamedRow>], column: &str) -> Option<Option<String>> {
    sets.iter()
        .flatten()
        .find_map(|row| row.get(column).ok().map(|v| v.map(str::to_string)))
}

impl SqlConn {
    /// Make every later transaction of this session see one snapshot for all its statements
    /// (the server's default, stated so a changed default cannot break the comparison).
    pub async fn prepare_verify_session(&mut self) -> Result<(), SqlError> {
        self.execute(
            "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ",
            "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ",
        )
        .await
    }

    /// The user tables (base tables outside [`SYSTEM_SCHEMAS`]), by schema and name.
    pub async fn user_tables(&mut self) -> Result<Vec<TableId>, SqlError> {
        let what = "listing the user tables";
        let placeholders = vec!["?"; SYSTEM_SCHEMAS.len()].join(", ");
        let sql = format!(
            "SELECT TABLE_SCHEMA AS s, TABLE_NAME AS t FROM information_schema.TABLES \
             WHERE TABLE_TYPE = 'BASE TABLE' AND TABLE_SCHEMA NOT IN ({placeholders}) \
             ORDER BY TABLE_SCHEMA, TABLE_NAME"
        );
        let params = Params::Positional(SYSTEM_SCHEMAS.iter().map(|s| Value::from(*s)).collect());
        let sets = self.call(what, &sql, params).await?;
        let mut tables = Vec::new();
        for row in sets.iter().flatten() {
            match (row.get("s"), row.get("t")) {
                (Ok(Some(s)), Ok(Some(t))) => tables.push(TableId::new(s, t)),
                _ => return Err(self.unexpected(what, "a row without a schema or table name")),
            }
        }
        Ok(tables)
    }

    /// `@@gtid_binlog_pos`: the last transaction of each domain in this server's binlog.
    pub async fn gtid_binlog_pos(&mut self) -> Result<String, SqlError> {
        self.variable("gtid_binlog_pos").await
    }

    /// `@@gtid_slave_pos`: the last transaction of each domain a replica has applied.
    pub async fn gtid_slave_pos(&mut self) -> Result<String, SqlError> {
        self.variable("gtid_slave_pos").await
    }

    async fn variable(&mut self, name: &'static str) -> Result<String, SqlError> {
        let what = format!("SELECT @@{name}");
        let sets = self
            .call(&what, &format!("SELECT @@{name} AS v"), Params::Empty)
            .await?;
        match first_value(&sets, "v") {
            Some(v) => Ok(v.unwrap_or_default()),
            None => Err(self.unexpected(&what, "no row")),
        }
    }

    /// Open a read-only transaction on a consistent snapshot: what [`Self::table_side`] reads
    /// until [`Self::end_snapshot`] is one instant of the server, whatever writers do meanwhile.
    pub async fn begin_snapshot(&mut self) -> Result<(), SqlError> {
        self.execute(
            "START TRANSACTION READ ONLY, WITH CONSISTENT SNAPSHOT",
            "START TRANSACTION READ ONLY, WITH CONSISTENT SNAPSHOT",
        )
        .await
    }

    /// Inside [`Self::begin_snapshot`]: the GTID position of the snapshot itself (the binlog
    /// position MariaDB records for it, as a GTID), and `true`. When the server cannot say,
    /// `@@gtid_binlog_pos` read just after the snapshot opened (at or past it) and `false`.
    pub async fn snapshot_gtid_pos(&mut self) -> Result<(String, bool), SqlError> {
        let what = "BINLOG_GTID_POS of the snapshot";
        let sql = "SELECT BINLOG_GTID_POS(f.VARIABLE_VALUE, p.VARIABLE_VALUE) AS pos \
                   FROM information_schema.SESSION_STATUS f \
                   JOIN information_schema.SESSION_STATUS p \
                   ON f.VARIABLE_NAME = 'BINLOG_SNAPSHOT_FILE' \
                   AND p.VARIABLE_NAME = 'BINLOG_SNAPSHOT_POSITION'";
        match self.call(what, sql, Params::Empty).await {
            Ok(sets) => match first_value(&sets, "pos").flatten() {
                Some(pos) if super::validate_gtid(&pos).is_ok() => return Ok((pos, true)),
                _ => {}
            },
            // Not allowed to read the binlog's positions: the fallback below still holds.
            Err(e) => tracing::debug!("{e}"),
        }
        Ok((self.gtid_binlog_pos().await?, false))
    }

    /// On a replica: whether [`Self::snapshot_slave_pos`] can be trusted, i.e. the applied
    /// position is kept in an InnoDB table written in the same transaction as the replicated
    /// rows (`mysql.gtid_slave_pos`, and no per-engine tables). `false` when it cannot be read.
    pub async fn slave_pos_is_transactional(&mut self) -> bool {
        let sql = "SELECT t.ENGINE AS e, @@gtid_pos_auto_engines AS a \
                   FROM information_schema.TABLES t \
                   WHERE t.TABLE_SCHEMA = 'mysql' AND t.TABLE_NAME = 'gtid_slave_pos'";
        match self
            .call("reading mysql.gtid_slave_pos's engine", sql, Params::Empty)
            .await
        {
            Ok(sets) => {
                let engine = first_value(&sets, "e").flatten().unwrap_or_default();
                let auto = first_value(&sets, "a").flatten().unwrap_or_default();
                engine.eq_ignore_ascii_case("InnoDB") && auto.trim().is_empty()
            }
            Err(e) => {
                tracing::debug!("{e}");
                false
            }
        }
    }

    /// Inside [`Self::begin_snapshot`] on a replica: the position it had applied when the
    /// snapshot was taken, read from `mysql.gtid_slave_pos` in the snapshot (the last row of
    /// each domain).
    pub async fn snapshot_slave_pos(&mut self) -> Result<String, SqlError> {
        let what = "reading mysql.gtid_slave_pos in the snapshot";
        let sql = "SELECT GROUP_CONCAT(CONCAT(t.domain_id, '-', t.server_id, '-', t.seq_no) \
                   ORDER BY t.domain_id SEPARATOR ',') AS pos \
                   FROM mysql.gtid_slave_pos t \
                   WHERE t.sub_id = (SELECT MAX(u.sub_id) FROM mysql.gtid_slave_pos u \
                   WHERE u.domain_id = t.domain_id)";
        let sets = self.call(what, sql, Params::Empty).await?;
        Ok(first_value(&sets, "pos").flatten().unwrap_or_default())
    }

    /// Close the snapshot (nothing was written: a rollback).
    pub async fn end_snapshot(&mut self) -> Result<(), SqlError> {
        self.execute("ROLLBACK", "ROLLBACK").await
    }

    /// Row count and `CHECKSUM TABLE` of `table` (in the open snapshot); `None` when the table
    /// does not exist here.
    pub async fn table_side(&mut self, table: &TableId) -> Result<Option<TableSide>, SqlError> {
        let q = quote_table(table);
        let what = format!("SELECT COUNT(*) FROM {table}");
        let sets = match self
            .call(
                &what,
                &format!("SELECT COUNT(*) AS n FROM {q}"),
                Params::Empty,
            )
            .await
        {
            Ok(sets) => sets,
            Err(e) if e.server_code() == Some(ER_NO_SUCH_TABLE) => return Ok(None),
            Err(e) => return Err(e),
        };
        let rows = first_value(&sets, "n")
            .flatten()
            .and_then(|n| n.trim().parse::<u64>().ok())
            .ok_or_else(|| self.unexpected(&what, "no count"))?;
        let what = format!("CHECKSUM TABLE {table}");
        let sets = match self
            .call(&what, &format!("CHECKSUM TABLE {q}"), Params::Empty)
            .await
        {
            Ok(sets) => sets,
            Err(e) if e.server_code() == Some(ER_NO_SUCH_TABLE) => return Ok(None),
            Err(e) => return Err(e),
        };
        let checksum = match first_value(&sets, "Checksum") {
            Some(v) => v.and_then(|c| c.trim().parse::<u64>().ok()),
            None => return Err(self.unexpected(&what, "no `Checksum` column")),
        };
        Ok(Some(TableSide { rows, checksum }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted_with_backticks_doubled() {
        assert_eq!(quote_ident("orders"), "`orders`");
        assert_eq!(quote_ident("we`ird"), "`we``ird`");
        assert_eq!(
            quote_table(&TableId::new("app", "my table")),
            "`app`.`my table`"
        );
    }

    #[test]
    fn values_are_found_in_any_result_set() {
        let sets = vec![
            vec![],
            vec![NamedRow::new()
                .with("Table", Some("app.t"))
                .with("Checksum", None)],
        ];
        assert_eq!(first_value(&sets, "Checksum"), Some(None));
        assert_eq!(first_value(&sets, "Table"), Some(Some("app.t".into())));
        assert_eq!(first_value(&sets, "n"), None);
    }
}
