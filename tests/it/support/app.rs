//! An application-like writer for role changes: a user with only INSERT and SELECT on its
//! schema, writing numbered rows in transactions, that moves to another service when the one
//! it writes to refuses (read-only, session ended, unreachable), as an application behind a
//! list of endpoints would. It records every acknowledged number and which server took it.

use std::time::{Duration, Instant};

use mysql_async::prelude::*;

use super::e2e::Cloud;

pub(crate) const APP_USER: &str = "app";
const APP_PASSWORD: &str = "app-writer-pw-1";

/// Create the app schema (a table with a primary key and one without) and the app user, on
/// the primary (they replicate to every replica).
pub(crate) async fn setup(cloud: &Cloud, primary: &str) {
    let mut c = cloud.sql(primary).await;
    for sql in [
        "CREATE DATABASE IF NOT EXISTS app",
        "CREATE TABLE IF NOT EXISTS app.acks (seq BIGINT PRIMARY KEY, server INT NOT NULL)",
        "CREATE TABLE IF NOT EXISTS app.acks_nopk (seq BIGINT NOT NULL, server INT NOT NULL)",
        &format!("CREATE USER IF NOT EXISTS '{APP_USER}'@'%' IDENTIFIED BY '{APP_PASSWORD}'"),
        &format!("GRANT INSERT, SELECT ON app.* TO '{APP_USER}'@'%'"),
    ] {
        c.query_drop(sql).await.unwrap();
    }
}

/// What the writer saw.
#[derive(Debug, Default)]
pub(crate) struct Acks {
    /// (sequence number, server_id that committed it, when), in order.
    pub(crate) acked: Vec<(u64, u32, Instant)>,
}

impl Acks {
    /// The longest time between two acknowledged writes on different servers: how long the
    /// application could not write during a role change.
    pub(crate) fn write_gap(&self) -> Duration {
        self.acked
            .windows(2)
            .filter(|w| w[0].1 != w[1].1)
            .map(|w| w[1].2 - w[0].2)
            .max()
            .unwrap_or_default()
    }

    /// Whether some server took a write after another had taken a later-started one: two
    /// writers at once. Role changes must hand over, never interleave.
    pub(crate) fn interleaved(&self) -> bool {
        let mut seen: Vec<u32> = Vec::new();
        for (_, server, _) in &self.acked {
            if seen.last() != Some(server) {
                if seen.contains(server) {
                    return true;
                }
                seen.push(*server);
            }
        }
        false
    }
}

pub(crate) struct AppWriter {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<Acks>,
}

impl AppWriter {
    /// Start writing to `endpoints[0]` (the primary), moving along the list when refused.
    pub(crate) async fn start(cloud: &Cloud, keys: &[&str]) -> AppWriter {
        let state = cloud.state().unwrap();
        let ca = cloud.info().ca_cert;
        // Endpoints as recorded (an application knows its list; some may be down).
        let endpoints: Vec<(String, u16)> = keys
            .iter()
            .map(|k| {
                let r = &state.resources.services[*k];
                (r.fqdn.clone().unwrap(), r.port.unwrap())
            })
            .collect();
        // Numbers go on from the last one written, so each row is new (the app may read).
        let (h, p) = &endpoints[0];
        let mut c = connect(h, *p, &ca)
            .await
            .expect("the first endpoint answers");
        let last: Option<u64> = c
            .query_first("SELECT MAX(seq) FROM app.acks")
            .await
            .unwrap()
            .flatten();
        let (stop, rx) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(write(endpoints, ca, last.unwrap_or(0), rx));
        // Let it acknowledge a few first.
        tokio::time::sleep(Duration::from_millis(300)).await;
        AppWriter { stop, task }
    }

    pub(crate) async fn stop(self) -> Acks {
        self.stop.send(true).unwrap();
        self.task.await.unwrap()
    }
}

async fn connect(host: &str, port: u16, ca: &std::path::Path) -> Option<mysql_async::Conn> {
    let ssl = mysql_async::SslOpts::default().with_root_certs(vec![ca.to_path_buf().into()]);
    let opts = mysql_async::OptsBuilder::default()
        .ip_or_hostname(host)
        .tcp_port(port)
        .user(Some(APP_USER))
        .pass(Some(APP_PASSWORD))
        .ssl_opts(Some(ssl));
    tokio::time::timeout(Duration::from_secs(3), mysql_async::Conn::new(opts))
        .await
        .ok()?
        .ok()
}

/// One acknowledged write: both tables in one transaction. `Ok(server_id)` when committed
/// (or found committed before: a retry after an ambiguous failure hits the primary key).
async fn write_one(c: &mut mysql_async::Conn, seq: u64) -> Result<u32, mysql_async::Error> {
    let mut tx = c.start_transaction(Default::default()).await?;
    let server: u32 = tx.query_first("SELECT @@server_id").await?.unwrap_or(0);
    match tx
        .exec_drop(
            "INSERT INTO app.acks (seq, server) VALUES (?, ?)",
            (seq, server),
        )
        .await
    {
        Err(mysql_async::Error::Server(e)) if e.code == 1062 => {
            tx.rollback().await?;
            let first: Option<u32> = c
                .exec_first("SELECT server FROM app.acks WHERE seq = ?", (seq,))
                .await?;
            return Ok(first.unwrap_or(server));
        }
        r => r?,
    }
    tx.exec_drop(
        "INSERT INTO app.acks_nopk (seq, server) VALUES (?, ?)",
        (seq, server),
    )
    .await?;
    tx.commit().await?;
    Ok(server)
}

async fn write(
    endpoints: Vec<(String, u16)>,
    ca: std::path::PathBuf,
    after: u64,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Acks {
    let mut acks = Acks::default();
    let mut at = 0;
    let mut conn: Option<mysql_async::Conn> = None;
    let mut seq = after;
    while !*stop.borrow() {
        seq += 1;
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if conn.is_none() {
                let (h, p) = &endpoints[at];
                conn = connect(h, *p, &ca).await;
            }
            let result = match conn.as_mut() {
                Some(c) => write_one(c, seq).await.ok(),
                None => None,
            };
            match result {
                Some(server) => {
                    acks.acked.push((seq, server, Instant::now()));
                    break;
                }
                None => {
                    // Refused: read-only, session ended, or unreachable. Try the next one.
                    conn = None;
                    at = (at + 1) % endpoints.len();
                    assert!(
                        Instant::now() < deadline,
                        "no service accepted write {seq} for 2 minutes"
                    );
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    acks
}

/// (COUNT, CHECKSUM) of both app tables on `key`, and the sequence numbers it holds.
pub(crate) async fn app_tables(cloud: &Cloud, key: &str) -> ((u64, u64), (u64, u64), Vec<u64>) {
    let mut c = cloud.sql(key).await;
    let a = fingerprint(&mut c, "acks").await;
    let b = fingerprint(&mut c, "acks_nopk").await;
    let seqs: Vec<u64> = c
        .query("SELECT seq FROM app.acks ORDER BY seq")
        .await
        .unwrap();
    (a, b, seqs)
}

async fn fingerprint(c: &mut mysql_async::Conn, table: &str) -> (u64, u64) {
    let n: u64 = c
        .query_first(format!("SELECT COUNT(*) FROM app.{table}"))
        .await
        .unwrap()
        .unwrap_or(0);
    let row: Option<(String, Option<u64>)> = c
        .query_first(format!("CHECKSUM TABLE app.{table}"))
        .await
        .unwrap();
    (n, row.and_then(|r| r.1).unwrap_or(0))
}

/// How many restores the API lists for these services (a role change must add none).
pub(crate) async fn restores(cloud: &Cloud, keys: &[&str]) -> usize {
    let state = cloud.state().unwrap();
    let mut n = 0;
    for key in keys {
        let id = &state.resources.services[*key].id;
        n += cloud.api().list_restores(id).await.unwrap().len();
    }
    n
}

/// Every service holds every acknowledged write (`want`: all of them so far, in order), once,
/// in both tables, with equal checksums.
pub(crate) async fn assert_nothing_lost(cloud: &Cloud, keys: &[&str], want: &[u64]) {
    let mut first = None;
    for key in keys {
        let mut got = None;
        for _ in 0..300 {
            // The counts and the list are read one after the other: a replica still applying
            // can differ between them, so all three must agree.
            let t = app_tables(cloud, key).await;
            let n = want.len() as u64;
            if t.2 == want && t.0 .0 == n && t.1 .0 == n {
                got = Some(t);
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let (a, b, _) = got.unwrap_or_else(|| {
            panic!(
                "service.{key} does not hold exactly the {} acknowledged writes",
                want.len()
            )
        });
        assert_eq!(a.0, want.len() as u64, "service.{key}");
        assert_eq!(
            b.0,
            want.len() as u64,
            "service.{key}: the table without a primary key"
        );
        match first {
            None => first = Some((a, b)),
            Some(f) => assert_eq!(f, (a, b), "service.{key} differs"),
        }
    }
}

/// Write `rows` acknowledged rows to `key` (the primary) as fast as one application
/// connection can, each its own transaction of one row per table, numbered on from the
/// highest there; returns their numbers. One round trip per transaction, so thousands take
/// seconds: enough binlog events to pass any bounded scan.
pub(crate) async fn bulk(cloud: &Cloud, key: &str, rows: u64) -> Vec<u64> {
    let state = cloud.state().unwrap();
    let r = &state.resources.services[key];
    let ca = cloud.info().ca_cert;
    let mut c = connect(r.fqdn.as_deref().unwrap(), r.port.unwrap(), &ca)
        .await
        .unwrap_or_else(|| panic!("service.{key} does not answer the application"));
    let last: Option<u64> = c
        .query_first("SELECT MAX(seq) FROM app.acks")
        .await
        .unwrap()
        .flatten();
    let first = last.unwrap_or(0) + 1;
    let seqs: Vec<u64> = (first..first + rows).collect();
    for seq in &seqs {
        c.query_drop(format!(
            "START TRANSACTION; \
             INSERT INTO app.acks (seq, server) VALUES ({seq}, @@server_id); \
             INSERT INTO app.acks_nopk (seq, server) VALUES ({seq}, @@server_id); \
             COMMIT"
        ))
        .await
        .unwrap_or_else(|e| panic!("bulk write {seq} on service.{key}: {e}"));
    }
    seqs
}
