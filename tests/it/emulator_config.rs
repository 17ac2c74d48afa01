//! The emulator's Configuration Manager: every endpoint answers per the full spec (status
//! codes it documents, bodies of its schemas) with API-only emulators; then with real MariaDB,
//! an attached configuration's values are what the server runs with after each start (stop +
//! start, emulator restart, restore), `read_only = ON` included, which the emulator's own
//! setup SQL must live with.
//!
//! Every emulator and server here has its own temp dir and ports, and is stopped (its
//! mariadbd killed) on drop, also when the test panics.

use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use skyplan_emulator::mariadb::{Binaries, Instance, InstanceConfig, ServerVariables};
use skyplan_emulator::{self as emulator, RunningEmulator, ServeOptions};

use crate::support::free_port;
use crate::support::spec::assert_conforms;

// ---------------------------------------------------------------------------------------------
// Harness

/// An emulator in this process on its own temp dir; dropping it stops the API and kills every
/// mariadbd it started.
struct Emulator {
    running: Option<RunningEmulator>,
    dir: tempfile::TempDir,
    http: reqwest::Client,
    base: String,
    key: String,
    opts: ServeOptions,
}

impl Emulator {
    async fn new(no_mariadb: bool) -> Emulator {
        let dir = tempfile::tempdir().unwrap();
        let opts = ServeOptions {
            op_seconds: 0.1,
            no_mariadb,
            ..ServeOptions::new(dir.path().to_path_buf())
        };
        let running = emulator::start(opts.clone())
            .await
            .expect("emulator starts");
        Emulator {
            base: running.info().endpoint.clone(),
            key: running.info().api_key.clone(),
            running: Some(running),
            dir,
            http: reqwest::Client::new(),
            opts,
        }
    }

    /// `emulator stop` + `emulator start`: every database stopped, then a new emulator on the
    /// same directory.
    async fn restart(&mut self) {
        self.running.take().unwrap().shutdown(true).await;
        let running = emulator::start(self.opts.clone())
            .await
            .expect("emulator restarts");
        self.base = running.info().endpoint.clone();
        self.running = Some(running);
    }

    /// Status and body of a request, after checking both against the full spec.
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .header("X-API-Key", &self.key);
        if let Some(body) = body {
            req = req.json(&body);
        }
        self.send(method, path, req).await
    }

    /// As [`Emulator::call`], with a body sent as is (not JSON-encoded).
    async fn call_raw(&self, method: Method, path: &str, body: &str) -> (StatusCode, Value) {
        let req = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .header("X-API-Key", &self.key)
            .header("content-type", "application/json")
            .body(body.to_string());
        self.send(method, path, req).await
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        req: reqwest::RequestBuilder,
    ) -> (StatusCode, Value) {
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        assert_conforms(method.as_str(), path, status.as_u16(), &text);
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// A request that must answer `status`; its body.
    async fn expect(
        &self,
        status: StatusCode,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Value {
        let (got, value) = self.call(method.clone(), path, body).await;
        assert_eq!(got, status, "{method} {path}: {value}");
        value
    }

    /// A request that must be refused with `status`, with `words` in its message.
    async fn refused(
        &self,
        status: StatusCode,
        method: Method,
        path: &str,
        body: Option<Value>,
        words: &str,
    ) {
        let err = self.expect(status, method.clone(), path, body).await;
        let message = err["errors"][0]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(words),
            "{method} {path}: {words:?} in {err}"
        );
    }

    async fn create_service(&self, name: &str, topology: &str) -> String {
        let body = json!({
            "service_type": "transactional", "topology": topology, "provider": "gcp",
            "region": "us-east4", "architecture": "amd64", "size": "sky-2x8", "storage": 100,
            "nodes": 1, "name": name, "ssl_enabled": true, "version": "11.4",
            "allow_list": [{"ip": "127.0.0.1/32"}]
        });
        let svc = self
            .expect(
                StatusCode::ACCEPTED,
                Method::POST,
                "/provisioning/v1/services",
                Some(body),
            )
            .await;
        let id = svc["id"].as_str().unwrap().to_string();
        assert_eq!(self.wait_settled(&id).await["status"], "ready");
        id
    }

    async fn create_config(&self, name: &str, topology: &str) -> String {
        let body = json!({"name": name, "topology_id": topology, "version_id": "11.4"});
        let cfg = self
            .expect(
                StatusCode::ACCEPTED,
                Method::POST,
                "/provisioning/v1/configs",
                Some(body),
            )
            .await;
        cfg["id"].as_str().unwrap().to_string()
    }

    async fn set(&self, config: &str, variable: &str, value: &str) {
        self.expect(
            StatusCode::NO_CONTENT,
            Method::POST,
            &format!("/provisioning/v1/configs/{config}/values/{variable}"),
            Some(json!({ "value": value })),
        )
        .await;
    }

    async fn service(&self, id: &str) -> Value {
        self.expect(
            StatusCode::OK,
            Method::GET,
            &format!("/provisioning/v1/services/{id}"),
            None,
        )
        .await
    }

    async fn wait_settled(&self, id: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            let svc = self.service(id).await;
            if !svc["status"].as_str().unwrap().starts_with("pending_") {
                return svc;
            }
            assert!(Instant::now() < deadline, "never settled: {svc}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `POST …/stop` then `POST …/start`, each waited for.
    async fn stop_and_start(&self, id: &str) {
        for (verb, settled) in [("stop", "stopped"), ("start", "ready")] {
            let path = format!("/provisioning/v1/services/{id}/{verb}");
            self.expect(StatusCode::OK, Method::POST, &path, None).await;
            assert_eq!(self.wait_settled(id).await["status"], settled);
        }
    }

    /// A TCP session through the service's published endpoint, with its credentials.
    async fn sql(&self, id: &str) -> Conn {
        let svc = self.service(id).await;
        let port = svc["endpoints"][0]["ports"][0]["port"].as_u64().unwrap() as u16;
        let creds = self
            .expect(
                StatusCode::OK,
                Method::GET,
                &format!("/provisioning/v1/services/{id}/security/credentials"),
                None,
            )
            .await;
        let opts = OptsBuilder::default()
            .ip_or_hostname("127.0.0.1")
            .tcp_port(port)
            .user(creds["username"].as_str())
            .pass(creds["password"].as_str())
            .prefer_socket(false);
        Conn::new(opts).await.expect("the service answers")
    }

    /// `(@@max_connections, @@read_only)` of the running server.
    async fn settings(&self, id: &str) -> (u64, u64) {
        let mut c = self.sql(id).await;
        c.query_first("SELECT @@max_connections, @@read_only")
            .await
            .unwrap()
            .unwrap()
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        drop(self.running.take());
        emulator::kill_strays(self.dir.path());
    }
}

const CONFIGS: &str = "/provisioning/v1/configs";

fn message(err: &Value) -> &str {
    err["errors"][0]["message"].as_str().unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// API-only

#[tokio::test]
async fn the_catalog_lists_each_topologys_variables_page_by_page() {
    let emu = Emulator::new(true).await;
    let path = "/provisioning/v1/topologies/es-replica/configs";
    let all = emu.expect(StatusCode::OK, Method::GET, path, None).await;
    let keys = all.as_array().unwrap();
    assert!(keys.len() >= 20, "{all}");
    let key = |name: &str| keys.iter().find(|k| k["name"] == name).cloned().unwrap();
    let read_only = key("read_only");
    assert_eq!(
        (&read_only["readonly"], &read_only["requires_restart"]),
        (&json!(false), &json!(false))
    );
    assert_eq!(read_only["allowed_values"], json!(["ON", "OFF"]));
    let max = key("max_connections");
    assert_eq!(
        (&max["minimum_value"], &max["maximum_value"]),
        (&json!("10"), &json!("100000"))
    );
    assert_eq!(
        (&max["component"], &max["config_section"]),
        (&json!("server"), &json!("mysqld"))
    );
    assert!(max["documentation_url"]
        .as_str()
        .unwrap()
        .starts_with("https://mariadb.com/kb/en/"));
    assert_eq!(key("innodb_buffer_pool_size")["requires_restart"], true);
    assert_eq!(key("server_id")["readonly"], true);

    // Pages of 7, both ways, with the spec's tokens; same list for every topology and version.
    for order in ["asc", "desc"] {
        let mut seen = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut url = format!("{path}?page_size=7&page_order={order}&version=11.4.4-2");
            if let Some(t) = &token {
                url.push_str(&format!("&page_token={t}"));
            }
            let resp = emu
                .http
                .get(format!("{}{url}", emu.base))
                .header("X-API-Key", &emu.key)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), StatusCode::OK);
            token = resp
                .headers()
                .get("X-SkySQL-Page-Token-Next")
                .map(|v| v.to_str().unwrap().to_string());
            let page: Vec<Value> = resp.json().await.unwrap();
            assert!(page.len() <= 7);
            seen.extend(page);
            if token.is_none() {
                break;
            }
        }
        if order == "desc" {
            seen.reverse();
        }
        assert_eq!(&seen, keys, "{order}");
    }
    let galera = emu
        .expect(
            StatusCode::OK,
            Method::GET,
            "/provisioning/v1/topologies/galera/configs",
            None,
        )
        .await;
    assert_eq!(&galera, &all);

    // Unknown topology or version, bad paging: 400 (the operation documents no 404).
    for (url, words) in [
        (
            "/provisioning/v1/topologies/es-replca/configs",
            "did you mean \"es-replica\"",
        ),
        (
            "/provisioning/v1/topologies/es-replica/configs?version=9.9",
            "not offered",
        ),
        (
            "/provisioning/v1/topologies/es-replica/configs?page_size=101",
            "page_size",
        ),
        (
            "/provisioning/v1/topologies/es-replica/configs?page_order=up",
            "page_order",
        ),
        (
            "/provisioning/v1/topologies/es-replica/configs?page_token=zz",
            "page_token",
        ),
    ] {
        emu.refused(StatusCode::BAD_REQUEST, Method::GET, url, None, words)
            .await;
    }
}

#[tokio::test]
async fn configurations_are_created_named_listed_and_deleted_per_spec() {
    let emu = Emulator::new(true).await;
    let created = emu
        .expect(
            StatusCode::ACCEPTED,
            Method::POST,
            CONFIGS,
            Some(json!({"name": "replica fences", "topology_id": "es-replica", "version_id": "11.4"})),
        )
        .await;
    let id = created["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("cfg"), "{created}");
    assert_eq!(created["topology_id"], "es-replica");
    assert_eq!(created["version_id"], "es-replica-11.4.4-2");
    assert_eq!(created["services"], json!([]));
    // The version id /versions publishes is accepted too.
    let other = emu
        .expect(
            StatusCode::ACCEPTED,
            Method::POST,
            CONFIGS,
            Some(json!({"name": "other", "topology_id": "es-replica", "version_id": "es-replica-10.6.20-16"})),
        )
        .await;
    let other_id = other["id"].as_str().unwrap().to_string();

    let bad = |body: Value, words: &'static str| (body, words);
    for (body, words) in [
        bad(
            json!({"name": "replica fences", "topology_id": "es-replica", "version_id": "11.4"}),
            "already exists",
        ),
        bad(
            json!({"name": "", "topology_id": "es-replica", "version_id": "11.4"}),
            "name is required",
        ),
        bad(
            json!({"name": "x".repeat(101), "topology_id": "es-replica", "version_id": "11.4"}),
            "name is required",
        ),
        bad(
            json!({"name": "a\nb", "topology_id": "es-replica", "version_id": "11.4"}),
            "control",
        ),
        bad(
            json!({"name": "t", "topology_id": "es-replca", "version_id": "11.4"}),
            "did you mean \"es-replica\"",
        ),
        bad(
            json!({"name": "t", "topology_id": "es-replica", "version_id": "11.4.4-3"}),
            "did you mean \"11.4.4-2\"",
        ),
        bad(
            json!({"name": "t", "topology_id": "es-replica", "version_id": "galera-11.4.4-2"}),
            "a version of topology galera",
        ),
        bad(
            json!({"name": "t", "topology_id": "es-replica", "version_id": ""}),
            "version_id is required",
        ),
        bad(
            json!({"name": "t", "topology_id": "es-replica"}),
            "missing field `version_id`",
        ),
        bad(
            json!({"name": "t", "topology_id": "es-replica", "version_id": "11.4", "public": true}),
            "unknown field \"public\"",
        ),
        bad(
            json!({"name": 7, "topology_id": "es-replica", "version_id": "11.4"}),
            "invalid type",
        ),
        bad(json!(["t", "es-replica", "11.4"]), "must be a JSON object"),
    ] {
        emu.refused(
            StatusCode::BAD_REQUEST,
            Method::POST,
            CONFIGS,
            Some(body),
            words,
        )
        .await;
    }
    let (status, e) = emu
        .call_raw(
            Method::POST,
            CONFIGS,
            r#"{"name":"t","topology_id":"es-replica","version_id":"11.4"} junk"#,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{e}");

    // Listed in creation order, page by page.
    let resp = emu
        .http
        .get(format!(
            "{}{CONFIGS}?page_size=1&include_default=true",
            emu.base
        ))
        .header("X-API-Key", &emu.key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let next = resp.headers()["X-SkySQL-Page-Token-Next"]
        .to_str()
        .unwrap()
        .to_string();
    let page: Vec<Value> = resp.json().await.unwrap();
    assert_eq!(page[0]["id"], id.as_str());
    let page = emu
        .expect(
            StatusCode::OK,
            Method::GET,
            &format!("{CONFIGS}?page_size=1&page_token={next}"),
            None,
        )
        .await;
    assert_eq!(page[0]["id"], other_id.as_str());
    let all = emu
        .expect(
            StatusCode::OK,
            Method::GET,
            &format!("{CONFIGS}?page_order=desc"),
            None,
        )
        .await;
    assert_eq!(all[0]["id"], other_id.as_str());
    emu.refused(
        StatusCode::BAD_REQUEST,
        Method::GET,
        &format!("{CONFIGS}?include_default=maybe"),
        None,
        "",
    )
    .await;

    // Rename (204): unique names still; unknown is 404 here.
    let one = format!("{CONFIGS}/{id}");
    emu.expect(
        StatusCode::NO_CONTENT,
        Method::PATCH,
        &one,
        Some(json!({"name": "fences"})),
    )
    .await;
    assert_eq!(
        emu.expect(StatusCode::OK, Method::GET, &one, None).await["name"],
        "fences"
    );
    emu.refused(
        StatusCode::BAD_REQUEST,
        Method::PATCH,
        &one,
        Some(json!({"name": "other"})),
        "already exists",
    )
    .await;
    emu.refused(
        StatusCode::NOT_FOUND,
        Method::PATCH,
        &format!("{CONFIGS}/cfg00000000"),
        Some(json!({"name": "x"})),
        "not found",
    )
    .await;

    // Delete (200), then it is gone: GET documents no 404, so 400 there; DELETE says 404.
    emu.expect(
        StatusCode::OK,
        Method::DELETE,
        &format!("{CONFIGS}/{other_id}"),
        None,
    )
    .await;
    emu.refused(
        StatusCode::BAD_REQUEST,
        Method::GET,
        &format!("{CONFIGS}/{other_id}"),
        None,
        "not found",
    )
    .await;
    emu.refused(
        StatusCode::NOT_FOUND,
        Method::DELETE,
        &format!("{CONFIGS}/{other_id}"),
        None,
        "not found",
    )
    .await;
}

#[tokio::test]
async fn values_are_checked_against_the_catalog_and_stored_normalised() {
    let emu = Emulator::new(true).await;
    let id = emu.create_config("values", "es-replica").await;
    let values = format!("{CONFIGS}/{id}/values");
    emu.set(&id, "max_connections", "321").await;
    emu.set(&id, "read_only", "true").await;
    emu.set(&id, "max_allowed_packet", "64m").await;
    emu.set(&id, "character_set_server", "UTF8MB4").await;
    let got = emu
        .expect(StatusCode::ACCEPTED, Method::GET, &values, None)
        .await;
    assert_eq!(
        got,
        json!([
            {"config_key_id": "server-character_set_server", "selected_values": ["utf8mb4"]},
            {"config_key_id": "server-max_allowed_packet", "selected_values": ["64M"]},
            {"config_key_id": "server-max_connections", "selected_values": ["321"]},
            {"config_key_id": "server-read_only", "selected_values": ["ON"]},
        ])
    );

    let one = |var: &str| format!("{values}/{var}");
    for (var, body, words) in [
        (
            "max_connections",
            json!({"value": "9"}),
            "between 10 and 100000",
        ),
        (
            "max_connections",
            json!({"value": "lots"}),
            "takes an integer",
        ),
        (
            "max_conections",
            json!({"value": "5"}),
            "did you mean \"max_connections\"",
        ),
        ("server_id", json!({"value": "5"}), "read-only"),
        ("read_only", json!({"value": "maybe"}), "ON or OFF"),
        ("event_scheduler", json!({"value": "sometimes"}), "one of"),
        ("max_connections", json!({"value": 321}), "invalid type"),
        ("max_connections", json!({"value": null}), "invalid type"),
        ("max_connections", json!({}), "missing field `value`"),
        (
            "max_connections",
            json!({"value": "1", "vaule": "2"}),
            "unknown field \"vaule\"",
        ),
        ("max_connections", json!(["321"]), "must be a JSON object"),
    ] {
        emu.refused(
            StatusCode::BAD_REQUEST,
            Method::POST,
            &one(var),
            Some(body),
            words,
        )
        .await;
    }
    let missing = format!("{CONFIGS}/cfg00000000/values");
    emu.refused(
        StatusCode::NOT_FOUND,
        Method::POST,
        &format!("{missing}/max_connections"),
        Some(json!({"value": "100"})),
        "not found",
    )
    .await;
    emu.refused(
        StatusCode::NOT_FOUND,
        Method::GET,
        &missing,
        None,
        "not found",
    )
    .await;

    // A batch replaces every value at once, or nothing when one entry is wrong.
    let batch = json!([
        {"config_key_id": "server-max_connections", "selected_values": ["500"]},
        {"config_key_id": "server-read_only", "selected_values": ["0"]},
    ]);
    let replaced = emu
        .expect(StatusCode::ACCEPTED, Method::PUT, &values, Some(batch))
        .await;
    assert_eq!(
        replaced,
        json!([
            {"config_key_id": "server-max_connections", "selected_values": ["500"]},
            {"config_key_id": "server-read_only", "selected_values": ["OFF"]},
        ])
    );
    for (batch, words) in [
        (
            json!([{"config_key_id": "max_connections", "selected_values": ["5"]}]),
            "its key id is \"server-max_connections\"",
        ),
        (
            json!([{"config_key_id": "server-max_connections", "selected_values": []}]),
            "exactly one value",
        ),
        (
            json!([
                {"config_key_id": "server-wait_timeout", "selected_values": ["60"]},
                {"config_key_id": "server-max_connections", "selected_values": ["5"]},
            ]),
            "between 10",
        ),
        (
            json!([
                {"config_key_id": "server-wait_timeout", "selected_values": ["60"]},
                {"config_key_id": "server-wait_timeout", "selected_values": ["61"]},
            ]),
            "twice",
        ),
        (
            json!([{"config_key_id": "server-port", "selected_values": ["1"]}]),
            "read-only",
        ),
        (
            json!([{"config_key_id": "server-max_connections", "selected_values": ["50"], "x": 1}]),
            "unknown field \"x\"",
        ),
        (
            json!({"config_key_id": "server-max_connections"}),
            "JSON array",
        ),
    ] {
        emu.refused(
            StatusCode::BAD_REQUEST,
            Method::PUT,
            &values,
            Some(batch),
            words,
        )
        .await;
    }
    assert_eq!(
        emu.expect(StatusCode::ACCEPTED, Method::GET, &values, None)
            .await,
        replaced,
        "a refused batch changed nothing"
    );
    emu.refused(
        StatusCode::NOT_FOUND,
        Method::PUT,
        &missing,
        Some(json!([])),
        "not found",
    )
    .await;

    // Unset (204), idempotent; unknown variable 400, unknown configuration 404.
    for _ in 0..2 {
        emu.expect(
            StatusCode::NO_CONTENT,
            Method::DELETE,
            &one("read_only"),
            None,
        )
        .await;
    }
    emu.refused(
        StatusCode::BAD_REQUEST,
        Method::DELETE,
        &one("no_such_variable"),
        None,
        "not a configurable variable",
    )
    .await;
    emu.refused(
        StatusCode::NOT_FOUND,
        Method::DELETE,
        &format!("{missing}/read_only"),
        None,
        "not found",
    )
    .await;
    let left = emu
        .expect(StatusCode::ACCEPTED, Method::GET, &values, None)
        .await;
    assert_eq!(left.as_array().unwrap().len(), 1, "{left}");
}

#[tokio::test]
async fn a_configuration_is_attached_to_services_of_its_topology() {
    let emu = Emulator::new(true).await;
    let svc = emu.create_service("attached", "es-replica").await;
    let cfg = emu.create_config("for replicas", "es-replica").await;
    let single = emu.create_config("for singles", "es-single").await;
    let attach = format!("/provisioning/v1/services/{svc}/config");

    let (status, err) = emu
        .call(
            Method::POST,
            &attach,
            Some(json!({"config_id": single.clone()})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
    assert!(message(&err).contains("for topology es-single"), "{err}");
    for (path, body, status, words) in [
        (
            attach.clone(),
            json!({"config_id": "cfg00000000"}),
            StatusCode::NOT_FOUND,
            "configuration cfg00000000 not found",
        ),
        (
            "/provisioning/v1/services/dbpgf00000000/config".to_string(),
            json!({"config_id": cfg.clone()}),
            StatusCode::NOT_FOUND,
            "service dbpgf00000000 not found",
        ),
        (
            attach.clone(),
            json!({}),
            StatusCode::BAD_REQUEST,
            "config_id is required",
        ),
        (
            attach.clone(),
            json!({"config_id": cfg.clone(), "restart": true}),
            StatusCode::BAD_REQUEST,
            "unknown field \"restart\"",
        ),
    ] {
        emu.refused(status, Method::POST, &path, Some(body), words)
            .await;
    }

    let state = emu
        .expect(
            StatusCode::ACCEPTED,
            Method::POST,
            &attach,
            Some(json!({"config_id": cfg.clone()})),
        )
        .await;
    assert_eq!(state, json!({"config_id": cfg.clone()}));
    assert_eq!(emu.service(&svc).await["config_id"], cfg.as_str());
    let one = format!("{CONFIGS}/{cfg}");
    assert_eq!(
        emu.expect(StatusCode::OK, Method::GET, &one, None).await["services"],
        json!([svc.clone()])
    );
    emu.refused(
        StatusCode::BAD_REQUEST,
        Method::DELETE,
        &one,
        None,
        "detach it first",
    )
    .await;

    // Detach (202, answering the one detached); again is no error.
    let detached = emu
        .expect(StatusCode::ACCEPTED, Method::DELETE, &attach, None)
        .await;
    assert_eq!(detached, json!({"config_id": cfg.clone()}));
    let again = emu
        .expect(StatusCode::ACCEPTED, Method::DELETE, &attach, None)
        .await;
    assert_eq!(again, json!({"config_id": ""}));
    assert!(emu.service(&svc).await.get("config_id").is_none());
    emu.refused(
        StatusCode::NOT_FOUND,
        Method::DELETE,
        "/provisioning/v1/services/dbpgf00000000/config",
        None,
        "not found",
    )
    .await;
    emu.expect(StatusCode::OK, Method::DELETE, &one, None).await;
}

// ---------------------------------------------------------------------------------------------
// Real MariaDB

/// The whole path: values set and attached through the API reach the real server at each
/// start of it, and only then.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attached_configuration_is_what_the_server_starts_with() {
    let mut emu = Emulator::new(false).await;
    let svc = emu.create_service("configured", "es-replica").await;
    let cfg = emu.create_config("fenced replica", "es-replica").await;
    emu.set(&cfg, "max_connections", "321").await;
    emu.set(&cfg, "read_only", "ON").await;
    emu.expect(
        StatusCode::ACCEPTED,
        Method::POST,
        &format!("/provisioning/v1/services/{svc}/config"),
        Some(json!({"config_id": cfg.clone()})),
    )
    .await;
    // The running server is not changed: values apply at its next start.
    assert_eq!(emu.settings(&svc).await, (40, 0));

    emu.stop_and_start(&svc).await;
    assert_eq!(emu.settings(&svc).await, (321, 1));
    let my_cnf =
        std::fs::read_to_string(emu.dir.path().join("services").join(&svc).join("my.cnf")).unwrap();
    let at = |line: &str| my_cnf.lines().position(|l| l == line);
    assert!(
        at("max_connections=321") > at("max-connections=40"),
        "{my_cnf}"
    );
    // The emulator's own setup ran under read_only (as root): the procedures answer.
    let mut c = emu.sql(&svc).await;
    let grant: Option<String> = c
        .query_first("CALL sky.replication_grants()")
        .await
        .unwrap();
    assert!(grant.unwrap().contains("GRANT REPLICATION SLAVE"));
    drop(c);

    // `emulator stop` + `emulator start`: the restarted server gets the values of now.
    emu.set(&cfg, "max_connections", "322").await;
    emu.restart().await;
    assert_eq!(emu.wait_settled(&svc).await["status"], "ready");
    assert_eq!(emu.settings(&svc).await, (322, 1));

    // A restore restarts the server: with the values of now too.
    emu.set(&cfg, "max_connections", "323").await;
    let schedule = json!({"backup_type": "full", "schedule": "once", "service_id": svc.clone()});
    emu.expect(
        StatusCode::OK,
        Method::POST,
        "/skybackup/v1/backups/schedules",
        Some(schedule),
    )
    .await;
    let backup_id = wait_backup(&emu, &svc).await;
    let restore = emu
        .expect(
            StatusCode::OK,
            Method::POST,
            "/skybackup/v1/restores",
            Some(json!({"id": backup_id, "service_id": svc.clone()})),
        )
        .await;
    let path = format!("/skybackup/v1/restores/{}", restore["id"]);
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let r = emu.expect(StatusCode::OK, Method::GET, &path, None).await;
        match r["status"].as_str().unwrap() {
            "Succeeded" => break,
            "Failed" => panic!("restore failed: {r}"),
            _ => assert!(Instant::now() < deadline, "restore never ended: {r}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(emu.wait_settled(&svc).await["status"], "ready");
    assert_eq!(emu.settings(&svc).await, (323, 1));

    // Detached: the next start is the emulator's defaults again.
    emu.expect(
        StatusCode::ACCEPTED,
        Method::DELETE,
        &format!("/provisioning/v1/services/{svc}/config"),
        None,
    )
    .await;
    emu.stop_and_start(&svc).await;
    assert_eq!(emu.settings(&svc).await, (40, 0));
}

async fn wait_backup(emu: &Emulator, svc: &str) -> String {
    let path = format!("/skybackup/v1/backups?service_id={svc}");
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let list = emu.expect(StatusCode::OK, Method::GET, &path, None).await;
        let b = &list["backups"][0];
        match b["status"].as_str() {
            Some("Succeeded") => return b["id"].as_str().unwrap().to_string(),
            Some("Failed") => panic!("backup failed: {b}"),
            _ => assert!(Instant::now() < deadline, "backup never ended: {list}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Kills the server of `cfg` on drop (also on panic).
struct Server {
    binaries: Binaries,
    cfg: InstanceConfig,
}

impl Drop for Server {
    fn drop(&mut self) {
        Instance::open(&self.binaries, self.cfg.clone()).kill_now();
    }
}

/// A server that is read-only from its very first start: the emulator's setup SQL (root over
/// the socket: root lock-down, the admin user, the sky schema, sky.settings) still runs, at
/// creation and at a later start, while a user without the privilege to bypass read_only is
/// fenced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_emulators_own_setup_runs_on_a_read_only_server() {
    let tmp = tempfile::Builder::new().prefix("skycfg").tempdir().unwrap();
    let binaries = Binaries::locate().expect("MariaDB binaries (see .ci/run)");
    let cfg = InstanceConfig {
        dir: tmp.path().join("svc"),
        port: free_port(),
        server_id: 7,
        gtid_domain_id: 7,
        tls: None,
        admin_user: "dbpgf00000007".into(),
        admin_password: "pw-7".into(),
        outbound_ip: "127.0.1.7".into(),
        ca_for_replication: None,
    };
    let _guard = Server {
        binaries: binaries.clone(),
        cfg: cfg.clone(),
    };
    let vars = ServerVariables::new(vec![
        ("max_connections".into(), "321".into()),
        ("read_only".into(), "ON".into()),
    ])
    .unwrap();
    let mut instance = Instance::create_with_variables(&binaries, cfg.clone(), vars)
        .await
        .expect("created read-only");
    instance.stop().await.unwrap();
    instance.start().await.expect("started read-only");

    let admin = |user: &str, password: &str| {
        OptsBuilder::default()
            .ip_or_hostname("127.0.0.1")
            .tcp_port(cfg.port)
            .user(Some(user.to_string()))
            .pass(Some(password.to_string()))
            .prefer_socket(false)
    };
    let mut c = Conn::new(admin(&cfg.admin_user, &cfg.admin_password))
        .await
        .unwrap();
    let got: (u64, u64) = c
        .query_first("SELECT @@max_connections, @@read_only")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, (321, 1));
    let settings: Option<String> = c
        .query_first("SELECT outbound_ip FROM sky.settings WHERE id = 1")
        .await
        .unwrap();
    assert_eq!(settings.as_deref(), Some("127.0.1.7"));
    // The admin user may bypass read_only (ALL PRIVILEGES); an application user may not.
    c.query_drop("CREATE DATABASE app").await.unwrap();
    c.query_drop("CREATE TABLE app.t (id INT PRIMARY KEY)")
        .await
        .unwrap();
    c.query_drop("CREATE USER 'app'@'%' IDENTIFIED BY 'app-pw'")
        .await
        .unwrap();
    c.query_drop("GRANT INSERT, SELECT ON app.* TO 'app'@'%'")
        .await
        .unwrap();
    let mut app = Conn::new(admin("app", "app-pw")).await.unwrap();
    let err = app
        .query_drop("INSERT INTO app.t VALUES (1)")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, mysql_async::Error::Server(e) if e.code == 1290),
        "{err}"
    );
    drop(app);
    drop(c);
    instance.stop().await.unwrap();
}
