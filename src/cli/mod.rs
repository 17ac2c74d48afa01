//! The command line: thin commands over the library. Each command lives in its own file and
//! returns an [`ExitStatus`], which [`main`] alone turns into the exit code; errors become
//! `Error: …` on stderr and exit code 1, usage errors too (2 only ever means "changes or
//! drift", as `--detailed-exitcode` promises).
//!
//! Output discipline (as uv's Printer): plans, JSON and DOT go to stdout; progress,
//! diagnostics and prompts go to stderr.

mod apply;
mod args;
mod common;
mod completions;
mod destroy;
pub(crate) mod emulator;
mod force_unlock;
mod graph;
mod import;
mod output;
mod plan;
mod show;
mod state;
mod validate;
mod verify;
mod version;

use clap::{Parser, Subcommand};

use crate::ops::ExitStatus;

#[derive(Debug, Parser)]
#[command(
    name = "skyplan",
    version,
    about = "Declarative plan/apply for MariaDB SkySQL global replication",
    long_about = "skyplan reads a topology file (services in several regions and who replicates \
                  from whom), compares it with what exists, shows a plan and carries it out."
)]
pub struct Cli {
    /// Log what happens (-v: info, -vv: debug). Secrets are never logged.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Plain output without colour (also: NO_COLOR=1).
    #[arg(long, global = true)]
    no_color: bool,
    /// `--input=false`: never prompt; where a confirmation would be needed, fail as without a
    /// terminal (Terraform's -input=false).
    #[arg(long, global = true, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    input: Option<bool>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check topology files and report every problem with its location.
    Validate(validate::Args),
    /// Show what apply would do (and what drifted).
    Plan(plan::Args),
    /// Carry out a plan (from a topology file or a saved plan file).
    Apply(apply::Args),
    /// Tear down everything the state records.
    Destroy(destroy::Args),
    /// Show a saved plan, or the current state.
    Show(show::Args),
    /// Print the plan's dependency graph in Graphviz DOT (with nothing planned: the managed
    /// services and their replication links).
    Graph(graph::Args),
    /// Record an existing service under a topology key (service.KEY), then show the next plan.
    Import(import::Args),
    /// Inspect, move and edit the state (list, show, pull, push, history, migrate, rm, mv).
    State(state::Args),
    /// Compare every table between each source and its replica (read-only).
    Verify(verify::Args),
    /// Each managed service's endpoint, role, region, credentials reference and replication
    /// source, from the state (read-only).
    Output(output::Args),
    /// Remove a state lock left by a crashed run.
    ForceUnlock(force_unlock::Args),
    /// The local SkySQL emulator (`endpoint = "local"`): serve, start, stop, status, outage.
    Emulator(emulator::EmulatorArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(completions::Args),
    /// Print skyplan's version and the state, plan and output format versions it uses.
    Version(version::Args),
}

pub fn main() -> i32 {
    let prepared = match args::prepare(std::env::args_os().collect()) {
        Ok(a) => a,
        Err(why) => {
            crate::printer::Printer::new(false).error(&why);
            return ExitStatus::Failure.code();
        }
    };
    let cli = match Cli::try_parse_from(args::normalize(prepared)) {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version print to stdout and succeed; any usage error exits 1.
            let status = if e.use_stderr() {
                ExitStatus::Failure
            } else {
                ExitStatus::Success
            };
            let _ = e.print();
            return status.code();
        }
    };
    common::init_logging(cli.verbose);
    if cli.input == Some(false) {
        crate::printer::never_prompt();
    }
    let ui = crate::printer::Printer::new(cli.no_color);
    let result = match cli.command {
        Command::Validate(a) => validate::run(a, &ui),
        Command::Plan(a) => common::block_on(plan::run(a, &ui)),
        Command::Apply(a) => common::block_on(apply::run(a, &ui)),
        Command::Destroy(a) => common::block_on(destroy::run(a, &ui)),
        Command::Show(a) => common::block_on(show::run(a, &ui)),
        Command::Graph(a) => common::block_on(graph::run(a, &ui)),
        Command::Import(a) => common::block_on(import::run(a, &ui)),
        Command::State(a) => common::block_on(state::run(a, &ui)),
        Command::Verify(a) => common::block_on(verify::run(a, &ui)),
        Command::ForceUnlock(a) => common::block_on(force_unlock::run(a, &ui)),
        Command::Emulator(a) => emulator::run(a, &ui),
        Command::Output(a) => common::block_on(output::run(a, &ui)),
        Command::Completions(a) => completions::run(a, &ui),
        Command::Version(a) => version::run(a, &ui),
    };
    // The one place a command's outcome becomes a number.
    match result {
        Ok(status) => status.code(),
        Err(e) => {
            ui.error(&format!("{e:#}"));
            ExitStatus::Failure.code()
        }
    }
}
