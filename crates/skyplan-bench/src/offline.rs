//! Planning without the network on generated topologies: in process through the library
//! (parse + state decode + `plan::build`), in a child for its peak memory, and through the
//! real binary (`plan --refresh=false`) once per scenario that it can run.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};

use super::child;
use super::generate;
use super::table::{duration, thousands, Row};
use skyplan::observed::Observed;
use skyplan::plan::{self, PlanInput};
use skyplan::state::codec;

/// Argument that turns the bench binary into the child that plans once (for peak memory):
/// `--child-plan SCENARIO TOPOLOGY [STATE]`.
pub const CHILD_FLAG: &str = "--child-plan";

/// Targets of the issue for the largest topology.
const MAX_10K: Duration = Duration::from_secs(1);
const MAX_10K_KIB: u64 = 200 * 1024;
/// 10× the services may cost at most this factor in time and still count as linear: the
/// ordered maps add a log factor (10 × log 10⁴ / log 10³ ≈ 13) and 10,000 services no longer
/// fit in the CPU caches, while a quadratic step shows as ×100 and even n^1.5 as ×32.
const LINEAR_FACTOR: f64 = 15.0;
const SIZES: [(usize, usize); 3] = [(100, 31), (1_000, 15), (10_000, 9)];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Scenario {
    /// Nothing applied yet: every service, backup, restore, grant and link is planned.
    Empty,
    /// Everything applied, `--refresh=false`: the no-change path trusting the state.
    Applied,
    /// Everything applied and a refresh that found the world as applied: the no-change path
    /// of a scheduled drift check (`plan --detailed-exitcode`), minus the API calls.
    Refreshed,
}

impl Scenario {
    const ALL: [Scenario; 3] = [Scenario::Empty, Scenario::Applied, Scenario::Refreshed];

    fn name(self) -> &'static str {
        match self {
            Scenario::Empty => "empty",
            Scenario::Applied => "applied",
            Scenario::Refreshed => "refreshed",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Scenario::Empty => "empty state",
            Scenario::Applied => "applied state",
            Scenario::Refreshed => "applied state, refreshed as applied",
        }
    }

    fn parse(name: &str) -> Option<Scenario> {
        Scenario::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// One workload on disk: the topology file and, once applied, its state file where the CLI
/// looks for it (`state/bench.state.json` relative to the directory).
struct Workload {
    dir: PathBuf,
    toml: PathBuf,
    state: Option<PathBuf>,
    scenario: Scenario,
}

fn write_workload(root: &Path, n: usize, scenario: Scenario) -> Result<Workload> {
    let dir = root.join(format!("offline-{n}-{}", scenario.name()));
    std::fs::create_dir_all(dir.join("state"))?;
    let toml = dir.join("bench.toml");
    let text = generate::topology_toml(n);
    std::fs::write(&toml, &text)?;
    let state = if scenario == Scenario::Empty {
        None
    } else {
        let path = dir.join("state").join("bench.state.json");
        let applied = generate::applied_state(&parse(&text)?);
        std::fs::write(&path, codec::to_json(&applied)?)?;
        Some(path)
    };
    Ok(Workload {
        dir,
        toml,
        state,
        scenario,
    })
}

fn parse(text: &str) -> Result<skyplan::topology::Topology> {
    skyplan::topology::parse(text, Path::new("bench.toml"))
        .map_err(|d| anyhow!("generated topology is invalid:\n{d}"))
}

/// Wall time of each phase of one plan.
#[derive(Debug, Clone, Copy, Default)]
struct Phases {
    parse: Duration,
    state: Duration,
    plan: Duration,
    actions: usize,
}

impl Phases {
    fn total(&self) -> Duration {
        self.parse + self.state + self.plan
    }
}

/// Parse the topology, decode the state, build the plan: the work of a plan minus printing
/// it (and minus the API calls of a refresh, whose result is made up front, untimed).
fn plan_once(text: &str, state_json: Option<&[u8]>, scenario: Scenario) -> Result<Phases> {
    let t = Instant::now();
    let topology = parse(text)?;
    let parse_time = t.elapsed();
    let t = Instant::now();
    let state = match state_json {
        Some(bytes) => codec::from_json(bytes, "bench state")?,
        None => skyplan::state::new_state(),
    };
    let state_time = t.elapsed();
    let observed = match scenario {
        Scenario::Refreshed => generate::observed_as_applied(&state),
        _ => Observed::offline(),
    };
    let t = Instant::now();
    let plan = plan::build(&PlanInput {
        topology: &topology,
        topology_sha256: "",
        state: &state,
        observed: &observed,
        flags: Default::default(),
    })?;
    Ok(Phases {
        parse: parse_time,
        state: state_time,
        plan: t.elapsed(),
        actions: plan.actions.len(),
    })
}

/// The child side of [`CHILD_FLAG`]: plan once and print the action count.
pub fn child_main(args: &[String]) -> Result<()> {
    let usage = || anyhow!("usage: {CHILD_FLAG} empty|applied|refreshed TOPOLOGY [STATE]");
    let [scenario, toml, rest @ ..] = args else {
        return Err(usage());
    };
    let scenario = Scenario::parse(scenario).ok_or_else(usage)?;
    let text = std::fs::read_to_string(toml)?;
    let state = rest.first().map(std::fs::read).transpose()?;
    println!("{}", plan_once(&text, state.as_deref(), scenario)?.actions);
    Ok(())
}

/// The fastest of `runs` in-process plans of `w`: on a shared machine the minimum is the
/// estimate least disturbed by other processes.
fn time_library(w: &Workload, runs: usize) -> Result<Phases> {
    let text = std::fs::read_to_string(&w.toml)?;
    let state = w.state.as_ref().map(std::fs::read).transpose()?;
    let mut best: Option<Phases> = None;
    for _ in 0..runs {
        let p = plan_once(&text, state.as_deref(), w.scenario)?;
        if best.is_none_or(|b| p.total() < b.total()) {
            best = Some(p);
        }
    }
    best.ok_or_else(|| anyhow!("no runs"))
}

fn peak_of_library(bench_exe: &Path, w: &Workload) -> Result<u64> {
    let mut args = vec![
        OsStr::new(CHILD_FLAG),
        OsStr::new(w.scenario.name()),
        w.toml.as_os_str(),
    ];
    if let Some(s) = &w.state {
        args.push(s.as_os_str());
    }
    let m = child::run(bench_exe, bench_exe, &args, None, true)?;
    if m.exit_code != 0 {
        bail!("the planning child exited {}", m.exit_code);
    }
    Ok(m.peak_rss_kib)
}

fn run_binary(bench_exe: &Path, skyplan: &Path, w: &Workload) -> Result<child::Measured> {
    let args = ["plan", "--refresh=false", "--no-color", "bench.toml"].map(OsStr::new);
    let m = child::run(bench_exe, skyplan, &args, Some(&w.dir), false)?;
    if m.exit_code != 0 {
        bail!("`skyplan plan` exited {}", m.exit_code);
    }
    Ok(m)
}

/// Rows of one scenario: each size, the growth from 1,000 to 10,000, the binary on 10,000.
fn scenario_rows(root: &Path, bench_exe: &Path, skyplan: &Path, scenario: Scenario) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut times = Vec::new();
    let mut largest = None;
    let via = if scenario == Scenario::Refreshed {
        "plan, library"
    } else {
        "plan --refresh=false, library"
    };
    for (n, runs) in SIZES {
        let what = format!("{via}: {} services, {}", thousands(n), scenario.label());
        let measured = write_workload(root, n, scenario).and_then(|w| {
            let phases = time_library(&w, runs)?;
            let peak = peak_of_library(bench_exe, &w)?;
            Ok((w, phases, peak))
        });
        let (w, p, peak) = match measured {
            Ok(m) => m,
            Err(e) => {
                rows.push(Row::failed(what, &e));
                continue;
            }
        };
        let t = p.total();
        let mut row = Row::new(what).wall(t).mem_kib(peak).note(format!(
            "{} actions; parse {} + state {} + plan {}; best of {runs}",
            thousands(p.actions),
            duration(p.parse),
            duration(p.state),
            duration(p.plan)
        ));
        if n == 10_000 {
            row = row.target("< 1 s, < 200 MB", t < MAX_10K && peak < MAX_10K_KIB);
            largest = Some(w);
        }
        rows.push(row);
        times.push((n, p));
    }
    let at = |size| times.iter().find(|(n, _)| *n == size).map(|x| x.1);
    if let (Some(small), Some(large)) = (at(1_000), at(10_000)) {
        let factor = |f: fn(&Phases) -> Duration| {
            f(&large).as_secs_f64() / f(&small).as_secs_f64().max(1e-9)
        };
        let total = factor(Phases::total);
        rows.push(
            Row::new(format!("  growth 1,000 -> 10,000 ({})", scenario.label()))
                .wall_text(format!("x{total:.1}"))
                .target(
                    format!("linear (x10, <= x{LINEAR_FACTOR:.0})"),
                    total <= LINEAR_FACTOR,
                )
                .note(format!(
                    "parse x{:.1}, plan x{:.1}",
                    factor(|p| p.parse),
                    factor(|p| p.plan)
                )),
        );
    }
    if let (Some(w), false) = (largest, scenario == Scenario::Refreshed) {
        let what = format!(
            "plan --refresh=false, binary: 10,000 services, {}",
            scenario.label()
        );
        rows.push(match run_binary(bench_exe, skyplan, &w) {
            Ok(m) => Row::new(what)
                .wall(m.wall)
                .mem_kib(m.peak_rss_kib)
                .target(
                    "< 1 s, < 200 MB",
                    m.wall < MAX_10K && m.peak_rss_kib < MAX_10K_KIB,
                )
                .note(format!(
                    "whole process: read, plan, print {} KiB",
                    m.stdout.len() / 1024
                )),
            Err(e) => Row::failed(what, &e),
        });
    }
    rows
}

/// Every offline row: 100 / 1,000 / 10,000 services × empty / applied / refreshed state.
pub fn run(root: &Path, bench_exe: &Path, skyplan: &Path) -> Vec<Row> {
    let mut rows = Vec::new();
    match child::floor(bench_exe) {
        Ok(kib) => rows.push(
            Row::new("  peak memory floor (the launcher running `true`)")
                .mem_kib(kib)
                .note("included in every peak memory figure below"),
        ),
        Err(e) => rows.push(Row::failed("peak memory floor", &e)),
    }
    for scenario in Scenario::ALL {
        rows.extend(scenario_rows(root, bench_exe, skyplan, scenario));
    }
    rows
}
