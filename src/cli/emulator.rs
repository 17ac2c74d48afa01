//! `skyplan emulator serve|start|stop|status`: the embedded SkySQL emulator.

use anyhow::Context;
use clap::{Args, Subcommand};
use std::path::PathBuf;

use crate::emulator::{self, ServeOptions};

#[derive(Debug, Args)]
pub struct EmulatorArgs {
    #[command(subcommand)]
    pub command: EmulatorCommand,
}

#[derive(Debug, Subcommand)]
pub enum EmulatorCommand {
    /// Run the emulator in the foreground (Ctrl-C stops it and its databases).
    Serve(ServeArgs),
    /// Start the emulator in the background, or reuse the one already running; prints the
    /// endpoint and the API key.
    Start(ServeArgs),
    /// Stop the background emulator and its databases (the data stays).
    Stop(DirArgs),
    /// Is the emulator running? Where, with which key?
    Status(StatusArgs),
}

#[derive(Debug, Args)]
pub struct DirArgs {
    /// Data directory [env: SKYPLAN_EMULATOR_DIR] [default: $XDG_STATE_HOME/skyplan/emulator]
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub dir: DirArgs,
    /// Fraction (0-1) of API requests answered with an injected 500/502/503 or 429.
    #[arg(long, value_name = "F", default_value_t = 0.0)]
    pub fault_rate: f64,
    /// Seed for the injected faults (same seed, same faults).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub fault_seed: u64,
    /// Least time, in seconds, that create, modify, backup, restore and delete stay pending.
    #[arg(long, value_name = "S", default_value_t = ServeOptions::DEFAULT_OP_SECONDS)]
    pub op_seconds: f64,
    /// API only: services get no MariaDB server (for benchmarks of the API alone).
    #[arg(long)]
    pub no_mariadb: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub dir: DirArgs,
    /// Print {"endpoint", "api_key", "pid", "dir", "ca_cert"} as JSON.
    #[arg(long)]
    pub json: bool,
}

impl ServeArgs {
    fn options(&self) -> ServeOptions {
        ServeOptions {
            dir: emulator::resolve_dir(self.dir.dir.as_deref()),
            op_seconds: self.op_seconds,
            fault_rate: self.fault_rate,
            fault_seed: self.fault_seed,
            no_mariadb: self.no_mariadb,
        }
    }
}

/// Runs an emulator command; returns the exit code.
pub fn run(args: EmulatorArgs) -> anyhow::Result<i32> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        match args.command {
            EmulatorCommand::Serve(a) => serve(a).await,
            EmulatorCommand::Start(a) => start(a).await,
            EmulatorCommand::Stop(a) => stop(a).await,
            EmulatorCommand::Status(a) => status(a).await,
        }
    })
}

async fn serve(args: ServeArgs) -> anyhow::Result<i32> {
    emulator::serve_until_signal(args.options()).await?;
    Ok(0)
}

async fn start(args: ServeArgs) -> anyhow::Result<i32> {
    let opts = args.options();
    let exe = emulator::daemon::skyplan_exe()?;
    let (running, started) = emulator::start_background(&opts, &exe).await?;
    if !started {
        eprintln!("emulator already running (pid {}); reusing it", running.pid);
        if let Some(info) = emulator::info::read_info(&running.dir) {
            if info.options != opts {
                eprintln!(
                    "note: it runs with other options (op-seconds {}, fault-rate {}, fault-seed {}, \
                     no-mariadb {}); `skyplan emulator stop` first to change them",
                    info.options.op_seconds,
                    info.options.fault_rate,
                    info.options.fault_seed,
                    info.options.no_mariadb
                );
            }
        }
    } else {
        eprintln!(
            "emulator started (pid {}, dir {})",
            running.pid,
            running.dir.display()
        );
    }
    println!("endpoint: {}", running.endpoint);
    println!("api_key:  {}", running.api_key);
    println!("ca_cert:  {}", running.ca_cert.display());
    Ok(0)
}

async fn stop(args: DirArgs) -> anyhow::Result<i32> {
    let dir = emulator::resolve_dir(args.dir.as_deref());
    if emulator::stop(&dir).await? {
        eprintln!("emulator for {} stopped", dir.display());
    } else {
        eprintln!("no emulator was running for {}", dir.display());
    }
    Ok(0)
}

async fn status(args: StatusArgs) -> anyhow::Result<i32> {
    let dir = emulator::resolve_dir(args.dir.dir.as_deref());
    match emulator::find_running(&dir).await {
        Some(running) if args.json => {
            println!("{}", serde_json::to_string_pretty(&running)?);
            Ok(0)
        }
        Some(running) => {
            println!("running: pid {}", running.pid);
            println!("endpoint: {}", running.endpoint);
            println!("api_key:  {}", running.api_key);
            println!("ca_cert:  {}", running.ca_cert.display());
            println!("dir:      {}", running.dir.display());
            Ok(0)
        }
        None => {
            if args.json {
                println!("null");
            }
            eprintln!("no emulator is running for {}", dir.display());
            Ok(1)
        }
    }
}
