//! The emulator as a background process: find it, start it (idempotently), stop it.
//!
//! `start` runs `<skyplan> emulator serve --dir D …` in its own session, with its output in
//! `<dir>/emulator.log`, and waits until `<dir>/emulator.json` names that process and the API
//! answers. `stop` sends SIGTERM (the emulator then stops its mariadbd servers) and, as a last
//! resort, kills any mariadbd still running from the directory.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::info::{self, LocalEmulator, LOG_FILE};
use super::options::ServeOptions;
use super::EmulatorError;

/// Env var naming the data directory when `--dir` is not given.
pub const DIR_ENV: &str = "SKYPLAN_EMULATOR_DIR";
const START_TIMEOUT: Duration = Duration::from_secs(180);
const STOP_TIMEOUT: Duration = Duration::from_secs(90);

/// `$XDG_STATE_HOME/skyplan/emulator`, else `~/.local/state/skyplan/emulator`.
pub fn default_dir() -> PathBuf {
    let state = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| dirs::home_dir().map(|h| h.join(".local").join("state")))
        .unwrap_or_else(|| std::env::temp_dir().join("skyplan-state"));
    state.join("skyplan").join("emulator")
}

/// `--dir`, else `$SKYPLAN_EMULATOR_DIR`, else [`default_dir`]; made absolute.
pub fn resolve_dir(explicit: Option<&Path>) -> PathBuf {
    let dir = explicit
        .map(Path::to_path_buf)
        .or_else(|| {
            std::env::var_os(DIR_ENV)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        })
        .unwrap_or_else(default_dir);
    std::path::absolute(&dir).unwrap_or(dir)
}

/// The emulator serving `dir`, if its process is alive and its API answers with its key.
pub async fn find_running(dir: &Path) -> Option<LocalEmulator> {
    let info = info::read_info(dir)?.emulator;
    if !pid_alive(info.pid) {
        return None;
    }
    let url = format!("{}/emulator/v1/status", info.endpoint);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .ok()?;
    let resp = client
        .get(url)
        .header("X-API-Key", &info.api_key)
        .send()
        .await
        .ok()?;
    let body: serde_json::Value = resp.error_for_status().ok()?.json().await.ok()?;
    (body["pid"].as_u64() == Some(u64::from(info.pid))).then_some(info)
}

/// Tell a running emulator where the operator applies from — the first region of the
/// topology being applied — when it emulates distances and `--client-region` did not say
/// (see `App::report_client_region`). Nothing is sent otherwise: a run against a loopback
/// emulator makes no extra request. Errors say why; the caller only notes them.
pub async fn report_client_region(running: &LocalEmulator, region: &str) -> Result<(), String> {
    let Some(info) = info::read_info(&running.dir) else {
        return Ok(());
    };
    let latency = &info.options.latency;
    if latency.profile == super::latency::Profile::None || latency.client_region.is_some() {
        return Ok(());
    }
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| e.to_string())?;
    let resp = client
        .put(format!("{}/emulator/v1/client-region", running.endpoint))
        .header("X-API-Key", &running.api_key)
        .json(&serde_json::json!({ "region": region }))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    match resp.status() {
        s if s.is_success() => Ok(()),
        s => Err(format!("the emulator answered {s}")),
    }
}

/// The emulator of `dir`, started in the background with default options when none runs.
pub async fn ensure_running(dir: &Path) -> Result<LocalEmulator, EmulatorError> {
    let exe = skyplan_exe()?;
    Ok(
        start_background(&ServeOptions::new(dir.to_path_buf()), &exe)
            .await?
            .0,
    )
}

/// The binary to run `emulator serve` with: the running executable, never an environment
/// variable's choice (a variable could make a root-run skyplan start any program as its
/// daemon). A program that embeds the emulator otherwise passes its path to
/// [`start_background`].
pub fn skyplan_exe() -> Result<PathBuf, EmulatorError> {
    std::env::current_exe().map_err(|e| EmulatorError::io("finding", Path::new("current_exe"), e))
}

/// The flag of `emulator serve` that carries a whole [`ServeOptions`] as JSON: how
/// [`start_background`] starts the daemon. The CLI accepts it (hidden) beside the flags people
/// type.
pub const SERVE_OPTIONS_FLAG: &str = "--options-json";

/// Reuses the emulator of `opts.dir` or starts `exe emulator serve …` in the background.
/// Returns the emulator and whether it was started now.
pub async fn start_background(
    opts: &ServeOptions,
    exe: &Path,
) -> Result<(LocalEmulator, bool), EmulatorError> {
    opts.validate()?;
    let dir =
        std::path::absolute(&opts.dir).map_err(|e| EmulatorError::io("resolving", &opts.dir, e))?;
    if let Some(running) = find_running(&dir).await {
        return Ok((running, false));
    }
    info::create_data_dir(&dir)?;
    let log_path = dir.join(LOG_FILE);
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| EmulatorError::io("opening", &log_path, e))?;
    let log2 = log
        .try_clone()
        .map_err(|e| EmulatorError::io("opening", &log_path, e))?;
    let mut command = Command::new(exe);
    // Only what the daemon needs of this environment: no API key or password lives on in it.
    command.env_clear().envs(skyplan_os::inherited_env());
    // The options travel as the one type both sides share, not as flags spelled here a
    // second time: a field added to `ServeOptions` reaches the daemon without anyone
    // remembering this call.
    let serve = ServeOptions {
        dir: dir.clone(),
        ..opts.clone()
    };
    let json = serde_json::to_string(&serve).map_err(|e| {
        EmulatorError::Invalid(format!("the emulator's options cannot be written: {e}"))
    })?;
    // `--dir` again beside them: it is how `stop` recognises this process as the emulator
    // of `dir` in /proc (the CLI refuses a JSON whose dir differs).
    command
        .arg("emulator")
        .arg("serve")
        .arg("--dir")
        .arg(&dir)
        .arg(SERVE_OPTIONS_FLAG)
        .arg(json);
    // The log file is the daemon's only voice: log what it refuses and why.
    if std::env::var_os("SKYPLAN_LOG").is_none() {
        command.env("SKYPLAN_LOG", "skyplan=info");
    }
    command
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2)
        .current_dir(&dir);
    skyplan_os::detach(&mut command);
    let mut child = command
        .spawn()
        .map_err(|e| EmulatorError::io("starting", exe, e))?;
    let pid = child.id();
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(start_failed(
                &log_path,
                format!("`{} emulator serve` exited ({status})", exe.display()),
            ));
        }
        if let Some(running) = find_running(&dir).await.filter(|r| r.pid == pid) {
            // Reap the child when it eventually exits, so it never lingers as a zombie of a
            // long-lived caller.
            std::thread::spawn(move || {
                let _ = child.wait();
            });
            return Ok((running, true));
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(start_failed(
                &log_path,
                format!("not ready after {}s; killed it", START_TIMEOUT.as_secs()),
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn start_failed(log: &Path, reason: String) -> EmulatorError {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    EmulatorError::StartFailed {
        reason,
        log: log.to_path_buf(),
        log_tail: lines[lines.len().saturating_sub(20)..].join("\n"),
    }
}

/// Stops the emulator of `dir` (which stops its databases) and any mariadbd left running from
/// `dir`. Returns whether anything was running.
pub async fn stop(dir: &Path) -> Result<bool, EmulatorError> {
    let dir = &std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    let mut stopped_any = false;
    if let Some(info) = info::read_info(dir).map(|i| i.emulator) {
        // emulator.json outlives its process: signal the pid only if it still is that emulator.
        if info.pid != std::process::id() && is_emulator_of(info.pid, dir) {
            stopped_any = true;
            signal(info.pid, libc::SIGTERM);
            let deadline = Instant::now() + STOP_TIMEOUT;
            while pid_alive(info.pid) && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            if pid_alive(info.pid) {
                signal(info.pid, libc::SIGKILL);
            }
        }
    }
    let strays = processes_of(dir);
    if !strays.is_empty() {
        stopped_any = true;
        for pid in &strays {
            signal(*pid, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while strays.iter().any(|p| pid_alive(*p)) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        kill_strays(dir);
    }
    Ok(stopped_any)
}

/// SIGKILLs, without waiting, every process run from `dir`'s service directories (mariadbd,
/// mariadb-backup). For Drop guards and as `stop`'s last resort. Returns how many it signalled.
pub fn kill_strays(dir: &Path) -> usize {
    let pids = processes_of(dir);
    for pid in &pids {
        signal(*pid, libc::SIGKILL);
    }
    pids.len()
}

/// Live processes whose command line has `--defaults-file=<dir>/services/…`: only this
/// emulator's databases (and backup tools) carry that argument.
pub fn processes_of(dir: &Path) -> Vec<u32> {
    let services = std::path::absolute(dir)
        .unwrap_or_else(|_| dir.to_path_buf())
        .join("services");
    let prefix = format!("--defaults-file={}/", services.display());
    let me = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != me)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|cmd| {
                cmd.split(|b| *b == 0)
                    .any(|arg| arg.starts_with(prefix.as_bytes()))
            })
        })
        .filter(|pid| pid_alive(*pid))
        .collect()
}

/// Is `pid` a live `… emulator serve --dir <dir>` process? (Not just any process that
/// inherited a recycled pid.)
fn is_emulator_of(pid: u32, dir: &Path) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    let dir = dir.as_os_str().as_encoded_bytes();
    pid_alive(pid)
        && args
            .windows(2)
            .any(|w| w == [b"emulator".as_slice(), b"serve".as_slice()])
        && args.windows(2).any(|w| w[0] == b"--dir" && w[1] == dir)
}

/// Alive and not a zombie.
pub use skyplan_os::pid_alive;
use skyplan_os::signal;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dir_resolution_prefers_flag_then_env() {
        let d = resolve_dir(Some(Path::new("/x/y")));
        assert_eq!(d, PathBuf::from("/x/y"));
        assert!(default_dir().ends_with("skyplan/emulator"));
    }

    #[test]
    fn this_process_is_alive_and_nonsense_is_not() {
        assert!(pid_alive(std::process::id()));
        assert!(!pid_alive(u32::MAX - 3));
    }
}
