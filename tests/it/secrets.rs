//! Secrets never leave where they belong: after a full apply / drift / repair / destroy cycle
//! run with debug logging, no API key, service password or replication password appears in
//! any output, state file, plan file or emulator log. And TLS to services is verified: a
//! certificate from another CA is refused end to end.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};

use crate::support::cli::{Run, Test};
use crate::support::e2e::Cloud;
use mysql_async::prelude::Queryable;

const GUIDE: &str = "global-replication.toml";

/// Secrets and where they came from (for the failure message, never printed themselves).
struct Secrets(Vec<(String, String)>);

impl Secrets {
    fn add(&mut self, what: &str, value: &str) {
        // A short value would match by accident and prove nothing.
        assert!(value.len() >= 8, "{what} is too short to search for");
        self.0.push((what.to_string(), value.to_string()));
    }

    /// Panics naming the secret (not its value) and where it leaked.
    fn assert_absent(&self, place: &str, text: &str) {
        for (what, value) in &self.0 {
            assert!(!text.contains(value.as_str()), "{what} leaked into {place}");
        }
    }

    fn assert_absent_in_file(&self, path: &Path) {
        let text = String::from_utf8_lossy(&std::fs::read(path).unwrap()).into_owned();
        self.assert_absent(&path.display().to_string(), &text);
    }
}

/// Everything a cycle printed, by command.
#[derive(Default)]
struct Outputs(Vec<(String, String)>);

impl Outputs {
    fn record(&mut self, args: &[&str], r: Run) -> Run {
        let cmd = args.join(" ");
        self.0
            .push((format!("stdout of `{cmd}`"), r.stdout.clone()));
        self.0
            .push((format!("stderr of `{cmd}`"), r.stderr.clone()));
        r
    }
}

fn run(cloud: &mut Cloud, outputs: &mut Outputs, args: &[&str], code: i32) -> Run {
    let r = cloud.skyplan(args);
    outputs.record(args, r).expect_code(code)
}

/// Logs the emulator and its servers write, that must hold no secret.
fn emulator_logs(dir: &Path) -> Vec<PathBuf> {
    let mut logs = vec![dir.join("emulator.log"), dir.join("requests.log")];
    if let Ok(services) = std::fs::read_dir(dir.join("services")) {
        for s in services.flatten() {
            for name in ["mariadbd.err", "mariadbd.out"] {
                let p = s.path().join(name);
                if p.exists() {
                    logs.push(p);
                }
            }
        }
    }
    logs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_apply_drift_repair_destroy_cycle_leaks_no_secret_anywhere() {
    let mut cloud = Cloud::new(GUIDE);
    let mut out = Outputs::default();
    let verbose = |args: &[&'static str]| -> Vec<&'static str> {
        let mut v = args.to_vec();
        v.push("-vv");
        v
    };
    run(
        &mut cloud,
        &mut out,
        &verbose(&["apply", GUIDE, "--auto-approve"]),
        0,
    );

    // The secrets: the API key, every service's default credentials, every replication
    // password the emulator generated.
    let mut secrets = Secrets(vec![]);
    secrets.add("the API key", &cloud.info().api_key);
    let state = cloud.state().unwrap();
    let api = cloud.api();
    for (key, svc) in &state.resources.services {
        let c = api.get_credentials(&svc.id).await.unwrap();
        secrets.add(&format!("the password of service.{key}"), &c.password);
    }
    let services = cloud.emulator_dir().join("services");
    for s in std::fs::read_dir(&services).unwrap().flatten() {
        let text = std::fs::read_to_string(s.path().join("replication.secret")).unwrap();
        let password = text.lines().nth(1).expect("user, then password");
        secrets.add("a replication password", password);
    }
    assert!(secrets.0.len() >= 5, "expected at least 5 secrets");

    // Drift made outside skyplan: replication stopped on the replica.
    let mut replica = cloud.sql("secondary").await;
    replica
        .query_drop("CALL sky.stop_replication()")
        .await
        .unwrap();
    drop(replica);
    run(
        &mut cloud,
        &mut out,
        &verbose(&["plan", GUIDE, "--detailed-exitcode"]),
        2,
    );
    run(
        &mut cloud,
        &mut out,
        &["plan", GUIDE, "--json", "--out", "repair.plan"],
        0,
    );
    run(&mut cloud, &mut out, &["show", "repair.plan", "--json"], 0);
    run(&mut cloud, &mut out, &verbose(&["apply", "repair.plan"]), 0);
    // Even everything every library logs.
    let args = ["plan", GUIDE, "--detailed-exitcode"];
    let o = cloud
        .command(&args)
        .env("SKYPLAN_LOG", "trace")
        .output()
        .await
        .unwrap();
    let r = Run {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    };
    assert!(r.stderr.contains("TRACE"), "trace logging was not on");
    out.record(&["SKYPLAN_LOG=trace", "plan"], r).expect_code(0);
    run(
        &mut cloud,
        &mut out,
        &["show", "--topology", GUIDE, "--json"],
        0,
    );
    // Outputs name where credentials come from, never the credentials.
    run(&mut cloud, &mut out, &verbose(&["output", GUIDE]), 0);
    run(&mut cloud, &mut out, &["output", GUIDE, "--json"], 0);

    // The servers' own logs, before destroy removes them.
    for log in emulator_logs(&cloud.emulator_dir()) {
        secrets.assert_absent_in_file(&log);
    }
    let state_file = cloud.state_path();
    let backup = state_file.with_extension("json.backup");
    for f in [&state_file, &backup, &cloud.dir().join("repair.plan")] {
        secrets.assert_absent_in_file(f);
    }

    run(
        &mut cloud,
        &mut out,
        &verbose(&["destroy", GUIDE, "--auto-approve"]),
        0,
    );
    for log in emulator_logs(&cloud.emulator_dir()) {
        secrets.assert_absent_in_file(&log);
    }
    for f in [&state_file, &backup] {
        secrets.assert_absent_in_file(f);
    }
    for (place, text) in &out.0 {
        secrets.assert_absent(place, text);
    }
    // The search itself works: the key is where it belongs.
    let key_file = std::fs::read_to_string(cloud.emulator_dir().join("api_key")).unwrap();
    assert!(key_file.contains(&cloud.info().api_key));
}

/// An API that echoes the request's key back in its error: the key still never reaches the
/// user's screen, at any log level.
#[test]
fn an_api_key_echoed_back_by_a_failing_api_is_never_printed() {
    const KEY: &str = "sk-live-0123456789abcdef-secret";
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten().take(20) {
            let mut conn = conn;
            let mut buf = [0u8; 8192];
            let n = conn.read(&mut buf).unwrap_or(0);
            let req = String::from_utf8_lossy(&buf[..n]);
            let key = req
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .starts_with("x-api-key:")
                        .then(|| l[10..].trim().to_string())
                })
                .unwrap_or_default();
            let body = format!(
                r#"{{"errors":[{{"message":"invalid key {key}","type":"Unauthorized"}}],"key":"{key}"}}"#
            );
            let _ = write!(
                conn,
                "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    let topology = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("examples")
            .join(GUIDE),
    )
    .unwrap()
    .replace(
        "endpoint = \"local\"",
        &format!("endpoint = \"http://127.0.0.1:{port}\""),
    );
    let mut t = Test::new().file(GUIDE, &topology).env("API_KEY", KEY);
    // A state that names a service, so that plan asks the API about it.
    let mut state = skyplan::state::new_state();
    let spec = skyplan::topology::parse(&topology, Path::new(GUIDE))
        .unwrap()
        .services["primary"]
        .spec
        .clone();
    state.resources.services.insert(
        "primary".into(),
        skyplan::state::ServiceRecord {
            id: "dbpgf00000001".into(),
            spec,
            fqdn: None,
            port: None,
            outbound_ips: vec![],
            status: Some("ready".into()),
            credentials_from: None,
            failed_over_to: None,
            role_change: None,
            replace_requested: None,
            last_seen: None,
            in_flight: None,
            config_id: None,
            config: Default::default(),
        },
    );
    let path = t.state_file("global-replication");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, skyplan::state::codec::to_json(&state).unwrap()).unwrap();

    for args in [
        vec!["plan", GUIDE, "-vv"],
        vec!["apply", GUIDE, "--auto-approve", "-vv"],
    ] {
        let r = t.args(&args).run();
        assert_eq!(r.code, 1, "{args:?}: {}\n{}", r.stdout, r.stderr);
        assert!(r.stderr.contains("401"), "{args:?}: {}", r.stderr);
        // The API's message is shown, with the key masked.
        assert!(
            r.stderr.contains("invalid key ***"),
            "{args:?}: {}",
            r.stderr
        );
        assert!(
            !r.stdout.contains(KEY) && !r.stderr.contains(KEY),
            "{args:?} printed the API key"
        );
    }
    assert!(!String::from_utf8_lossy(&std::fs::read(&path).unwrap()).contains(KEY));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_service_certificate_from_another_ca_is_refused_end_to_end() {
    let mut cloud = Cloud::new(GUIDE);
    cloud
        .skyplan(&["apply", GUIDE, "--auto-approve"])
        .expect_code(0);
    let ca = cloud.info().ca_cert;
    let real = std::fs::read(&ca).unwrap();
    // Trust another CA instead: the services' certificates no longer verify.
    let other = rcgen::generate_simple_self_signed(vec!["Another CA".to_string()]).unwrap();
    std::fs::write(&ca, other.cert.pem()).unwrap();
    let r = cloud.skyplan(&["plan", GUIDE, "--detailed-exitcode"]);
    std::fs::write(&ca, &real).unwrap();
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let err = r.stderr.to_ascii_lowercase();
    assert!(
        err.contains("service.secondary")
            && (err.contains("certificate") || err.contains("tls") || err.contains("issuer")),
        "{}",
        r.stderr
    );
    // With the right CA it verifies again.
    cloud
        .skyplan(&["plan", GUIDE, "--detailed-exitcode"])
        .expect_code(0);
}

/// Secrets in the caller's environment never reach the processes skyplan starts: the emulator
/// daemon and every `mariadbd` it runs inherit only an allow-list of variables.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn daemons_skyplan_starts_inherit_no_secret_from_the_environment() {
    const SECRET: &str = "env-secret-that-must-not-leak-7f3a";
    let mut cloud = Cloud {
        test: Test::new()
            .example(GUIDE)
            .env("SKYPLAN_STATE_PASSWORD", SECRET)
            .env("AWS_SECRET_ACCESS_KEY", SECRET),
        topology: GUIDE.to_string(),
    };
    let r = cloud.skyplan(&["apply", GUIDE, "--auto-approve"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let mut pids = vec![cloud.info().pid];
    pids.extend(cloud.mariadbd_pids());
    assert!(pids.len() >= 3, "the daemon and two mariadbd: {pids:?}");
    for pid in pids {
        let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
        let env = String::from_utf8_lossy(&env);
        assert!(!env.contains(SECRET), "pid {pid} inherited a secret");
        assert!(!env.contains("AWS_SECRET_ACCESS_KEY"), "pid {pid}");
        assert!(env.contains("PATH="), "pid {pid} still finds its programs");
    }
}
