//! Ten switchovers there and back under a live writer, with more than 5,000 transactions
//! between them (issue 22): repetition, not a single shot on a fresh pair. Reports the write
//! gap of each switch (median and maximum), the acknowledged writes missing afterwards (0),
//! and the copies made (0: no backup or restore in any of the applies).
//!
//! The bulk transactions are single-row INSERTs on the current primary, far more binlog
//! events than any bounded read of a binlog would cover; the writer is the application's
//! (INSERT/SELECT only), moving to whichever service accepts its writes.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use mysql_async::prelude::Queryable;

use super::apply::{apply, connect, prepare};
use super::distance::Distance;
use super::emulator::Emulator;
use super::switchover::{switched, writer, APP};
use super::table::{duration, Row};

const WHAT: &str = "ten switchovers there and back under a live writer";
const SWITCHES: usize = 10;
const BETWEEN: u64 = 5_200;
const MAX_GAP: Duration = Duration::from_secs(5);

async fn measure(root: &Path, skyplan: &Path, example: &Path, at: &Distance) -> Result<Row> {
    let work = root.join(format!("switchbacks-{}", at.secondary_region));
    let (file, _) = prepare(example, &work)?;
    let guide = at.topology(example)?;
    std::fs::write(&file, &guide)?;
    let turned = switched(&guide)?;
    let emu = Emulator::start(skyplan, at.serve_options(work.join("emulator"))).await?;
    apply(skyplan, &emu, &work, &file)
        .await
        .context("applying the guide")?;
    let mut p = connect(&emu, &work, &file, "primary").await?;
    for sql in [
        "CREATE DATABASE IF NOT EXISTS bench".to_string(),
        "CREATE TABLE bench.acks (seq BIGINT PRIMARY KEY, server INT NOT NULL)".to_string(),
        "CREATE TABLE bench.bulk (n BIGINT NOT NULL, server INT NOT NULL)".to_string(),
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

    let started = Instant::now();
    let mut bulk = 0u64;
    let mut copies = 0usize;
    let mut switch_at = Vec::new();
    for i in 0..SWITCHES {
        let (from, topology) = if i % 2 == 0 {
            ("primary", &turned)
        } else {
            ("secondary", &guide)
        };
        let mut c = connect(&emu, &work, &file, from).await?;
        for _ in 0..BETWEEN {
            bulk += 1;
            c.exec_drop(
                "INSERT INTO bench.bulk (n, server) VALUES (?, @@server_id)",
                (bulk,),
            )
            .await
            .with_context(|| format!("bulk write {bulk} on service.{from}"))?;
        }
        drop(c);
        std::fs::write(&file, topology)?;
        switch_at.push(Instant::now());
        let run = apply(skyplan, &emu, &work, &file)
            .await
            .with_context(|| format!("switchover {} of {SWITCHES}", i + 1))?;
        copies += run
            .took
            .keys()
            .filter(|a| a.starts_with("restore.") || a.starts_with("backup."))
            .count();
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.send(true).ok();
    let acks = task.await??;
    let wall = started.elapsed();

    // Each switch's gap: the writer's longest pause between two servers after it started.
    let mut gaps: Vec<Duration> = acks
        .windows(2)
        .filter(|w| w[0].1 != w[1].1)
        .map(|w| w[1].2 - w[0].2)
        .collect();
    let moves = gaps.len();
    gaps.sort();
    let median = gaps.get(gaps.len() / 2).copied().unwrap_or_default();
    let max = gaps.last().copied().unwrap_or_default();
    let mut lost = 0usize;
    for key in ["primary", "secondary"] {
        let mut s = connect(&emu, &work, &file, key).await?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let held: Vec<u64> = s.query("SELECT seq FROM bench.acks ORDER BY seq").await?;
            let rows: Option<u64> = s.query_first("SELECT COUNT(*) FROM bench.bulk").await?;
            let missing = acks
                .iter()
                .filter(|a| held.binary_search(&a.0).is_err())
                .count()
                + bulk.saturating_sub(rows.unwrap_or(0)) as usize;
            if missing == 0 || Instant::now() > deadline {
                lost = lost.max(missing);
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    drop(emu);
    if moves != SWITCHES {
        bail!("the writer moved {moves} times for {SWITCHES} switchovers");
    }
    Ok(Row::new(format!("{WHAT} ({})", at.label()))
        .wall(wall)
        .target(
            format!("gap <= {} each, 0 lost, 0 copies", duration(MAX_GAP)),
            max <= MAX_GAP && lost == 0 && copies == 0,
        )
        .note(format!(
            "{SWITCHES} switchovers alternating, {BETWEEN} single-row transactions before each ({bulk} in all); write gap median {}, max {}; {} writes acknowledged by the writer, {lost} missing afterwards; {copies} backups or restores",
            duration(median),
            duration(max),
            acks.len()
        )))
}

pub async fn run(root: &Path, skyplan: &Path, example: &Path, at: &Distance) -> Row {
    match measure(root, skyplan, example, at).await {
        Ok(row) => row,
        Err(e) => Row::failed(format!("{WHAT} ({})", at.label()), &e),
    }
}
