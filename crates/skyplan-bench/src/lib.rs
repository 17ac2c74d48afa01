//! `skyplan-bench`: measures planning, refresh and apply at scale and prints one table.
//!
//! - `offline`: `plan --refresh=false` on generated topologies (`generate`), time and peak
//!   memory (`child`), growth from 1,000 to 10,000 services.
//! - `refresh`: 1,000 services on an API-only emulator, wall time and API calls.
//! - `apply`: the fan-out example against its `critical` path, and the guide's example
//!   end to end, on real MariaDB.
//! - `repoint`: re-pointing a replica holding 300 MB by GTID against by re-seed.
//! - `switchover`: a pair's switchover under a live writer (write gap, lost writes).
//! - `outage`: a failover from a hanging region under a live writer (write gap, apply time).
//! - `switchbacks`: ten switchovers there and back under the writer, thousands of
//!   transactions between them (write gaps, lost writes, copies).
//!
//! Every emulator runs in a private directory and is stopped on any exit (`emulator`).
//! Targets are reported, never asserted: timings belong in this table, not in tests.

// A measuring tool, not the product: progress on stderr and the table on stdout, written
// where they happen (the product keeps its single printer, `skyplan::cli`).
#![allow(clippy::print_stdout, clippy::print_stderr)]

pub mod apply;
pub mod child;
pub mod critical;
pub mod distance;
pub mod emulator;
pub mod generate;
pub mod machine;
pub mod offline;
pub mod outage;
pub mod refresh;
pub mod repoint;
pub mod switchbacks;
pub mod switchover;
pub mod table;

use std::path::PathBuf;
use std::time::Duration;

use table::Row;

/// Which parts to run (all by default).
#[derive(Debug, Clone)]
pub struct Options {
    /// The bench binary itself (re-run as a child to measure peak memory).
    pub bench_exe: PathBuf,
    /// The `skyplan` binary (plan, apply, emulator).
    pub skyplan: PathBuf,
    /// Directory holding `fan-out-8.toml` and `global-replication.toml`.
    pub examples: PathBuf,
    /// Scratch directory; everything the benchmark writes goes under it.
    pub work: PathBuf,
    pub offline: bool,
    pub refresh: bool,
    pub fan_out: bool,
    pub guide: bool,
    /// Re-point by GTID against by re-seed, with ≥ 300 MB on the replica.
    pub repoint: bool,
    /// Switchover of a pair under a live writer.
    pub switchover: bool,
    /// Ten switchovers there and back under a live writer.
    pub switchbacks: bool,
    /// A failover from a hanging region under a live writer.
    pub outage: bool,
    /// `--op-seconds` of the fan-out apply.
    pub op: Duration,
    /// `--latency PROFILE`: the Day-2 rows run at these distances instead of over loopback.
    pub latency: Option<skyplan_emulator::latency::Profile>,
    /// `--api-delay-ms`: the control plane's distance under `--latency`.
    pub api_delay_ms: u64,
}

impl Options {
    /// Where the Day-2 rows run: loopback, or (under `--latency`) the guide's pair with its
    /// secondary at a near and at a far distance from the primary (us-east4): us-west1 and
    /// asia-southeast1.
    pub fn distances(&self) -> Vec<distance::Distance> {
        match &self.latency {
            None => vec![distance::Distance::loopback()],
            Some(profile) => ["us-west1", "asia-southeast1"]
                .iter()
                .map(|r| distance::Distance::pair(profile, r, self.api_delay_ms))
                .collect(),
        }
    }
}

/// Runs the selected measurements in order, reporting progress on stderr.
pub async fn run_all(opts: &Options) -> Vec<Row> {
    let mut rows = Vec::new();
    if opts.offline {
        eprintln!("skyplan-bench: offline plans (100 / 1,000 / 10,000 services)…");
        rows.extend(offline::run(&opts.work, &opts.bench_exe, &opts.skyplan));
    }
    if opts.refresh {
        eprintln!("skyplan-bench: refresh of 1,000 services (API-only emulator)…");
        rows.push(refresh::run(&opts.work, &opts.skyplan).await);
        if opts.latency.is_some() {
            eprintln!(
                "skyplan-bench: refresh of 1,000 services with their SQL checks, 100 ms away…"
            );
            rows.push(refresh::run_sql(&opts.work, &opts.skyplan).await);
        }
    }
    if opts.fan_out {
        eprintln!("skyplan-bench: apply fan-out 1+8 on real MariaDB…");
        let example = opts.examples.join("fan-out-8.toml");
        rows.extend(apply::run_fan_out(&opts.work, &opts.skyplan, &example, opts.op).await);
    }
    if opts.guide {
        let example = opts.examples.join("global-replication.toml");
        for at in opts.distances() {
            eprintln!(
                "skyplan-bench: the guide's example end to end ({})…",
                at.label()
            );
            rows.extend(apply::run_guide(&opts.work, &opts.skyplan, &example, &at).await);
        }
    }
    if opts.repoint {
        let example = opts.examples.join("global-replication.toml");
        for at in opts.distances() {
            eprintln!(
                "skyplan-bench: re-point by GTID vs by re-seed (300 MB, real MariaDB, {})…",
                at.label()
            );
            rows.push(repoint::run(&opts.work, &opts.skyplan, &example, &at).await);
        }
    }
    if opts.switchover {
        let example = opts.examples.join("global-replication.toml");
        for at in opts.distances() {
            eprintln!(
                "skyplan-bench: switchover of a pair under a live writer ({})…",
                at.label()
            );
            rows.push(switchover::run(&opts.work, &opts.skyplan, &example, &at).await);
        }
    }
    if opts.switchbacks {
        let example = opts.examples.join("global-replication.toml");
        // Over loopback only: its thousands of single-row transactions between switches would
        // take an hour through a WAN's round trips (the switchover row measures the gap there).
        let at = distance::Distance::loopback();
        eprintln!(
            "skyplan-bench: ten switchovers there and back under a live writer ({})…",
            at.label()
        );
        rows.push(switchbacks::run(&opts.work, &opts.skyplan, &example, &at).await);
    }
    if opts.outage {
        let example = opts.examples.join("global-replication.toml");
        for at in opts.distances() {
            eprintln!(
                "skyplan-bench: failover from a hanging region under a live writer ({})…",
                at.label()
            );
            rows.push(outage::run(&opts.work, &opts.skyplan, &example, &at).await);
        }
    }
    rows
}
