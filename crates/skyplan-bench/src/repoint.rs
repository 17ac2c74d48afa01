//! Re-pointing a replica: by GTID (no data copied) against by re-seed (backup + restore), side
//! by side on real MariaDB, and the GTID re-point with almost no data against with ≥ 300 MB:
//! its time must not grow with the data.
//!
//! The guide's topology plus a third service: `third` moves from the primary to the secondary
//! (by GTID, ~0 MB), back to the primary (by GTID, ≥ 300 MB), then, after an errant write on
//! it, to the secondary again, which the plan can only do by re-seeding (≥ 300 MB copied).

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use mysql_async::prelude::Queryable;

use super::apply::{apply, apply_with, connect, prepare};
use super::distance::Distance;
use super::emulator::Emulator;
use super::table::{duration, Row};

/// How much the replica holds for the large re-points.
const DATA_BYTES: u64 = 300 * 1024 * 1024;
/// The GTID re-point with the data may take this much longer than without (it copies nothing;
/// what varies is connecting and catching up).
const MAX_GROWTH: f64 = 1.5;
const SLACK: Duration = Duration::from_secs(1);

fn topology(guide: &str, third_from: &str) -> String {
    format!(
        "{guide}\n[services.third]\nname = \"skysql-third\"\nregion = \"europe-west1\"\n\n\
         [services.third.replication]\nfrom = \"{third_from}\"\nseed = \"new-backup\"\n"
    )
}

/// Fill `bench.filler` on the primary until it holds `DATA_BYTES` (doubling INSERT … SELECT),
/// then wait until both replicas applied it. Returns the bytes in the table.
async fn load(emu: &Emulator, work: &Path, file: &Path) -> Result<u64> {
    let mut p = connect(emu, work, file, "primary").await?;
    p.query_drop("CREATE DATABASE IF NOT EXISTS bench").await?;
    p.query_drop(
        "CREATE TABLE IF NOT EXISTS bench.filler (id BIGINT AUTO_INCREMENT PRIMARY KEY, \
         pad VARCHAR(1024) NOT NULL)",
    )
    .await?;
    p.query_drop(
        "INSERT INTO bench.filler (pad) SELECT REPEAT(MD5(RAND()), 30) FROM bench.seq_1_to_1024",
    )
    .await?;
    let bytes = loop {
        let bytes: u64 = p
            .query_first(
                "SELECT DATA_LENGTH FROM information_schema.TABLES \
                 WHERE TABLE_SCHEMA = 'bench' AND TABLE_NAME = 'filler'",
            )
            .await?
            .unwrap_or(0);
        if bytes >= DATA_BYTES {
            break bytes;
        }
        p.query_drop(
            "INSERT INTO bench.filler (pad) SELECT REPEAT(MD5(RAND()), 30) FROM bench.filler",
        )
        .await?;
        p.query_drop("ANALYZE TABLE bench.filler").await?;
    };
    let pos: String = p
        .query_first("SELECT @@gtid_binlog_pos")
        .await?
        .unwrap_or_default();
    for key in ["secondary", "third"] {
        let mut r = connect(emu, work, file, key).await?;
        let reached: Option<i64> = r
            .exec_first("SELECT MASTER_GTID_WAIT(?, 600)", (pos.as_str(),))
            .await?;
        if reached != Some(0) {
            bail!("service.{key} did not apply the loaded data");
        }
    }
    Ok(bytes)
}

/// Re-point `third` to `to`; the apply's wall time and whether it restored. `flags`: the
/// re-seed over the errant write discards it, which the last-copy rule refuses without
/// `--allow-data-loss`.
async fn repoint(
    skyplan: &Path,
    emu: &Emulator,
    work: &Path,
    file: &Path,
    (guide, to): (&str, &str),
    flags: &[&str],
) -> Result<(Duration, bool)> {
    std::fs::write(file, topology(guide, to))?;
    let run = apply_with(skyplan, emu, work, file, flags).await?;
    Ok((run.wall, run.took.contains_key("restore.third")))
}

async fn measure(root: &Path, skyplan: &Path, example: &Path, at: &Distance) -> Result<Row> {
    let work = root.join(format!("repoint-{}", at.secondary_region));
    let (file, _) = prepare(example, &work)?;
    let guide = at.topology(example)?;
    std::fs::write(&file, topology(&guide, "primary"))?;
    let emu = Emulator::start(skyplan, at.serve_options(work.join("emulator"))).await?;
    apply(skyplan, &emu, &work, &file)
        .await
        .context("applying primary + 2 replicas")?;

    let (small, copied) = repoint(skyplan, &emu, &work, &file, (&guide, "secondary"), &[]).await?;
    if copied {
        bail!("the re-point without data restored: it should go by GTID");
    }
    eprintln!("skyplan-bench: loading {} MB…", DATA_BYTES / 1024 / 1024);
    let bytes = load(&emu, &work, &file).await?;
    let (large, copied) = repoint(skyplan, &emu, &work, &file, (&guide, "primary"), &[]).await?;
    if copied {
        bail!("the re-point with data restored: it should go by GTID");
    }
    // An errant write on the replica: the only safe way to the secondary is a fresh copy.
    let mut third = connect(&emu, &work, &file, "third").await?;
    third
        .query_drop("CREATE DATABASE IF NOT EXISTS errant")
        .await?;
    drop(third);
    let (reseed, copied) = repoint(
        skyplan,
        &emu,
        &work,
        &file,
        (&guide, "secondary"),
        &["--allow-data-loss"],
    )
    .await?;
    if !copied {
        bail!("the re-point over an errant write did not re-seed");
    }
    drop(emu);

    let limit = small.mul_f64(MAX_GROWTH) + SLACK;
    Ok(Row::new(format!(
        "re-point a replica holding {} MB: by GTID vs by re-seed ({})",
        bytes / 1024 / 1024,
        at.label()
    ))
    .wall(large)
    .target(
        format!(
            "GTID re-point with the data <= {MAX_GROWTH} x without + {} ({})",
            duration(SLACK),
            duration(limit)
        ),
        large <= limit,
    )
    .note(format!(
        "by GTID {} with {} MB, {} with ~0 MB; by re-seed (backup + restore) {}: {:.1} x the GTID re-point",
        duration(large),
        bytes / 1024 / 1024,
        duration(small),
        duration(reseed),
        reseed.as_secs_f64() / large.as_secs_f64().max(1e-9)
    )))
}

pub async fn run(root: &Path, skyplan: &Path, example: &Path, at: &Distance) -> Row {
    match measure(root, skyplan, example, at).await {
        Ok(row) => row,
        Err(e) => Row::failed(
            format!("re-point by GTID vs by re-seed ({})", at.label()),
            &e,
        ),
    }
}
