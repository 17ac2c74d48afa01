//! Helpers of the reliability tests: run skyplan in the background and watch its stderr, kill
//! or interrupt it, watch the state file, read the emulator's request log, poke the emulator
//! (fail-next, region outages).

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use skyplan::state::State;
pub(crate) use skyplan_emulator::outage::OutageMode;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::time::Instant;

use crate::support::e2e::Cloud;

/// A skyplan process running in the background, its stderr collected line by line.
pub(crate) struct Running {
    child: tokio::process::Child,
    pub pid: i32,
    stderr: Arc<Mutex<String>>,
    stderr_done: tokio::task::JoinHandle<()>,
    stdout: tokio::task::JoinHandle<String>,
}

pub(crate) struct Finished {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Running {
    pub(crate) fn spawn(cloud: &Cloud, args: &[&str]) -> Running {
        let mut cmd = cloud.command(args);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn skyplan");
        let pid = child.id().expect("pid") as i32;
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err = BufReader::new(child.stderr.take().unwrap()).lines();
        let sink = stderr.clone();
        let stderr_done = tokio::spawn(async move {
            while let Ok(Some(line)) = err.next_line().await {
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        let mut out = child.stdout.take().unwrap();
        let stdout = tokio::spawn(async move {
            let mut s = String::new();
            let _ = out.read_to_string(&mut s).await;
            s
        });
        Running {
            child,
            pid,
            stderr,
            stderr_done,
            stdout,
        }
    }

    pub(crate) fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Wait until stderr has a line containing `needle`.
    pub(crate) async fn wait_for_stderr(&mut self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if self.stderr().contains(needle) {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                tokio::time::sleep(Duration::from_millis(100)).await;
                panic!(
                    "skyplan exited ({status}) before printing `{needle}`:\n{}",
                    self.stderr()
                );
            }
            assert!(
                Instant::now() < deadline,
                "no `{needle}` on stderr after {timeout:?}:\n{}",
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub(crate) fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub(crate) fn signal(&self, sig: i32) {
        skyplan_os::kill(self.pid as u32, sig)
            .unwrap_or_else(|e| panic!("kill({}, {sig}): {e}", self.pid));
    }

    /// SIGKILL, as a crashed CI job or an OOM kill would.
    pub(crate) async fn kill_9(self) -> Finished {
        self.signal(libc::SIGKILL);
        self.finish(Duration::from_secs(10)).await
    }

    pub(crate) async fn finish(mut self, timeout: Duration) -> Finished {
        let status = tokio::time::timeout(timeout, self.child.wait())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "skyplan did not exit within {timeout:?}:\n{}",
                    self.stderr()
                )
            })
            .expect("wait");
        let _ = tokio::time::timeout(Duration::from_secs(5), &mut self.stderr_done).await;
        let stdout = tokio::time::timeout(Duration::from_secs(5), &mut self.stdout)
            .await
            .ok()
            .and_then(|r| r.ok())
            .unwrap_or_default();
        Finished {
            code: status.code(),
            stdout,
            stderr: self.stderr(),
        }
    }
}

/// The state file as it is now, parsed strictly: panics if it exists but is not a valid state.
pub(crate) fn read_state(cloud: &Cloud) -> Option<State> {
    let bytes = std::fs::read(cloud.state_path()).ok()?;
    Some(
        skyplan::state::codec::from_json(&bytes, "state")
            .unwrap_or_else(|e| panic!("the state file is not a valid state: {e}")),
    )
}

/// Poll the state file until `pred` holds.
pub(crate) async fn wait_state(
    cloud: &Cloud,
    what: &str,
    timeout: Duration,
    pred: impl Fn(&State) -> bool,
) -> State {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(s) = read_state(cloud) {
            if pred(&s) {
                return s;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the state never showed {what}: {:#?}",
            read_state(cloud)
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// After a kill: the state file is a valid state (it parsed), it did not go backwards, and the
/// previous version kept beside it is valid and not newer (equal when the kill fell between
/// writing the `.backup` and replacing the file).
pub(crate) fn assert_state_intact(cloud: &Cloud, at_least_serial: u64) -> State {
    let state = read_state(cloud).expect("a state file");
    assert!(
        state.serial >= at_least_serial,
        "the state went back from serial {at_least_serial} to {}",
        state.serial
    );
    let backup = cloud.state_path().with_extension("json.backup");
    if let Ok(bytes) = std::fs::read(&backup) {
        let prev = skyplan::state::codec::from_json(&bytes, "backup").expect("valid .backup");
        assert_eq!(prev.lineage, state.lineage);
        assert!(
            prev.serial <= state.serial,
            "backup serial {} is newer than the state's {}",
            prev.serial,
            state.serial
        );
    }
    state
}

pub(crate) fn any_service_in_flight(s: &State, op: &str) -> bool {
    s.resources.services.values().any(|r| {
        r.in_flight
            .as_ref()
            .is_some_and(|f| f.operation.as_str() == op)
    })
}

/// One line of the emulator's request log.
#[derive(Debug, Clone, serde::Deserialize)]
pub(crate) struct Request {
    pub method: String,
    pub path: String,
    pub status: u16,
}

pub(crate) fn requests(cloud: &Cloud) -> Vec<Request> {
    let text =
        std::fs::read_to_string(cloud.emulator_dir().join("requests.log")).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Requests with this method and exact path; `accepted_only` drops injected faults and refusals.
pub(crate) fn count(reqs: &[Request], method: &str, path: &str, accepted_only: bool) -> usize {
    reqs.iter()
        .filter(|r| r.method == method && r.path == path)
        .filter(|r| !accepted_only || (200..300).contains(&r.status))
        .count()
}

/// Make the next long operation of the named (or id'd) service end `failed`.
pub(crate) async fn fail_next(cloud: &Cloud, service: &str) {
    let info = cloud.info();
    let resp = reqwest::Client::new()
        .post(format!(
            "{}/emulator/v1/services/{service}/fail-next",
            info.endpoint
        ))
        .header("X-API-Key", info.api_key)
        .send()
        .await
        .expect("fail-next");
    assert!(resp.status().is_success(), "fail-next: {}", resp.status());
}

/// Start an emulated region outage of the named (or id'd) service and wait until it is in
/// place: its `mariadbd` is stopped (data kept), the API answers every request naming it with
/// 503 (`OutageMode::Errors`) or hangs 30 s then 504 (`OutageMode::Timeouts`), and the service
/// list leaves it out. Calling it again changes the mode. Returns the service id.
pub(crate) async fn outage(cloud: &Cloud, service: &str, mode: OutageMode) -> String {
    let info = cloud.info();
    let resp = reqwest::Client::new()
        .post(format!(
            "{}/emulator/v1/services/{service}/outage",
            info.endpoint
        ))
        .header("X-API-Key", info.api_key)
        .json(&serde_json::json!({ "mode": mode }))
        .send()
        .await
        .expect("outage");
    let status = resp.status();
    let body: serde_json::Value = resp.json().await.unwrap_or_default();
    assert!(status.is_success(), "outage of {service}: {status} {body}");
    body["service_id"].as_str().expect("service_id").to_string()
}

/// End the emulated outage of the named (or id'd) service (a no-op without one) and wait until
/// its `mariadbd` is back on the same port with its data and the API answers for it again.
pub(crate) async fn end_outage(cloud: &Cloud, service: &str) {
    let info = cloud.info();
    let resp = reqwest::Client::new()
        .delete(format!(
            "{}/emulator/v1/services/{service}/outage",
            info.endpoint
        ))
        .header("X-API-Key", info.api_key)
        .send()
        .await
        .expect("end outage");
    let status = resp.status();
    let body = resp.text().await.unwrap_or_default();
    assert!(
        status.is_success(),
        "ending the outage of {service}: {status} {body}"
    );
}

/// Services in the emulator by name, each with how many exist.
pub(crate) async fn service_names(cloud: &Cloud) -> std::collections::BTreeMap<String, usize> {
    let mut names = std::collections::BTreeMap::new();
    for s in cloud.api().list_services().await.expect("list services") {
        *names.entry(s.name).or_insert(0) += 1;
    }
    names
}

/// Freezes the emulator (SIGSTOP) until dropped (SIGCONT), so a request in progress hangs.
pub(crate) struct Frozen(i32);

impl Frozen {
    pub(crate) fn emulator(cloud: &Cloud) -> Frozen {
        let pid = cloud.info().pid as i32;
        skyplan_os::kill(pid as u32, libc::SIGSTOP).expect("SIGSTOP the emulator");
        Frozen(pid)
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        let _ = skyplan_os::kill(self.0 as u32, libc::SIGCONT);
    }
}
