//! Applies on the real-MariaDB emulator: the fan-out example (one primary, eight replicas)
//! against its critical path, and the guide's example from `apply` to a row replicated.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use mysql_async::prelude::Queryable;

use super::critical::{critical_path, emulated_delay};
use super::emulator::{Emulator, Logged};
use super::table::{duration, Row};
use skyplan::observed::Observed;
use skyplan::plan::{self, Plan, PlanInput};
use skyplan::remote::Remote;
use skyplan::state::codec;
use skyplan_emulator::ServeOptions;

/// Wall time may exceed the critical path by this factor.
const MAX_RATIO: f64 = 1.10;
const GUIDE_MAX: Duration = Duration::from_secs(20);

pub(crate) struct Applied {
    pub(crate) wall: Duration,
    /// Each action's own duration, from the progress lines (`ADDRESS: done after 2.1s`).
    pub(crate) took: HashMap<String, Duration>,
    pub(crate) calls: Vec<Logged>,
}

/// Copies `example` into `work` and plans it offline against an empty state.
pub(crate) fn prepare(example: &Path, work: &Path) -> Result<(PathBuf, Plan)> {
    std::fs::create_dir_all(work)?;
    let file = work.join(example.file_name().context("example file name")?);
    std::fs::copy(example, &file)
        .with_context(|| format!("copying {} to {}", example.display(), file.display()))?;
    let topology = skyplan::topology::load(&file).map_err(|d| anyhow!("{d}"))?;
    let plan = plan::build(&PlanInput {
        topology: &topology,
        topology_sha256: "",
        state: &skyplan::state::new_state(),
        observed: &Observed::offline(),
        flags: Default::default(),
    })?;
    Ok((file, plan))
}

/// `skyplan apply --auto-approve FILE` in `work`, against `emu`.
pub(crate) async fn apply(
    skyplan: &Path,
    emu: &Emulator,
    work: &Path,
    file: &Path,
) -> Result<Applied> {
    apply_with(skyplan, emu, work, file, &[]).await
}

/// [`apply`] with more flags (`--allow-data-loss` for a re-seed that discards on purpose).
pub(crate) async fn apply_with(
    skyplan: &Path,
    emu: &Emulator,
    work: &Path,
    file: &Path,
    flags: &[&str],
) -> Result<Applied> {
    let mark = emu.log_mark();
    let start = Instant::now();
    let out = skyplan_in(skyplan, emu, work)
        .arg("apply")
        .arg("--auto-approve")
        .args(flags)
        .arg(file)
        .output()
        .await
        .context("running skyplan apply")?;
    let wall = start.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        let tail: Vec<&str> = stderr.lines().rev().take(8).collect();
        bail!(
            "skyplan apply failed ({}): {}",
            out.status,
            tail.into_iter().rev().collect::<Vec<_>>().join(" / ")
        );
    }
    Ok(Applied {
        wall,
        took: step_times(&stderr),
        calls: emu.requests_since(mark)?,
    })
}

/// The skyplan binary run in `work` against `emu`: no colour, no stdin, killed with the bench.
fn skyplan_in(skyplan: &Path, emu: &Emulator, work: &Path) -> tokio::process::Command {
    let mut c = tokio::process::Command::new(skyplan);
    c.current_dir(work)
        .env("NO_COLOR", "1")
        .env(skyplan_emulator::daemon::DIR_ENV, emu.dir())
        .stdin(Stdio::null())
        .kill_on_drop(true);
    c
}

/// What `skyplan plan --json FILE` estimates for applying `file` against `emu`: the product's
/// own path (the emulator's `--op-seconds` read from its info file as the model's input).
pub(crate) async fn planned_estimate(
    skyplan: &Path,
    emu: &Emulator,
    work: &Path,
    file: &Path,
) -> Result<Duration> {
    let out = skyplan_in(skyplan, emu, work)
        .args(["plan", "--json"])
        .arg(file)
        .output()
        .await
        .context("running skyplan plan --json")?;
    if !out.status.success() {
        bail!(
            "skyplan plan --json failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let ms = plan["estimate"]["total_ms"]
        .as_u64()
        .context("the plan carries no estimate")?;
    Ok(Duration::from_millis(ms))
}

/// The estimate row: the apply's wall time against what the plan estimated.
fn estimate_row(what: &str, estimate: Duration, wall: Duration, op: f64) -> Row {
    let ratio = wall.as_secs_f64() / estimate.as_secs_f64().max(1e-9);
    Row::new(format!("plan estimate vs apply: {what}"))
        .wall(wall)
        .target(
            format!("within ±25% of the estimate {}", duration(estimate)),
            (0.75..=1.25).contains(&ratio),
        )
        .note(format!(
            "measured / estimated = {ratio:.2}; the estimate is `skyplan plan --json`'s critical path over the emulator's defaults (--op-seconds {op}), no recorded history"
        ))
}

/// `[12:00:01] restore.asia: done after 2.3s` → ("restore.asia", 2.3 s).
fn step_times(progress: &str) -> HashMap<String, Duration> {
    progress
        .lines()
        .filter_map(|l| {
            let rest = l.split_once("] ").map_or(l, |(_, r)| r);
            let (address, took) = rest.split_once(": done after ")?;
            let secs: f64 = took.split('s').next()?.parse().ok()?;
            Some((address.to_string(), Duration::from_secs_f64(secs)))
        })
        .collect()
}

/// API calls and the GETs that poll a long operation (service status, backups, restores).
fn polling_gets(calls: &[Logged]) -> usize {
    calls
        .iter()
        .filter(|c| c.method == "GET")
        .filter(|c| {
            let p = c.path.trim_end_matches('/');
            (p.starts_with("/provisioning/v1/services/") && p.matches('/').count() == 4)
                || p == "/skybackup/v1/backups"
                || p.starts_with("/skybackup/v1/restores/")
        })
        .count()
}

fn refused(calls: &[Logged]) -> usize {
    calls.iter().filter(|c| c.status >= 400).count()
}

async fn fan_out(root: &Path, skyplan: &Path, example: &Path, op: Duration) -> Result<(Row, Row)> {
    let work = root.join("fan-out");
    let (file, plan) = prepare(example, &work)?;
    let (critical, path) = critical_path(&plan.actions, emulated_delay(op));
    let chain: Vec<&str> = path
        .iter()
        .filter(|&&i| !emulated_delay(op)(&plan.actions[i]).is_zero())
        .map(|&i| plan.actions[i].address.as_str())
        .collect();
    let mut opts = ServeOptions::new(work.join("emulator"));
    opts.op_seconds = op.as_secs_f64();
    let emu = Emulator::start(skyplan, opts).await?;
    let estimate = planned_estimate(skyplan, &emu, &work, &file).await?;
    let run = apply(skyplan, &emu, &work, &file).await?;
    drop(emu);
    let estimated = estimate_row("fan-out 1+8", estimate, run.wall, op.as_secs_f64());

    let ratio = run.wall.as_secs_f64() / critical.as_secs_f64().max(1e-9);
    // The same critical path over the step times the apply really saw: what is left between
    // it and the wall time is scheduling and polling, not the emulator's work.
    let (measured, _) = critical_path(&plan.actions, |a| {
        run.took.get(&a.address).copied().unwrap_or_default()
    });
    let sched = run.wall.as_secs_f64() / measured.as_secs_f64().max(1e-9);
    let polls = polling_gets(&run.calls);
    Ok((Row::new(format!(
        "apply fan-out 1+8 ({}), --op-seconds {}",
        example.display(),
        op.as_secs_f64()
    ))
    .wall(run.wall)
    .calls(format!("{} ({polls} polling GETs)", run.calls.len()))
    .target(
        format!("<= {MAX_RATIO:.2} x critical path {}", duration(critical)),
        ratio <= MAX_RATIO,
    )
    .note(format!(
        "ratio {ratio:.2} to the emulated critical path ({}); over the steps' measured times the critical path is {} (ratio {sched:.2}); {} actions; {} refused calls",
        chain.join(" -> "),
        duration(measured),
        plan.actions.len(),
        refused(&run.calls),
    )), estimated))
}

/// A SQL connection to the service `key` of the state `file` (in `work`) uses, with its
/// admin credentials, TLS verified against the emulator's CA.
pub(crate) async fn connect(
    emu: &Emulator,
    work: &Path,
    file: &Path,
    key: &str,
) -> Result<mysql_async::Conn> {
    let stem = skyplan::state::workspace_name(file);
    let state_path = work.join("state").join(format!("{stem}.state.json"));
    let state = codec::from_json(&std::fs::read(&state_path)?, "state")?;
    let topology = skyplan::topology::load(file).map_err(|d| anyhow!("{d}"))?;
    let remote = Remote::connect_with(&topology, Default::default(), Some(emu.dir())).await?;
    let t = remote.sql_target(&state, key).await?;
    let ssl =
        mysql_async::SslOpts::default().with_root_certs(vec![emu.info.ca_cert.clone().into()]);
    let opts = mysql_async::OptsBuilder::default()
        .ip_or_hostname(t.host)
        .tcp_port(t.port)
        .user(Some(t.user))
        .pass(Some(t.password.expose().to_string()))
        .ssl_opts(Some(ssl));
    mysql_async::Conn::new(opts)
        .await
        .with_context(|| format!("connecting to service.{key}"))
}

/// A row written on the primary appears on the replica: replication really works.
async fn verify_replication(emu: &Emulator, work: &Path, file: &Path) -> Result<()> {
    let mut primary = connect(emu, work, file, "primary").await?;
    let mut secondary = connect(emu, work, file, "secondary").await?;
    primary
        .query_drop("CREATE DATABASE IF NOT EXISTS bench")
        .await?;
    primary
        .query_drop("CREATE TABLE bench.marker (id INT PRIMARY KEY, note VARCHAR(32))")
        .await?;
    primary
        .query_drop("INSERT INTO bench.marker VALUES (1, 'replicated')")
        .await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let seen: Option<String> = secondary
            .query_first("SELECT note FROM bench.marker WHERE id = 1")
            .await
            .ok()
            .flatten();
        if seen.as_deref() == Some("replicated") {
            break;
        }
        if Instant::now() > deadline {
            bail!("the row written on the primary never reached the secondary");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = primary.disconnect().await;
    let _ = secondary.disconnect().await;
    Ok(())
}

async fn guide(
    root: &Path,
    skyplan: &Path,
    example: &Path,
    at: &super::distance::Distance,
) -> Result<(Row, Row)> {
    let work = root.join(format!("guide-{}", at.secondary_region));
    let (file, _) = prepare(example, &work)?;
    std::fs::write(&file, at.topology(example)?)?;
    let opts = at.serve_options(work.join("emulator"));
    let op = opts.op_seconds;
    let started = Instant::now();
    let emu = Emulator::start(skyplan, opts).await?;
    let emulator_start = started.elapsed();
    let estimate = planned_estimate(skyplan, &emu, &work, &file).await?;
    let start = Instant::now();
    let run = apply(skyplan, &emu, &work, &file).await?;
    // The estimate knows the operations' pace, not the distance: at a distance the row says so.
    let what = if at.is_loopback() {
        "the guide".to_string()
    } else {
        format!(
            "the guide ({}; the model has no term for distance)",
            at.label()
        )
    };
    let estimated = estimate_row(&what, estimate, run.wall, op);
    verify_replication(&emu, &work, &file).await?;
    let wall = start.elapsed();
    drop(emu);
    Ok((Row::new(guide_name(example, op, at))
    .wall(wall)
    .calls(format!(
        "{} ({} polling GETs)",
        run.calls.len(),
        polling_gets(&run.calls)
    ))
    .target("< 20 s to a replicated row", wall < GUIDE_MAX)
    .note(format!(
        "apply {} + row written on the primary read on the secondary {}; emulator start {} not counted",
        duration(run.wall),
        duration(wall.saturating_sub(run.wall)),
        duration(emulator_start)
    )), estimated))
}

/// The fan-out row and its estimate row.
pub async fn run_fan_out(root: &Path, skyplan: &Path, example: &Path, op: Duration) -> Vec<Row> {
    match fan_out(root, skyplan, example, op).await {
        Ok((row, estimate)) => vec![row, estimate],
        Err(e) => vec![Row::failed(
            format!("apply fan-out ({})", example.display()),
            &e,
        )],
    }
}

fn guide_name(example: &Path, op: f64, at: &super::distance::Distance) -> String {
    format!(
        "guide end to end ({}), --op-seconds {op} ({})",
        example.display(),
        at.label()
    )
}

/// The guide's row and its estimate row.
pub async fn run_guide(
    root: &Path,
    skyplan: &Path,
    example: &Path,
    at: &super::distance::Distance,
) -> Vec<Row> {
    match guide(root, skyplan, example, at).await {
        Ok((row, estimate)) => vec![row, estimate],
        Err(e) => vec![Row::failed(
            guide_name(example, ServeOptions::DEFAULT_OP_SECONDS, at),
            &e,
        )],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_times_come_from_the_progress_lines() {
        let t = step_times(
            "[12:00:01] service.primary: starting (create)\n\
             [12:00:03] service.primary: done after 2.1s [1/9, ~12 s left]\n\
             [12:00:05] restore.asia: done after 2.0s (note)\n",
        );
        assert_eq!(t["service.primary"], Duration::from_millis(2100));
        assert_eq!(t["restore.asia"], Duration::from_secs(2));
        assert_eq!(t.len(), 2);
    }
}
