//! SQL against SkySQL services: connect (TLS verified when the service has `ssl_enabled`) and
//! call the `sky.*` stored procedures that configure inbound replication.
//!
//! ```text
//! connect.rs     SqlTarget, TlsMode, connect()
//! conn.rs        SqlConn: result sets as NamedRows, errors naming host:port
//! verify.rs      read-only: user tables, GTID positions, MASTER_GTID_WAIT, snapshot checksums
//! procedures.rs  sky.change_external_primary_gtid, start/stop/reset, status
//! grant.rs       ReplicationGrant: the GRANT the replica returns, validated
//! status.rs      pure parsing of replication_status / gtid_status rows
//! gtids.rs       a server's GTIDs and where its binlogs begin (re-point, errant checks)
//! roles.rs       read_only for clients, fencing (ending client sessions)
//! ```

pub(crate) mod conn;
pub(crate) mod connect;
pub(crate) mod error;
pub(crate) mod grant;
pub mod gtids;
pub(crate) mod procedures;
pub(crate) mod roles;
pub(crate) mod sessions;
pub(crate) mod status;
pub(crate) mod variables;
pub(crate) mod verify;

pub use conn::SqlConn;
pub use connect::{connect, connect_with_timeout, SqlTarget, TlsMode, DEFAULT_CONNECT_TIMEOUT};
pub use error::SqlError;
pub use grant::{GrantParseError, ReplicationGrant};
pub use procedures::validate_gtid;
pub use status::{GtidStatus, NamedRow, StatusParseError, ThreadState};
