//! Switchover of a pair under a live writer: the write gap (last acknowledged write on the old
//! primary → first on the new one), the whole apply's time, and how many acknowledged writes
//! are missing afterwards. Target: gap ≤ 5 s, none lost; at region distances (issue 28) ≤ 1 s,
//! none lost.
//!
//! The writer is an application's: a user with only INSERT and SELECT, one numbered row per
//! transaction, moving to the other service when refused.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use mysql_async::prelude::Queryable;

use super::apply::{apply, connect, prepare};
use super::distance::Distance;
use super::emulator::Emulator;
use super::table::{duration, Row};

const MAX_GAP: Duration = Duration::from_secs(5);
/// At a WAN distance (issue 28: at 220 ms RTT).
const MAX_GAP_AT_DISTANCE: Duration = Duration::from_secs(1);
pub(crate) const APP: (&str, &str) = ("bench_app", "bench-app-pw-1");

pub(crate) fn switched(guide: &str) -> Result<String> {
    let start = guide
        .find("[services.secondary.replication]")
        .context("the guide has no [services.secondary.replication]")?;
    Ok(format!(
        "{}[services.primary.replication]\nfrom = \"secondary\"\nseed = \"new-backup\"\nssl = true\n",
        &guide[..start]
    ))
}

/// (sequence number, server id, when) of every acknowledged write.
pub(crate) type Acks = Vec<(u64, u32, Instant)>;

/// One of the writer's connections, with the server id it reported when it connected.
struct Warm {
    conn: mysql_async::Conn,
    server: u32,
}

async fn open(host: &str, port: u16, ca: &Path) -> Option<Warm> {
    let ssl = mysql_async::SslOpts::default().with_root_certs(vec![ca.to_path_buf().into()]);
    let opts = mysql_async::OptsBuilder::default()
        .ip_or_hostname(host.to_string())
        .tcp_port(port)
        .user(Some(APP.0))
        .pass(Some(APP.1))
        .ssl_opts(Some(ssl));
    let mut conn = mysql_async::Conn::new(opts).await.ok()?;
    let server: u32 = conn.query_first("SELECT @@server_id").await.ok()??;
    Some(Warm { conn, server })
}

/// One acknowledged write of `seq` on `w`, or why not: `Err(true)` when the connection is
/// still good (the server refused: read-only), `Err(false)` when it is gone.
async fn write(w: &mut Warm, seq: u64) -> Result<u32, bool> {
    match w
        .conn
        .exec_drop(
            "INSERT INTO bench.acks (seq, server) VALUES (?, @@server_id)",
            (seq,),
        )
        .await
    {
        Ok(()) => Ok(w.server),
        // Committed before an ambiguous failure: the retry hits the key.
        Err(mysql_async::Error::Server(e)) if e.code == 1062 => w
            .conn
            .exec_first("SELECT server FROM bench.acks WHERE seq = ?", (seq,))
            .await
            .ok()
            .flatten()
            .ok_or(false),
        Err(mysql_async::Error::Server(_)) => Err(true),
        Err(_) => Err(false),
    }
}

/// The application: one numbered row per transaction, on the service it last wrote to,
/// moving to the next when refused. Like a pooled application (or a proxy), it keeps a
/// connection open to every service, so a move costs the write's round trip, not a new
/// TCP + TLS + login (about five more round trips at a WAN distance).
pub(crate) async fn writer(
    endpoints: Vec<(String, u16)>,
    ca: std::path::PathBuf,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Result<Acks> {
    let mut acks = Vec::new();
    let mut pool: Vec<Option<Warm>> = Vec::new();
    for (host, port) in &endpoints {
        pool.push(open(host, *port, &ca).await);
    }
    let mut at = 0;
    let mut seq = 0u64;
    while !*stop.borrow() {
        seq += 1;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if pool[at].is_none() {
                let (host, port) = &endpoints[at];
                pool[at] = open(host, *port, &ca).await;
            }
            let done = match pool[at].as_mut() {
                Some(w) => write(w, seq).await,
                None => Err(false),
            };
            match done {
                Ok(server) => {
                    acks.push((seq, server, Instant::now()));
                    break;
                }
                Err(still_good) => {
                    if !still_good {
                        pool[at] = None;
                    }
                }
            }
            at = (at + 1) % endpoints.len();
            if Instant::now() > deadline {
                bail!("no service accepted write {seq} for a minute");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(acks)
}

async fn measure(root: &Path, skyplan: &Path, example: &Path, at: &Distance) -> Result<Row> {
    let work = root.join(format!("switchover-{}", at.secondary_region));
    let (file, _) = prepare(example, &work)?;
    let guide = at.topology(example)?;
    std::fs::write(&file, &guide)?;
    let emu = Emulator::start(skyplan, at.serve_options(work.join("emulator"))).await?;
    apply(skyplan, &emu, &work, &file)
        .await
        .context("applying the guide")?;

    let mut p = connect(&emu, &work, &file, "primary").await?;
    for sql in [
        "CREATE DATABASE IF NOT EXISTS bench".to_string(),
        "CREATE TABLE bench.acks (seq BIGINT PRIMARY KEY, server INT NOT NULL)".to_string(),
        format!("CREATE USER '{}'@'%' IDENTIFIED BY '{}'", APP.0, APP.1),
        format!("GRANT INSERT, SELECT ON bench.* TO '{}'@'%'", APP.0),
    ] {
        p.query_drop(sql).await?;
    }
    drop(p);
    let mut endpoints = Vec::new();
    for key in ["primary", "secondary"] {
        let c = connect(&emu, &work, &file, key).await?;
        let opts = c.opts().clone();
        endpoints.push((opts.ip_or_hostname().to_string(), opts.tcp_port()));
    }
    let (stop, rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(writer(endpoints, emu.info.ca_cert.clone(), rx));
    tokio::time::sleep(Duration::from_secs(1)).await;

    std::fs::write(&file, switched(&guide)?)?;
    let run = apply(skyplan, &emu, &work, &file)
        .await
        .context("the switchover")?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.send(true).ok();
    let acks = task.await??;

    let gap = acks
        .windows(2)
        .filter(|w| w[0].1 != w[1].1)
        .map(|w| w[1].2 - w[0].2)
        .max()
        .unwrap_or_default();
    let moves = acks.windows(2).filter(|w| w[0].1 != w[1].1).count();
    // Every acknowledged write on the new primary (the old one replicates from it now).
    let mut s = connect(&emu, &work, &file, "secondary").await?;
    let held: Vec<u64> = s.query("SELECT seq FROM bench.acks ORDER BY seq").await?;
    let lost = acks
        .iter()
        .filter(|a| held.binary_search(&a.0).is_err())
        .count();
    drop(emu);
    if run.took.contains_key("restore.primary") {
        bail!("the switchover restored");
    }
    let max_gap = if at.is_loopback() {
        MAX_GAP
    } else {
        MAX_GAP_AT_DISTANCE
    };
    Ok(Row::new(name(at))
        .wall(run.wall)
        .target(
            format!("write gap <= {}, 0 lost", duration(max_gap)),
            gap <= max_gap && lost == 0 && moves == 1,
        )
        .note(format!(
            "write gap {} (last acknowledged write on the old primary -> first on the new); {} writes acknowledged, {lost} missing afterwards; the writer moved {moves} time(s); whole apply {}",
            duration(gap),
            acks.len(),
            duration(run.wall)
        )))
}

fn name(at: &Distance) -> String {
    format!("switchover of a pair under a live writer ({})", at.label())
}

pub async fn run(root: &Path, skyplan: &Path, example: &Path, at: &Distance) -> Row {
    match measure(root, skyplan, example, at).await {
        Ok(row) => row,
        Err(e) => Row::failed(name(at), &e),
    }
}
