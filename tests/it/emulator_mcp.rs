//! Issue 30: SkySQL's own client against the emulator. The SkySQL MCP server
//! (skysqlinc/skysql-mcp, vendored in `support/skysql-mcp`: it is not on PyPI) runs with only
//! its base URL and the CA changed, and
//! its tools `launch_serverless_db`, `list_services`, `get_db_credentials`, `execute_sql` and
//! `delete_db` are called by an MCP client over stdio (`support/skysql_mcp.py`, on fastmcp).
//!
//! It needs Python 3 with venv and PyPI the first time (the server's packages); without them
//! the test says so and checks nothing else (the README gives the manual run).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::support::e2e::Cloud;

/// What its `server.py` imports, pinned (PyMySQL as its own requirements pin it).
const PYTHON_PACKAGES: &[&str] = &[
    "fastmcp==4.2.3",
    "httpx==0.29.0",
    "PyMySQL==1.1.0",
    "python-dotenv==1.2.4",
];

/// A Python with the server's packages, installed once into the test target dir; None (with
/// a note) where this machine cannot.
fn skysql_mcp() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("skysql-mcp");
    let python = dir.join("venv/bin/python");
    let quiet = |c: &mut Command| {
        c.stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let ready = |python: &Path| {
        quiet(Command::new(python).args(["-c", "import fastmcp, httpx, pymysql, dotenv"]))
    };
    if !ready(&python) {
        std::fs::create_dir_all(&dir).ok()?;
        let made = quiet(
            Command::new("python3")
                .args(["-m", "venv"])
                .arg(dir.join("venv")),
        ) && quiet(
            Command::new("timeout")
                .args(["300"])
                .arg(dir.join("venv/bin/pip"))
                .args(["install", "--quiet", "--disable-pip-version-check"])
                .args(PYTHON_PACKAGES),
        );
        if !made || !ready(&python) {
            eprintln!("NOTE: SkySQL's MCP server was not run: no python3 with venv, or PyPI unreachable (see the README for the manual run)");
            return None;
        }
    }
    Some(python)
}

#[test]
fn skysqls_own_mcp_server_runs_its_database_tools_against_the_emulator() {
    let Some(python) = skysql_mcp() else {
        return;
    };
    let mut cloud = Cloud::new("global-replication.toml");
    cloud.start_emulator(&["--op-seconds", "0"]);
    let info = cloud.info();
    // The server writes its log file into its working directory: the test's own.
    let work = cloud.dir().join("mcp");
    std::fs::create_dir_all(&work).unwrap();
    let copy = work.join("server.py");
    let vendored = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/it/support/skysql-mcp/server.py"
    );
    std::fs::copy(vendored, &copy).unwrap();
    let out = Command::new("timeout")
        .arg("300")
        .arg(&python)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/it/support/skysql_mcp.py"
        ))
        .arg(&copy)
        .arg(&info.endpoint)
        .arg(&info.ca_cert)
        .current_dir(&work)
        .env("SKYSQL_API_KEY", &info.api_key)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let tail: Vec<&str> = stderr.lines().rev().take(30).collect();
    assert!(
        out.status.success() && stdout.contains("ALL TOOLS OK"),
        "SkySQL's MCP server against the emulator ({}):\n{stdout}\n--- stderr (end):\n{}",
        out.status,
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    );
    assert!(
        stdout.contains("execute_sql: | answer | / | --- | / | 42 |"),
        "{stdout}"
    );
}
