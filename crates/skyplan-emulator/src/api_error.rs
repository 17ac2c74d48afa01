//! API errors, always answered with the spec's error body (`errr.ErrorResponse`):
//! `{"code", "errors":[{"error","message","type"}], "path", "timestamp", "trace_id"}`.
//!
//! Handlers return [`ApiError`], which only carries status and message; the [`render_errors`]
//! middleware knows the request path and writes the full body. It also rewrites axum's own
//! plain-text rejections (bad JSON, unknown route) into the same shape.

use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use skyplan_api::types::{ErrorDetails, ErrorResponse};

use super::ids;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }

    pub fn service_not_found(id: &str) -> ApiError {
        ApiError::not_found(format!("service {id} not found"))
    }

    /// The answer of a route whose spec declares 425 (Too Early) to a mutation while an
    /// operation is still running: the same words as [`ApiError::pending`], status 425.
    pub fn too_early(e: ApiError) -> ApiError {
        if e.status == StatusCode::BAD_REQUEST && e.message.contains("pending state") {
            ApiError::new(
                StatusCode::from_u16(425).unwrap_or(StatusCode::BAD_REQUEST),
                e.message,
            )
        } else {
            e
        }
    }

    /// The answer of a route whose spec documents no 404 (the allowlist's mutations,
    /// is-ip-allowed, a region's zones): what names nothing is a bad request there, as on the
    /// schedule and restore routes, so a client written against the spec sees a status it
    /// handles. Any other error is left as it is.
    pub fn undocumented_404(e: ApiError) -> ApiError {
        if e.status == StatusCode::NOT_FOUND {
            ApiError::bad_request(e.message)
        } else {
            e
        }
    }

    /// The cloud's answer to a mutation while an operation is still running.
    pub fn pending(id: &str, status: &str) -> ApiError {
        ApiError::bad_request(format!(
            "service {id} is in pending state ({status}); retry when the current operation has \
             finished"
        ))
    }
}

/// Marks a response whose body [`render_errors`] must write.
#[derive(Debug, Clone)]
struct ErrorMessage(String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = self.status.into_response();
        resp.extensions_mut().insert(ErrorMessage(self.message));
        resp
    }
}

/// Builds the full error response for `path`.
pub(crate) fn error_response(status: StatusCode, message: &str, path: &str) -> Response {
    let body = ErrorResponse {
        code: i64::from(status.as_u16()),
        errors: vec![ErrorDetails {
            error: status.canonical_reason().unwrap_or("Error").to_string(),
            message: message.to_string(),
            error_type: Some("error".into()),
            location: None,
            solution: None,
        }],
        exception: None,
        path: path.to_string(),
        timestamp: time::OffsetDateTime::now_utc().unix_timestamp(),
        trace_id: ids::hex_id(),
    };
    let mut resp = (status, axum::Json(body)).into_response();
    if status == StatusCode::TOO_MANY_REQUESTS {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    resp
}

/// Middleware: every error answer gets the spec's body.
pub(crate) async fn render_errors(req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    let resp = next.run(req).await;
    let status = resp.status();
    if let Some(ErrorMessage(message)) = resp.extensions().get::<ErrorMessage>().cloned() {
        let mut out = error_response(status, &message, &path);
        if let Some(retry) = resp.headers().get(header::RETRY_AFTER) {
            out.headers_mut().insert(header::RETRY_AFTER, retry.clone());
        }
        return out;
    }
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return resp;
    }
    // axum's own rejections: plain text. Invalid bodies are 400 on the cloud, not 415/422.
    let status = match status {
        StatusCode::UNPROCESSABLE_ENTITY | StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            StatusCode::BAD_REQUEST
        }
        other => other,
    };
    let text = axum::body::to_bytes(resp.into_body(), 64 * 1024)
        .await
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let message = match text.trim() {
        "" => status.canonical_reason().unwrap_or("error").to_string(),
        t => t.to_string(),
    };
    error_response(status, &message, &path)
}

/// The fallback for unknown routes; [`render_errors`] gives it the error body.
pub(crate) async fn no_route() -> ApiError {
    ApiError::not_found("no such API path")
}
