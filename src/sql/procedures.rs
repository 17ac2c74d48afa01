//! The `sky.*` stored procedures (see skysql-api/stored-procedures.md), with bound parameters.

use mysql_async::{Params, Value};

use super::error::SqlError;
use super::grant::ReplicationGrant;
use super::status::{self, GtidStatus, NamedRow};
use super::SqlConn;
use crate::observed::ObservedReplication;

/// The column of `change_external_primary_gtid`'s result that holds the GRANT.
pub(crate) const GRANT_COLUMN: &str = "Run_this_grant_on_your_external_primary";

const REPLICATION_STATUS: &str = "CALL sky.replication_status()";

impl SqlConn {
    /// On the replica: point inbound replication at `host:port`, starting after `gtid` (the
    /// restored backup's `binlog_gtid_position`). Returns the GRANT to run on the primary.
    pub async fn change_external_primary_gtid(
        &mut self,
        host: &str,
        port: u16,
        gtid: &str,
        use_ssl: bool,
    ) -> Result<ReplicationGrant, SqlError> {
        validate_gtid(gtid)?;
        let what = "CALL sky.change_external_primary_gtid";
        let params = Params::Positional(vec![
            Value::from(host),
            Value::from(port),
            Value::from(gtid),
            Value::from(use_ssl),
        ]);
        let sets = self
            .call(
                what,
                "CALL sky.change_external_primary_gtid(?, ?, ?, ?)",
                params,
            )
            .await?;
        let text = find_grant(&sets)
            .ok_or_else(|| self.unexpected(what, format!("no `{GRANT_COLUMN}` column")))?;
        ReplicationGrant::parse(&text).map_err(|source| SqlError::Grant {
            endpoint: self.endpoint().to_string(),
            what: what.to_string(),
            cause: source,
        })
    }

    /// On the primary: run the grant returned by [`Self::change_external_primary_gtid`]
    /// (re-rendered from its validated parts, never the raw text).
    pub async fn run_grant_on_primary(&mut self, grant: &ReplicationGrant) -> Result<(), SqlError> {
        let what = format!(
            "GRANT REPLICATION SLAVE to '{}'@'{}'",
            grant.user(),
            grant.host()
        );
        let statement = grant.statement();
        self.execute(&what, statement.expose())
            .await
            // The server may quote the statement back (syntax errors do): scrub the grant's
            // password too, not only the connection's.
            .map_err(|e| scrub(e, grant))
    }

    /// The accounts named like SkySQL's replication users (`skysql_replication_*`), as
    /// `user@host`.
    pub async fn replication_users(&mut self) -> Result<Vec<String>, SqlError> {
        let what = "SELECT User, Host FROM mysql.user";
        let sql = "SELECT User, Host FROM mysql.user WHERE User LIKE 'skysql\\_replication\\_%' ORDER BY User, Host";
        let sets = self.call(what, sql, Params::Empty).await?;
        Ok(sets
            .iter()
            .flatten()
            .filter_map(|r| {
                let user = r.get("User").ok().flatten()?;
                let host = r.get("Host").ok().flatten()?;
                Some(format!("{user}@{host}"))
            })
            .collect())
    }

    /// `DROP USER IF EXISTS` for a replication account given as `user@host` (binlogged, so
    /// run on a chain's root it reaches every replica). Only accounts named like SkySQL's
    /// replication users are accepted.
    pub async fn drop_replication_user(&mut self, account: &str) -> Result<(), SqlError> {
        let (user, host) = account.split_once('@').unwrap_or((account, "%"));
        let plain = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_.-:%".contains(&b))
        };
        if !user.starts_with("skysql_replication_") || !plain(user) || !plain(host) {
            return Err(self.unexpected(
                "DROP USER",
                format!("refusing to drop {account:?}: not a replication user's name"),
            ));
        }
        self.execute(
            &format!("DROP USER IF EXISTS '{user}'@'{host}'"),
            &format!("DROP USER IF EXISTS '{user}'@'{host}'"),
        )
        .await
    }

    /// Returns the procedure's message ("External replication running normally.").
    pub async fn start_replication(&mut self) -> Result<Option<String>, SqlError> {
        self.simple("CALL sky.start_replication()").await
    }

    pub async fn stop_replication(&mut self) -> Result<Option<String>, SqlError> {
        self.simple("CALL sky.stop_replication()").await
    }

    pub async fn reset_replication(&mut self) -> Result<Option<String>, SqlError> {
        self.simple("CALL sky.reset_replication()").await
    }

    pub async fn gtid_status(&mut self) -> Result<GtidStatus, SqlError> {
        let what = "CALL sky.gtid_status()";
        let sets = self.call(what, what, Params::Empty).await?;
        status::parse_gtid_status(&last_set(sets)).map_err(|e| self.unexpected(what, e))
    }

    pub async fn replication_status(&mut self) -> Result<ObservedReplication, SqlError> {
        let rows = self.replication_status_rows().await?;
        status::parse_replication_status(&rows).map_err(|e| self.unexpected(REPLICATION_STATUS, e))
    }

    /// The raw row of `sky.replication_status()` (no row: no replication configured), for
    /// callers that judge more than the parsed status holds (a reconnect in progress).
    pub async fn replication_status_rows(&mut self) -> Result<Vec<NamedRow>, SqlError> {
        let what = REPLICATION_STATUS;
        Ok(last_set(self.call(what, what, Params::Empty).await?))
    }

    async fn simple(&mut self, sql: &str) -> Result<Option<String>, SqlError> {
        let sets = self.call(sql, sql, Params::Empty).await?;
        Ok(sets.iter().find_map(|rows| status::parse_message(rows)))
    }
}

/// The last result set with columns: a procedure may SELECT intermediate results first.
fn last_set(sets: Vec<Vec<NamedRow>>) -> Vec<NamedRow> {
    sets.into_iter()
        .rev()
        .find(|s| !s.is_empty())
        .unwrap_or_default()
}

fn find_grant(sets: &[Vec<NamedRow>]) -> Option<String> {
    sets.iter()
        .flatten()
        .find_map(|row| row.get(GRANT_COLUMN).ok().flatten().map(str::to_string))
}

fn scrub(error: SqlError, grant: &ReplicationGrant) -> SqlError {
    match error {
        SqlError::Query {
            endpoint,
            what,
            code,
            message,
        } => SqlError::Query {
            endpoint,
            what,
            code,
            message: scrub_message(&message, grant.password().expose()),
        },
        other => other,
    }
}

/// A server message that may quote the GRANT back: the password, as sent or with its quotes
/// doubled, and anything after `IDENTIFIED BY` (a quote may be cut short mid-password) go.
fn scrub_message(message: &str, password: &str) -> String {
    let mut m = message.to_string();
    for form in [password.to_string(), password.replace('\'', "''")] {
        if !form.is_empty() {
            m = m.replace(&form, "***");
        }
    }
    match m.to_ascii_uppercase().find("IDENTIFIED BY") {
        Some(i) => format!("{} IDENTIFIED BY '***'", m[..i].trim_end()),
        None => m,
    }
}

#[cfg(test)]
mod scrub_tests {
    use super::scrub_message;

    #[test]
    fn quoted_or_truncated_passwords_never_survive() {
        let pw = "s3cr'et-pw";
        let echoed = "You have an error near 'GRANT REPLICATION SLAVE ON *.* TO 'u'@'h' IDENTIFIED BY 's3cr''et-p";
        let m = scrub_message(echoed, pw);
        assert!(!m.contains("s3cr"), "{m}");
        assert!(m.ends_with("IDENTIFIED BY '***'"), "{m}");
        assert_eq!(
            scrub_message("Access denied for user 'x'", pw),
            "Access denied for user 'x'"
        );
        assert_eq!(scrub_message("near 's3cr'et-pw'", pw), "near '***'");
    }
}

/// A MariaDB GTID list: `domain-server-sequence[,…]`, or empty (a server with no binlog yet).
pub fn validate_gtid(gtid: &str) -> Result<(), SqlError> {
    let valid_one = |g: &str| {
        let parts: Vec<&str> = g.trim().split('-').collect();
        parts.len() == 3
            && parts
                .iter()
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
    };
    if gtid.trim().is_empty() || gtid.split(',').all(valid_one) {
        Ok(())
    } else {
        Err(SqlError::InvalidGtid(gtid.chars().take(80).collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gtid_lists() {
        for ok in ["", "0-1-2", "0-100-1,435700-435700-122", " 1-2-3 , 4-5-6"] {
            assert!(validate_gtid(ok).is_ok(), "{ok:?}");
        }
        for bad in ["0-1", "a-b-c", "0-1-2;", "0-1-2,", "0--2", "0-1-2-3"] {
            assert!(validate_gtid(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn grant_is_found_in_any_result_set() {
        let sets = vec![
            vec![NamedRow::new().with("Note", Some("x"))],
            vec![NamedRow::new().with(GRANT_COLUMN, Some("GRANT …"))],
        ];
        assert_eq!(find_grant(&sets).as_deref(), Some("GRANT …"));
        assert_eq!(find_grant(&[]), None);
    }

    #[test]
    fn last_non_empty_set_is_used() {
        let a = vec![NamedRow::new().with("a", Some("1"))];
        assert_eq!(last_set(vec![a.clone(), vec![]]), a);
        assert!(last_set(vec![]).is_empty());
    }
}
