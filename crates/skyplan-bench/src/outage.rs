//! Failover from a hanging region (issue 23): the primary's region stops answering (`outage
//! --mode timeouts`: every API call naming it hangs, its database closes every connection),
//! and the apply that fails over to the replica starts at once. Reports the write gap from the
//! outage to the first write the application gets acknowledged on the new primary, the apply's
//! own time, and the acknowledged writes the new primary lacks (what no survivor received).
//! Target: the failover applies within 90 s (each service's answer bounded by `lost_after`,
//! not by retries × the request timeout).

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use mysql_async::prelude::Queryable;

use super::apply::{apply, connect, prepare};
use super::distance::Distance;
use super::emulator::Emulator;
use super::switchover::{switched, writer, APP};
use super::table::{duration, Row};

const WHAT: &str = "failover from a hanging region under a live writer";
const MAX_APPLY: Duration = Duration::from_secs(90);

async fn skyplan_run(skyplan: &Path, emu: &Emulator, work: &Path, args: &[&str]) -> Result<()> {
    let out = tokio::process::Command::new(skyplan)
        .current_dir(work)
        .args(args)
        .env("NO_COLOR", "1")
        .env(skyplan_emulator::daemon::DIR_ENV, emu.dir())
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .with_context(|| format!("running skyplan {}", args.join(" ")))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(6).collect();
        bail!(
            "skyplan {} failed ({}): {}",
            args.join(" "),
            out.status,
            tail.into_iter().rev().collect::<Vec<_>>().join(" / ")
        );
    }
    Ok(())
}

async fn measure(root: &Path, skyplan: &Path, example: &Path, at: &Distance) -> Result<Row> {
    let work = root.join(format!("outage-{}", at.secondary_region));
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
    let primary_server: u32 = p.query_first("SELECT @@server_id").await?.unwrap_or(0);
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

    let file_s = file.to_string_lossy().to_string();
    let outage_at = Instant::now();
    skyplan_run(
        skyplan,
        &emu,
        &work,
        &["emulator", "outage", "skysql-primary", "--mode", "timeouts"],
    )
    .await?;
    std::fs::write(&file, switched(&guide)?)?;
    let started = Instant::now();
    skyplan_run(
        skyplan,
        &emu,
        &work,
        &["apply", "--auto-approve", "--allow-data-loss", &file_s],
    )
    .await
    .context("the failover")?;
    let took = started.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.send(true).ok();
    let acks = task.await??;
    let first_new = acks
        .iter()
        .find(|a| a.1 != primary_server && a.2 > outage_at)
        .map(|a| a.2 - outage_at);
    let mut s = connect(&emu, &work, &file, "secondary").await?;
    let held: Vec<u64> = s.query("SELECT seq FROM bench.acks ORDER BY seq").await?;
    let lost = acks
        .iter()
        .filter(|a| held.binary_search(&a.0).is_err())
        .count();
    let _ = skyplan_run(
        skyplan,
        &emu,
        &work,
        &["emulator", "outage", "skysql-primary", "--end"],
    )
    .await;
    drop(emu);
    let Some(gap) = first_new else {
        bail!("the writer never wrote on the new primary");
    };
    Ok(Row::new(format!("{WHAT} ({})", at.label()))
        .wall(took)
        .target(
            format!("failover apply <= {}", duration(MAX_APPLY)),
            took <= MAX_APPLY,
        )
        .note(format!(
            "write gap {} (outage -> first acknowledged write on the new primary, apply started at once); {} writes acknowledged, {lost} missing on the new primary (acknowledged on the old one, never received)",
            duration(gap),
            acks.len()
        )))
}

pub async fn run(root: &Path, skyplan: &Path, example: &Path, at: &Distance) -> Row {
    match measure(root, skyplan, example, at).await {
        Ok(row) => row,
        Err(e) => Row::failed(format!("{WHAT} ({})", at.label()), &e),
    }
}
