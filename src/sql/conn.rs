//! [`SqlConn`]: one open connection, and the plumbing that turns result sets into
//! [`NamedRow`]s with errors that name the server and the statement.

use mysql_async::prelude::Queryable;
use mysql_async::{Params, Row, Value};

use super::error::{describe, SqlError};
use super::status::NamedRow;
use crate::skysql::secret::Secret;

/// An open connection to one server. Procedures are methods (see `procedures.rs`).
pub struct SqlConn {
    conn: mysql_async::Conn,
    endpoint: String,
    /// Kept only to scrub it out of server error messages.
    password: Secret,
    /// A driver or network error happened on it (not a server's refusal): a session pool
    /// does not hand it out again.
    broken: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for SqlConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlConn")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl SqlConn {
    pub(crate) fn new(conn: mysql_async::Conn, endpoint: String, password: Secret) -> SqlConn {
        SqlConn {
            conn,
            endpoint,
            password,
            broken: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Whether a driver or network error left this connection unusable.
    pub fn is_broken(&self) -> bool {
        self.broken.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// `host:port` of the server.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The driver connection, for what the procedures do not cover (tests, checksums).
    pub fn raw(&mut self) -> &mut mysql_async::Conn {
        &mut self.conn
    }

    pub async fn disconnect(self) -> Result<(), SqlError> {
        let SqlConn {
            conn,
            endpoint,
            password,
            ..
        } = self;
        conn.disconnect().await.map_err(|e| {
            let (code, message) = describe(&e, |m| password.redact_in(m));
            SqlError::Query {
                endpoint,
                what: "disconnect".into(),
                code,
                message,
            }
        })
    }

    /// Run a statement and collect every result set it returns; a `CALL` may return several.
    /// `what` names the statement in errors. With parameters it is prepared and the values
    /// bound (never spliced into the text); without, it goes in the text protocol: one round
    /// trip instead of two (prepare, execute) the first time a session runs it, which at a
    /// WAN distance is most of a refresh's time.
    pub(crate) async fn call(
        &mut self,
        what: &str,
        sql: &str,
        params: Params,
    ) -> Result<Vec<Vec<NamedRow>>, SqlError> {
        let result = async {
            if params == Params::Empty {
                all_sets(self.conn.query_iter(sql).await?).await
            } else {
                all_sets(self.conn.exec_iter(sql, params).await?).await
            }
        }
        .await;
        result.map_err(|e| self.query_error(what, &e))
    }

    /// Prepare `sql` on this connection (mysql_async keeps it in the connection's statement
    /// cache): a later `call` of the same text skips the prepare's round trip.
    pub(crate) async fn prepare(&mut self, what: &str, sql: &str) -> Result<(), SqlError> {
        match self.conn.prep(sql).await {
            Ok(_) => Ok(()),
            Err(e) => Err(self.query_error(what, &e)),
        }
    }

    /// Run one statement in the text protocol, discarding any result.
    pub(crate) async fn execute(&mut self, what: &str, sql: &str) -> Result<(), SqlError> {
        match self.conn.query_drop(sql).await {
            Ok(()) => Ok(()),
            Err(e) => Err(self.query_error(what, &e)),
        }
    }

    pub(crate) fn query_error(&self, what: &str, e: &mysql_async::Error) -> SqlError {
        if !matches!(e, mysql_async::Error::Server(_)) {
            self.broken
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        let (code, message) = describe(e, |m| self.password.redact_in(m));
        SqlError::Query {
            endpoint: self.endpoint.clone(),
            what: what.to_string(),
            code,
            message,
        }
    }

    pub(crate) fn unexpected(&self, what: &str, message: impl ToString) -> SqlError {
        SqlError::UnexpectedResult {
            endpoint: self.endpoint.clone(),
            what: what.to_string(),
            message: message.to_string(),
        }
    }
}

/// Every result set of a statement, as named rows (either protocol).
async fn all_sets<'a, 't: 'a, P: mysql_async::prelude::Protocol>(
    mut result: mysql_async::QueryResult<'a, 't, P>,
) -> Result<Vec<Vec<NamedRow>>, mysql_async::Error> {
    let mut sets = Vec::new();
    while !result.is_empty() {
        let rows: Vec<Row> = result.collect().await?;
        sets.push(rows.into_iter().map(named_row).collect());
    }
    Ok(sets)
}

fn named_row(row: Row) -> NamedRow {
    let mut named = NamedRow::new();
    let columns = row.columns();
    for (i, column) in columns.iter().enumerate() {
        let value = row.as_ref(i).and_then(value_text);
        named.push(column.name_str().into_owned(), value);
    }
    named
}

/// A value as text, as the `mariadb` client would print it; `None` for NULL.
fn value_text(value: &Value) -> Option<String> {
    Some(match value {
        Value::NULL => return None,
        Value::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
        Value::Int(i) => i.to_string(),
        Value::UInt(u) => u.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Double(d) => d.to_string(),
        Value::Date(y, mo, d, h, mi, s, us) => {
            format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}.{us:06}")
        }
        Value::Time(neg, days, h, mi, s, us) => {
            let sign = if *neg { "-" } else { "" };
            let hours = u64::from(*days) * 24 + u64::from(*h);
            format!("{sign}{hours:02}:{mi:02}:{s:02}.{us:06}")
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_render_as_text() {
        assert_eq!(value_text(&Value::NULL), None);
        assert_eq!(
            value_text(&Value::Bytes(b"Yes".to_vec())).as_deref(),
            Some("Yes")
        );
        assert_eq!(value_text(&Value::Int(-3)).as_deref(), Some("-3"));
        assert_eq!(value_text(&Value::UInt(3306)).as_deref(), Some("3306"));
        assert_eq!(
            value_text(&Value::Time(true, 1, 2, 3, 4, 0)).as_deref(),
            Some("-26:03:04.000000")
        );
    }
}
