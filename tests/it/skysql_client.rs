//! The SkySQL REST client against a scripted axum server on 127.0.0.1:0: retries, refusals,
//! the no-duplicate create, pagination, headers, and error messages that never hold the key.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use skyplan::skysql::client::{ClientConfig, SkysqlClient};
use skyplan::skysql::error::SkysqlError;
use skyplan::skysql::retry::RetryPolicy;
use skyplan::skysql::secret::Secret;
use skyplan::skysql::types::{CreateServiceRequest, RestoreRequest};

const KEY: &str = "skysql.test-key-0123456789";

#[derive(Clone, Debug)]
struct Recorded {
    method: String,
    path: String,
    query: String,
    headers: HeaderMap,
    body: String,
    at: Instant,
}

struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: String,
}

fn reply(status: u16, body: Value) -> Reply {
    Reply {
        status,
        headers: vec![],
        body: body.to_string(),
    }
}

fn error_body(message: &str) -> Value {
    json!({"code": 0, "errors": [{"message": message}], "trace_id": "t-42"})
}

/// Shared between the test and the server: the request log and whatever the script keeps.
#[derive(Default)]
struct World {
    log: Mutex<Vec<Recorded>>,
    items: Mutex<Vec<Value>>,
}

impl World {
    fn log(&self) -> Vec<Recorded> {
        self.log.lock().unwrap().clone()
    }
    fn count(&self, method: &str, path: &str) -> usize {
        self.log()
            .iter()
            .filter(|r| r.method == method && r.path == path)
            .count()
    }
}

/// `(request, index of this request among those with the same method and path, world)`.
type Script = dyn Fn(&Recorded, usize, &World) -> Reply + Send + Sync;

struct Shared {
    world: Arc<World>,
    script: Box<Script>,
}

struct Mock {
    url: String,
    world: Arc<World>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Mock {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn mock(script: impl Fn(&Recorded, usize, &World) -> Reply + Send + Sync + 'static) -> Mock {
    let world = Arc::new(World::default());
    let shared = Arc::new(Shared {
        world: world.clone(),
        script: Box::new(script),
    });
    let app = axum::Router::new().fallback(handle).with_state(shared);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    Mock { url, world, task }
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let rec = Recorded {
        method: method.to_string(),
        path: uri.path().to_string(),
        query: uri.query().unwrap_or("").to_string(),
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
        at: Instant::now(),
    };
    let n = shared.world.count(&rec.method, &rec.path);
    shared.world.log.lock().unwrap().push(rec.clone());
    let r = (shared.script)(&rec, n, &shared.world);
    let mut resp = (StatusCode::from_u16(r.status).unwrap(), r.body).into_response();
    resp.headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    for (k, v) in r.headers {
        resp.headers_mut().insert(k, v.parse().unwrap());
    }
    resp
}

fn client(url: &str) -> SkysqlClient {
    client_with(url, RetryPolicy::fast())
}

fn client_with(url: &str, retry: RetryPolicy) -> SkysqlClient {
    SkysqlClient::new(ClientConfig::new(url, Secret::new(KEY)).with_retry(retry)).unwrap()
}

fn service(id: &str, name: &str) -> Value {
    json!({"id": id, "name": name, "status": "pending_create", "region": "us-east4"})
}

#[tokio::test]
async fn retries_5xx_until_success() {
    let m = mock(|_, n, _| match n {
        0 => reply(500, error_body("boom")),
        1 => reply(502, json!(null)),
        2 => reply(503, error_body("unavailable")),
        3 => reply(504, json!(null)),
        _ => reply(200, service("db1", "p")),
    })
    .await;
    let c = client(&m.url);
    let s = c.get_service("db1").await.unwrap().unwrap();
    assert_eq!(s.id, "db1");
    assert_eq!(m.world.count("GET", "/provisioning/v1/services/db1"), 5);
    assert_eq!(c.requests_made(), 5);
}

#[tokio::test]
async fn gives_up_after_the_policy_attempts() {
    let m = mock(|_, _, _| reply(503, error_body("down for maintenance"))).await;
    let c = client(&m.url);
    let e = c.get_service("db1").await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "GET /provisioning/v1/services/db1: 503 Service Unavailable: down for maintenance \
         (trace id t-42) (gave up after 8 attempts)"
    );
    assert_eq!(c.requests_made(), 8);
}

#[tokio::test]
async fn honours_retry_after_on_429() {
    let m = mock(|_, n, _| match n {
        0 => Reply {
            status: 429,
            headers: vec![("retry-after", "1".into())],
            body: error_body("slow down").to_string(),
        },
        _ => reply(200, json!([])),
    })
    .await;
    let c = client(&m.url);
    c.get_allowlist("db1").await.unwrap();
    let log = m.world.log();
    assert_eq!(log.len(), 2);
    // The fast policy's own backoff is a few milliseconds: a 1 s gap is the Retry-After.
    let waited = log[1].at - log[0].at;
    assert!(waited >= Duration::from_millis(990), "{waited:?}");
}

#[tokio::test]
async fn retry_after_longer_than_the_limit_fails_fast() {
    let m = mock(|_, _, _| Reply {
        status: 429,
        headers: vec![("retry-after", "3600".into())],
        body: String::new(),
    })
    .await;
    let c = client(&m.url);
    let e = c.get_allowlist("db1").await.unwrap_err();
    assert_eq!(e.status(), Some(429));
    assert_eq!(c.requests_made(), 1);
}

#[tokio::test]
async fn no_retry_on_other_client_errors() {
    let m = mock(|rec, _, _| match rec.path.as_str() {
        "/provisioning/v1/services/db1/size" => reply(400, error_body("invalid size sky-999")),
        _ => reply(404, error_body("service not found")),
    })
    .await;
    let c = client(&m.url);
    let e = c.set_size("db1", "sky-999").await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "POST /provisioning/v1/services/db1/size: 400 Bad Request: invalid size sky-999 \
         (trace id t-42)"
    );
    assert!(c.get_service("gone").await.unwrap().is_none());
    let e = c.get_credentials("gone").await.unwrap_err();
    assert!(e.is_not_found());
    assert_eq!(c.requests_made(), 3, "one request each, no retries");
}

#[tokio::test]
async fn pending_state_refusals_are_retried() {
    let m = mock(|_, n, _| match n {
        0 => reply(
            400,
            error_body("Service is in pending state, try again later"),
        ),
        1 => reply(409, error_body("service db1 is in a pending state")),
        _ => reply(202, json!({"size": "sky-4x16"})),
    })
    .await;
    let c = client(&m.url);
    assert_eq!(
        c.set_size("db1", "sky-4x16").await.unwrap().size,
        "sky-4x16"
    );
    assert_eq!(c.requests_made(), 3);
    let sent: Value = serde_json::from_str(&m.world.log()[0].body).unwrap();
    assert_eq!(sent, json!({"size": "sky-4x16"}));
}

fn create_script(create_on_first_post: bool) -> impl Fn(&Recorded, usize, &World) -> Reply {
    move |rec, n, world| match (rec.method.as_str(), rec.path.as_str()) {
        ("POST", "/provisioning/v1/services") => {
            let body: Value = serde_json::from_str(&rec.body).unwrap();
            let id = format!("db{}", n + 1);
            let created = service(&id, body["name"].as_str().unwrap());
            if n > 0 || create_on_first_post {
                world.items.lock().unwrap().push(created.clone());
            }
            if n == 0 {
                // The first create fails *after* (or without) doing its work.
                reply(500, error_body("internal error"))
            } else {
                reply(202, created)
            }
        }
        ("GET", "/provisioning/v1/services") => {
            reply(200, Value::Array(world.items.lock().unwrap().clone()))
        }
        _ => reply(404, json!(null)),
    }
}

fn create_request(name: &str) -> CreateServiceRequest {
    CreateServiceRequest {
        name: Some(name.into()),
        region: Some("us-east4".into()),
        ..Default::default()
    }
}

#[tokio::test]
async fn create_is_not_duplicated_after_a_500_that_created() {
    let m = mock(create_script(true)).await;
    let c = client(&m.url);
    let s = c.create_service(&create_request("primary")).await.unwrap();
    assert_eq!((s.id.as_str(), s.name.as_str()), ("db1", "primary"));
    assert_eq!(m.world.count("POST", "/provisioning/v1/services"), 1);
    assert_eq!(
        m.world.items.lock().unwrap().len(),
        1,
        "exactly one service exists"
    );
}

#[tokio::test]
async fn create_is_resent_after_a_500_that_did_not_create() {
    let m = mock(create_script(false)).await;
    let c = client(&m.url);
    let s = c.create_service(&create_request("primary")).await.unwrap();
    assert_eq!(s.id, "db2");
    assert_eq!(m.world.count("POST", "/provisioning/v1/services"), 2);
    assert_eq!(m.world.count("GET", "/provisioning/v1/services"), 1);
    assert_eq!(m.world.items.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn create_is_not_resent_on_a_400() {
    let m = mock(|_, _, _| reply(400, error_body("invalid region"))).await;
    let c = client(&m.url);
    let e = c.create_service(&create_request("p")).await.unwrap_err();
    assert!(e.to_string().contains("invalid region"), "{e}");
    assert_eq!(c.requests_made(), 1);
}

#[tokio::test]
async fn list_services_follows_page_tokens() {
    let m = mock(|rec, _, _| {
        let page = |from: usize, to: usize| {
            Value::Array(
                (from..to)
                    .map(|i| service(&format!("db{i}"), "s"))
                    .collect(),
            )
        };
        let (body, next) = if rec.query.contains("page_token=t3") {
            (page(200, 250), None)
        } else if rec.query.contains("page_token=t2") {
            (page(100, 200), Some("t3"))
        } else {
            (page(0, 100), Some("t2"))
        };
        Reply {
            status: 200,
            headers: next
                .map(|t| vec![("X-SkySQL-Page-Token-Next", t.to_string())])
                .unwrap_or_default(),
            body: body.to_string(),
        }
    })
    .await;
    let c = client(&m.url);
    let all = c.list_services().await.unwrap();
    assert_eq!(all.len(), 250);
    assert_eq!((all[0].id.as_str(), all[249].id.as_str()), ("db0", "db249"));
    let queries: Vec<String> = m.world.log().into_iter().map(|r| r.query).collect();
    assert_eq!(
        queries,
        [
            "page_size=100",
            "page_size=100&page_token=t2",
            "page_size=100&page_token=t3"
        ]
    );
}

#[tokio::test]
async fn a_page_token_loop_is_an_error() {
    let m = mock(|_, _, _| Reply {
        status: 200,
        headers: vec![("X-SkySQL-Page-Token-Next", "same".into())],
        body: "[]".into(),
    })
    .await;
    let e = client(&m.url).list_services().await.unwrap_err();
    assert!(matches!(e, SkysqlError::Pagination { .. }), "{e}");
}

#[tokio::test]
async fn sends_the_api_key_header_and_json() {
    let m = mock(|_, _, _| reply(200, json!({"ip_address": "1.2.3.4", "is_allowed": true}))).await;
    let c = client(&m.url);
    assert!(c.is_ip_allowed("db1", "1.2.3.4").await.unwrap());
    let rec = &m.world.log()[0];
    assert_eq!(rec.headers["x-api-key"], KEY);
    assert!(rec.headers["user-agent"]
        .to_str()
        .unwrap()
        .starts_with("skyplan/"));
    assert_eq!(rec.headers["content-type"], "application/json");
    assert_eq!(
        rec.path,
        "/provisioning/v1/services/db1/security/is-ip-allowed"
    );
    assert_eq!(
        serde_json::from_str::<Value>(&rec.body).unwrap(),
        json!({"ip_address": "1.2.3.4"})
    );
}

#[tokio::test]
async fn the_key_never_appears_in_errors() {
    // A (badly behaved) server that echoes the key back in its error message.
    let m = mock(|rec, _, _| {
        let key = rec.headers["x-api-key"].to_str().unwrap().to_string();
        reply(401, error_body(&format!("key {key} is not valid")))
    })
    .await;
    let c = client(&m.url);
    let e = c.get_service("db1").await.unwrap_err();
    for shown in [e.to_string(), format!("{e:?}"), format!("{c:?}")] {
        assert!(!shown.contains(KEY), "{shown}");
    }
    assert!(e.to_string().contains("key *** is not valid"), "{e}");
}

#[tokio::test]
async fn transport_errors_name_the_call_and_are_retried() {
    // A port with nothing listening: connection refused on every attempt.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let c = client_with(
        &format!("http://127.0.0.1:{port}"),
        RetryPolicy {
            max_attempts: 3,
            ..RetryPolicy::fast()
        },
    );
    let e = c.delete_service("db1").await.unwrap_err();
    assert!(matches!(
        e,
        SkysqlError::Transport {
            connect_failed: true,
            attempts: 3,
            ..
        }
    ));
    let shown = e.to_string();
    assert!(
        shown.starts_with("DELETE /provisioning/v1/services/db1: "),
        "{shown}"
    );
    assert!(shown.ends_with("(gave up after 3 attempts)"), "{shown}");
    assert_eq!(c.requests_made(), 3);
}

#[tokio::test]
async fn delete_of_a_missing_service_is_done() {
    let m = mock(|_, _, _| reply(404, error_body("not found"))).await;
    client(&m.url).delete_service("db1").await.unwrap();
}

fn allowlist_script(
    fail_first_add_after_applying: bool,
) -> impl Fn(&Recorded, usize, &World) -> Reply {
    move |rec, n, world| {
        let list = |w: &World| {
            let items: Vec<Value> = w
                .items
                .lock()
                .unwrap()
                .iter()
                .map(|ip| json!({ "ip": ip }))
                .collect();
            json!([{"name": "primary", "allow_list": items}])
        };
        let ip = || {
            serde_json::from_str::<Value>(&rec.body).unwrap()["ip_address"]
                .as_str()
                .unwrap()
                .to_string()
        };
        match rec.method.as_str() {
            "POST" => {
                let ip = ip();
                let mut items = world.items.lock().unwrap();
                if items.contains(&json!(ip)) {
                    return reply(400, error_body("address already in allowlist"));
                }
                items.push(json!(ip));
                drop(items);
                if n == 0 && fail_first_add_after_applying {
                    return reply(502, json!(null));
                }
                reply(200, list(world))
            }
            "DELETE" => {
                let ip = ip();
                let mut items = world.items.lock().unwrap();
                let before = items.len();
                items.retain(|i| *i != json!(ip));
                if items.len() == before {
                    return reply(404, error_body("address not in allowlist"));
                }
                drop(items);
                reply(200, list(world))
            }
            _ => reply(200, list(world)),
        }
    }
}

#[tokio::test]
async fn allowlist_add_is_not_repeated_after_an_ambiguous_failure() {
    let m = mock(allowlist_script(true)).await;
    let c = client(&m.url);
    let path = "/provisioning/v1/services/db1/security/allowlist";
    let list = c.add_allowlist_entry("db1", "10.1.2.3/32").await.unwrap();
    assert_eq!(list[0].allow_list[0].ip, "10.1.2.3/32");
    assert_eq!(m.world.count("POST", path), 1);
    assert_eq!(m.world.count("GET", path), 1);
    // Adding it again is a no-op success ("already in allowlist" and present).
    c.add_allowlist_entry("db1", "10.1.2.3/32").await.unwrap();
    assert_eq!(m.world.items.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn allowlist_delete_sends_a_body_and_tolerates_absence() {
    let m = mock(allowlist_script(false)).await;
    let c = client(&m.url);
    c.add_allowlist_entry("db1", "10.1.2.3/32").await.unwrap();
    let list = c
        .delete_allowlist_entry("db1", "10.1.2.3/32")
        .await
        .unwrap();
    assert!(list[0].allow_list.is_empty());
    let delete = m
        .world
        .log()
        .into_iter()
        .find(|r| r.method == "DELETE")
        .unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&delete.body).unwrap(),
        json!({"ip_address": "10.1.2.3/32"})
    );
    // Already gone: still success.
    c.delete_allowlist_entry("db1", "10.1.2.3/32")
        .await
        .unwrap();
}

#[tokio::test]
async fn backups_are_scheduled_and_listed_page_by_page() {
    let m = mock(|rec, _, _| match rec.method.as_str() {
        "POST" => reply(
            200,
            json!({"id": 7, "service_id": "db1", "schedule": "once"}),
        ),
        _ => {
            let page: i64 = rec
                .query
                .split('&')
                .find_map(|kv| kv.strip_prefix("page="))
                .unwrap()
                .parse()
                .unwrap();
            reply(
                200,
                json!({"backups": [{"id": format!("bk{page}"), "status": "Succeeded",
                        "binlog_gtid_position": "0-1-5"}],
                       "backups_count": 2, "pages_count": 2}),
            )
        }
    })
    .await;
    let c = client(&m.url);
    assert_eq!(c.schedule_backup("db1").await.unwrap().id, 7);
    let sent: Value = serde_json::from_str(&m.world.log()[0].body).unwrap();
    assert_eq!(
        sent,
        json!({"backup_type": "full", "schedule": "once", "service_id": "db1"})
    );
    let backups = c.list_backups("db1").await.unwrap();
    let ids: Vec<&str> = backups.iter().map(|b| b.id.as_str()).collect();
    assert_eq!(ids, ["bk1", "bk2"]);
    assert!(m.world.log()[1].query.contains("service_id=db1"));
}

#[tokio::test]
async fn restore_is_not_started_twice_after_an_ambiguous_failure() {
    let m = mock(
        |rec, n, world| match (rec.method.as_str(), rec.path.as_str()) {
            ("POST", "/skybackup/v1/restores") => {
                let restore = json!({"id": 10 + n, "backup_id": "bk1", "service_id": "db2",
                                 "status": "Running"});
                world.items.lock().unwrap().push(restore.clone());
                if n == 0 {
                    reply(500, error_body("timeout talking to the operator"))
                } else {
                    reply(200, restore)
                }
            }
            ("GET", "/skybackup/v1/restores") => {
                let restores = world.items.lock().unwrap().clone();
                reply(200, json!({"restores": restores, "pages_count": 1}))
            }
            ("GET", "/skybackup/v1/restores/10") => reply(
                200,
                json!({"id": 10, "backup_id": "bk1", "status": "Succeeded"}),
            ),
            _ => reply(404, json!(null)),
        },
    )
    .await;
    let c = client(&m.url);
    // An earlier restore of the same backup must not be mistaken for this one.
    m.world
        .items
        .lock()
        .unwrap()
        .push(json!({"id": 3, "backup_id": "bk1", "service_id": "db2", "status": "Succeeded"}));
    let r = c
        .start_restore(&RestoreRequest {
            id: "bk1".into(),
            service_id: "db2".into(),
            point_in_time: None,
        })
        .await
        .unwrap();
    assert_eq!(r.id, 10);
    assert_eq!(m.world.count("POST", "/skybackup/v1/restores"), 1);
    assert_eq!(
        c.get_restore(10).await.unwrap().status.as_str(),
        "Succeeded"
    );
}

#[tokio::test]
async fn credentials_decode_errors_do_not_quote_the_body() {
    let m = mock(|_, _, _| Reply {
        status: 200,
        headers: vec![],
        body: r#"{"username": "u", "password": 12345678}"#.into(),
    })
    .await;
    let e = client(&m.url).get_credentials("db1").await.unwrap_err();
    assert!(!e.to_string().contains("12345678"), "{e}");
    assert!(matches!(e, SkysqlError::Decode { .. }));
}

/// Issue 26: an API's words are data. An error message with terminal sequences and a faked
/// line reaches the error text escaped; a service whose fqdn is not a host name is refused;
/// other strings of a service are escaped.
#[tokio::test]
async fn hostile_strings_from_the_api_never_reach_a_terminal_raw() {
    let m = mock(|r, _, _| {
        if r.path.ends_with("/dbpgf1") {
            return reply(
                200,
                json!({"id": "dbpgf1", "name": "x", "status": "ready", "fqdn": "evil\u{1b}[2J.example.com"}),
            );
        }
        if r.path.ends_with("/dbpgf2") {
            return reply(
                200,
                json!({"id": "dbpgf2", "name": "db\u{1b}]0;pwned\u{7}", "status": "ready",
                       "region": "us-east4\nError: fake", "fqdn": "db2.example.com"}),
            );
        }
        reply(400, error_body("bad\u{1b}[31m red\nerror: a fake line"))
    })
    .await;
    let c = client(&m.url);
    let e = c.get_service("dbpgf1").await.unwrap_err().to_string();
    assert!(!e.contains('\u{1b}'), "{e}");
    assert!(e.contains("not a host name"), "{e}");
    let s = c.get_service("dbpgf2").await.unwrap().unwrap();
    assert!(
        !s.name.contains('\u{1b}') && !s.name.contains('\u{7}'),
        "{:?}",
        s.name
    );
    assert!(!s.region.contains('\n'), "{:?}", s.region);
    assert_eq!(s.name, "db\\x1b]0;pwned\\x07");
    let e = c.get_service("dbpgf3").await.unwrap_err().to_string();
    assert!(!e.contains('\u{1b}') && !e.contains('\n'), "{e:?}");
    // (Lines of a message are joined with spaces: a newline cannot start a fake line.)
    assert!(e.contains("bad\\x1b[31m red"), "{e}");
}

/// An axum server on 127.0.0.1:0 whose every answer is `body` (a stream).
async fn streaming(
    body: impl Fn() -> axum::body::Body + Send + Sync + Clone + 'static,
) -> (String, tokio::task::JoinHandle<()>) {
    let app = axum::Router::new().fallback(move || {
        let body = body.clone();
        async move {
            Response::builder()
                .status(200)
                .header("content-type", "application/json")
                .body(body())
                .unwrap()
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (url, task)
}

/// Issue 26: an endless answer is cut at the cap (memory stays bounded), and one that
/// trickles in fails within the call's deadline, retries included.
#[tokio::test]
async fn an_endless_or_trickling_answer_fails_bounded_in_memory_and_time() {
    let (url, task) = streaming(|| {
        let chunk = Bytes::from(vec![b' '; 1 << 20]);
        axum::body::Body::from_stream(futures::stream::repeat_with(move || {
            Ok::<_, std::io::Error>(chunk.clone())
        }))
    })
    .await;
    let e = client(&url).list_services().await.unwrap_err().to_string();
    assert!(e.contains("larger than 32 MiB"), "{e}");
    task.abort();

    let (url, task) = streaming(|| {
        axum::body::Body::from_stream(futures::stream::unfold((), |()| async {
            tokio::time::sleep(Duration::from_millis(500)).await;
            Some((Ok::<_, std::io::Error>(Bytes::from_static(b" ")), ()))
        }))
    })
    .await;
    let mut cfg = ClientConfig::new(&url, Secret::new(KEY)).with_retry(RetryPolicy::fast());
    cfg.request_timeout = Duration::from_secs(2);
    cfg.call_deadline = Duration::from_secs(4);
    let c = SkysqlClient::new(cfg).unwrap();
    let started = Instant::now();
    let e = c.list_services().await.unwrap_err().to_string();
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    assert!(!e.is_empty());
    task.abort();
}
