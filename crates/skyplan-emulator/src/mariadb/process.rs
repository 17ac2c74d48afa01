//! The mariadbd process: spawning it detached, finding it again by pid file, stopping it.
//!
//! Process model: mariadbd runs in its own session (setsid), so it survives the emulator
//! exiting, a Ctrl-C in the emulator's terminal, or the terminal closing. The pid file (written
//! by us right after spawning, then again by mariadbd itself with the same pid) is how a later
//! emulator process finds it. A pid is only trusted when /proc shows a live, non-zombie process
//! whose command line names this instance's my.cnf, so a recycled pid is never mistaken for
//! ours.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::config::Layout;
use super::{fsutil, MariadbError};

const STOP_GRACE: Duration = Duration::from_secs(20);
const KILL_WAIT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(100);

/// Starts mariadbd for `layout` and returns its pid. Does not wait for it to be ready.
pub(crate) fn spawn(mariadbd: &Path, layout: &Layout) -> Result<u32, MariadbError> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&layout.console_log)
        .map_err(|e| MariadbError::io("opening", &layout.console_log, e))?;
    let log2 = log
        .try_clone()
        .map_err(|e| MariadbError::io("opening", &layout.console_log, e))?;
    let mut command = Command::new(mariadbd);
    command
        .env_clear()
        .envs(skyplan_os::inherited_env())
        .arg(layout.defaults_arg())
        .current_dir(&layout.dir)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2);
    skyplan_os::detach(&mut command);
    let mut child = command
        .spawn()
        .map_err(|e| MariadbError::io("starting", mariadbd, e))?;
    let pid = child.id();
    // While we live, we are the parent: reap the child when it exits so it never lingers as a
    // zombie that still looks alive. After we exit, init adopts and reaps it.
    std::thread::Builder::new()
        .name(format!("reap-mariadbd-{pid}"))
        .spawn(move || {
            let _ = child.wait();
        })
        .map_err(|e| MariadbError::io("spawning a reaper thread for", mariadbd, e))?;
    fsutil::write_atomic(&layout.pid_file, format!("{pid}\n").as_bytes())?;
    Ok(pid)
}

/// The pid of this instance's live mariadbd, if any.
pub(crate) fn live_pid(layout: &Layout) -> Option<u32> {
    let text = std::fs::read_to_string(&layout.pid_file).ok()?;
    let pid: u32 = text.trim().parse().ok()?;
    is_ours(pid, layout).then_some(pid)
}

/// True if `pid` is a live (not zombie) process started with this instance's my.cnf.
pub(crate) fn is_ours(pid: u32, layout: &Layout) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state letter follows the parenthesised command name, which may itself hold spaces.
    let state = stat
        .rfind(')')
        .and_then(|i| stat[i + 1..].split_whitespace().next());
    if matches!(state, Some("Z") | Some("X") | None) {
        return false;
    }
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let wanted = layout.defaults_arg();
    cmdline
        .split(|b| *b == 0)
        .any(|arg| arg == wanted.as_bytes())
}

/// Every mariadbd alive now that was started from an instance directory directly under
/// `root`: (that directory's name, pid), in pid order.
///
/// A server is recognised by its own command line, as the kernel shows it: `program`'s file
/// name as argv[0], and the `--defaults-file=<root>/<name>/my.cnf` every start passes (see
/// [`Layout::defaults_arg`]). So it is known from the moment it exists, before its start has
/// finished and whoever started it; no pid file or record is consulted. (A zombie's command
/// line is empty, so an exited server is never listed.)
pub(crate) fn running_under(root: &Path, program: &Path) -> Vec<(String, u32)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let Some(program) = program.file_name() else {
        return Vec::new();
    };
    let mut found: Vec<(String, u32)> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            instance_of(&cmdline, root, program).map(|name| (name, pid))
        })
        .collect();
    found.sort_by_key(|(_, pid)| *pid);
    found
}

/// The instance directory name a command line (NUL-separated) runs `program` for, if any.
fn instance_of(cmdline: &[u8], root: &Path, program: &std::ffi::OsStr) -> Option<String> {
    use std::os::unix::ffi::OsStrExt;
    let mut args = cmdline.split(|b| *b == 0).map(std::ffi::OsStr::from_bytes);
    if Path::new(args.next()?).file_name() != Some(program) {
        return None;
    }
    args.find_map(|arg| {
        let file = Path::new(
            arg.as_bytes()
                .strip_prefix(b"--defaults-file=")
                .map(std::ffi::OsStr::from_bytes)?,
        );
        let dir = file.parent()?;
        let name = dir.file_name()?.to_str()?;
        (file.file_name()? == "my.cnf" && dir.parent()? == root).then(|| name.to_string())
    })
}

/// SIGTERM, wait up to 20 s for a clean shutdown, then SIGKILL.
pub(crate) async fn stop(layout: &Layout) -> Result<(), MariadbError> {
    let Some(pid) = live_pid(layout) else {
        return Ok(());
    };
    signal(pid, libc::SIGTERM);
    if !wait_gone(pid, layout, STOP_GRACE).await {
        tracing::warn!(pid, dir = %layout.dir.display(), "mariadbd ignored SIGTERM; killing it");
        signal(pid, libc::SIGKILL);
        if !wait_gone(pid, layout, KILL_WAIT).await {
            return Err(MariadbError::StopFailed {
                dir: layout.dir.clone(),
                pid,
            });
        }
    }
    // mariadbd removes its pid file on a clean shutdown, but not when killed.
    let _ = std::fs::remove_file(&layout.pid_file);
    Ok(())
}

/// SIGKILL without waiting: for Drop guards and failed starts.
pub(crate) fn kill_now(layout: &Layout) {
    if let Some(pid) = live_pid(layout) {
        signal(pid, libc::SIGKILL);
    }
}

async fn wait_gone(pid: u32, layout: &Layout, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while is_ours(pid, layout) {
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(POLL).await;
    }
    true
}

use skyplan_os::signal;

/// The last lines of the error log and of the console log, for start failures.
pub(crate) fn log_tail(layout: &Layout) -> String {
    let mut tail = fsutil::tail(&layout.error_log, 20);
    let console = fsutil::tail(&layout.console_log, 10);
    if std::fs::metadata(&layout.console_log).is_ok_and(|m| m.len() > 0) {
        tail.push_str("\n--- console output ---\n");
        tail.push_str(&console);
    }
    tail
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    fn cmdline(args: &[&str]) -> Vec<u8> {
        args.join("\0").into_bytes()
    }

    #[test]
    fn a_server_is_recognised_by_its_program_and_defaults_file() {
        let root = Path::new("/e/services");
        let m = OsStr::new("mariadbd");
        let ours = cmdline(&[
            "/usr/sbin/mariadbd",
            "--defaults-file=/e/services/dbpgf1/my.cnf",
        ]);
        assert_eq!(instance_of(&ours, root, m).as_deref(), Some("dbpgf1"));
        for other in [
            // Another tool on the same instance (mariadb-backup, mariadb-install-db).
            cmdline(&[
                "/usr/bin/mariadb-backup",
                "--defaults-file=/e/services/dbpgf1/my.cnf",
            ]),
            // Another emulator's directory, or not directly under the root.
            cmdline(&[
                "/usr/sbin/mariadbd",
                "--defaults-file=/f/services/dbpgf1/my.cnf",
            ]),
            cmdline(&[
                "/usr/sbin/mariadbd",
                "--defaults-file=/e/services/a/b/my.cnf",
            ]),
            cmdline(&[
                "/usr/sbin/mariadbd",
                "--defaults-file=/e/services/dbpgf1/other.cnf",
            ]),
            cmdline(&["/usr/sbin/mariadbd"]),
            Vec::new(),
        ] {
            assert_eq!(instance_of(&other, root, m), None, "{other:?}");
        }
    }
}
