//! What skyplan asks of the operating system beyond std, in one place: files replaced
//! atomically ([`write_atomic`]), children detached into their own session ([`detach`]), and
//! pids ([`pid_alive`], [`signal`], [`is_root`]). Every `unsafe` block skyplan needs for
//! these lives here, each with its reason.

use std::fs::{File, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Files holding state, keys or plans are readable by their owner only.
pub const PRIVATE: u32 = 0o600;

/// Replace `path` with `bytes`, created with permissions `mode`.
///
/// # Guarantees
/// After a crash at any point `path` holds either its old content or the new content, never a
/// mix: the bytes go to a new temporary file in the same directory (same filesystem, so the
/// rename is atomic) with a random name created exclusively (`O_EXCL`), so a symlink or file
/// planted at a predictable name is never followed or overwritten. It is fsynced, renamed over
/// `path`, and the directory is fsynced so the rename survives a power loss. On any error
/// (a full disk, say) the temporary file is removed and `path` is untouched.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let dir = parent_dir(path);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .permissions(Permissions::from_mode(mode))
        .tempfile_in(&dir)?;
    // The umask may have narrowed the mode at creation; set it exactly.
    tmp.as_file()
        .set_permissions(Permissions::from_mode(mode))?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    sync_dir(&dir)
}

/// Remove what an interrupted [`write_atomic`] of `path` left behind (its temporary files, and
/// `<path>.tmp` from older versions). Only for a caller that is the sole writer of `path`
/// (it holds the state lock): another writer's temporary file would be removed mid-write.
pub fn remove_leftovers(path: &Path) -> io::Result<()> {
    let Some(name) = path.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return Ok(());
    };
    let (prefix, legacy) = (format!(".{name}."), format!("{name}.tmp"));
    for entry in std::fs::read_dir(parent_dir(path))? {
        let entry = entry?;
        let n = entry.file_name().to_string_lossy().into_owned();
        if (n.starts_with(&prefix) && n.ends_with(".tmp")) || n == legacy {
            // A symlink is removed, never followed.
            std::fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

/// [`write_atomic`] with owner-only permissions.
pub fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomic(path, bytes, PRIVATE)
}

/// The directory holding `path` (`.` for a bare file name).
pub fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Make a rename or a new file in `dir` durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The environment variables a process skyplan starts (the emulator daemon, `mariadbd`,
/// `mariadb-backup`) may inherit: where programs and files are, locale and time zone, and
/// logging. Everything else stays behind — API keys, state passwords, cloud credentials — so
/// no secret lives on in a daemon's `/proc/PID/environ`.
pub const INHERITED_ENV: &[&str] = &[
    "PATH",
    "HOME",
    "TMPDIR",
    "USER",
    "LOGNAME",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "LC_MESSAGES",
    "TZ",
    "XDG_STATE_HOME",
    "SKYPLAN_LOG",
    "RUST_LOG",
    "RUST_BACKTRACE",
];

/// The values of [`INHERITED_ENV`] this process has, for `Command::env_clear().envs(…)`.
pub fn inherited_env() -> Vec<(&'static str, std::ffi::OsString)> {
    INHERITED_ENV
        .iter()
        .filter_map(|k| std::env::var_os(k).map(|v| (*k, v)))
        .collect()
}

/// Start `command`'s child in a new session (and process group), so it survives the terminal
/// (and the Ctrl-C) of whoever started it: the emulator daemon and its `mariadbd`s.
pub fn detach(command: &mut Command) -> &mut Command {
    // SAFETY: setsid() is async-signal-safe and touches no memory of the parent; it runs in
    // the forked child before exec.
    unsafe {
        command.pre_exec(|| {
            if libc::setsid() == -1 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        })
    }
}

/// Whether `pid` names a live process (not a zombie) on this host. A pid that exists but
/// belongs to another user counts as alive.
pub fn pid_alive(pid: u32) -> bool {
    let Ok(raw) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if raw <= 0 {
        return false;
    }
    // SAFETY: kill(2) with signal 0 only checks for existence; no memory is involved.
    let exists = unsafe { libc::kill(raw, 0) } == 0
        || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
    if !exists {
        return false;
    }
    // A zombie still answers kill(0): read its state (field 3 of /proc/PID/stat).
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return true;
    };
    let state = stat
        .rfind(')')
        .and_then(|i| stat[i + 1..].split_whitespace().next());
    !matches!(state, Some("Z") | Some("X"))
}

/// The largest file skyplan reads (a topology, a state, a saved plan, a lock): far above any
/// real one (a state of 10,000 services is tens of MiB), and far below what would exhaust
/// memory.
pub const MAX_FILE_BYTES: u64 = 256 << 20;

/// The bytes of the regular file at `path`, refusing anything else (a device such as
/// `/dev/zero`, a FIFO, a directory) and anything over `max` bytes, read no further than
/// that even if the file grows meanwhile.
pub fn read_bounded(path: &std::path::Path, max: u64) -> io::Result<Vec<u8>> {
    use std::io::Read;
    let file = std::fs::File::open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file (a device, FIFO or directory is never read)",
        ));
    }
    if meta.len() > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} bytes, over the {} MiB limit", meta.len(), max >> 20),
        ));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(max + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("grew over the {} MiB limit while it was read", max >> 20),
        ));
    }
    Ok(bytes)
}

/// This boot of the host (Linux `/proc/sys/kernel/random/boot_id`), `None` where unknown: a
/// lock from another boot has no live holder.
pub fn boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// Send `sig` to `pid` (best effort: a pid that is gone is not an error).
/// When the process `pid` started, in clock ticks since this host booted (field 22 of
/// `/proc/PID/stat`), `None` when it cannot be read. With the boot id and the pid it names one
/// process exactly: a pid reused by another process has another start time.
pub fn process_start_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command (which may hold spaces and parentheses): state is field 3,
    // so starttime (22) is the 20th after the closing parenthesis.
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(19)?.parse().ok()
}

/// When the process `pid` started, in seconds since the Unix epoch: boot time (`btime` of
/// `/proc/stat`) plus [`process_start_ticks`]. `None` when it cannot be read.
pub fn process_started_at(pid: u32) -> Option<u64> {
    let ticks = process_start_ticks(pid)?;
    let btime: u64 = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    // SAFETY: sysconf only reads a configuration value.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = u64::try_from(hz).ok().filter(|h| *h > 0)?;
    Some(btime + ticks / hz)
}

/// Send `sig` to `pid` (best effort: a pid that is gone is not an error).
pub fn signal(pid: u32, sig: libc::c_int) {
    let _ = kill(pid, sig);
}

/// Send `sig` to process `pid` (kill(2)), saying why it could not be sent.
pub fn kill(pid: u32, sig: libc::c_int) -> io::Result<()> {
    let raw = libc::pid_t::try_from(pid)
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, format!("no such pid {pid}")))?;
    // SAFETY: kill(2) has no memory-safety preconditions.
    if unsafe { libc::kill(raw, sig) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// A new pseudo-terminal: (controller, terminal) ends (openpty(3)).
pub fn openpty() -> io::Result<(std::os::fd::OwnedFd, std::os::fd::OwnedFd)> {
    use std::os::fd::FromRawFd;
    let (mut controller, mut terminal) = (-1, -1);
    // SAFETY: openpty(3) writes two new descriptors into the two ints; the rest may be null.
    let r = unsafe {
        libc::openpty(
            &mut controller,
            &mut terminal,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors are new and owned by nothing else.
    Ok(unsafe {
        (
            std::os::fd::OwnedFd::from_raw_fd(controller),
            std::os::fd::OwnedFd::from_raw_fd(terminal),
        )
    })
}

/// Whether this process runs as root (mariadbd then needs `--user`).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// The effective user id, for messages when no user name is known.
pub fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// How a reaped child ended, with its peak memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reaped {
    /// The exit code; the shell's 128 + the signal for a child killed by one.
    pub code: i32,
    /// Peak resident set size (`ru_maxrss`), in KiB.
    pub max_rss_kib: u64,
}

/// Wait for `child` to end and reap it with `wait4(2)`, which also reports its peak memory
/// (std's `wait` does not). `child` is consumed: it must not be waited on again.
pub fn wait_with_rusage(child: std::process::Child) -> io::Result<Reaped> {
    let pid = libc::pid_t::try_from(child.id())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "child pid out of range"))?;
    let mut status: libc::c_int = 0;
    // SAFETY: an all-zero rusage is a valid value of this plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is our own unreaped child and both pointers are to live locals. The child
    // is reaped here, so `child` is only dropped afterwards, never waited on.
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    if reaped != pid {
        return Err(io::Error::last_os_error());
    }
    drop(child);
    let code = if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        libc::WEXITSTATUS(status)
    };
    Ok(Reaped {
        code,
        max_rss_kib: u64::try_from(usage.ru_maxrss).unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_process_start_time_is_known_and_not_in_the_future() {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let me = super::process_started_at(std::process::id()).expect("our own start time");
        assert!(me <= now + 1, "{me} > {now}");
        assert!(me + 24 * 3600 * 365 > now, "started within a year");
        assert_eq!(super::process_started_at(u32::MAX), None);
    }

    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn write_atomic_replaces_the_file_with_the_mode_and_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        std::fs::write(&path, "old").unwrap();
        write_private(&path, b"new").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new");
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        write_atomic(&path, b"public", 0o644).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o644);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["state.json"]);
    }

    #[test]
    fn a_symlink_planted_at_the_old_temp_name_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        let path = dir.path().join("state.json");
        for planted in ["state.json.tmp", ".state.json.tmp"] {
            std::os::unix::fs::symlink(&victim, dir.path().join(planted)).unwrap();
        }
        write_private(&path, b"new").unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new");
    }

    #[test]
    fn a_failed_write_leaves_the_old_file_and_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        // The target is a directory: the rename fails after the temp file was written.
        let path = dir.path().join("taken");
        std::fs::create_dir(&path).unwrap();
        std::fs::write(path.join("inside"), "x").unwrap();
        assert!(write_private(&path, b"new").is_err());
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["taken"]);
    }

    #[test]
    fn leftovers_of_interrupted_writes_are_removed_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.json");
        for name in [
            "s.json.tmp",
            ".s.json.Ab12.tmp",
            "s.json",
            "s.json.backup",
            "other.tmp",
        ] {
            std::fs::write(dir.path().join(name), "x").unwrap();
        }
        remove_leftovers(&path).unwrap();
        let mut names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["other.tmp", "s.json", "s.json.backup"]);
    }

    #[test]
    fn only_regular_files_within_the_limit_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("t.toml");
        std::fs::write(&f, b"12345").unwrap();
        assert_eq!(read_bounded(&f, 5).unwrap(), b"12345");
        assert!(read_bounded(&f, 4)
            .unwrap_err()
            .to_string()
            .contains("over the"));
        let dev = read_bounded(std::path::Path::new("/dev/zero"), MAX_FILE_BYTES).unwrap_err();
        assert!(dev.to_string().contains("not a regular file"), "{dev}");
        assert!(read_bounded(dir.path(), MAX_FILE_BYTES).is_err());
    }

    #[test]
    fn this_process_is_alive_and_nonsense_is_not() {
        assert!(pid_alive(std::process::id()));
        assert!(!pid_alive(u32::MAX - 3));
        assert!(!pid_alive(0));
    }

    #[test]
    fn a_reaped_child_is_not_alive() {
        let mut child = Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert!(!pid_alive(pid));
    }
}
