//! Request bodies as SkySQL reads them: a JSON object of the declared shape. serde alone would
//! also accept a JSON array for a struct (its fields in order), so a restore could be scheduled
//! from `["a","b"]`; this extractor refuses anything but an object, with the spec's 400 body.
//! A body that is itself a list (`PUT …/allowlist`) keeps axum's `Json`.

use axum::async_trait;
use axum::extract::{FromRequest, Request};
use axum::Json;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::api_error::ApiError;

pub struct Body<T>(pub T);

#[async_trait]
impl<S, T> FromRequest<S> for Body<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let Json(value) = Json::<Value>::from_request(req, state)
            .await
            .map_err(|e| ApiError::bad_request(format!("the body is not JSON: {e}")))?;
        if !value.is_object() {
            return Err(ApiError::bad_request(format!(
                "the body must be a JSON object, found {}",
                kind(&value)
            )));
        }
        serde_json::from_value(value)
            .map(Body)
            .map_err(|e| ApiError::bad_request(format!("invalid body: {e}")))
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
