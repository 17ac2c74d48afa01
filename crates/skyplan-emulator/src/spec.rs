//! Request bodies are checked against the published spec's schemas, in one place: the
//! emulator refuses exactly what those schemas refuse (types, enums, `null` where a string
//! is due, required fields), with SkySQL's 400 error body.
//!
//! `spec_requests.json` is generated from `mariadb-cloud-api.openapi.yaml` by the test suite
//! (`emulator_api::the_emulators_request_schemas_are_the_published_specs`, which fails when
//! it is stale), never edited by hand. One deviation, kept here: the create request's
//! `topology` is left to the catalog, because the spec's enum omits `standalone`, which
//! SkySQL's own guide uses (the catalog offers every topology of the enum, and refuses others
//! with a suggestion).
//!
//! The schemas are OpenAPI 3.1 (JSON Schema 2020-12) using only keywords that mean the same
//! in draft 7, which the `jsonschema` crate validates.

use std::sync::OnceLock;

use jsonschema::{Draft, JSONSchema};
use serde_json::{json, Value};

use super::api_error::ApiError;

const SPEC: &str = include_str!("spec_requests.json");

struct Operation {
    method: String,
    /// The path's segments; `None` for a `{parameter}`.
    segments: Vec<Option<String>>,
    schema: JSONSchema,
}

fn operations() -> &'static [Operation] {
    static OPS: OnceLock<Vec<Operation>> = OnceLock::new();
    OPS.get_or_init(|| {
        let mut doc: Value = serde_json::from_str(SPEC).unwrap_or_else(|_| json!({}));
        // The create's topology is the catalog's to decide (`catalog::check`, with "did you
        // mean"): the spec's enum omits topologies SkySQL's docs and its own guide use
        // (`standalone`).
        if let Some(t) =
            doc.pointer_mut("/components/schemas/v1.CreateServiceRequest/properties/topology")
        {
            if let Some(m) = t.as_object_mut() {
                m.remove("enum");
            }
        }
        let components = doc["components"].clone();
        doc["ops"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|op| {
                let mut root = json!({ "allOf": [op["schema"].clone()] });
                root["components"] = components.clone();
                let schema = JSONSchema::options()
                    .with_draft(Draft::Draft7)
                    .compile(&root)
                    .ok()?;
                Some(Operation {
                    method: op["method"].as_str()?.to_string(),
                    segments: segments(op["path"].as_str()?, '{'),
                    schema,
                })
            })
            .collect()
    })
}

/// `/a/{b}/c` (spec) or `/a/:b/c` (axum's route) as literal segments and parameters.
fn segments(path: &str, param: char) -> Vec<Option<String>> {
    path.trim_matches('/')
        .split('/')
        .map(|s| (!s.starts_with(param)).then(|| s.to_string()))
        .collect()
}

/// Checks `body` of a `method` request to the route `route` (axum's template) against the
/// spec's request schema for it, when the spec declares one.
pub(crate) fn check_body(method: &str, route: &str, body: &Value) -> Result<(), ApiError> {
    let route = segments(route, ':');
    let Some(op) = operations()
        .iter()
        .find(|o| o.method == method && o.segments == route)
    else {
        return Ok(());
    };
    let first = match op.schema.validate(body) {
        Ok(()) => return Ok(()),
        Err(mut errors) => errors.next().map(|e| {
            let at = e.instance_path.to_string();
            if at.is_empty() {
                e.to_string()
            } else {
                format!("{e} (at {at})")
            }
        }),
    };
    Err(ApiError::bad_request(format!(
        "the body does not match the API's request schema: {}",
        first.unwrap_or_default()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create(v: Value) -> Result<(), ApiError> {
        check_body("POST", "/provisioning/v1/services", &v)
    }

    #[test]
    fn the_spec_refuses_wrong_types_enums_and_null() {
        let ok =
            json!({"name": "a", "provider": "gcp", "topology": "es-single", "size": "sky-2x8"});
        assert!(create(ok).is_ok());
        assert!(
            create(json!({"name": "a", "topology": "standalone"})).is_ok(),
            "the guide's topology"
        );
        for bad in [
            json!({"name": "a", "tenancy": "bogus"}),
            json!({"name": "a", "volume_type": "floppy"}),
            json!({"name": "a", "endpoint_mechanism": "carrier-pigeon"}),
            json!({"name": "a", "size": null}),
            json!({"name": "a", "version": null}),
            json!({"name": "a", "storage": "100"}),
            json!({"name": "a", "provider": "mars"}),
        ] {
            let e = create(bad.clone()).unwrap_err();
            assert!(e.message.contains("request schema"), "{bad}: {}", e.message);
        }
        // A route the spec declares no body for is not checked here.
        assert!(check_body("POST", "/emulator/v1/services/:id/outage", &json!(5)).is_ok());
        // Parameters match whatever their names.
        assert!(check_body(
            "POST",
            "/provisioning/v1/services/:service_id/size",
            &json!({"size": 5})
        )
        .is_err());
    }
}
