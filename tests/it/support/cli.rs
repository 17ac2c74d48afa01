//! A small fluent builder for driving the `skyplan` binary in a temporary directory (the
//! shape of just's `Test`): write files, run a command, check the exit code and output.

use std::path::{Path, PathBuf};
use std::process::Output;

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

    pub(crate) fn run(&self) -> Run {
        let mut cmd = assert_cmd::Command::cargo_bin("skyplan").expect("binary");
        cmd.current_dir(self.path())
            .args(&self.args)
            .env("NO_COLOR", "1")
            .env_remove("API_KEY");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd.write_stdin(self.stdin.clone().unwrap_or_default());
        let out: Output = cmd.output().expect("run skyplan");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    pub(crate) fn state_file(&self, stem: &str) -> PathBuf {
        self.path().join("state").join(format!("{stem}.state.json"))
    }
}

impl Run {
    pub(crate) fn code(self, code: i32) -> Run {
        assert_eq!(
            self.code, code,
            "exit code\n--- stdout:\n{}\n--- stderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }
}
