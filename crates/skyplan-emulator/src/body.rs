//! Request bodies as SkySQL reads them: a JSON object of the declared shape. serde alone would
//! also accept a JSON array for a struct (its fields in order), so a restore could be scheduled
//! from `["a","b"]`; this extractor refuses anything but an object, with the spec's 400 body.
//! A body that is itself a list (`PUT …/allowlist`) is a [`StrictList`]. A body with anything
//! after its JSON value (`{…} junk`) is refused too.
//!
//! [`StrictBody`] and [`StrictList`] (the Configuration Manager's bodies) also refuse a field
//! the declared shape does not have, naming it: a misspelt `"vaule"` must not silently set
//! nothing. The shared request types cannot say `deny_unknown_fields` (the client reads the
//! same types from the cloud, which may add fields), so the check is made here, against the
//! field list the type's own `Deserialize` declares.

use axum::async_trait;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header;
use serde::de::{self, DeserializeOwned, Deserializer, Visitor};
use serde_json::{Map, Value};

use super::api_error::ApiError;

pub(crate) struct Body<T>(pub T);

#[async_trait]
impl<S, T> FromRequest<S> for Body<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (value, route) = json(req, state).await?;
        let object = require_object(value, "the body")?;
        let value = Value::Object(object);
        let body = decode(value.clone())?;
        route.check(&value)?;
        Ok(Body(body))
    }
}

/// A JSON object of `T`'s shape and no other field.
pub(crate) struct StrictBody<T>(pub T);

#[async_trait]
impl<S, T> FromRequest<S> for StrictBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (value, route) = json(req, state).await?;
        let object = require_object(value, "the body")?;
        known_fields::<T>(&object, "the body")?;
        let value = Value::Object(object);
        let body = decode(value.clone())?;
        route.check(&value)?;
        Ok(StrictBody(body))
    }
}

/// A JSON array of objects of `T`'s shape and no other field.
pub(crate) struct StrictList<T>(pub Vec<T>);

#[async_trait]
impl<S, T> FromRequest<S> for StrictList<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (value, route) = json(req, state).await?;
        let Value::Array(items) = value.clone() else {
            return Err(ApiError::bad_request("the body must be a JSON array"));
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.into_iter().enumerate() {
            let what = format!("item {i} of the body");
            let object = require_object(item, &what)?;
            known_fields::<T>(&object, &what)?;
            out.push(
                decode(Value::Object(object))
                    .map_err(|e| ApiError::bad_request(format!("{what}: {}", e.message)))?,
            );
        }
        route.check(&value)?;
        Ok(StrictList(out))
    }
}

/// The body as one JSON value. Not axum's `Json`, which (in this axum) stops after the first
/// value and so takes `{…} junk`; serde_json's `from_slice` refuses anything after it.
/// The method and route template a body came with, to check it against the spec's request
/// schema once the body decoded (the decoder's own messages come first; the spec then refuses
/// what a lenient decode let through: `null` for a string, a value outside an enum).
struct Route(Option<(String, String)>);

impl Route {
    fn check(&self, value: &Value) -> Result<(), ApiError> {
        match &self.0 {
            Some((method, route)) => super::spec::check_body(method, route, value),
            None => Ok(()),
        }
    }
}

async fn json<S: Send + Sync>(req: Request, state: &S) -> Result<(Value, Route), ApiError> {
    let not_json =
        |e: &dyn std::fmt::Display| ApiError::bad_request(format!("the body is not JSON: {e}"));
    if !json_content_type(&req) {
        return Err(not_json(
            &"Expected request with `Content-Type: application/json`",
        ));
    }
    let method = req.method().as_str().to_string();
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|m| m.as_str().to_string());
    // One limit for every body (axum's, 2 MiB), answered 413 on every route.
    let bytes = Bytes::from_request(req, state).await.map_err(|e| {
        if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                "the body is larger than the API accepts (2 MiB)",
            )
        } else {
            not_json(&e)
        }
    })?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|e| not_json(&e))?;
    Ok((value, Route(route.map(|r| (method, r)))))
}

/// `application/json`, or a `+json` type, parameters allowed (what axum's `Json` accepts).
fn json_content_type(req: &Request) -> bool {
    let Some(value) = req.headers().get(header::CONTENT_TYPE) else {
        return false;
    };
    let Ok(value) = value.to_str() else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || essence
            .strip_prefix("application/")
            .is_some_and(|sub| sub.ends_with("+json"))
}

fn require_object(value: Value, what: &str) -> Result<Map<String, Value>, ApiError> {
    match value {
        Value::Object(object) => Ok(object),
        other => Err(ApiError::bad_request(format!(
            "{what} must be a JSON object, found {}",
            kind(&other)
        ))),
    }
}

fn decode<T: DeserializeOwned>(value: Value) -> Result<T, ApiError> {
    serde_json::from_value(value).map_err(|e| ApiError::bad_request(format!("invalid body: {e}")))
}

/// Refuses a key of `object` that `T` does not declare.
fn known_fields<T: DeserializeOwned>(
    object: &Map<String, Value>,
    what: &str,
) -> Result<(), ApiError> {
    let fields = struct_fields::<T>();
    match object.keys().find(|k| !fields.contains(&k.as_str())) {
        None => Ok(()),
        Some(unknown) => Err(ApiError::bad_request(format!(
            "{what} has an unknown field {unknown:?}; expected {}",
            fields
                .iter()
                .map(|f| format!("{f:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// The field names a derived `Deserialize` of a struct asks for: its `deserialize_struct` call
/// carries them, so a deserializer that records them and stops there learns them without data.
/// Empty for anything but a struct.
fn struct_fields<T: DeserializeOwned>() -> &'static [&'static str] {
    struct Probe<'a>(&'a mut &'static [&'static str]);

    impl<'de> Deserializer<'de> for Probe<'_> {
        type Error = de::value::Error;

        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("not a struct"))
        }

        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            _visitor: V,
        ) -> Result<V::Value, Self::Error> {
            *self.0 = fields;
            Err(de::Error::custom("fields recorded"))
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
            identifier ignored_any
        }
    }

    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(Probe(&mut fields));
    fields
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

#[cfg(test)]
mod tests {
    use super::*;
    use skyplan_api::types::{ConfigValue, ConfigValueRequest, CreateConfigRequest};

    fn object(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn a_struct_declares_its_fields() {
        assert_eq!(struct_fields::<ConfigValueRequest>(), ["value"]);
        assert_eq!(
            struct_fields::<CreateConfigRequest>(),
            ["name", "topology_id", "version_id"]
        );
        assert_eq!(
            struct_fields::<ConfigValue>(),
            ["config_key_id", "selected_values"]
        );
        assert!(struct_fields::<String>().is_empty());
    }

    fn request(content_type: Option<&str>, body: &str) -> Request {
        let mut b = Request::builder().method("POST").uri("/x");
        if let Some(ct) = content_type {
            b = b.header(header::CONTENT_TYPE, ct);
        }
        b.body(axum::body::Body::from(body.to_string())).unwrap()
    }

    #[tokio::test]
    async fn a_body_is_one_json_value_of_json_content_type() {
        let json = Some("application/json; charset=utf-8");
        let ok = StrictBody::<ConfigValueRequest>::from_request(
            request(json, r#" {"value":"1"} "#),
            &(),
        )
        .await;
        assert_eq!(ok.ok().map(|b| b.0.value).as_deref(), Some("1"));
        for (content_type, body) in [
            (json, r#"{"value":"1"} junk"#),
            (json, r#"{"value":"1"}{"value":"2"}"#),
            (json, ""),
            (None, r#"{"value":"1"}"#),
            (Some("text/plain"), r#"{"value":"1"}"#),
        ] {
            let strict =
                StrictBody::<ConfigValueRequest>::from_request(request(content_type, body), &())
                    .await;
            assert!(strict.is_err(), "{content_type:?} {body:?}");
            let lax =
                Body::<ConfigValueRequest>::from_request(request(content_type, body), &()).await;
            assert!(lax.is_err(), "{content_type:?} {body:?}");
        }
        let list = StrictList::<ConfigValue>::from_request(
            request(json, r#"[{"config_key_id":"k","selected_values":["v"]}]"#),
            &(),
        )
        .await;
        assert_eq!(list.ok().map(|l| l.0.len()), Some(1));
        let e = StrictList::<ConfigValue>::from_request(
            request(json, r#"[{"config_key_id":"k"}, 5]"#),
            &(),
        )
        .await
        .err()
        .unwrap();
        assert!(
            e.message
                .contains("item 1 of the body must be a JSON object"),
            "{}",
            e.message
        );
    }

    #[test]
    fn unknown_fields_are_named() {
        let ok = object(serde_json::json!({"value": "1"}));
        assert!(known_fields::<ConfigValueRequest>(&ok, "the body").is_ok());
        let bad = object(serde_json::json!({"value": "1", "vaule": "2"}));
        let e = known_fields::<ConfigValueRequest>(&bad, "the body").unwrap_err();
        assert!(
            e.message.contains("unknown field \"vaule\"") && e.message.contains("\"value\""),
            "{}",
            e.message
        );
    }
}
