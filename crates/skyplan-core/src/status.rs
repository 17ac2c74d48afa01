//! Pure parsing of what the `sky.*` procedures return, on rows decoupled from mysql_async so
//! tests can build them by hand.

use crate::observed::ObservedReplication;

/// One result row as column name → text value (`None` for SQL NULL).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NamedRow {
    columns: Vec<(String, Option<String>)>,
}

impl NamedRow {
    pub fn new() -> NamedRow {
        NamedRow::default()
    }

    /// Builder for tests: sets a column, replacing one of the same name.
    pub fn with(mut self, column: &str, value: Option<&str>) -> NamedRow {
        let value = value.map(str::to_string);
        match self.columns.iter_mut().find(|(c, _)| c == column) {
            Some(existing) => existing.1 = value,
            None => self.push(column.to_string(), value),
        }
        self
    }

    pub fn push(&mut self, column: String, value: Option<String>) {
        self.columns.push((column, value));
    }

    /// The value of the first column with one of these names (ASCII case-insensitive).
    /// `Ok(None)` for NULL, `Err` when no such column exists.
    pub fn get_any(&self, names: &[&str]) -> Result<Option<&str>, StatusParseError> {
        self.columns
            .iter()
            .find(|(c, _)| names.iter().any(|n| c.eq_ignore_ascii_case(n)))
            .map(|(_, v)| v.as_deref())
            .ok_or_else(|| StatusParseError::MissingColumn(names[0].to_string()))
    }

    pub fn get(&self, name: &str) -> Result<Option<&str>, StatusParseError> {
        self.get_any(&[name])
    }

    /// The first column's value, for results whose column name varies (`SHOW GRANTS`).
    pub fn first_value(&self) -> Option<&str> {
        self.columns.first().and_then(|(_, v)| v.as_deref())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StatusParseError {
    #[error("column `{0}` is missing")]
    MissingColumn(String),
    #[error("column `{column}` has an unexpected value `{value}`")]
    BadValue { column: String, value: String },
}

/// State of a replica thread as `SHOW REPLICA STATUS` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ThreadState {
    Yes,
    No,
    /// The IO thread is trying to reach the primary (network, allowlist or credentials).
    Connecting,
    /// MariaDB's state between the two: connected, registering with the primary and asking
    /// for its GTID position before the first event (`slave_running_str` in `sql/slave.cc`:
    /// No, Connecting, Preparing, Yes). Seen in CI right after a replica's start.
    Preparing,
}

pub fn parse_thread_state(
    column: &str,
    value: Option<&str>,
) -> Result<ThreadState, StatusParseError> {
    match value.unwrap_or("").trim() {
        v if v.eq_ignore_ascii_case("yes") => Ok(ThreadState::Yes),
        v if v.eq_ignore_ascii_case("no") || v.is_empty() => Ok(ThreadState::No),
        v if v.eq_ignore_ascii_case("connecting") => Ok(ThreadState::Connecting),
        v if v.eq_ignore_ascii_case("preparing") => Ok(ThreadState::Preparing),
        v => Err(bad(column, v)),
    }
}

/// Parse the result of `CALL sky.replication_status()`. No row, or a row without a primary
/// host (after a reset), means no replication is configured.
///
/// MariaDB's column names (`Slave_*`, `Master_*`) are expected; MySQL's newer `Replica_*` /
/// `Source_*` spellings are accepted as well.
pub fn parse_replication_status(
    rows: &[NamedRow],
) -> Result<ObservedReplication, StatusParseError> {
    let Some(row) = rows.first() else {
        return Ok(ObservedReplication::default());
    };
    let master_host = non_empty(row.get_any(&["Master_Host", "Source_Host"])?);
    let io = parse_thread_state(
        "Slave_IO_Running",
        row.get_any(&["Slave_IO_Running", "Replica_IO_Running"])?,
    )?;
    let sql = parse_thread_state(
        "Slave_SQL_Running",
        row.get_any(&["Slave_SQL_Running", "Replica_SQL_Running"])?,
    )?;
    Ok(ObservedReplication {
        configured: master_host.is_some(),
        io_running: io == ThreadState::Yes,
        // A SQL thread has no connection to make: starting is running.
        sql_running: matches!(sql, ThreadState::Yes | ThreadState::Preparing),
        master_host,
        master_user: non_empty(row.get_any(&["Master_User", "Source_User"]).unwrap_or(None)),
        master_port: parse_opt_number(
            "Master_Port",
            row.get_any(&["Master_Port", "Source_Port"])?,
        )?,
        seconds_behind_master: parse_opt_number(
            "Seconds_Behind_Master",
            row.get_any(&["Seconds_Behind_Master", "Seconds_Behind_Source"])?,
        )?,
        last_io_errno: parse_opt_number("Last_IO_Errno", row.get("Last_IO_Errno")?)?.unwrap_or(0),
        // A server's message is data: control characters escaped before it can be printed.
        last_io_error: skyplan_api::text::escape_controls(row.get("Last_IO_Error")?.unwrap_or(""))
            .into_owned(),
        last_sql_errno: parse_opt_number("Last_SQL_Errno", row.get("Last_SQL_Errno")?)?
            .unwrap_or(0),
        last_sql_error: skyplan_api::text::escape_controls(
            row.get("Last_SQL_Error")?.unwrap_or(""),
        )
        .into_owned(),
        // MariaDB-only column; absent on MySQL-style servers.
        gtid_io_pos: row
            .get("Gtid_IO_Pos")
            .ok()
            .flatten()
            .and_then(|v| non_empty(Some(v))),
        // Judged by refresh, which reads again while a reconnect settles.
        reconnecting: None,
        reconnected_after: None,
    })
}

/// The GTID variables listed by `CALL sky.gtid_status()`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GtidStatus {
    pub binlog_pos: Option<String>,
    pub binlog_state: Option<String>,
    pub current_pos: Option<String>,
    pub slave_pos: Option<String>,
}

/// Parse `Variable_name` / `Value` rows; unknown variables are ignored.
pub fn parse_gtid_status(rows: &[NamedRow]) -> Result<GtidStatus, StatusParseError> {
    let mut status = GtidStatus::default();
    for row in rows {
        let name = row.get("Variable_name")?.unwrap_or("");
        let value = non_empty(row.get("Value")?);
        match name.to_ascii_lowercase().as_str() {
            "gtid_binlog_pos" => status.binlog_pos = value,
            "gtid_binlog_state" => status.binlog_state = value,
            "gtid_current_pos" => status.current_pos = value,
            "gtid_slave_pos" => status.slave_pos = value,
            _ => {}
        }
    }
    Ok(status)
}

/// The `Message` column of procedures like `start_replication` ("External replication running
/// normally."), if any row carries one.
pub fn parse_message(rows: &[NamedRow]) -> Option<String> {
    rows.iter()
        .find_map(|r| r.get("Message").ok().flatten().map(str::to_string))
}

fn non_empty(value: Option<&str>) -> Option<String> {
    value
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

fn parse_opt_number<T: std::str::FromStr>(
    column: &str,
    value: Option<&str>,
) -> Result<Option<T>, StatusParseError> {
    match value.map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) if v.eq_ignore_ascii_case("NULL") => Ok(None),
        Some(v) => v.parse().map(Some).map_err(|_| bad(column, v)),
    }
}

fn bad(column: &str, value: &str) -> StatusParseError {
    StatusParseError::BadValue {
        column: column.to_string(),
        value: value.chars().take(80).collect(),
    }
}

/// `Connect_Retry`: the seconds MariaDB waits between reconnect attempts.
pub fn connect_retry(rows: &[NamedRow]) -> Option<u64> {
    rows.first()?
        .get_any(&["Connect_Retry"])
        .ok()
        .flatten()?
        .trim()
        .parse()
        .ok()
}

/// The replication status, with the IO thread's "Connecting" state taken into account, and
/// whether it is retrying after an error (to be read again).
///
/// The parsed status says only whether the IO thread is "Yes". "Connecting" (or "Preparing",
/// connected and registering) without an error is a thread that runs and is (re)establishing
/// its connection, as right after a start: it counts as running. "Connecting" with an error is a reconnect in progress: the caller reads
/// again so it settles before it is judged; one that keeps failing is reported as it is: not
/// running, with the server's `Last_IO_Error`.
pub fn judge_status(rows: &[NamedRow]) -> Result<(ObservedReplication, bool), StatusParseError> {
    let mut status = parse_replication_status(rows)?;
    let connecting = rows
        .first()
        .and_then(|r| r.get_any(&["Slave_IO_Running", "Replica_IO_Running"]).ok())
        .and_then(|v| parse_thread_state("Slave_IO_Running", v).ok())
        .is_some_and(|t| matches!(t, ThreadState::Connecting | ThreadState::Preparing));
    if connecting && status.last_io_errno == 0 {
        status.io_running = true;
    }
    let retrying = connecting && status.last_io_errno != 0;
    Ok((status, retrying))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status_row(io: &str, sql: &str, behind: Option<&str>) -> NamedRow {
        NamedRow::new()
            .with("Slave_IO_State", Some("Waiting for master to send event"))
            .with("Master_Host", Some("mariadb1.example.com"))
            .with("Master_User", Some("skysql_replication"))
            .with("Master_Port", Some("3306"))
            .with("Slave_IO_Running", Some(io))
            .with("Slave_SQL_Running", Some(sql))
            .with("Last_Errno", Some("0"))
            .with("Seconds_Behind_Master", behind)
            .with("Last_IO_Errno", Some("0"))
            .with("Last_IO_Error", Some(""))
            .with("Last_SQL_Errno", Some("0"))
            .with("Last_SQL_Error", Some(""))
            .with("Gtid_IO_Pos", Some("0-100-1"))
    }

    #[test]
    fn healthy_replica() {
        let r = parse_replication_status(&[status_row("Yes", "Yes", Some("0"))]).unwrap();
        assert_eq!(
            r,
            ObservedReplication {
                configured: true,
                io_running: true,
                sql_running: true,
                master_host: Some("mariadb1.example.com".into()),
                master_user: Some("skysql_replication".into()),
                master_port: Some(3306),
                seconds_behind_master: Some(0),
                last_io_errno: 0,
                last_io_error: String::new(),
                last_sql_errno: 0,
                last_sql_error: String::new(),
                gtid_io_pos: Some("0-100-1".into()),
                reconnecting: None,
                reconnected_after: None,
            }
        );
    }

    #[test]
    fn connecting_io_thread_and_null_lag() {
        let row = status_row("Connecting", "Yes", None)
            .with("Last_IO_Errno", Some("2003"))
            .with("Last_IO_Error", Some("error connecting to master"));
        let r = parse_replication_status(&[row]).unwrap();
        assert!(r.configured && !r.io_running && r.sql_running);
        assert_eq!(r.seconds_behind_master, None);
        assert_eq!(r.last_io_errno, 2003);
        assert_eq!(r.last_io_error, "error connecting to master");
    }

    #[test]
    fn stopped_threads() {
        let r = parse_replication_status(&[status_row("No", "No", Some("NULL"))]).unwrap();
        assert!(r.configured && !r.io_running && !r.sql_running);
        assert_eq!(r.seconds_behind_master, None);
    }

    #[test]
    fn empty_result_means_not_configured() {
        assert_eq!(
            parse_replication_status(&[]).unwrap(),
            ObservedReplication::default()
        );
        let reset = status_row("No", "No", None).with("Master_Host", Some(""));
        assert!(!parse_replication_status(&[reset]).unwrap().configured);
    }

    #[test]
    fn mysql_spelling_is_accepted() {
        let row = NamedRow::new()
            .with("Source_Host", Some("h"))
            .with("Source_Port", Some("3307"))
            .with("Replica_IO_Running", Some("Yes"))
            .with("Replica_SQL_Running", Some("Yes"))
            .with("Seconds_Behind_Source", Some("4"))
            .with("Last_IO_Errno", Some("0"))
            .with("Last_IO_Error", None)
            .with("Last_SQL_Errno", Some("0"))
            .with("Last_SQL_Error", None);
        let r = parse_replication_status(&[row]).unwrap();
        assert_eq!(
            (r.master_port, r.seconds_behind_master),
            (Some(3307), Some(4))
        );
        assert_eq!(r.gtid_io_pos, None);
    }

    #[test]
    fn malformed_rows_are_errors() {
        let missing = NamedRow::new().with("Master_Host", Some("h"));
        assert_eq!(
            parse_replication_status(&[missing]).unwrap_err(),
            StatusParseError::MissingColumn("Slave_IO_Running".into())
        );
        let bad_state = status_row("Maybe", "Yes", None);
        assert!(parse_replication_status(&[bad_state])
            .unwrap_err()
            .to_string()
            .contains("`Maybe`"));
        let bad_lag = status_row("Yes", "Yes", Some("soon"));
        assert!(parse_replication_status(&[bad_lag]).is_err());
    }

    #[test]
    fn gtid_status_rows() {
        let row = |n: &str, v: &str| {
            NamedRow::new()
                .with("Variable_name", Some(n))
                .with("Value", Some(v))
        };
        let s = parse_gtid_status(&[
            row("gtid_binlog_pos", "435700-435700-122"),
            row("gtid_binlog_state", "435700-435700-122"),
            row("gtid_current_pos", "0-100-1,435700-435700-122"),
            row("gtid_slave_pos", ""),
            row("gtid_strict_mode", "ON"),
        ])
        .unwrap();
        assert_eq!(s.binlog_pos.as_deref(), Some("435700-435700-122"));
        assert_eq!(s.current_pos.as_deref(), Some("0-100-1,435700-435700-122"));
        assert_eq!(s.slave_pos, None);
    }

    #[test]
    fn message_column() {
        let rows = [NamedRow::new().with("Message", Some("Replica has been reset"))];
        assert_eq!(
            parse_message(&rows).as_deref(),
            Some("Replica has been reset")
        );
        assert_eq!(parse_message(&[]), None);
    }
}

#[cfg(test)]
mod judge_tests {
    use super::*;

    fn row(io: &str, errno: &str) -> Vec<NamedRow> {
        vec![NamedRow::new()
            .with("Master_Host", Some("primary.example.com"))
            .with("Master_Port", Some("3306"))
            .with("Slave_IO_Running", Some(io))
            .with("Slave_SQL_Running", Some("Yes"))
            .with("Seconds_Behind_Master", None)
            .with("Last_IO_Errno", Some(errno))
            .with(
                "Last_IO_Error",
                Some(if errno == "0" {
                    ""
                } else {
                    "error connecting to master"
                }),
            )
            .with("Last_SQL_Errno", Some("0"))
            .with("Last_SQL_Error", Some(""))]
    }

    #[test]
    fn connecting_without_an_error_is_a_running_thread() {
        let (s, retrying) = judge_status(&row("Connecting", "0")).unwrap();
        assert!(s.io_running && s.sql_running && !retrying);
        assert_eq!(s.seconds_behind_master, None);
    }

    /// MariaDB's fourth state (connected, registering): CI once read it right after a start,
    /// and refresh failed on "an unexpected value `Preparing`".
    #[test]
    fn preparing_is_a_running_thread_and_retried_after_an_error() {
        let (s, retrying) = judge_status(&row("Preparing", "0")).unwrap();
        assert!(s.io_running && !retrying);
        let (s, retrying) = judge_status(&row("Preparing", "2013")).unwrap();
        assert!(!s.io_running && retrying);
        let mut r = row("Yes", "0");
        r[0] = r[0].clone().with("Slave_SQL_Running", Some("Preparing"));
        assert!(parse_replication_status(&r).unwrap().sql_running);
    }

    #[test]
    fn connecting_with_an_error_is_retrying_and_not_running() {
        let (s, retrying) = judge_status(&row("Connecting", "2003")).unwrap();
        assert!(retrying);
        assert!(!s.io_running);
        assert_eq!(s.last_io_errno, 2003);
    }

    #[test]
    fn settled_states_are_taken_as_they_are() {
        assert!(judge_status(&row("Yes", "0")).unwrap().0.io_running);
        let (stopped, retrying) = judge_status(&row("No", "0")).unwrap();
        assert!(!stopped.io_running && !retrying);
        let (failed, retrying) = judge_status(&row("No", "1045")).unwrap();
        assert_eq!((failed.io_running, failed.last_io_errno), (false, 1045));
        assert!(!retrying);
        // No rows: no replication configured.
        assert!(!judge_status(&[]).unwrap().0.configured);
    }

    #[test]
    fn connect_retry_is_read_from_the_status() {
        let rows = vec![NamedRow::new().with("Connect_Retry", Some("60"))];
        assert_eq!(connect_retry(&rows), Some(60));
        assert_eq!(connect_retry(&[]), None);
    }
}
