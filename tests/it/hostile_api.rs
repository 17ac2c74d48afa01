//! Issue 26: skyplan pointed at a hostile SkySQL API — an in-process fake (axum on
//! 127.0.0.1:0) that answers the guide's applied state with what a broken or malicious API
//! might send. Each case must end in a clear error (exit 1) or a bounded failure, never a
//! silent "No changes" and never a raw escape sequence on the terminal.

use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use crate::support::cli::Test;
use crate::support::fixtures::{applied, example};

type Script = std::sync::Arc<dyn Fn(&str) -> (u16, Value) + Send + Sync>;

/// A fake API answering `script(path)`; the guide's topology pointed at it, its state applied.
async fn hostile(
    script: impl Fn(&str) -> (u16, Value) + Send + Sync + 'static,
) -> (Test, tokio::task::JoinHandle<()>) {
    let script: Script = std::sync::Arc::new(script);
    let app = axum::Router::new().fallback(move |uri: Uri| {
        let script = script.clone();
        async move {
            let (status, body) = script(uri.path());
            let mut r: Response =
                (StatusCode::from_u16(status).unwrap(), body.to_string()).into_response();
            r.headers_mut()
                .insert("content-type", "application/json".parse().unwrap());
            r
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    let guide = include_str!("../../examples/global-replication.toml")
        .replace("endpoint = \"local\"", &format!("endpoint = \"{url}\""));
    let t = Test::new()
        .file("global-replication.toml", &guide)
        .env("API_KEY", "hostile-test-key");
    let topo = example("global-replication.toml");
    let state = applied(&topo);
    let path = t.state_file("global-replication");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, skyplan::state::codec::to_json(&state).unwrap()).unwrap();
    (t, task)
}

/// The guide's two services as the state records them (`applied`), with `region` for the
/// primary.
fn services(primary_region: &str) -> Value {
    let topo = example("global-replication.toml");
    let state = applied(&topo);
    Value::Array(
        state
            .resources
            .services
            .iter()
            .map(|(key, r)| {
                json!({
                    "id": r.id, "name": r.spec.name, "status": "ready",
                    "provider": r.spec.provider,
                    "region": if key == "primary" { primary_region } else { r.spec.region.as_str() },
                    "size": r.spec.size, "architecture": r.spec.architecture, "nodes": 1,
                    "storage_volume": {"size": r.spec.storage},
                    "ssl_enabled": r.spec.ssl_enabled, "fqdn": r.fqdn,
                    "endpoints": [{"ports": [{"name": "readwrite", "port": r.port}]}],
                    "outbound_ips": r.outbound_ips,
                })
            })
            .collect(),
    )
}

/// The catalog the fake publishes (just the guide's values).
fn catalog(path: &str) -> Option<Value> {
    Some(match path {
        "/provisioning/v1/regions" => json!([
            {"name": "us-east4", "provider": "gcp"}, {"name": "us-west1", "provider": "gcp"}
        ]),
        "/provisioning/v1/sizes" => {
            json!([{"name": "sky-2x8", "provider": "gcp", "architecture": "amd64"}])
        }
        "/provisioning/v1/topologies" => json!([{"name": "standalone"}]),
        "/provisioning/v1/versions" => json!([]),
        _ => return None,
    })
}

fn refuse(path: &str) -> (u16, Value) {
    (404, json!({"errors": [{"message": format!("no {path}")}]}))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_refused_with_403_is_an_error_never_no_changes() {
    let (mut t, task) = hostile(|path| {
        if path == "/provisioning/v1/services" {
            return (200, services("us-east4"));
        }
        if path.ends_with("/security/credentials") {
            return (403, json!({"errors": [{"message": "forbidden \u{1b}[2J"}]}));
        }
        if path.ends_with("/security/allowlist") {
            return (200, json!([{"allow_list": []}]));
        }
        match catalog(path) {
            Some(v) => (200, v),
            None => refuse(path),
        }
    })
    .await;
    let r = t
        .args(&["plan", "global-replication.toml", "--detailed-exitcode"])
        .run();
    task.abort();
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(!r.stdout.contains("No changes"), "{}", r.stdout);
    assert!(r.stderr.contains("403"), "{}", r.stderr);
    assert!(!r.stderr.contains('\u{1b}') && !r.stdout.contains('\u{1b}'));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_junk_region_from_the_api_is_an_error_never_a_replace() {
    let (mut t, task) = hostile(|path| {
        if path == "/provisioning/v1/services" {
            return (200, services("mars-north1"));
        }
        if path.ends_with("/security/credentials") {
            return (200, json!({"username": "u", "password": "p"}));
        }
        if path.ends_with("/security/allowlist") {
            return (200, json!([{"allow_list": []}]));
        }
        match catalog(path) {
            Some(v) => (200, v),
            None => refuse(path),
        }
    })
    .await;
    let r = t
        .args(&["plan", "global-replication.toml", "--refresh=true"])
        .run();
    task.abort();
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(!r.stdout.contains("replace"), "{}", r.stdout);
    assert!(
        r.stderr.contains("region = \"mars-north1\""),
        "{}",
        r.stderr
    );
}
