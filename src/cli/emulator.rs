//! `skyplan emulator serve|start|stop|status|outage`: the embedded SkySQL emulator.

use crate::ops::ExitStatus;
use anyhow::Context;

use crate::printer::Printer;
use clap::{Args, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::time::Duration;

use skyplan_emulator::{self as emulator, ServeOptions};

#[derive(Debug, Args)]
pub(crate) struct EmulatorArgs {
    #[command(subcommand)]
    pub command: EmulatorCommand,
}

#[derive(Debug, Subcommand)]
pub(crate) enum EmulatorCommand {
    /// Run the emulator in the foreground (Ctrl-C stops it and its databases).
    Serve(ServeArgs),
    /// Start the emulator in the background, or reuse the one already running; prints the
    /// endpoint and the API key.
    Start(ServeArgs),
    /// Stop the background emulator and its databases (the data stays).
    Stop(DirArgs),
    /// Is the emulator running? Where, with which key?
    Status(StatusArgs),
    /// Emulate a region outage of a service (for tests): its database stops, with its data
    /// kept, and the API answers for it as an unreachable region; `--end` brings it back.
    Outage(OutageArgs),
}

#[derive(Debug, Args)]
pub(crate) struct DirArgs {
    /// Data directory [env: SKYPLAN_EMULATOR_DIR] [default: $XDG_STATE_HOME/skyplan/emulator]
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    #[command(flatten)]
    pub dir: DirArgs,
    /// Fraction (0-1) of API requests answered with an injected 500/502/503 or 429 [default: 0]
    #[arg(long, value_name = "F")]
    pub fault_rate: Option<f64>,
    /// Seed for the injected faults: same seed, same faults [default: 0]
    #[arg(long, value_name = "N")]
    pub fault_seed: Option<u64>,
    /// Least time, in seconds, that create, modify, backup, restore and delete stay pending
    /// [default: 1]
    #[arg(long, value_name = "S")]
    pub op_seconds: Option<f64>,
    /// API only: services get no MariaDB server (for benchmarks of the API alone).
    #[arg(long)]
    pub no_mariadb: bool,
    /// Distances between regions: `none`, `regions` (the built-in round-trip table of the
    /// catalog's regions) or a TOML file of round trips (see the README) [default: none]
    #[arg(long, value_name = "PROFILE")]
    pub latency: Option<String>,
    /// The region skyplan's own SQL comes from, under a latency profile [default: the first
    /// region of the topology skyplan applies (each run says it), else the oldest service's]
    #[arg(long, value_name = "REGION")]
    pub client_region: Option<String>,
    /// The SkySQL API answers after this many milliseconds (the control plane's distance)
    /// [default: 0]
    #[arg(long, value_name = "MS")]
    pub api_delay_ms: Option<u64>,
    /// Benchmarks: at most K mariadbd servers; later services share them, each with its own
    /// admin account (backups, restores and outages of a sharing service act on the shared
    /// server) [default: a server per service]
    #[arg(long, value_name = "K")]
    pub shared_mariadbd: Option<usize>,
    /// Every option as one JSON `ServeOptions`: how `emulator start` hands them to the daemon
    /// (`skyplan_emulator::daemon::SERVE_OPTIONS_FLAG`).
    #[arg(
        long = "options-json",
        hide = true,
        value_name = "JSON",
        conflicts_with_all = [
            "fault_rate", "fault_seed", "op_seconds", "no_mariadb", "latency", "client_region",
            "api_delay_ms", "shared_mariadbd",
        ]
    )]
    pub options_json: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct StatusArgs {
    #[command(flatten)]
    pub dir: DirArgs,
    /// Print {"endpoint", "api_key", "pid", "dir", "ca_cert", "latency"} as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct OutageArgs {
    #[command(flatten)]
    pub dir: DirArgs,
    /// The service, by id or by name.
    #[arg(value_name = "SERVICE")]
    pub service: String,
    /// How the API answers requests naming the service: at once with 503 (errors), or not
    /// for 30 s and then with 504 (timeouts) [default: errors]
    #[arg(long, value_enum, value_name = "MODE", conflicts_with = "end")]
    pub mode: Option<OutageMode>,
    /// End the outage: the database starts again on the same port with its data, and the
    /// API answers for the service again. Without an outage, nothing happens.
    #[arg(long)]
    pub end: bool,
}

/// How an unreachable region answers (`--mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum OutageMode {
    /// 503 Service Unavailable at once.
    Errors,
    /// No answer for 30 s, then 504 Gateway Timeout.
    Timeouts,
}

impl OutageMode {
    fn as_str(self) -> &'static str {
        match self {
            OutageMode::Errors => "errors",
            OutageMode::Timeouts => "timeouts",
        }
    }
}

impl ServeArgs {
    fn options(&self) -> anyhow::Result<ServeOptions> {
        if let Some(json) = &self.options_json {
            let opts: ServeOptions = serde_json::from_str(json)
                .context("--options-json is not the emulator's options")?;
            // The daemon is started with `--dir` too (how `stop` recognises it).
            if let Some(dir) = self.dir.dir.as_deref().filter(|d| *d != opts.dir) {
                anyhow::bail!(
                    "--dir {} differs from the dir of --options-json ({})",
                    dir.display(),
                    opts.dir.display()
                );
            }
            return Ok(opts);
        }
        let defaults = ServeOptions::new(emulator::resolve_dir(self.dir.dir.as_deref()));
        let opts = ServeOptions {
            op_seconds: self.op_seconds.unwrap_or(defaults.op_seconds),
            fault_rate: self.fault_rate.unwrap_or(defaults.fault_rate),
            fault_seed: self.fault_seed.unwrap_or(defaults.fault_seed),
            no_mariadb: self.no_mariadb,
            latency: self.latency()?,
            shared_mariadbd: self.shared_mariadbd,
            ..defaults
        };
        opts.validate()?;
        Ok(opts)
    }

    /// `--latency`, `--client-region`, `--api-delay-ms` (a profile file is read here, once).
    fn latency(&self) -> anyhow::Result<emulator::latency::Latency> {
        Ok(emulator::latency::Latency {
            profile: match &self.latency {
                Some(p) => emulator::latency::Latency::parse_profile(p)?,
                None => Default::default(),
            },
            client_region: self.client_region.clone(),
            api_delay_ms: self.api_delay_ms.unwrap_or(0),
        })
    }

    /// The options given on the command line that differ from `running`'s.
    fn conflicts(&self, running: &ServeOptions) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(v) = self.op_seconds.filter(|v| *v != running.op_seconds) {
            out.push(format!(
                "--op-seconds {v} (running: {})",
                running.op_seconds
            ));
        }
        if let Some(v) = self.fault_rate.filter(|v| *v != running.fault_rate) {
            out.push(format!(
                "--fault-rate {v} (running: {})",
                running.fault_rate
            ));
        }
        if let Some(v) = self.fault_seed.filter(|v| *v != running.fault_seed) {
            out.push(format!(
                "--fault-seed {v} (running: {})",
                running.fault_seed
            ));
        }
        if let Ok(latency) = self.latency() {
            let asked = self.latency.is_some()
                || self.client_region.is_some()
                || self.api_delay_ms.is_some();
            if asked && latency != running.latency {
                out.push(format!(
                    "the latency options (running: {})",
                    describe_latency(&running.latency)
                ));
            }
        }
        if let Some(k) = self
            .shared_mariadbd
            .filter(|k| Some(*k) != running.shared_mariadbd)
        {
            out.push(format!(
                "--shared-mariadbd {k} (running: {})",
                running
                    .shared_mariadbd
                    .map_or("a server per service".to_string(), |k| k.to_string())
            ));
        }
        if self.no_mariadb != running.no_mariadb {
            out.push(format!(
                "--no-mariadb {} (running: {})",
                self.no_mariadb, running.no_mariadb
            ));
        }
        out
    }
}

/// The latency options in a few words: `none`, `regions, client us-east4, API +50 ms`, ….
fn describe_latency(l: &emulator::latency::Latency) -> String {
    use emulator::latency::Profile;
    let mut parts = vec![match &l.profile {
        Profile::None => "none".to_string(),
        Profile::Regions => "regions".to_string(),
        Profile::File(f) => format!("file {}", f.file.display()),
    }];
    if let Some(r) = &l.client_region {
        parts.push(format!("client {r}"));
    }
    if l.api_delay_ms > 0 {
        parts.push(format!("API +{} ms", l.api_delay_ms));
    }
    parts.join(", ")
}

/// Runs an emulator command; returns the exit code.
pub(super) fn run(args: EmulatorArgs, ui: &Printer) -> anyhow::Result<ExitStatus> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        match args.command {
            EmulatorCommand::Serve(a) => serve(a).await,
            EmulatorCommand::Start(a) => start(a, ui).await,
            EmulatorCommand::Stop(a) => stop(a, ui).await,
            EmulatorCommand::Status(a) => status(a, ui).await,
            EmulatorCommand::Outage(a) => outage(a, ui).await,
        }
    })
}

async fn serve(args: ServeArgs) -> anyhow::Result<ExitStatus> {
    emulator::serve_until_signal(args.options()?).await?;
    Ok(ExitStatus::Success)
}

async fn start(args: ServeArgs, ui: &Printer) -> anyhow::Result<ExitStatus> {
    let opts = args.options()?;
    let exe = emulator::daemon::skyplan_exe()?;
    let (running, started) = emulator::start_background(&opts, &exe).await?;
    if !started {
        ui.info(&format!(
            "emulator already running (pid {}); reusing it",
            running.pid
        ));
        if let Some(info) = emulator::info::read_info(&running.dir) {
            let conflicts = args.conflicts(&info.options);
            if !conflicts.is_empty() {
                ui.info(&format!(
                    "warning: ignored {}; run `skyplan emulator stop` first to change options",
                    conflicts.join(", ")
                ));
            }
        }
    } else {
        ui.info(&format!(
            "emulator started (pid {}, dir {})",
            running.pid,
            running.dir.display()
        ));
    }
    ui.out(&format!("endpoint: {}\n", running.endpoint));
    ui.out(&format!("api_key:  {}\n", running.api_key));
    ui.out(&format!("ca_cert:  {}\n", running.ca_cert.display()));
    Ok(ExitStatus::Success)
}

async fn stop(args: DirArgs, ui: &Printer) -> anyhow::Result<ExitStatus> {
    let dir = emulator::resolve_dir(args.dir.as_deref());
    if emulator::stop(&dir).await? {
        ui.info(&format!("emulator for {} stopped", dir.display()));
    } else {
        ui.info(&format!("no emulator was running for {}", dir.display()));
    }
    Ok(ExitStatus::Success)
}

async fn status(args: StatusArgs, ui: &Printer) -> anyhow::Result<ExitStatus> {
    let dir = emulator::resolve_dir(args.dir.dir.as_deref());
    match emulator::find_running(&dir).await {
        Some(running) if args.json => {
            let mut json = serde_json::to_value(&running)?;
            // The distances it emulates, as it was started with them.
            let latency = emulator::info::read_info(&dir)
                .map(|i| i.options.latency)
                .unwrap_or_default();
            json["latency"] = serde_json::to_value(&latency)?;
            ui.out(&format!("{}\n", serde_json::to_string_pretty(&json)?));
            Ok(ExitStatus::Success)
        }
        Some(running) => {
            let latency = emulator::info::read_info(&dir)
                .map(|i| i.options.latency)
                .unwrap_or_default();
            ui.out(&format!("running: pid {}\n", running.pid));
            ui.out(&format!("endpoint: {}\n", running.endpoint));
            ui.out(&format!("api_key:  {}\n", running.api_key));
            ui.out(&format!("ca_cert:  {}\n", running.ca_cert.display()));
            ui.out(&format!("dir:      {}\n", running.dir.display()));
            ui.out(&format!("latency:  {}\n", describe_latency(&latency)));
            Ok(ExitStatus::Success)
        }
        None => {
            if args.json {
                ui.out("null\n");
            }
            ui.info(&format!("no emulator is running for {}", dir.display()));
            Ok(ExitStatus::Failure)
        }
    }
}

/// Longest wait for the emulator: an outage stops the service's mariadbd (at most 30 s), its
/// end starts it again (at most 60 s).
const OUTAGE_CALL_TIMEOUT: Duration = Duration::from_secs(120);

async fn outage(args: OutageArgs, ui: &Printer) -> anyhow::Result<ExitStatus> {
    let dir = emulator::resolve_dir(args.dir.dir.as_deref());
    let Some(running) = emulator::find_running(&dir).await else {
        anyhow::bail!(
            "no emulator is running for {}; start one with `skyplan emulator start`",
            dir.display()
        );
    };
    // The service goes into the path as one segment whatever it holds.
    let segment: String = args
        .service
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect();
    let url = format!("{}/emulator/v1/services/{segment}/outage", running.endpoint);
    let client = reqwest::Client::builder()
        .timeout(OUTAGE_CALL_TIMEOUT)
        .build()
        .context("cannot build an HTTP client")?;
    let request = if args.end {
        client.delete(&url)
    } else {
        let mode = args.mode.unwrap_or(OutageMode::Errors);
        client
            .post(&url)
            .json(&serde_json::json!({ "mode": mode.as_str() }))
    };
    let resp = request
        .header("X-API-Key", &running.api_key)
        .send()
        .await
        .with_context(|| format!("calling the emulator at {}", running.endpoint))?;
    let status = resp.status();
    let body: serde_json::Value = resp.json().await.unwrap_or_default();
    if !status.is_success() {
        let message = body["errors"][0]["message"]
            .as_str()
            .unwrap_or("no error message");
        anyhow::bail!("the emulator refused: {status}: {message}");
    }
    let id = body["service_id"].as_str().unwrap_or(&args.service);
    match body["mode"].as_str() {
        Some(mode) if !args.end => ui.out(&format!(
            "service {id}: outage started ({mode}); end it with `skyplan emulator outage {} --end`\n",
            args.service
        )),
        _ if body["ended"] == true => ui.out(&format!(
            "service {id}: outage ended (its database is up, the API answers for it)\n"
        )),
        _ => ui.out(&format!(
            "service {id}: not in an outage (its database is up, the API answers for it)\n"
        )),
    }
    Ok(ExitStatus::Success)
}
