//! [`SkysqlClient`]: sends [`ApiRequest`]s with the `X-API-Key` header, retries them per
//! [`RetryPolicy`], and turns failures into [`SkysqlError`]s. The typed calls are in
//! `operations.rs`.
//!
//! # Guarantees
//! - The API key is sent only as the `X-API-Key` header (marked sensitive), only to the
//!   configured endpoint: redirects are not followed (reqwest would carry a custom header to
//!   the redirect target), and plain `http://` is refused except on loopback (the emulator).
//! - The key never appears in `Debug` output or in errors, even if a server echoes it back.
//! - Non-idempotent calls are never blindly repeated after an ambiguous failure; see
//!   [`SkysqlClient::create_service`].

use std::fmt;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::Url;
use serde::de::DeserializeOwned;

use super::error::{message_from_body, ApiError, SkysqlError};
use super::request::{ApiRequest, Method};
use super::retry::{self, RetryClass, RetryPolicy};
use super::secret::Secret;

pub const API_KEY_HEADER: &str = "X-API-Key";

/// Everything needed to talk to one SkySQL endpoint.
#[derive(Clone)]
pub struct ClientConfig {
    /// Base URL, e.g. `https://api.skysql.com` or the emulator's `http://127.0.0.1:PORT`.
    pub endpoint: String,
    pub api_key: Secret,
    /// An extra trusted CA (PEM, may hold several certificates), e.g. an emulator serving
    /// HTTPS with its own CA. The built-in Mozilla roots stay trusted.
    pub extra_ca_pem: Option<Vec<u8>>,
    pub retry: RetryPolicy,
    pub user_agent: String,
    /// Limit for one attempt (connect, send, read the answer).
    pub request_timeout: Duration,
    /// Limit for one call, all its attempts and pauses together: a dead or trickling endpoint
    /// fails within this, whatever the retry policy allows.
    pub call_deadline: Duration,
}

/// The largest answer read from the API (a listing page of 100 services is well under 1 MiB):
/// an endless or huge body fails the call rather than filling memory.
pub const MAX_BODY_BYTES: usize = 32 << 20;

impl ClientConfig {
    pub fn new(endpoint: impl Into<String>, api_key: Secret) -> ClientConfig {
        ClientConfig {
            endpoint: endpoint.into(),
            api_key,
            extra_ca_pem: None,
            retry: RetryPolicy::default(),
            user_agent: concat!("skyplan/", env!("CARGO_PKG_VERSION")).to_string(),
            request_timeout: Duration::from_secs(60),
            call_deadline: Duration::from_secs(120),
        }
    }
}

impl ClientConfig {
    pub fn with_retry(mut self, retry: RetryPolicy) -> ClientConfig {
        self.retry = retry;
        self
    }

    pub fn with_extra_ca_pem(mut self, pem: Option<Vec<u8>>) -> ClientConfig {
        self.extra_ca_pem = pem;
        self
    }

    pub fn with_user_agent(mut self, user_agent: impl Into<String>) -> ClientConfig {
        self.user_agent = user_agent.into();
        self
    }
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("endpoint", &self.endpoint)
            .field("api_key", &self.api_key)
            .field(
                "extra_ca_pem",
                &self
                    .extra_ca_pem
                    .as_ref()
                    .map(|p| format!("{} bytes", p.len())),
            )
            .field("retry", &self.retry)
            .field("user_agent", &self.user_agent)
            .field("request_timeout", &self.request_timeout)
            .field("call_deadline", &self.call_deadline)
            .finish()
    }
}

/// An HTTP answer, whatever its status.
#[derive(Debug)]
pub(crate) struct RawResponse {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

pub struct SkysqlClient {
    http: reqwest::Client,
    base: Url,
    api_key: Secret,
    pub(crate) retry: RetryPolicy,
    call_deadline: Duration,
    requests: AtomicU64,
}

impl fmt::Debug for SkysqlClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SkysqlClient")
            .field("endpoint", &self.base.as_str())
            .field("api_key", &self.api_key)
            .field("requests_made", &self.requests_made())
            .finish_non_exhaustive()
    }
}

impl SkysqlClient {
    pub fn new(config: ClientConfig) -> Result<SkysqlClient, SkysqlError> {
        let base = parse_endpoint(&config.endpoint)?;
        if HeaderValue::from_str(config.api_key.expose()).is_err() {
            return Err(SkysqlError::Config(
                "the API key contains characters that cannot be sent in an HTTP header".into(),
            ));
        }
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .user_agent(config.user_agent.clone())
            .connect_timeout(Duration::from_secs(10).min(config.request_timeout))
            .timeout(config.request_timeout)
            .redirect(reqwest::redirect::Policy::none());
        if let Some(pem) = &config.extra_ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| SkysqlError::Config(format!("extra CA certificate: {e}")))?;
            if certs.is_empty() {
                return Err(SkysqlError::Config(
                    "extra CA certificate: no certificate in the PEM data".into(),
                ));
            }
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder
            .build()
            .map_err(|e| SkysqlError::Config(format!("HTTP client: {e}")))?;
        Ok(SkysqlClient {
            http,
            base,
            api_key: config.api_key,
            retry: config.retry,
            call_deadline: config.call_deadline,
            requests: AtomicU64::new(0),
        })
    }

    /// HTTP requests sent so far, retries included (for benchmarks and tests).
    pub fn requests_made(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.retry
    }

    /// Send `req`, retrying what its idempotency allows, until success, a failure that must
    /// not be retried, or the policy's attempts are used up. `attempts` counts across calls
    /// so a caller that checks and re-sends (create) shares one budget.
    pub(crate) async fn execute(
        &self,
        req: &ApiRequest,
        attempts: &mut u32,
    ) -> Result<RawResponse, SkysqlError> {
        let deadline = tokio::time::Instant::now() + self.call_deadline;
        loop {
            *attempts += 1;
            let sent = tokio::time::timeout_at(deadline, self.send_once(req)).await;
            let Ok(sent) = sent else {
                return Err(SkysqlError::Transport {
                    method: req.method.as_str().to_string(),
                    path: req.path.clone(),
                    message: format!(
                        "no complete answer within {} s (the call's deadline, retries included)",
                        self.call_deadline.as_secs()
                    ),
                    connect_failed: false,
                    attempts: *attempts,
                });
            };
            let mut error = match sent {
                Ok(resp) if (200..300).contains(&resp.status) => return Ok(resp),
                Ok(resp) => SkysqlError::Api(self.api_error(req, &resp)),
                Err(e) => e,
            };
            error.set_attempts(*attempts);
            let class = error.retry_class();
            if !class.retryable_for(req.idempotency) || !self.retry.allows_another(*attempts) {
                return Err(error);
            }
            if class
                .retry_after()
                .is_some_and(|after| after > self.retry.max_retry_after)
            {
                return Err(error);
            }
            if tokio::time::Instant::now() + self.retry.delay(*attempts, class.retry_after())
                > deadline
            {
                return Err(error);
            }
            self.pause(*attempts, class).await;
        }
    }

    /// Wait before the next attempt (backoff with jitter, or the server's `Retry-After`).
    pub(crate) async fn pause(&self, attempts_made: u32, class: RetryClass) {
        let delay = self.retry.delay(attempts_made, class.retry_after());
        tracing::debug!(attempts_made, ?delay, "retrying SkySQL call");
        tokio::time::sleep(delay).await;
    }

    async fn send_once(&self, req: &ApiRequest) -> Result<RawResponse, SkysqlError> {
        let url = self.url(req);
        let method = match req.method {
            Method::Get => reqwest::Method::GET,
            Method::Post => reqwest::Method::POST,
            Method::Patch => reqwest::Method::PATCH,
            Method::Delete => reqwest::Method::DELETE,
        };
        let mut key = HeaderValue::from_str(self.api_key.expose())
            .map_err(|_| SkysqlError::Config("invalid API key".into()))?;
        key.set_sensitive(true);
        let mut builder = self
            .http
            .request(method, url)
            .header(API_KEY_HEADER, key)
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(body) = &req.body {
            builder = builder.json(body);
        }
        self.requests.fetch_add(1, Ordering::Relaxed);
        let resp = builder.send().await.map_err(|e| self.transport(req, e))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        // Read as it streams, and stop at the cap: an endless body never fills memory.
        let mut resp = resp;
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| self.transport(req, e))? {
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(SkysqlError::Decode {
                    method: req.method.as_str().to_string(),
                    path: req.path.clone(),
                    message: format!(
                        "the answer is larger than {} MiB; refused unread",
                        MAX_BODY_BYTES >> 20
                    ),
                });
            }
            body.extend_from_slice(&chunk);
        }
        tracing::debug!(method = req.method.as_str(), path = %req.path, status, "SkySQL call");
        Ok(RawResponse {
            status,
            headers,
            body,
        })
    }

    fn url(&self, req: &ApiRequest) -> Url {
        let mut url = self.base.clone();
        let prefix = self.base.path().trim_end_matches('/');
        url.set_path(&format!("{prefix}{}", req.path));
        if !req.query.is_empty() {
            url.query_pairs_mut().extend_pairs(&req.query);
        }
        url
    }

    fn transport(&self, req: &ApiRequest, e: reqwest::Error) -> SkysqlError {
        let connect_failed = e.is_connect();
        SkysqlError::Transport {
            method: req.method.as_str().to_string(),
            path: req.path.clone(),
            message: self.api_key.redact_in(&error_chain(&e.without_url())),
            connect_failed,
            attempts: 1,
        }
    }

    fn api_error(&self, req: &ApiRequest, resp: &RawResponse) -> ApiError {
        let (message, trace_id) = message_from_body(&resp.body);
        ApiError {
            method: req.method.as_str().to_string(),
            path: req.path.clone(),
            status: resp.status,
            // The API's words are data: control characters are shown escaped, never sent to
            // a terminal.
            message: skyplan_api::text::escape_controls(&self.api_key.redact_in(&message))
                .into_owned(),
            trace_id: trace_id.map(|t| skyplan_api::text::escape_controls(&t).into_owned()),
            retry_after: resp
                .headers
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(retry::parse_retry_after),
            attempts: 1,
        }
    }

    /// Parse a success body. `sensitive`: the body holds a secret, so the parser's message
    /// (which may quote the body) is not kept.
    pub(crate) fn decode<T: DeserializeOwned>(
        &self,
        req: &ApiRequest,
        resp: &RawResponse,
        sensitive: bool,
    ) -> Result<T, SkysqlError> {
        serde_json::from_slice(&resp.body).map_err(|e| SkysqlError::Decode {
            method: req.method.as_str().to_string(),
            path: req.path.clone(),
            message: if sensitive {
                "not the expected JSON".to_string()
            } else {
                skyplan_api::text::escape_controls(&self.api_key.redact_in(&e.to_string()))
                    .into_owned()
            },
        })
    }
}

/// The endpoint as a URL: http(s) only, no credentials in it, plain http only on loopback
/// (anywhere else it would send the API key in clear text).
fn parse_endpoint(endpoint: &str) -> Result<Url, SkysqlError> {
    let url = Url::parse(endpoint.trim()).map_err(|e| {
        SkysqlError::Config(format!(
            "endpoint is not a valid URL ({e}); expected e.g. https://api.skysql.com"
        ))
    })?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(SkysqlError::Config(
            "endpoint must not contain credentials; the API key is read from the environment"
                .into(),
        ));
    }
    match url.scheme() {
        "https" => Ok(url),
        "http" if is_loopback(&url) => Ok(url),
        "http" => Err(SkysqlError::Config(format!(
            "endpoint {url} uses plain http to a non-loopback host; use https"
        ))),
        other => Err(SkysqlError::Config(format!(
            "endpoint scheme `{other}` is not supported; use https"
        ))),
    }
}

fn is_loopback(url: &Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// "error sending request: connection refused": the error and its causes on one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        assert!(parse_endpoint("https://api.skysql.com").is_ok());
        assert!(parse_endpoint("http://127.0.0.1:8080").is_ok());
        assert!(parse_endpoint("http://localhost:8080/").is_ok());
        assert!(parse_endpoint("http://[::1]:8080/").is_ok());
        for bad in [
            "http://api.skysql.com",
            "ftp://127.0.0.1",
            "not a url",
            "https://user:pw@api.skysql.com",
        ] {
            let e = parse_endpoint(bad).unwrap_err().to_string();
            assert!(!e.contains("pw@"), "{e}");
        }
    }

    #[test]
    fn urls_keep_a_base_path_prefix() {
        let client = SkysqlClient::new(ClientConfig::new(
            "http://127.0.0.1:9/prefix/",
            Secret::new("k"),
        ))
        .unwrap();
        let url = client.url(&super::super::request::list_services(Some("a b")));
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:9/prefix/provisioning/v1/services?page_size=100&page_token=a+b"
        );
    }

    #[test]
    fn debug_hides_the_key() {
        let config = ClientConfig::new("http://127.0.0.1:9", Secret::new("sekrit-key-123"));
        let client = SkysqlClient::new(config.clone()).unwrap();
        let shown = format!("{config:?} {client:?}");
        assert!(!shown.contains("sekrit-key-123"), "{shown}");
    }

    #[test]
    fn bad_keys_and_cas_are_config_errors() {
        let mut config = ClientConfig::new("http://127.0.0.1:9", Secret::new("bad\nkey"));
        let e = SkysqlClient::new(config.clone()).unwrap_err().to_string();
        assert!(!e.contains("bad\nkey"));
        config.api_key = Secret::new("ok");
        config.extra_ca_pem = Some(b"not pem".to_vec());
        assert!(matches!(
            SkysqlClient::new(config),
            Err(SkysqlError::Config(_))
        ));
    }
}
