//! The emulator's API contract: authentication, spec-valid JSON, pending-state refusals,
//! faults, the request log, fail-next, paging, the same-provider rule, the stop/start/power
//! status machine (API-only emulators, fast), emulated outages, and with real MariaDB: the
//! allowlist really blocks, a restore really wipes and switches credentials, services survive
//! a restart, DELETE leaves nothing behind, an outage takes a service down and brings it back
//! with its data, a stopped service has no database (also after an emulator restart) and
//! starts again with its data.

use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder, Row};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use skyplan_emulator::{self as emulator, RunningEmulator, ServeOptions};

use crate::reliability_support::{end_outage, outage, OutageMode};
use crate::support::e2e::Cloud;
use crate::support::spec::assert_schema;

// ---------------------------------------------------------------------------------------------
// Harness

/// An emulator in this process on its own temp dir; dropping it (also on panic) stops the API
/// and kills every mariadbd it started. Also the harness of `emulator_conformance`.
pub(crate) struct Emulator {
    running: Option<RunningEmulator>,
    dir: tempfile::TempDir,
    pub(crate) http: reqwest::Client,
    pub(crate) base: String,
    pub(crate) key: String,
}

impl Emulator {
    pub(crate) async fn api_only(op_seconds: f64) -> Emulator {
        Emulator::with(|o| ServeOptions {
            op_seconds,
            no_mariadb: true,
            ..o
        })
        .await
    }

    async fn real() -> Emulator {
        Emulator::with(|o| ServeOptions {
            op_seconds: 0.2,
            ..o
        })
        .await
    }

    async fn with(f: impl FnOnce(ServeOptions) -> ServeOptions) -> Emulator {
        let dir = tempfile::tempdir().unwrap();
        let opts = f(ServeOptions::new(dir.path().to_path_buf()));
        let running = emulator::start(opts).await.expect("emulator starts");
        let (base, key) = (
            running.info().endpoint.clone(),
            running.info().api_key.clone(),
        );
        Emulator {
            running: Some(running),
            dir,
            http: reqwest::Client::new(),
            base,
            key,
        }
    }

    fn running(&self) -> &RunningEmulator {
        self.running.as_ref().unwrap()
    }

    /// Stops this emulator (databases too when `stop_databases`) and starts a new one on the
    /// same directory with the same options.
    async fn restart(&mut self, stop_databases: bool) {
        let old = self.running.take().unwrap();
        let opts = ServeOptions {
            op_seconds: 0.2,
            ..ServeOptions::new(self.dir.path().to_path_buf())
        };
        old.shutdown(stop_databases).await;
        let running = emulator::start(opts).await.expect("emulator restarts");
        self.base = running.info().endpoint.clone();
        assert_eq!(
            running.info().api_key,
            self.key,
            "the API key survives a restart"
        );
        self.running = Some(running);
    }

    pub(crate) async fn raw(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> reqwest::Response {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(key) = key {
            req = req.header("X-API-Key", key);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        req.send().await.unwrap()
    }

    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let resp = self.raw(method, path, Some(&self.key), body).await;
        let status = resp.status();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub(crate) async fn ok(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let (status, value) = self.call(method.clone(), path, body).await;
        assert!(status.is_success(), "{method} {path}: {status} {value}");
        value
    }

    pub(crate) async fn create(&self, body: Value) -> Value {
        let (status, svc) = self
            .call(Method::POST, "/provisioning/v1/services", Some(body))
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{svc}");
        svc
    }

    pub(crate) async fn wait_for(
        &self,
        path: &str,
        what: &str,
        done: impl Fn(StatusCode, &Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            let (status, value) = self.call(Method::GET, path, None).await;
            if done(status, &value) {
                return value;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {status} {value}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub(crate) async fn wait_settled(&self, id: &str) -> Value {
        self.wait_for(
            &format!("/provisioning/v1/services/{id}"),
            "a settled status",
            |_, v| {
                !v["status"]
                    .as_str()
                    .unwrap_or("pending_")
                    .starts_with("pending_")
            },
        )
        .await
    }

    pub(crate) async fn wait_ready(&self, id: &str) -> Value {
        let svc = self.wait_settled(id).await;
        assert_eq!(svc["status"], "ready", "{svc}");
        svc
    }

    pub(crate) async fn backup(&self, service_id: &str) -> Value {
        self.ok(
            Method::POST,
            "/skybackup/v1/backups/schedules",
            Some(json!({"backup_type": "full", "schedule": "once", "service_id": service_id})),
        )
        .await;
        let list = self
            .wait_for(
                &format!("/skybackup/v1/backups?service_id={service_id}"),
                "the backup",
                |_, v| {
                    matches!(
                        v["backups"][0]["status"].as_str(),
                        Some("Succeeded" | "Failed")
                    )
                },
            )
            .await;
        list["backups"][0].clone()
    }

    async fn restore(&self, backup_id: &str, target: &str) -> Value {
        let restore = self
            .ok(
                Method::POST,
                "/skybackup/v1/restores",
                Some(json!({"id": backup_id, "service_id": target})),
            )
            .await;
        let id = restore["id"].as_i64().unwrap();
        self.wait_for(
            &format!("/skybackup/v1/restores/{id}"),
            "the restore",
            |_, v| matches!(v["status"].as_str(), Some("Succeeded" | "Failed")),
        )
        .await
    }

    async fn credentials(&self, id: &str) -> (String, String) {
        let c = self
            .ok(
                Method::GET,
                &format!("/provisioning/v1/services/{id}/security/credentials"),
                None,
            )
            .await;
        (
            c["username"].as_str().unwrap().into(),
            c["password"].as_str().unwrap().into(),
        )
    }

    async fn allow(&self, id: &str, ip: &str) {
        let path = format!("/provisioning/v1/services/{id}/security/allowlist");
        self.ok(Method::POST, &path, Some(json!({ "ip_address": ip })))
            .await;
    }

    fn requests_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("requests.log")).unwrap_or_default()
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        drop(self.running.take());
        emulator::kill_strays(self.dir.path());
    }
}

fn service_body(name: &str) -> Value {
    json!({
        "service_type": "transactional", "topology": "es-single", "provider": "gcp",
        "region": "us-east4", "architecture": "amd64", "size": "sky-2x8", "storage": 100,
        "nodes": 1, "name": name, "ssl_enabled": true
    })
}

fn readwrite_port(svc: &Value) -> u16 {
    let ports = svc["endpoints"][0]["ports"].as_array().unwrap();
    let rw = ports.iter().find(|p| p["name"] == "readwrite").unwrap();
    rw["port"].as_u64().unwrap() as u16
}

async fn try_connect(port: u16, user: &str, password: &str) -> Result<Conn, mysql_async::Error> {
    let opts = OptsBuilder::default()
        .ip_or_hostname("127.0.0.1")
        .tcp_port(port)
        .user(Some(user))
        .pass(Some(password))
        .prefer_socket(false);
    tokio::time::timeout(Duration::from_secs(10), Conn::new(opts))
        .await
        .expect("connect does not hang")
}

fn pid_alive(pid: u32) -> bool {
    emulator::daemon::pid_alive(pid)
}

// ---------------------------------------------------------------------------------------------
// API-only tests

#[tokio::test]
async fn requests_without_the_api_key_are_refused() {
    let emu = Emulator::api_only(0.0).await;
    for key in [None, Some("wrong")] {
        let resp = emu
            .raw(Method::GET, "/provisioning/v1/services", key, None)
            .await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        let body: Value = resp.json().await.unwrap();
        assert_schema("errr.ErrorResponse", &body);
        assert_eq!(body["code"], 401);
        assert_eq!(body["path"], "/provisioning/v1/services");
    }
    let (status, _) = emu
        .call(Method::GET, "/provisioning/v1/services", None)
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn json_bodies_match_the_spec() {
    let emu = Emulator::api_only(0.0).await;
    let mut body = service_body("spec-check");
    body["allow_list"] = json!([{"ip": "127.0.0.1/32", "comment": "operator"}]);
    let created = emu.create(body).await;
    assert_schema("v1.ServiceResponse", &created);
    assert!(created["id"].as_str().unwrap().starts_with("dbpgf"));
    assert_eq!(created["fqdn"], "localhost");
    let id = created["id"].as_str().unwrap().to_string();
    let svc = emu.wait_ready(&id).await;
    assert_schema("v1.ServiceResponse", &svc);
    assert_eq!(
        svc["endpoints"][0]["ports"][0],
        json!({"name": "readwrite", "port": readwrite_port(&svc), "purpose": "readwrite"})
    );
    assert!(svc["outbound_ips"][0]
        .as_str()
        .unwrap()
        .starts_with("127.0.1."));

    let list = emu.ok(Method::GET, "/provisioning/v1/services", None).await;
    assert_schema("v1.ServiceResponse[]", &list);

    let base = format!("/provisioning/v1/services/{id}");
    let allow = format!("{base}/security/allowlist");
    let got = emu.ok(Method::GET, &allow, None).await;
    assert_schema("v1.AllowListEndpoint[]", &got);
    assert_eq!(got[0]["allow_list"][0]["ip"], "127.0.0.1/32");
    let added = emu
        .ok(
            Method::POST,
            &allow,
            Some(json!({"ip_address": "10.0.0.0/8"})),
        )
        .await;
    assert_schema("v1.AllowListEndpoint[]", &added);
    assert_eq!(added[0]["allow_list"].as_array().unwrap().len(), 2);
    let removed = emu
        .ok(
            Method::DELETE,
            &allow,
            Some(json!({"ip_address": "10.0.0.0/8"})),
        )
        .await;
    assert_eq!(removed[0]["allow_list"].as_array().unwrap().len(), 1);
    let put = emu
        .ok(
            Method::PUT,
            &allow,
            Some(json!([{"ip": "127.0.0.1/32"}, {"ip": "192.168.1.7"}])),
        )
        .await;
    assert_schema("v1.AllowListEndpoint[]", &put);

    let creds = emu
        .ok(Method::GET, &format!("{base}/security/credentials"), None)
        .await;
    assert_schema("v1.CredentialsResponse", &creds);
    assert_eq!(creds["username"], id.as_str());
    let allowed = emu
        .ok(
            Method::POST,
            &format!("{base}/security/is-ip-allowed"),
            Some(json!({"ip_address": "192.168.1.7"})),
        )
        .await;
    assert_schema("v1.IsIpAllowedResponse", &allowed);
    assert_eq!(allowed["is_allowed"], true);

    let size = emu
        .ok(
            Method::POST,
            &format!("{base}/size"),
            Some(json!({"size": "sky-4x16"})),
        )
        .await;
    assert_schema("v1.ServiceSizeState", &size);
    assert_eq!(emu.wait_ready(&id).await["size"], "sky-4x16");
    let storage = emu
        .ok(
            Method::PATCH,
            &format!("{base}/storage"),
            Some(json!({"size": 200})),
        )
        .await;
    assert_schema("v1.SetStorageRequest", &storage);
    assert_eq!(emu.wait_ready(&id).await["storage_volume"]["size"], 200);
    // From the full spec (the client updates nodes and tags in place).
    let nodes = emu
        .ok(
            Method::POST,
            &format!("{base}/nodes"),
            Some(json!({"nodes": 3})),
        )
        .await;
    assert_eq!(nodes, json!({"nodes": 3}));
    assert_eq!(emu.wait_ready(&id).await["nodes"], 3);
    let (status, _) = emu
        .call(
            Method::PATCH,
            &format!("{base}/tags"),
            Some(json!({"tags": {"team": "db"}})),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        emu.ok(Method::GET, &base, None).await["tags"],
        json!({"team": "db"})
    );

    let schedule = emu
        .ok(
            Method::POST,
            "/skybackup/v1/backups/schedules",
            Some(json!({"backup_type": "full", "schedule": "once", "service_id": id})),
        )
        .await;
    assert_schema("v1.BackupScheduleResponse", &schedule);
    let schedules = emu
        .ok(
            Method::GET,
            &format!("/skybackup/v1/backups/schedules?service_id={id}"),
            None,
        )
        .await;
    assert_schema("v1.PagedBackupSchedulesResponse", &schedules);
    let backups = emu
        .wait_for(
            &format!("/skybackup/v1/backups?service_id={id}"),
            "backup",
            |_, v| v["backups"][0]["status"] == "Succeeded",
        )
        .await;
    assert_schema("v1.PagedBackupsResponse", &backups);
    let backup = &backups["backups"][0];
    for field in [
        "binlog_gtid_position",
        "binlog_file",
        "binlog_position",
        "start_time",
        "end_time",
        "cloud_provider",
    ] {
        assert!(
            backup.get(field).is_some(),
            "backup lacks {field}: {backup}"
        );
    }
    assert_eq!(
        (&backup["type"], &backup["method"]),
        (&json!("full"), &json!("mariabackup"))
    );
    assert_eq!(
        (&backup["service_id"], &backup["service_name"]),
        (&json!(id), &json!("spec-check"))
    );

    let restore = emu
        .ok(
            Method::POST,
            "/skybackup/v1/restores",
            Some(json!({"id": backup["id"], "service_id": id})),
        )
        .await;
    assert_schema("v1.RestoreResponse", &restore);
    let one = emu
        .ok(
            Method::GET,
            &format!("/skybackup/v1/restores/{}", restore["id"]),
            None,
        )
        .await;
    assert_schema("v1.RestoreResponse", &one);
    let restores = emu
        .ok(
            Method::GET,
            &format!("/skybackup/v1/restores?service_id={id}"),
            None,
        )
        .await;
    assert_schema("v1.PagedRestoresResponse", &restores);
    assert_eq!(restores["restores_count"], 1);

    for (method, path, body) in [
        (
            Method::GET,
            "/provisioning/v1/services/dbpgf00000000".to_string(),
            None,
        ),
        (
            Method::POST,
            "/provisioning/v1/services".to_string(),
            Some(json!({"name": ""})),
        ),
        (
            Method::POST,
            allow.clone(),
            Some(json!({"ip_address": "not-an-ip"})),
        ),
        (
            Method::POST,
            "/provisioning/v1/services".to_string(),
            Some(json!("not an object")),
        ),
        (Method::GET, "/skybackup/v1/restores/999".to_string(), None),
    ] {
        let (status, err) = emu.call(method, &path, body).await;
        assert!(status.is_client_error(), "{path}: {status}");
        assert_schema("errr.ErrorResponse", &err);
        assert_schema("web.ErrorResponse", &err);
        assert_eq!(err["code"], status.as_u16());
    }
}

#[tokio::test]
async fn a_mutation_on_a_pending_service_is_refused() {
    let emu = Emulator::api_only(30.0).await;
    let svc = emu.create(service_body("busy")).await;
    let id = svc["id"].as_str().unwrap();
    let base = format!("/provisioning/v1/services/{id}");
    let attempts = [
        (
            Method::POST,
            format!("{base}/size"),
            Some(json!({"size": "sky-4x16"})),
        ),
        (
            Method::PATCH,
            format!("{base}/storage"),
            Some(json!({"size": 200})),
        ),
        (
            Method::POST,
            format!("{base}/nodes"),
            Some(json!({"nodes": 3})),
        ),
        (
            Method::PATCH,
            format!("{base}/tags"),
            Some(json!({"tags": {}})),
        ),
        (Method::DELETE, base.clone(), None),
        (
            Method::POST,
            format!("{base}/security/allowlist"),
            Some(json!({"ip_address": "1.2.3.4/32"})),
        ),
        (
            Method::PUT,
            format!("{base}/security/allowlist"),
            Some(json!([])),
        ),
        (
            Method::DELETE,
            format!("{base}/security/allowlist"),
            Some(json!({"ip_address": "1.2.3.4/32"})),
        ),
        (
            Method::POST,
            "/skybackup/v1/backups/schedules".into(),
            Some(json!({"backup_type": "full", "schedule": "once", "service_id": id})),
        ),
    ];
    for (method, path, body) in attempts {
        let (status, err) = emu.call(method.clone(), &path, body).await;
        // 425 where the spec declares it (the storage route), 400 elsewhere.
        let want = if path.ends_with("/storage") {
            StatusCode::from_u16(425).unwrap()
        } else {
            StatusCode::BAD_REQUEST
        };
        assert_eq!(status, want, "{method} {path}: {err}");
        let message = err["errors"][0]["message"].as_str().unwrap();
        assert!(message.contains("pending state"), "{message}");
    }
    assert_eq!(
        emu.ok(Method::GET, &base, None).await["status"],
        "pending_create"
    );
    // The name is taken while the service exists.
    let (status, err) = emu
        .call(
            Method::POST,
            "/provisioning/v1/services",
            Some(service_body("busy")),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(err["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("already exists"));
}

#[tokio::test]
async fn faults_follow_the_seed_and_rate_and_spare_admin_paths() {
    let mut runs = Vec::new();
    for _ in 0..2 {
        let emu = Emulator::with(|o| ServeOptions {
            no_mariadb: true,
            fault_rate: 0.3,
            fault_seed: 42,
            ..o
        })
        .await;
        let mut statuses = Vec::new();
        for _ in 0..400 {
            let resp = emu
                .raw(
                    Method::GET,
                    "/provisioning/v1/services",
                    Some(&emu.key),
                    None,
                )
                .await;
            let status = resp.status();
            if status == StatusCode::TOO_MANY_REQUESTS {
                assert_eq!(resp.headers()["retry-after"], "1");
            }
            if status != StatusCode::OK {
                assert!([429, 500, 502, 503].contains(&status.as_u16()), "{status}");
                let body: Value = resp.json().await.unwrap();
                assert_schema("errr.ErrorResponse", &body);
            }
            statuses.push(status.as_u16());
        }
        for _ in 0..50 {
            let (status, _) = emu.call(Method::GET, "/emulator/v1/status", None).await;
            assert_eq!(status, StatusCode::OK, "admin paths are never faulted");
        }
        runs.push(statuses);
    }
    assert_eq!(runs[0], runs[1], "the same seed gives the same faults");
    let faults = runs[0].iter().filter(|s| **s != 200).count();
    assert!(
        (80..=160).contains(&faults),
        "{faults} faults in 400 requests at rate 0.3"
    );
    assert!(runs[0].contains(&429) && runs[0].iter().any(|s| *s >= 500));
}

#[tokio::test]
async fn every_request_is_logged_without_secrets() {
    let emu = Emulator::api_only(0.0).await;
    let svc = emu.create(service_body("logged")).await;
    let id = svc["id"].as_str().unwrap();
    emu.wait_ready(id).await;
    let (_, password) = emu.credentials(id).await;
    let _ = emu
        .raw(Method::GET, "/provisioning/v1/services", None, None)
        .await;
    let text = emu.requests_log();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.len() >= 4, "{text}");
    for line in &lines {
        for field in ["time", "method", "path", "status", "latency_ms"] {
            assert!(line.get(field).is_some(), "{line} lacks {field}");
        }
    }
    assert_eq!(lines[0]["method"], "POST");
    assert_eq!(lines[0]["status"], 202);
    assert_eq!(lines.last().unwrap()["status"], 401);
    assert!(!text.contains(&emu.key) && !text.contains(&password));
}

#[tokio::test]
async fn fail_next_makes_the_next_operation_of_a_named_service_fail() {
    let emu = Emulator::api_only(0.0).await;
    // Before the service exists: by name.
    emu.ok(Method::POST, "/emulator/v1/services/doomed/fail-next", None)
        .await;
    let svc = emu.create(service_body("doomed")).await;
    let id = svc["id"].as_str().unwrap().to_string();
    let settled = emu.wait_settled(&id).await;
    assert_eq!(settled["status"], "failed");
    assert!(!settled["errors"].as_array().unwrap().is_empty());
    // A failed service can be deleted.
    let path = format!("/provisioning/v1/services/{id}");
    emu.ok(Method::DELETE, &path, None).await;
    emu.wait_for(&path, "404", |s, _| s == StatusCode::NOT_FOUND)
        .await;

    // By id, on a backup.
    let svc = emu.create(service_body("healthy")).await;
    let id = svc["id"].as_str().unwrap().to_string();
    emu.wait_ready(&id).await;
    emu.ok(
        Method::POST,
        &format!("/emulator/v1/services/{id}/fail-next"),
        None,
    )
    .await;
    assert_eq!(emu.backup(&id).await["status"], "Failed");
    assert_eq!(
        emu.backup(&id).await["status"],
        "Succeeded",
        "only the next one fails"
    );
}

#[tokio::test]
async fn an_outage_needs_a_known_settled_service_and_its_timeouts_hang() {
    let emu = Emulator::api_only(1.0).await;
    for method in [Method::POST, Method::DELETE] {
        let (status, body) = emu
            .call(method, "/emulator/v1/services/nowhere/outage", None)
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        assert_schema("errr.ErrorResponse", &body);
    }
    let id = emu.create(service_body("far-away")).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let outage = format!("/emulator/v1/services/{id}/outage");
    // While it is being created (pending for 1 s), an outage would fight the operation.
    let (status, body) = emu.call(Method::POST, &outage, None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    emu.wait_ready(&id).await;
    let (status, body) = emu
        .call(Method::POST, &outage, Some(json!({"mode": "sometimes"})))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    let started = emu
        .ok(Method::POST, &outage, Some(json!({"mode": "timeouts"})))
        .await;
    assert_eq!(
        started,
        json!({"service_id": id, "outage": true, "mode": "timeouts"})
    );
    // A client with a shorter timeout than the region's silence sees a timeout.
    let quick = reqwest::Client::builder()
        .timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let err = quick
        .get(format!("{}/provisioning/v1/services/{id}", emu.base))
        .header("X-API-Key", &emu.key)
        .send()
        .await
        .expect_err("the request must time out");
    assert!(err.is_timeout(), "{err}");
    // Without the key, the caller learns nothing about the outage.
    let resp = emu
        .raw(
            Method::GET,
            &format!("/provisioning/v1/services/{id}"),
            None,
            None,
        )
        .await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let list = emu.ok(Method::GET, "/provisioning/v1/services", None).await;
    assert_eq!(list, json!([]), "the list answers at once, without it");

    // By name this time, and the mode changes.
    let switched = emu
        .ok(Method::POST, "/emulator/v1/services/far-away/outage", None)
        .await;
    assert_eq!(switched["mode"], "errors");
    let (status, _) = emu
        .call(
            Method::GET,
            &format!("/provisioning/v1/services/{id}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    emu.ok(Method::DELETE, &outage, None).await;
    assert_eq!(emu.wait_ready(&id).await["id"], id.as_str());
}

#[tokio::test]
async fn the_service_list_pages_with_tokens() {
    let emu = Emulator::api_only(0.0).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            emu.create(service_body(&format!("page-{i}"))).await["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &token {
            None => "/provisioning/v1/services?page_size=2".to_string(),
            Some(t) => format!("/provisioning/v1/services?page_size=2&page_token={t}"),
        };
        let resp = emu.raw(Method::GET, &path, Some(&emu.key), None).await;
        assert_eq!(resp.status(), StatusCode::OK);
        token = resp
            .headers()
            .get("X-SkySQL-Page-Token-Next")
            .map(|v| v.to_str().unwrap().to_string());
        let page: Vec<Value> = resp.json().await.unwrap();
        assert!(page.len() <= 2);
        seen.extend(page.iter().map(|s| s["id"].as_str().unwrap().to_string()));
        pages += 1;
        if token.is_none() {
            break;
        }
    }
    assert_eq!((seen, pages), (ids, 3));
    let (status, _) = emu
        .call(Method::GET, "/provisioning/v1/services?page_size=101", None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_backup_restores_only_to_the_same_cloud_provider() {
    let emu = Emulator::api_only(0.0).await;
    let gcp = emu.create(service_body("on-gcp")).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut aws_body = service_body("on-aws");
    aws_body["provider"] = json!("aws");
    aws_body["region"] = json!("us-east-1");
    let aws = emu.create(aws_body).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    emu.wait_ready(&gcp).await;
    emu.wait_ready(&aws).await;
    let backup = emu.backup(&gcp).await;
    let (status, err) = emu
        .call(
            Method::POST,
            "/skybackup/v1/restores",
            Some(json!({"id": backup["id"], "service_id": aws})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
    assert!(err["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("same cloud provider"));
    assert_eq!(
        emu.wait_ready(&aws).await["status"],
        "ready",
        "the target was not touched"
    );
}

// ---------------------------------------------------------------------------------------------
// Real MariaDB

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_allowlist_entry_blocks_the_operator_and_the_replica() {
    let emu = Emulator::real().await;
    let primary = emu.create(service_body("gate-primary")).await;
    let mut replica_body = service_body("gate-replica");
    replica_body["allow_list"] = json!([{"ip": "127.0.0.1/32"}]);
    let replica = emu.create(replica_body).await;
    let (p_id, r_id) = (
        primary["id"].as_str().unwrap(),
        replica["id"].as_str().unwrap(),
    );
    let primary = emu.wait_ready(p_id).await;
    let replica = emu.wait_ready(r_id).await;
    let (p_port, r_port) = (readwrite_port(&primary), readwrite_port(&replica));
    let (p_user, p_pass) = emu.credentials(p_id).await;
    let (r_user, r_pass) = emu.credentials(r_id).await;

    // The operator: a new service allows nothing.
    assert!(primary["endpoints"][0]["allow_list"]
        .as_array()
        .unwrap()
        .is_empty());
    assert!(
        try_connect(p_port, &p_user, &p_pass).await.is_err(),
        "empty allowlist blocks the operator"
    );
    emu.allow(p_id, "127.0.0.1/32").await;
    let mut p = try_connect(p_port, &p_user, &p_pass)
        .await
        .expect("allowed after the allowlist change");

    // The replica: wired with a valid grant, but its outbound IP is not on the primary's list.
    let gtid: String = p
        .query_first("SELECT @@gtid_binlog_pos")
        .await
        .unwrap()
        .unwrap();
    let mut r = try_connect(r_port, &r_user, &r_pass).await.unwrap();
    let rows: Vec<Row> = r
        .exec(
            "CALL sky.change_external_primary_gtid(?, ?, ?, ?)",
            ("localhost", p_port, &gtid, false),
        )
        .await
        .unwrap();
    let grant: String = rows[0]
        .get("Run_this_grant_on_your_external_primary")
        .unwrap();
    p.query_drop(grant).await.unwrap();
    r.query_drop("CALL sky.start_replication()").await.unwrap();
    let status: Vec<Row> = r.query("CALL sky.replication_status()").await.unwrap();
    let io_running: String = status[0].get("Slave_IO_Running").unwrap();
    let io_error: String = status[0].get("Last_IO_Error").unwrap();
    assert_ne!(io_running, "Yes");
    assert!(
        !io_error.is_empty(),
        "the blocked replica shows the connect error"
    );

    // Allowlisting the replica's outbound IP is what makes it work.
    let outbound = replica["outbound_ips"][0].as_str().unwrap();
    emu.allow(p_id, &format!("{outbound}/32")).await;
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let status: Vec<Row> = r.query("CALL sky.replication_status()").await.unwrap();
        let io: String = status[0].get("Slave_IO_Running").unwrap();
        if io == "Yes" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "replica never connected after the allowlist change"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_wipes_the_target_and_switches_its_credentials() {
    let emu = Emulator::real().await;
    let mut ids = Vec::new();
    for name in ["restore-source", "restore-target"] {
        let mut body = service_body(name);
        body["allow_list"] = json!([{"ip": "127.0.0.1/32"}]);
        ids.push(emu.create(body).await["id"].as_str().unwrap().to_string());
    }
    let source = emu.wait_ready(&ids[0]).await;
    let target = emu.wait_ready(&ids[1]).await;
    let (s_user, s_pass) = emu.credentials(&ids[0]).await;
    let (t_user, t_pass) = emu.credentials(&ids[1]).await;
    let mut s = try_connect(readwrite_port(&source), &s_user, &s_pass)
        .await
        .unwrap();
    s.query_drop("CREATE DATABASE from_source").await.unwrap();
    let mut t = try_connect(readwrite_port(&target), &t_user, &t_pass)
        .await
        .unwrap();
    t.query_drop("CREATE DATABASE target_own").await.unwrap();
    drop(t);

    let backup = emu.backup(&ids[0]).await;
    assert_eq!(backup["status"], "Succeeded", "{backup}");
    // Take the target's database port the moment the restore stops it: the restore still
    // ends with the target running (on another port).
    let db = db_port(&emu, &ids[1]);
    let squat = std::thread::spawn(move || {
        let until = Instant::now() + Duration::from_secs(30);
        while Instant::now() < until {
            if let Ok(l) = std::net::TcpListener::bind(("127.0.0.1", db)) {
                return Some(l);
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        None
    });
    let restore = emu.restore(backup["id"].as_str().unwrap(), &ids[1]).await;
    assert_eq!(restore["status"], "Succeeded", "{restore}");
    emu.wait_ready(&ids[1]).await;
    if let Some(squatter) = squat.join().unwrap() {
        assert_ne!(db_port(&emu, &ids[1]), db, "moved off the taken port");
        drop(squatter);
    }

    let port = readwrite_port(&target);
    assert!(
        try_connect(port, &t_user, &t_pass).await.is_err(),
        "the target's own credentials no longer work"
    );
    let mut t = try_connect(port, &s_user, &s_pass)
        .await
        .expect("the source's credentials work");
    let dbs: Vec<String> = t.query("SHOW DATABASES").await.unwrap();
    assert!(dbs.contains(&"from_source".to_string()), "{dbs:?}");
    assert!(
        !dbs.contains(&"target_own".to_string()),
        "the target's own data is gone: {dbs:?}"
    );
    assert_eq!(emu.credentials(&ids[1]).await, (s_user, s_pass));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_survive_an_emulator_restart() {
    let mut emu = Emulator::real().await;
    let mut body = service_body("durable");
    body["allow_list"] = json!([{"ip": "127.0.0.1/32"}]);
    let id = emu.create(body).await["id"].as_str().unwrap().to_string();
    let before = emu.wait_ready(&id).await;
    let (user, pass) = emu.credentials(&id).await;
    let mut c = try_connect(readwrite_port(&before), &user, &pass)
        .await
        .unwrap();
    c.query_drop("CREATE DATABASE kept").await.unwrap();
    drop(c);
    let pids = emu.running().mariadbd_pids();
    assert_eq!(pids.len(), 1);

    // Emulator gone, database left running: the new emulator adopts it.
    emu.restart(false).await;
    let after = emu.wait_ready(&id).await;
    assert_eq!(
        readwrite_port(&after),
        readwrite_port(&before),
        "the endpoint kept its port"
    );
    assert_eq!(
        emu.running().mariadbd_pids(),
        pids,
        "the running mariadbd was adopted"
    );

    // Everything stopped: the new emulator starts the database again.
    emu.restart(true).await;
    assert!(!pid_alive(pids[0]));
    let again = emu.wait_ready(&id).await;
    let mut c = try_connect(readwrite_port(&again), &user, &pass)
        .await
        .unwrap();
    let dbs: Vec<String> = c.query("SHOW DATABASES").await.unwrap();
    assert!(dbs.contains(&"kept".to_string()), "{dbs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_leaves_no_process_and_no_data() {
    let emu = Emulator::real().await;
    let mut body = service_body("short-lived");
    body["allow_list"] = json!([{"ip": "127.0.0.1/32"}]);
    let id = emu.create(body).await["id"].as_str().unwrap().to_string();
    let svc = emu.wait_ready(&id).await;
    let pids = emu.running().mariadbd_pids();
    assert_eq!(pids.len(), 1);
    let data = emu.dir.path().join("services").join(&id);
    assert!(data.exists());

    let path = format!("/provisioning/v1/services/{id}");
    let (status, _) = emu.call(Method::DELETE, &path, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        emu.ok(Method::GET, &path, None).await["status"],
        "pending_delete"
    );
    let gone = emu
        .wait_for(&path, "404", |s, _| s == StatusCode::NOT_FOUND)
        .await;
    assert_schema("errr.ErrorResponse", &gone);
    assert!(!pid_alive(pids[0]), "mariadbd stopped");
    assert!(!data.exists(), "data removed");
    assert!(emu.running().mariadbd_pids().is_empty());
    let port = readwrite_port(&svc);
    assert!(
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err(),
        "endpoint closed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_takes_a_service_down_and_brings_it_back_with_its_data() {
    let mut emu = Emulator::real().await;
    let mut body = service_body("remote-region");
    body["allow_list"] = json!([{"ip": "127.0.0.1/32"}]);
    let id = emu.create(body).await["id"].as_str().unwrap().to_string();
    let before = emu.wait_ready(&id).await;
    let port = readwrite_port(&before);
    let (user, pass) = emu.credentials(&id).await;
    let mut c = try_connect(port, &user, &pass).await.unwrap();
    c.query_drop("CREATE DATABASE app").await.unwrap();
    c.query_drop("CREATE TABLE app.t (id INT PRIMARY KEY, v VARCHAR(20))")
        .await
        .unwrap();
    c.query_drop("INSERT INTO app.t VALUES (1, 'kept')")
        .await
        .unwrap();
    c.disconnect().await.unwrap();
    let pids = emu.running().mariadbd_pids();
    assert_eq!(pids.len(), 1);

    // By name, default mode.
    let started = emu
        .ok(
            Method::POST,
            "/emulator/v1/services/remote-region/outage",
            None,
        )
        .await;
    assert_eq!(
        started,
        json!({"service_id": id, "outage": true, "mode": "errors"})
    );
    assert!(!pid_alive(pids[0]), "its mariadbd stopped");
    let svc = format!("/provisioning/v1/services/{id}");
    let unreachable = [
        (Method::GET, svc.clone(), None),
        (Method::GET, format!("{svc}/security/credentials"), None),
        (Method::GET, format!("{svc}/security/allowlist"), None),
        (
            Method::PATCH,
            format!("{svc}/tags"),
            Some(json!({"tags": {"a": "b"}})),
        ),
        (Method::DELETE, svc.clone(), None),
        (
            Method::POST,
            "/skybackup/v1/backups/schedules".to_string(),
            Some(json!({"backup_type": "full", "schedule": "once", "service_id": id})),
        ),
        (
            Method::GET,
            format!("/skybackup/v1/backups?service_id={id}"),
            None,
        ),
    ];
    for (method, path, body) in unreachable {
        let (status, err) = emu.call(method.clone(), &path, body).await;
        assert_eq!(
            status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{method} {path}: {err}"
        );
        assert_schema("errr.ErrorResponse", &err);
        assert_eq!(err["code"], 503);
        assert_eq!(err["path"], path.split('?').next().unwrap());
    }
    let list = emu.ok(Method::GET, "/provisioning/v1/services", None).await;
    assert_eq!(list, json!([]), "the list leaves it out");
    assert!(
        try_connect(port, &user, &pass).await.is_err(),
        "no SQL during the outage"
    );

    // An emulator restarted during the outage leaves the database down.
    emu.restart(true).await;
    assert!(emu.running().mariadbd_pids().is_empty(), "no mariadbd");
    let (status, _) = emu.call(Method::GET, &svc, None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(try_connect(port, &user, &pass).await.is_err());

    let ended = emu
        .ok(
            Method::DELETE,
            &format!("/emulator/v1/services/{id}/outage"),
            None,
        )
        .await;
    assert_eq!(
        ended,
        json!({"service_id": id, "outage": false, "ended": true})
    );
    let after = emu.ok(Method::GET, &svc, None).await;
    assert_eq!(after["status"], "ready", "its previous status: {after}");
    assert_eq!(readwrite_port(&after), port);
    let list = emu.ok(Method::GET, "/provisioning/v1/services", None).await;
    assert_eq!(list[0]["id"], id.as_str(), "listed again");
    let mut c = try_connect(port, &user, &pass).await.unwrap();
    let kept: Option<String> = c
        .query_first("SELECT v FROM app.t WHERE id = 1")
        .await
        .unwrap();
    assert_eq!(kept.as_deref(), Some("kept"));
    // Ending it again changes nothing, and says so.
    let again = emu
        .ok(
            Method::DELETE,
            "/emulator/v1/services/remote-region/outage",
            None,
        )
        .await;
    assert_eq!(
        again,
        json!({"service_id": id, "outage": false, "ended": false})
    );
}

#[test]
#[should_panic(expected = "does not match v1.ServiceResponse")]
fn the_schema_check_rejects_a_wrong_shape() {
    // Guards the guard: a validator that resolved nothing would pass every body above.
    assert_schema(
        "v1.ServiceResponse",
        &json!({"id": "x", "status": "sleeping"}),
    );
}

#[test]
#[should_panic(expected = "does not match v1.PagedBackupsResponse")]
fn the_schema_check_follows_nested_refs() {
    assert_schema(
        "v1.PagedBackupsResponse",
        &json!({"backups": [{"storage_bytes": "many"}]}),
    );
}

// ---------------------------------------------------------------------------------------------
// The background daemon, through the binary

/// Runs `skyplan emulator …`; returns (exit code, stdout, stderr).
fn skyplan(args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_skyplan"))
        .args(args)
        .env_remove("SKYPLAN_EMULATOR_DIR")
        .output()
        .unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (
        out.status.code().unwrap_or(-1),
        text(&out.stdout),
        text(&out.stderr),
    )
}

/// Stops the daemon of a temp dir and kills anything left, even on panic.
struct Daemon(tempfile::TempDir);

impl Daemon {
    fn dir(&self) -> &str {
        self.0.path().to_str().unwrap()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = skyplan(&["emulator", "stop", "--dir", self.dir()]);
        emulator::kill_strays(self.0.path());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_starts_once_reports_its_status_and_stops_everything() {
    let daemon = Daemon(tempfile::tempdir().unwrap());
    let dir = daemon.dir();
    let (code, first, _) = skyplan(&["emulator", "start", "--dir", dir, "--op-seconds", "0.2"]);
    assert_eq!(code, 0, "{first}");
    assert!(
        first.contains("endpoint: http://127.0.0.1:") && first.contains("api_key:"),
        "{first}"
    );
    let (code, second, stderr) = skyplan(&["emulator", "start", "--dir", dir]);
    assert_eq!(code, 0);
    assert_eq!(first, second, "start reuses the running emulator");
    assert!(stderr.contains("reusing"), "{stderr}");

    let (code, status, _) = skyplan(&["emulator", "status", "--dir", dir, "--json"]);
    assert_eq!(code, 0);
    let status: Value = serde_json::from_str(&status).unwrap();
    let pid = status["pid"].as_u64().unwrap() as u32;
    assert!(pid_alive(pid) && pid != std::process::id());
    assert_eq!(status["dir"], dir);

    // A service of the daemon: a mariadbd that `stop` must take down with it.
    let (base, key) = (
        status["endpoint"].as_str().unwrap(),
        status["api_key"].as_str().unwrap(),
    );
    let http = reqwest::Client::new();
    let created: Value = http
        .post(format!("{base}/provisioning/v1/services"))
        .header("X-API-Key", key)
        .json(&service_body("daemon-service"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let url = format!(
        "{base}/provisioning/v1/services/{}",
        created["id"].as_str().unwrap()
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let svc: Value = http
            .get(&url)
            .header("X-API-Key", key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if svc["status"] == "ready" {
            break;
        }
        assert!(
            Instant::now() < deadline && svc["status"] == "pending_create",
            "{svc}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(emulator::daemon::processes_of(daemon.0.path()).len(), 1);

    let (code, _, stderr) = skyplan(&["emulator", "stop", "--dir", dir]);
    assert_eq!(code, 0, "{stderr}");
    assert!(!pid_alive(pid), "the emulator exited");
    assert!(
        emulator::daemon::processes_of(daemon.0.path()).is_empty(),
        "its mariadbd stopped"
    );
    let (code, _, _) = skyplan(&["emulator", "status", "--dir", dir]);
    assert_eq!(code, 1, "status reports nothing running");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_outage_command_and_helpers_drive_the_running_emulator() {
    let mut cloud = Cloud::new("global-replication.toml");
    cloud.start_emulator(&["--no-mariadb", "--op-seconds", "0"]);
    let info = cloud.info();
    let http = reqwest::Client::new();
    let created: Value = http
        .post(format!("{}/provisioning/v1/services", info.endpoint))
        .header("X-API-Key", &info.api_key)
        .json(&service_body("cli-outage"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap().to_string();
    cloud.wait_service_ready(&id).await;
    let get = || {
        http.get(format!("{}/provisioning/v1/services/{id}", info.endpoint))
            .header("X-API-Key", &info.api_key)
            .send()
    };

    let run = cloud.skyplan(&["emulator", "outage", "cli-outage"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout
            .contains(&format!("service {id}: outage started (errors)")),
        "{}",
        run.stdout
    );
    assert_eq!(
        get().await.unwrap().status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    let run = cloud.skyplan(&["emulator", "outage", &id, "--mode", "timeouts"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("(timeouts)"), "{}", run.stdout);
    // Ending it says so (issue 30: it used to say "not in an outage"), and ending it again
    // says that.
    let run = cloud.skyplan(&["emulator", "outage", &id, "--end"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains(&format!("service {id}: outage ended")),
        "{}",
        run.stdout
    );
    let run = cloud.skyplan(&["emulator", "outage", &id, "--mode", "timeouts"]);
    assert_eq!(run.code, 0, "{}", run.stderr);

    // The helpers other tests use.
    assert_eq!(outage(&cloud, "cli-outage", OutageMode::Errors).await, id);
    assert_eq!(
        get().await.unwrap().status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    end_outage(&cloud, &id).await;
    assert_eq!(get().await.unwrap().status(), StatusCode::OK);

    let run = cloud.skyplan(&["emulator", "outage", "cli-outage", "--end"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("not in an outage"), "{}", run.stdout);
    let run = cloud.skyplan(&["emulator", "outage", "nowhere"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("service nowhere not found"),
        "{}",
        run.stderr
    );
    let run = cloud.skyplan(&["emulator", "outage", &id, "--end", "--mode", "errors"]);
    // A usage error: exit 1 (2 only ever means changes or drift).
    assert_eq!(run.code, 1, "--end takes no --mode: {}", run.stderr);
}

/// The offering lookups answer with the spec's shapes, and a create outside the catalog is
/// refused with the spec's error body naming the field and the nearest valid value, before
/// anything is created.
#[tokio::test]
async fn the_catalog_answers_per_spec_and_bad_creates_are_refused_by_field() {
    let emu = Emulator::api_only(0.1).await;
    for path in [
        "/provisioning/v1/providers",
        "/provisioning/v1/regions?provider=gcp",
        "/provisioning/v1/regions/us-east4/zones",
        "/provisioning/v1/sizes?provider=aws&architecture=arm64",
        "/provisioning/v1/versions?topology=standalone",
        "/provisioning/v1/topologies?service_type=transactional",
    ] {
        let (status, v) = emu.call(Method::GET, path, None).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert!(!v.as_array().unwrap().is_empty(), "{path}: {v}");
    }
    let (_, regions) = emu
        .call(Method::GET, "/provisioning/v1/regions?provider=gcp", None)
        .await;
    assert!(regions
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["name"] == "us-west1" && r["provider"] == "gcp"));
    let (status, _) = emu
        .call(Method::GET, "/provisioning/v1/regions?provider=mars", None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let cases = [
        ("region", "us-west-1", "did you mean \"us-west1\""),
        (
            "region",
            "mars-north1",
            "region \"mars-north1\" is not offered",
        ),
        (
            "size",
            "sky-999x9999",
            "size \"sky-999x9999\" is not offered",
        ),
        ("topology", "galaxy", "topology \"galaxy\" is not offered"),
        ("nodes", "100", "nodes must be between 1 and 1"),
    ];
    for (field, value, want) in cases {
        let mut body = serde_json::json!({
            "name": "catalog-check", "provider": "gcp", "region": "us-east4",
            "service_type": "transactional", "topology": "standalone",
            "architecture": "amd64", "size": "sky-2x8", "nodes": 1, "storage": 100,
        });
        body[field] = if field == "nodes" {
            serde_json::json!(100)
        } else {
            serde_json::json!(value)
        };
        let (status, e) = emu
            .call(Method::POST, "/provisioning/v1/services", Some(body))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{field}={value}");
        let msg = e["errors"][0]["message"].as_str().unwrap_or_default();
        assert!(msg.contains(want), "{want} in {e}");
    }
    let (_, listed) = emu
        .call(Method::GET, "/provisioning/v1/services", None)
        .await;
    assert_eq!(
        listed.as_array().map(Vec::len),
        Some(0),
        "nothing created: {listed}"
    );
}

/// Bodies must be JSON objects of the declared shape (serde alone would read an array into a
/// struct); required query parameters are required; unknown service ids are 404.
#[tokio::test]
async fn strict_bodies_required_parameters_and_unknown_ids() {
    let emu = Emulator::api_only(0.1).await;
    for (path, body) in [
        ("/skybackup/v1/restores", json!(["a", "b"])),
        (
            "/skybackup/v1/backups/schedules",
            json!(["full", "once", "x"]),
        ),
        ("/provisioning/v1/services", json!("a service")),
    ] {
        let (status, e) = emu.call(Method::POST, path, Some(body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {e}");
        let msg = e["errors"][0]["message"].as_str().unwrap_or_default();
        assert!(msg.contains("must be a JSON object"), "{path}: {e}");
    }
    // Status codes as the spec declares them (issue 30): the schedules and restores routes
    // document 400, not 404, for a service that does not exist; the backups list documents 404.
    for path in ["/skybackup/v1/backups/schedules", "/skybackup/v1/restores"] {
        let (status, e) = emu.call(Method::GET, path, None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {e}");
        let (status, _) = conforming(
            &emu,
            Method::GET,
            &format!("{path}?service_id=dbpgf00000000"),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}");
    }
    let (status, _) = conforming(
        &emu,
        Method::POST,
        "/skybackup/v1/backups/schedules",
        Some(json!({"backup_type": "full", "schedule": "once", "service_id": "dbpgf00000000"})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = conforming(
        &emu,
        Method::GET,
        "/skybackup/v1/backups?service_id=dbpgf00000000",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // One body limit, 413, on every route that reads a body.
    let big = "x".repeat(10 * 1024 * 1024);
    for (method, path) in [
        (Method::POST, "/provisioning/v1/services"),
        (Method::POST, "/skybackup/v1/restores"),
        (Method::POST, "/skybackup/v1/backups/schedules"),
        (
            Method::PUT,
            "/provisioning/v1/services/dbpgf00000000/security/allowlist",
        ),
        (
            Method::POST,
            "/provisioning/v1/services/dbpgf00000000/security/allowlist",
        ),
    ] {
        let resp = emu
            .http
            .request(method.clone(), format!("{}{path}", emu.base))
            .header("X-API-Key", &emu.key)
            .header("Content-Type", "application/json")
            .body(format!("{{\"junk\": \"{big}\"}}"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.status(),
            StatusCode::PAYLOAD_TOO_LARGE,
            "{method} {path}"
        );
    }
}

/// Status code and body of a request, after checking both against the full spec.
async fn conforming(
    emu: &Emulator,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let resp = emu.raw(method.clone(), path, Some(&emu.key), body).await;
    let status = resp.status();
    let text = resp.text().await.unwrap();
    crate::support::spec::assert_conforms(method.as_str(), path, status.as_u16(), &text);
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[tokio::test]
async fn stop_start_and_power_follow_the_status_machine() {
    let emu = Emulator::api_only(0.0).await;
    let id = emu.create(service_body("powered")).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    emu.wait_ready(&id).await;
    let base = format!("/provisioning/v1/services/{id}");
    let refused = |(status, body): (StatusCode, Value), words: &str| {
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_schema("errr.ErrorResponse", &body);
        let message = body["errors"][0]["message"].as_str().unwrap().to_string();
        assert!(message.contains(words), "{words} in {message}");
    };
    // A ready service cannot be started; it can be stopped.
    refused(
        conforming(&emu, Method::POST, &format!("{base}/start"), None).await,
        "only a stopped service can be started",
    );
    let (status, _) = conforming(&emu, Method::POST, &format!("{base}/stop"), None).await;
    assert_eq!(status, StatusCode::OK);
    let stopped = emu.wait_settled(&id).await;
    assert_eq!(stopped["status"], "stopped", "{stopped}");
    assert_eq!(stopped["is_active"], false);
    // Stopped: no second stop, no change that needs the database, no restore into it.
    refused(
        conforming(&emu, Method::POST, &format!("{base}/stop"), None).await,
        "only a ready service can be stopped",
    );
    refused(
        conforming(
            &emu,
            Method::POST,
            &format!("{base}/size"),
            Some(json!({"size": "sky-4x16"})),
        )
        .await,
        "is stopped; start it first",
    );
    refused(
        conforming(
            &emu,
            Method::POST,
            &format!("{base}/nodes"),
            Some(json!({"nodes": 2})),
        )
        .await,
        "is stopped; start it first",
    );
    // Tags still change on a stopped service.
    let (status, _) = emu
        .call(
            Method::PATCH,
            &format!("{base}/tags"),
            Some(json!({"tags": {"a": "b"}})),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    // The deprecated power endpoint: a strict body, then the same machine.
    refused(
        conforming(
            &emu,
            Method::POST,
            &format!("{base}/power"),
            Some(json!({})),
        )
        .await,
        "is_active is required",
    );
    refused(
        conforming(
            &emu,
            Method::POST,
            &format!("{base}/power"),
            Some(json!([true])),
        )
        .await,
        "",
    );
    let (status, _) = conforming(
        &emu,
        Method::POST,
        &format!("{base}/power"),
        Some(json!({"is_active": true})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let ready = emu.wait_settled(&id).await;
    assert_eq!(ready["status"], "ready", "{ready}");
    assert_eq!(ready["is_active"], true);
    // Unknown ids are 404 on every power route.
    for path in ["start", "stop", "power"] {
        let (status, _) = conforming(
            &emu,
            Method::POST,
            &format!("/provisioning/v1/services/dbnope0000/{path}"),
            Some(json!({"is_active": true})),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_service_has_no_database_stays_stopped_across_a_restart_and_starts_with_its_data()
{
    let mut emu = Emulator::real().await;
    let mut body = service_body("sleeper");
    body["allow_list"] = json!([{"ip": "127.0.0.1/32"}]);
    let id = emu.create(body).await["id"].as_str().unwrap().to_string();
    let svc = emu.wait_ready(&id).await;
    let port = readwrite_port(&svc);
    let (user, pass) = emu.credentials(&id).await;
    let mut c = try_connect(port, &user, &pass).await.unwrap();
    c.query_drop("CREATE DATABASE kept").await.unwrap();
    drop(c);
    let pid = emu.running().mariadbd_pids()[0];

    emu.ok(
        Method::POST,
        &format!("/provisioning/v1/services/{id}/stop"),
        None,
    )
    .await;
    assert_eq!(emu.wait_settled(&id).await["status"], "stopped");
    assert!(
        !pid_alive(pid),
        "the database of a stopped service is stopped"
    );
    assert!(try_connect(port, &user, &pass).await.is_err());

    // An emulator restart does not start it behind the API's back.
    emu.restart(false).await;
    assert_eq!(emu.wait_settled(&id).await["status"], "stopped");
    assert!(emu.running().mariadbd_pids().is_empty());

    // Its database port taken while it was down: it starts on another one.
    let down_port = db_port(&emu, &id);
    let squatter = std::net::TcpListener::bind(("127.0.0.1", down_port)).unwrap();
    emu.ok(
        Method::POST,
        &format!("/provisioning/v1/services/{id}/start"),
        None,
    )
    .await;
    let again = emu.wait_ready(&id).await;
    assert_ne!(db_port(&emu, &id), down_port);
    drop(squatter);
    assert_eq!(readwrite_port(&again), port, "it keeps its endpoint");
    let mut c = try_connect(port, &user, &pass).await.unwrap();
    let dbs: Vec<String> = c.query("SHOW DATABASES").await.unwrap();
    assert!(dbs.contains(&"kept".to_string()), "{dbs:?}");
}

/// The `db_port` the store records for service `id`.
fn db_port(emu: &Emulator, id: &str) -> u16 {
    let text = std::fs::read_to_string(emu.dir.path().join("store.json")).unwrap();
    let store: Value = serde_json::from_str(&text).unwrap();
    let svc = store["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id)
        .unwrap();
    svc["db_port"].as_u64().unwrap() as u16
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_port_taken_before_mariadbd_binds_it_is_replaced_not_a_failed_create() {
    let emu = Emulator::real().await;
    let mut body = service_body("contested");
    body["allow_list"] = json!([{"ip": "127.0.0.1/32"}]);
    let id = emu.create(body).await["id"].as_str().unwrap().to_string();
    // Take the chosen port while mariadb-install-db still runs (it takes a second or more).
    let taken = db_port(&emu, &id);
    let squatter = std::net::TcpListener::bind(("127.0.0.1", taken));
    let svc = emu.wait_ready(&id).await;
    if squatter.is_ok() {
        assert_ne!(db_port(&emu, &id), taken, "moved to another port");
    }
    // Usable either way, through its published endpoint.
    let (user, pass) = emu.credentials(&id).await;
    try_connect(readwrite_port(&svc), &user, &pass)
        .await
        .expect("the service answers");
}

/// Issue 30: the catalog lists page as `/services` does — `page_size` 1–100, a next-page
/// token, `page_order`, tokens checked — and refuse a bad paging query with 400.
#[tokio::test]
async fn catalog_lists_page_and_check_their_paging_query() {
    let emu = Emulator::api_only(0.1).await;
    let (_, all) = emu
        .call(Method::GET, "/provisioning/v1/regions", None)
        .await;
    let all = all.as_array().unwrap().clone();
    assert!(all.len() > 2, "{all:?}");
    // One region per page, following the tokens, gives every region once, in order.
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let path = match &token {
            None => "/provisioning/v1/regions?page_size=1".to_string(),
            Some(t) => format!("/provisioning/v1/regions?page_size=1&page_token={t}"),
        };
        let resp = emu.raw(Method::GET, &path, Some(&emu.key), None).await;
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        token = resp
            .headers()
            .get("X-SkySQL-Page-Token-Next")
            .map(|v| v.to_str().unwrap().to_string());
        let page: Value = resp.json().await.unwrap();
        assert_eq!(page.as_array().map(Vec::len), Some(1), "{path}: {page}");
        seen.push(page[0].clone());
        if token.is_none() {
            break;
        }
        assert!(seen.len() <= all.len(), "the tokens loop");
    }
    assert_eq!(seen, all);
    for path in [
        "/provisioning/v1/regions?page_size=0",
        "/provisioning/v1/regions?page_size=101",
        "/provisioning/v1/regions?page_size=-1",
        "/provisioning/v1/regions?page_size=abc",
        "/provisioning/v1/regions?page_order=sideways",
        "/provisioning/v1/regions?page_token=garbage",
        "/provisioning/v1/sizes?page_size=0",
        "/provisioning/v1/versions?page_size=0",
        "/provisioning/v1/topologies?page_size=0",
        "/provisioning/v1/providers?page_size=0",
    ] {
        let (status, e) = emu.call(Method::GET, path, None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {e}");
        assert!(e["errors"][0]["message"].is_string(), "{path}: {e}");
    }
    // Descending order is the same list reversed.
    let (_, desc) = emu
        .call(
            Method::GET,
            "/provisioning/v1/regions?page_order=desc",
            None,
        )
        .await;
    let mut reversed = all.clone();
    reversed.reverse();
    assert_eq!(desc.as_array().unwrap(), &reversed);
}

/// Issue 30: every topology of the spec's enum is offered (and `standalone`, which SkySQL's
/// guide uses); a serverless topology belongs to `transactional_serverless`, and a create
/// that mixes the two is refused naming the field.
#[tokio::test]
async fn every_topology_of_the_spec_is_offered_with_its_service_type() {
    let emu = Emulator::api_only(0.0).await;
    let (_, all) = emu
        .call(Method::GET, "/provisioning/v1/topologies", None)
        .await;
    let names: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    for t in [
        "sa",
        "es-replica",
        "es-single",
        "serverless-standalone",
        "standalone",
    ] {
        assert!(names.contains(&t), "{t} in {names:?}");
    }
    let (_, serverless) = emu
        .call(
            Method::GET,
            "/provisioning/v1/topologies?service_type=transactional_serverless",
            None,
        )
        .await;
    let serverless: Vec<&str> = serverless
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(serverless, ["serverless-standalone"]);
    let body = |service_type: &str| {
        json!({
            "name": "serverless-one", "provider": "gcp", "region": "us-east4",
            "service_type": service_type, "topology": "serverless-standalone",
            "architecture": "amd64", "size": "sky-2x8", "nodes": 1, "storage": 100,
        })
    };
    let (status, e) = emu
        .call(
            Method::POST,
            "/provisioning/v1/services",
            Some(body("transactional")),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{e}");
    assert!(
        e["errors"][0]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("transactional_serverless"),
        "{e}"
    );
    let (status, created) = emu
        .call(
            Method::POST,
            "/provisioning/v1/services",
            Some(body("transactional_serverless")),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{created}");
    assert_eq!(created["topology"], "serverless-standalone");
    // SkySQL's own MCP server (skysqlinc/skysql-mcp, `launch_serverless_db`) sends no more
    // than this: no service_type (the spec declares no default), size, storage or version.
    // The service type follows from the topology.
    let (status, launched) = emu
        .call(
            Method::POST,
            "/provisioning/v1/services",
            Some(json!({
                "topology": "serverless-standalone", "provider": "azure",
                "region": "eastus", "name": "mcp-launched",
            })),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{launched}");
    assert_eq!(launched["service_type"], "transactional_serverless");
    assert_eq!(launched["region"], "eastus");
}

/// Issue 30: the request schemas the emulator validates bodies against are the published
/// spec's, generated from it; `SKYPLAN_UPDATE_SPEC=1` writes them again.
#[test]
fn the_emulators_request_schemas_are_the_published_specs() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/crates/skyplan-emulator/src/spec_requests.json"
    );
    let text =
        serde_json::to_string_pretty(&crate::support::spec::request_schemas()).unwrap() + "\n";
    if std::env::var_os("SKYPLAN_UPDATE_SPEC").is_some() {
        std::fs::write(path, &text).unwrap();
    }
    assert!(
        std::fs::read_to_string(path).unwrap_or_default() == text,
        "{path} is stale: run the test with SKYPLAN_UPDATE_SPEC=1"
    );
}

/// Issue 30's hand probes of the create route, refused as the spec's request schema and the
/// catalog refuse them, with nothing created: a storage size the catalog does not list, enums
/// outside the spec's, `null` where a string is due, trailing junk.
#[tokio::test]
async fn creates_skysql_would_refuse_are_refused_and_create_nothing() {
    let emu = Emulator::api_only(0.0).await;
    let base = || {
        json!({
            "name": "probe", "provider": "gcp", "region": "us-east4",
            "service_type": "transactional", "topology": "es-single",
            "architecture": "amd64", "size": "sky-2x8", "nodes": 1, "storage": 100,
        })
    };
    let cases: Vec<(&str, Value)> = vec![
        ("tenancy", json!("bogus")),
        ("volume_type", json!("floppy")),
        ("endpoint_mechanism", json!("carrier-pigeon")),
        ("size", Value::Null),
        ("version", Value::Null),
        ("storage", json!(150)),
        ("storage", json!(50)),
        ("storage", json!(1_000_000_000_000u64)),
    ];
    for (field, value) in cases {
        let mut body = base();
        body[field] = value.clone();
        let (status, e) = emu
            .call(Method::POST, "/provisioning/v1/services", Some(body))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{field}={value}: {e}");
        assert!(e["errors"][0]["message"].is_string(), "{e}");
    }
    let resp = emu
        .http
        .post(format!("{}/provisioning/v1/services", emu.base))
        .header("X-API-Key", &emu.key)
        .header("Content-Type", "application/json")
        .body(format!("{} junk", base()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let (_, listed) = emu
        .call(Method::GET, "/provisioning/v1/services", None)
        .await;
    assert_eq!(listed.as_array().map(Vec::len), Some(0), "{listed}");
}

/// Issue 30: the version a service reports is one `GET /provisioning/v1/versions` lists; by
/// default the release of the series the emulator's `mariadbd` runs.
#[tokio::test]
async fn a_created_service_reports_a_version_the_catalog_lists() {
    let emu = Emulator::api_only(0.0).await;
    let (_, versions) = emu
        .call(
            Method::GET,
            "/provisioning/v1/versions?topology=es-single",
            None,
        )
        .await;
    let listed: Vec<&str> = versions
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v["name"].as_str())
        .collect();
    let mut body = service_body("versioned");
    body.as_object_mut().unwrap().remove("version");
    let created = emu.create(body).await;
    let v = created["version"].as_str().unwrap();
    assert!(listed.contains(&v), "{v} in {listed:?}");
    assert!(
        v.starts_with(skyplan_emulator::catalog::SERVER_SERIES),
        "{v}"
    );
    let mut body = service_body("series");
    body["version"] = json!("11.4");
    let created = emu.create(body).await;
    assert_eq!(created["version"], "11.4.4-2");
}

/// What the conformance suite (`emulator_conformance`) found, each answered as the spec
/// declares: an unknown service on the allowlist's mutations and is-ip-allowed, and an
/// unknown region's zones, are 400 (those operations document no 404); the catalog's declared
/// filters `name` (providers, an enum) and `only_legacy` (topologies, a boolean) are checked,
/// as is the backup lists' `page` (at least 1).
#[tokio::test]
async fn statuses_and_parameters_the_conformance_suite_found() {
    let emu = Emulator::api_only(0.0).await;
    let unknown = "/provisioning/v1/services/dbpgf00000000/security";
    for (method, path, body) in [
        (Method::PUT, "allowlist", json!([{"ip": "10.0.0.1/32"}])),
        (
            Method::POST,
            "allowlist",
            json!({"ip_address": "10.0.0.1/32"}),
        ),
        (
            Method::DELETE,
            "allowlist",
            json!({"ip_address": "10.0.0.1/32"}),
        ),
        (
            Method::POST,
            "is-ip-allowed",
            json!({"ip_address": "10.0.0.1"}),
        ),
    ] {
        let path = format!("{unknown}/{path}");
        let (status, e) = conforming(&emu, method.clone(), &path, Some(body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{method} {path}: {e}");
        let msg = e["errors"][0]["message"].as_str().unwrap_or_default();
        assert!(msg.contains("dbpgf00000000 not found"), "{e}");
    }
    for path in [
        "/provisioning/v1/regions/mars-north1/zones",
        "/provisioning/v1/regions/us-west-2/zones?provider=gcp",
        "/provisioning/v1/providers?name=mars",
        "/provisioning/v1/providers?name=",
        "/provisioning/v1/topologies?only_legacy=maybe",
        "/provisioning/v1/topologies?only_legacy=TRUE",
        "/skybackup/v1/backups?page=0",
    ] {
        let (status, _) = conforming(&emu, Method::GET, path, None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}");
    }
    let (_, aws) = conforming(
        &emu,
        Method::GET,
        "/provisioning/v1/providers?name=aws",
        None,
    )
    .await;
    assert_eq!(aws.as_array().map(Vec::len), Some(1), "{aws}");
    assert_eq!(aws[0]["name"], "aws");
    let (_, legacy) = conforming(
        &emu,
        Method::GET,
        "/provisioning/v1/topologies?only_legacy=true",
        None,
    )
    .await;
    assert_eq!(legacy, json!([]), "the emulator offers no legacy topology");
    let (_, current) = conforming(
        &emu,
        Method::GET,
        "/provisioning/v1/topologies?only_legacy=false",
        None,
    )
    .await;
    assert!(
        current.as_array().is_some_and(|t| !t.is_empty()),
        "{current}"
    );
}
