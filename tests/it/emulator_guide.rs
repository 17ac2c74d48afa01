//! Walks the manual guide (`setup-global-replication.md`) by hand against the emulator, with
//! plain HTTP and the MySQL protocol only: two services, allowlist, backup of the primary,
//! restore into the secondary, `sky.change_external_primary_gtid` at the backup's GTID, the
//! returned grant run on the primary, `sky.start_replication()` — and a row inserted on the
//! primary arrives on the secondary.
//!
//! It is also the conformance test: every HTTP response of that sequence passes through
//! [`Emulator::call`], which checks its status code and body against the full public spec's
//! declared responses (`support::spec::assert_conforms`, `$ref`s resolved).

use std::path::Path;
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder, Row, SslOpts};
use reqwest::StatusCode;
use serde_json::{json, Value};
use skyplan_emulator::{self as emulator, RunningEmulator, ServeOptions};

use crate::support::spec::{assert_conforms, conformance, path_template};

/// The emulator under test, in this process, on its own temp dir. Dropping it (also on panic)
/// stops the API and kills every mariadbd it started.
struct Emulator {
    running: Option<RunningEmulator>,
    dir: tempfile::TempDir,
    http: reqwest::Client,
    base: String,
    key: String,
}

impl Emulator {
    async fn start() -> Emulator {
        let dir = tempfile::tempdir().unwrap();
        let opts = ServeOptions {
            op_seconds: 0.2,
            ..ServeOptions::new(dir.path().to_path_buf())
        };
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

    /// The one place every response passes: each is checked against the full spec.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .header("X-API-Key", &self.key);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        assert_conforms(method.as_str(), path, status.as_u16(), &text);
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn ok(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let (status, value) = self.call(method.clone(), path, body).await;
        assert!(status.is_success(), "{method} {path}: {status} {value}");
        value
    }

    async fn wait_for(&self, path: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            let value = self.ok(reqwest::Method::GET, path, None).await;
            if done(&value) {
                return value;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {value}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn wait_ready(&self, id: &str) -> Value {
        let svc = self
            .wait_for(&format!("/provisioning/v1/services/{id}"), "ready", |v| {
                v["status"] != "pending_create" && v["status"] != "pending_modifying"
            })
            .await;
        assert_eq!(svc["status"], "ready", "{svc}");
        svc
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        drop(self.running.take());
        emulator::kill_strays(self.dir.path());
    }
}

fn readwrite_port(svc: &Value) -> u16 {
    let ports = svc["endpoints"][0]["ports"].as_array().unwrap();
    let rw = ports.iter().find(|p| p["name"] == "readwrite").unwrap();
    rw["port"].as_u64().unwrap() as u16
}

/// A TLS connection verified against the emulator CA, as a careful operator would make it.
async fn connect(host: &str, port: u16, user: &str, password: &str, ca: &Path) -> Conn {
    let pem = std::fs::read(ca).unwrap();
    let opts = OptsBuilder::default()
        .ip_or_hostname(host)
        .tcp_port(port)
        .user(Some(user))
        .pass(Some(password))
        .prefer_socket(false)
        .ssl_opts(SslOpts::default().with_root_certs(vec![pem.into()]));
    Conn::new(opts).await.expect("connect")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_manual_guide_works_against_the_emulator() {
    use reqwest::Method;
    let emu = Emulator::start().await;
    let ca = emu.running.as_ref().unwrap().info().ca_cert.clone();

    // Step 2: launch two services (the guide's bodies).
    let mut ids = Vec::new();
    for (name, region) in [
        ("skysql-primary", "us-east4"),
        ("skysql-secondary", "us-west1"),
    ] {
        let body = json!({
            "service_type": "transactional", "topology": "standalone", "provider": "gcp",
            "region": region, "architecture": "amd64", "size": "sky-2x8", "storage": 100,
            "nodes": 1, "name": name, "ssl_enabled": true
        });
        let (status, svc) = emu
            .call(Method::POST, "/provisioning/v1/services", Some(body))
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{svc}");
        assert_eq!(svc["status"], "pending_create");
        ids.push(svc["id"].as_str().unwrap().to_string());
    }
    let (primary_id, secondary_id) = (ids[0].clone(), ids[1].clone());
    let primary = emu.wait_ready(&primary_id).await;
    let secondary = emu.wait_ready(&secondary_id).await;
    let (primary_host, primary_port) =
        (primary["fqdn"].as_str().unwrap(), readwrite_port(&primary));
    let secondary_port = readwrite_port(&secondary);

    // New services allow nothing; the operator adds its own address (the portal step).
    for id in [&primary_id, &secondary_id] {
        let path = format!("/provisioning/v1/services/{id}/security/allowlist");
        emu.ok(
            Method::POST,
            &path,
            Some(json!({"ip_address": "127.0.0.1/32"})),
        )
        .await;
    }
    let creds = |id: String| {
        let emu = &emu;
        async move {
            emu.ok(
                Method::GET,
                &format!("/provisioning/v1/services/{id}/security/credentials"),
                None,
            )
            .await
        }
    };
    let primary_creds = creds(primary_id.clone()).await;
    let (p_user, p_pass) = (
        primary_creds["username"].as_str().unwrap().to_string(),
        primary_creds["password"].as_str().unwrap().to_string(),
    );

    // The primary holds data before the backup.
    let mut p = connect(primary_host, primary_port, &p_user, &p_pass, &ca).await;
    p.query_drop("CREATE DATABASE app").await.unwrap();
    p.query_drop("CREATE TABLE app.t (id INT PRIMARY KEY, note VARCHAR(40))")
        .await
        .unwrap();
    p.query_drop("INSERT INTO app.t VALUES (1, 'before the backup')")
        .await
        .unwrap();

    // Step 3: one-off full backup, found in the list and waited for.
    let schedule = emu
        .ok(
            Method::POST,
            "/skybackup/v1/backups/schedules",
            Some(json!({"backup_type": "full", "schedule": "once", "service_id": primary_id})),
        )
        .await;
    assert!(schedule["id"].is_i64(), "{schedule}");
    let backups = emu
        .wait_for(
            &format!("/skybackup/v1/backups?service_id={primary_id}"),
            "a succeeded backup",
            |v| v["backups"][0]["status"] == "Succeeded" || v["backups"][0]["status"] == "Failed",
        )
        .await;
    let backup = &backups["backups"][0];
    assert_eq!(backup["status"], "Succeeded", "{backup}");
    let gtid = backup["binlog_gtid_position"].as_str().unwrap().to_string();
    assert!(!gtid.is_empty(), "{backup}");

    // A write after the backup: replication from the backup's GTID must bring it over.
    p.query_drop("INSERT INTO app.t VALUES (2, 'after the backup')")
        .await
        .unwrap();

    // Restore into the secondary; afterwards only the primary's credentials work there.
    let restore = emu
        .ok(
            Method::POST,
            "/skybackup/v1/restores",
            Some(json!({"id": backup["id"], "service_id": secondary_id})),
        )
        .await;
    let restore_id = restore["id"].as_i64().unwrap();
    let done = emu
        .wait_for(
            &format!("/skybackup/v1/restores/{restore_id}"),
            "the restore",
            |v| v["status"] == "Succeeded" || v["status"] == "Failed",
        )
        .await;
    assert_eq!(done["status"], "Succeeded", "{done}");
    emu.wait_ready(&secondary_id).await;
    let secondary_creds = creds(secondary_id.clone()).await;
    assert_eq!(secondary_creds["username"], p_user.as_str());

    // Step 4.1: the secondary's outbound IP on the primary's allowlist.
    let outbound = secondary["outbound_ips"][0].as_str().unwrap();
    emu.ok(
        Method::POST,
        &format!("/provisioning/v1/services/{primary_id}/security/allowlist"),
        Some(json!({"ip_address": format!("{outbound}/32")})),
    )
    .await;

    // Step 4.2: configure replication at the backup's GTID; run the grant on the primary.
    let mut s = connect(primary_host, secondary_port, &p_user, &p_pass, &ca).await;
    let rows: Vec<Row> = s
        .exec(
            "CALL sky.change_external_primary_gtid(?, ?, ?, ?)",
            (primary_host, primary_port, &gtid, true),
        )
        .await
        .unwrap();
    let grant: String = rows[0]
        .get_opt("Run_this_grant_on_your_external_primary")
        .expect("the grant column")
        .unwrap();
    assert!(grant.starts_with("GRANT REPLICATION SLAVE"), "{grant}");
    p.query_drop(grant).await.unwrap();

    // Step 4.3: start replication and check it.
    s.query_drop("CALL sky.start_replication()").await.unwrap();
    p.query_drop("INSERT INTO app.t VALUES (3, 'while replicating')")
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ids: Vec<i32> = s.query("SELECT id FROM app.t ORDER BY id").await.unwrap();
        if ids == [1, 2, 3] {
            break;
        }
        if Instant::now() > deadline {
            let status: Vec<Row> = s.query("CALL sky.replication_status()").await.unwrap();
            let io_error: Option<String> = status.first().and_then(|r| r.get("Last_IO_Error"));
            panic!("rows on the secondary: {ids:?}; Last_IO_Error: {io_error:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let status: Vec<Row> = s.query("CALL sky.replication_status()").await.unwrap();
    let io: String = status[0].get("Slave_IO_Running").unwrap();
    let sql: String = status[0].get("Slave_SQL_Running").unwrap();
    assert_eq!((io.as_str(), sql.as_str()), ("Yes", "Yes"));
    let ssl: String = status[0].get("Master_SSL_Allowed").unwrap();
    assert_eq!(ssl, "Yes", "replication runs over TLS");
    drop(p);
    drop(s);
}

// ---------------------------------------------------------------------------------------------
// The conformance checker itself: it must be able to fail, or the walk above proves nothing.

#[test]
fn the_conformance_check_matches_literal_segments_before_templated_ones() {
    for (concrete, template) in [
        (
            "/skybackup/v1/backups/schedules",
            "/skybackup/v1/backups/schedules",
        ),
        (
            "/skybackup/v1/backups/dbx",
            "/skybackup/v1/backups/{service_id}",
        ),
        (
            "/skybackup/v1/restores/lookup",
            "/skybackup/v1/restores/lookup",
        ),
        ("/skybackup/v1/restores/7", "/skybackup/v1/restores/{id}"),
        (
            "/provisioning/v1/services/dbx/start",
            "/provisioning/v1/services/{service_id}/start",
        ),
        (
            "/skybackup/v1/backups?service_id=dbx&page_size=5",
            "/skybackup/v1/backups",
        ),
    ] {
        assert_eq!(path_template(concrete), Ok(template), "{concrete}");
    }
    let err = path_template("/provisioning/v1/nowhere").unwrap_err();
    assert!(err.contains("no path of the spec matches"), "{err}");
    // A templated segment never matches an empty one.
    assert!(path_template("/provisioning/v1/services//start").is_err());
}

#[test]
fn the_conformance_check_accepts_declared_responses() {
    let ok = |method, path, status, body| {
        conformance(method, path, status, body)
            .unwrap_or_else(|e| panic!("{method} {path} {status}: {e}"))
    };
    assert_eq!(
        ok(
            "GET",
            "/provisioning/v1/services/dbx",
            200,
            r#"{"id": "dbx", "nodes": 1}"#
        ),
        "GET /provisioning/v1/services/{service_id}"
    );
    ok(
        "POST",
        "/provisioning/v1/services/dbx/security/allowlist",
        200,
        r#"[{"name": "primary", "allow_list": [{"ip": "127.0.0.1/32"}]}]"#,
    );
    ok(
        "GET",
        "/skybackup/v1/backups?service_id=dbx",
        404,
        r#"{"code": 404, "errors": [{"error": "Not Found", "message": "no"}]}"#,
    );
    // Declared without content: an empty body.
    ok("DELETE", "/provisioning/v1/services/dbx", 200, "");
}

#[test]
fn the_conformance_check_rejects_what_the_spec_does_not_declare() {
    let err = |method, path, status, body| {
        conformance(method, path, status, body)
            .expect_err(&format!("{method} {path} {status} {body} must not conform"))
    };
    let service = r#"{"id": "dbx"}"#;
    let services = "/provisioning/v1/services/dbx";
    // A status the operation does not declare (GET a service: 200, 400, 401, 404, 500).
    let e = err("GET", services, 201, service);
    assert!(e.contains("status 201 is not among"), "{e}");
    let e = err("GET", services, 503, service);
    assert!(e.contains("status 503 is not among"), "{e}");
    // A method the path does not declare.
    let e = err("PATCH", services, 200, service);
    assert!(e.contains("declares no such operation"), "{e}");
    // A field of the wrong type, at the top and behind `items` → `$ref`.
    let e = err("GET", services, 200, r#"{"id": "dbx", "nodes": "one"}"#);
    assert!(e.contains("does not match the declared schema"), "{e}");
    assert!(e.contains("/nodes"), "{e}");
    let e = err(
        "GET",
        "/skybackup/v1/backups?service_id=dbx",
        200,
        r#"{"backups": [{"storage_bytes": "many"}]}"#,
    );
    assert!(e.contains("/backups/0/storage_bytes"), "{e}");
    // An object where an array is declared; a null where an object is.
    err(
        "POST",
        "/provisioning/v1/services/dbx/security/allowlist",
        200,
        r#"{"name": "primary"}"#,
    );
    err("GET", services, 200, "null");
    // Not JSON where JSON is declared; a body where none is declared.
    let e = err("GET", services, 200, "ready");
    assert!(e.contains("not JSON"), "{e}");
    let e = err("DELETE", services, 200, r#"{"deleted": true}"#);
    assert!(e.contains("declares no body"), "{e}");
}

#[test]
#[should_panic(expected = "does not conform to the spec")]
fn the_conformance_assertion_panics_on_a_wrong_shape() {
    assert_conforms(
        "POST",
        "/skybackup/v1/restores",
        200,
        r#"{"id": "7", "status": "Pending"}"#,
    );
}
