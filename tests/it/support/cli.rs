//! A small fluent builder for driving the `skyplan` binary in a temporary directory (the
//! shape of just's `Test`): write files, run a command, check the exit code and output.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};

pub(crate) struct Test {
    pub dir: tempfile::TempDir,
    args: Vec<String>,
    env: Vec<(String, String)>,
    stdin: Option<String>,
}

pub(crate) struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Test {
    pub(crate) fn new() -> Test {
        let dir = tempfile::tempdir().expect("temp dir");
        // Never touch the user's emulator: any emulator these tests start lives in the temp dir.
        let emu = dir.path().join("emulator").display().to_string();
        Test {
            dir,
            args: vec![],
            env: vec![("SKYPLAN_EMULATOR_DIR".into(), emu)],
            stdin: None,
        }
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Copy `examples/<name>` into the test dir as `name`.
    pub(crate) fn example(self, name: &str) -> Test {
        let src = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("examples")
            .join(name);
        std::fs::copy(&src, self.path().join(name)).expect("copy example");
        self
    }

    pub(crate) fn file(self, name: &str, content: &str) -> Test {
        let p = self.path().join(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(p, content).unwrap();
        self
    }

    pub(crate) fn args(&mut self, args: &[&str]) -> &mut Test {
        self.args = args.iter().map(|s| s.to_string()).collect();
        self
    }

    pub(crate) fn env(mut self, k: &str, v: &str) -> Test {
        self.env.push((k.into(), v.into()));
        self
    }

    pub(crate) fn stdin(&mut self, s: &str) -> &mut Test {
        self.stdin = Some(s.into());
        self
    }

    /// Run to completion.
    pub(crate) fn run(&self) -> Run {
        self.spawn().wait()
    }

    /// Start the command and return at once (runs side by side, a process to signal).
    pub(crate) fn spawn(&self) -> Spawned {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_skyplan"));
        cmd.current_dir(self.path())
            .args(&self.args)
            .env("NO_COLOR", "1")
            .env_remove("API_KEY")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("run skyplan");
        let mut stdin = child.stdin.take().expect("stdin");
        let input = self.stdin.clone().unwrap_or_default();
        // Written from a thread so a child that does not read cannot block the test.
        std::thread::spawn(move || {
            let _ = stdin.write_all(input.as_bytes());
        });
        Spawned { child }
    }

    pub(crate) fn state_file(&self, stem: &str) -> PathBuf {
        self.path().join("state").join(format!("{stem}.state.json"))
    }
}

/// Stop the emulator of `dir` and any database it left behind (the test's cleanup).
pub(crate) fn stop_emulator(dir: &Path) {
    let _ = std::process::Command::new(env!("CARGO_BIN_EXE_skyplan"))
        .args(["emulator", "stop", "--dir"])
        .arg(dir)
        .output();
    skyplan_emulator::kill_strays(dir);
}

impl Drop for Test {
    /// A command may have started an emulator in the test's directory (a refreshing plan on
    /// `endpoint = "local"`): stop it and its databases, also when the test failed.
    fn drop(&mut self) {
        let emulator = self.dir.path().join("emulator");
        if emulator.exists() {
            stop_emulator(&emulator);
        }
    }
}

/// A running `skyplan`.
pub(crate) struct Spawned {
    pub child: Child,
}

impl Spawned {
    pub(crate) fn wait(self) -> Run {
        let out = self.child.wait_with_output().expect("wait for skyplan");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

impl Run {
    pub(crate) fn expect_code(self, code: i32) -> Run {
        assert_eq!(
            self.code, code,
            "exit code\n--- stdout:\n{}\n--- stderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

impl Run {
    /// Assert stderr contains `needle` (showing both streams when it does not).
    pub(crate) fn stderr_contains(self, needle: &str) -> Run {
        assert!(
            self.stderr.contains(needle),
            "stderr lacks {needle:?}\n--- stdout:\n{}\n--- stderr:\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    /// Snapshot stdout with the run's volatile parts (`dir`, pids, times, ids) filtered, as
    /// `tests/it/snapshots/it__<name>.snap` (name it `<suite>__<case>`).
    pub(crate) fn stdout_snapshot(self, name: &str, dir: &Path) -> Run {
        let filters = filters(dir);
        let filters: Vec<(&str, &str)> = filters.iter().map(|(a, b)| (&**a, &**b)).collect();
        insta::with_settings!({
            filters => filters,
            snapshot_path => "../snapshots",
            prepend_module_to_snapshot => false,
        }, {
            insta::assert_snapshot!(format!("it__{name}"), self.stdout);
        });
        self
    }

    /// Snapshot stderr, filtered like [`Run::stdout_snapshot`].
    pub(crate) fn stderr_snapshot(self, name: &str, dir: &Path) -> Run {
        let filters = filters(dir);
        let filters: Vec<(&str, &str)> = filters.iter().map(|(a, b)| (&**a, &**b)).collect();
        insta::with_settings!({
            filters => filters,
            snapshot_path => "../snapshots",
            prepend_module_to_snapshot => false,
        }, {
            insta::assert_snapshot!(format!("it__{name}"), self.stderr);
        });
        self
    }
}

/// Replacements that make output stable across runs: the test's temp dir, host and user names,
/// pids, RFC 3339 times, UUIDs (lineages, lock ids) and durations.
pub(crate) fn filters(dir: &Path) -> Vec<(String, String)> {
    let mut f = vec![(
        regex_escape(&dir.display().to_string()),
        "[TMP]".to_string(),
    )];
    if let Ok(canon) = dir.canonicalize() {
        f.push((regex_escape(&canon.display().to_string()), "[TMP]".into()));
    }
    let host = gethostname::gethostname().to_string_lossy().into_owned();
    f.push((
        format!(r"\bhost {}\b", regex_escape(&host)),
        "host [HOST]".into(),
    ));
    f.push((r"\buser [^ )]+".into(), "user [USER]".into()));
    f.push((r"\bpid \d+".into(), "pid [PID]".into()));
    f.push((
        r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})".into(),
        "[TIME]".into(),
    ));
    f.push((
        r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}".into(),
        "[UUID]".into(),
    ));
    f.push((r"\b\d+(\.\d+)?(ms|s)\b".into(), "[DURATION]".into()));
    // The emulator's configuration ids (random, like a service's).
    f.push((r"\bcfg\d{8}\b".into(), "[CONFIG_ID]".into()));
    f
}

fn regex_escape(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            let special = "\\.+*?()|[]{}^$#&-~".contains(c);
            special
                .then_some('\\')
                .into_iter()
                .chain(std::iter::once(c))
        })
        .collect()
}
