//! `skyplan-bench [--only offline,refresh,fan-out,guide,repoint,switchover,switchbacks,outage] [--op-seconds S] [--latency PROFILE]`: measure skyplan
//! and print one table (stdout) with the machine it ran on. Progress goes to stderr.
//! Run it through `scripts/bench`, which builds in release mode first.

// A measuring tool, not the product: progress on stderr and the table on stdout, written
// where they happen (the product keeps its single printer, `skyplan::cli`).
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use skyplan_bench::{self as bench, child, machine::Machine, offline, table};

const USAGE: &str = "usage: skyplan-bench [--only offline,refresh,fan-out,guide,repoint,switchover,switchbacks,outage] [--op-seconds S] [--latency none|regions|FILE [--api-delay-ms MS]] [--examples DIR] [--keep]";

fn options(args: &[String], work: PathBuf) -> Result<bench::Options> {
    let bench_exe = std::env::current_exe().context("locating skyplan-bench")?;
    let skyplan = match std::env::var_os("SKYPLAN_BIN").filter(|v| !v.is_empty()) {
        Some(bin) => PathBuf::from(bin),
        None => bench_exe.with_file_name("skyplan"),
    };
    if !skyplan.is_file() {
        bail!(
            "{} not found: build it (`cargo build --release`) or set SKYPLAN_BIN",
            skyplan.display()
        );
    }
    let mut opts = bench::Options {
        bench_exe,
        skyplan,
        examples: PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples")),
        work,
        offline: true,
        refresh: true,
        fan_out: true,
        guide: true,
        repoint: true,
        switchover: true,
        switchbacks: true,
        outage: true,
        op: Duration::from_secs(2),
        latency: None,
        api_delay_ms: 0,
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = || {
            it.next()
                .with_context(|| format!("{arg} needs a value\n{USAGE}"))
        };
        match arg.as_str() {
            "--only" => {
                let only = value()?;
                let parts: Vec<&str> = only.split(',').map(str::trim).collect();
                for p in &parts {
                    if ![
                        "offline",
                        "refresh",
                        "fan-out",
                        "guide",
                        "repoint",
                        "switchover",
                        "switchbacks",
                        "outage",
                    ]
                    .contains(p)
                    {
                        bail!("unknown part `{p}`\n{USAGE}");
                    }
                }
                opts.offline = parts.contains(&"offline");
                opts.refresh = parts.contains(&"refresh");
                opts.fan_out = parts.contains(&"fan-out");
                opts.guide = parts.contains(&"guide");
                opts.repoint = parts.contains(&"repoint");
                opts.switchover = parts.contains(&"switchover");
                opts.switchbacks = parts.contains(&"switchbacks");
                opts.outage = parts.contains(&"outage");
            }
            "--op-seconds" => {
                let secs: f64 = value()?.parse().context("--op-seconds")?;
                if !(secs.is_finite() && (0.0..=60.0).contains(&secs)) {
                    bail!("--op-seconds must be between 0 and 60");
                }
                opts.op = Duration::from_secs_f64(secs);
            }
            "--examples" => opts.examples = PathBuf::from(value()?),
            "--latency" => {
                let profile = skyplan_emulator::latency::Latency::parse_profile(value()?)?;
                opts.latency =
                    (profile != skyplan_emulator::latency::Profile::None).then_some(profile);
            }
            "--api-delay-ms" => {
                opts.api_delay_ms = value()?.parse().context("--api-delay-ms")?;
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown argument `{other}`\n{USAGE}"),
        }
    }
    Ok(opts)
}

async fn run(args: Vec<String>) -> Result<ExitCode> {
    let scratch = tempfile::Builder::new()
        .prefix("skyplan-bench-")
        .tempdir()
        .context("creating a scratch directory")?;
    let keep = args.iter().any(|a| a == "--keep");
    let args: Vec<String> = args.into_iter().filter(|a| a != "--keep").collect();
    let opts = options(&args, scratch.path().to_path_buf())?;
    let machine = Machine::detect();
    let rows = tokio::select! {
        rows = bench::run_all(&opts) => rows,
        // Dropping run_all's future drops every emulator guard: they stop their emulators.
        _ = tokio::signal::ctrl_c() => {
            eprintln!("skyplan-bench: interrupted; emulators stopped");
            return Ok(ExitCode::from(130));
        }
    };
    print!("{}", table::render(&machine, &rows));
    if keep {
        // Generated topologies, states and emulator logs, for a closer look.
        eprintln!("skyplan-bench: kept {}", scratch.keep().display());
    }
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some(child::LAUNCH_FLAG) {
        return child::launcher_main(&args[1..]);
    }
    if args.first().map(String::as_str) == Some(offline::CHILD_FLAG) {
        return match offline::child_main(&args[1..]) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("skyplan-bench child: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("skyplan-bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("skyplan-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}
