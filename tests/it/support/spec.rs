//! The SkySQL OpenAPI documents and the checks against them, in one place:
//!
//! - the subset spec (`skysql-subset.openapi.yaml`, what the emulator implements):
//!   [`assert_schema`] validates a value against one of its component schemas;
//! - the full public spec (`mariadb-cloud-api.openapi.yaml`): [`assert_conforms`] finds the
//!   operation a concrete request hit and checks that the status code is one it declares and
//!   that the body matches the declared response.
//!
//! Both load their YAML once, turn it into JSON, and validate with `$ref`s resolved the same
//! way: the schema is put into a root object that also carries the document's `components`,
//! so `#/components/schemas/…` resolves inside that root.
//!
//! Dialect. The full spec is OpenAPI 3.1.1, whose schemas are JSON Schema 2020-12; it uses no
//! OpenAPI-only keyword (no `nullable`, `discriminator`, `readOnly`/`writeOnly`, no type
//! arrays), only `type`, `$ref`, `properties`, `items`, `required`, `enum`, `const`,
//! `additionalProperties`, `allOf`, `minimum`/`maximum`, `format`, plus annotations
//! (`title`, `description`, `examples`, `default`) and `x-…` extensions, which validators
//! ignore. None of its `$ref`s has a sibling keyword that constrains anything. All of those
//! mean the same in draft 7, the `jsonschema` crate's default (the 2020-12 draft is a cargo
//! feature not enabled here), so draft 7 validates them faithfully. One difference, on the
//! strict side: draft 7 asserts `format` (`date-time` is checked; `uuid` and `int64` are not
//! draft-7 formats and are ignored), where 2020-12 only annotates it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use jsonschema::{Draft, JSONSchema};
use serde_json::{json, Value};

// ---------------------------------------------------------------------------------------------
// Loading

fn load(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let yaml: serde_yaml::Value =
        serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::to_value(yaml).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The spec files live beside the repository (shared with the team); `env` overrides.
fn find(env: &str, file: &str) -> PathBuf {
    if let Ok(p) = std::env::var(env) {
        return p.into();
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    [
        repo.join("skysql-api").join(file),
        repo.join("../shared/skysql-api").join(file),
    ]
    .into_iter()
    .find(|p| p.exists())
    .unwrap_or_else(|| panic!("the SkySQL OpenAPI spec skysql-api/{file} (or set {env})"))
}

/// Compiles `schema` with `components` embedded, so `#/components/…` resolves.
fn compile(schema: &Value, components: &Value) -> JSONSchema {
    let mut root = json!({ "allOf": [schema] });
    root["components"] = components.clone();
    JSONSchema::options()
        .with_draft(Draft::Draft7)
        .compile(&root)
        .unwrap_or_else(|e| panic!("the spec's schema compiles: {e}"))
}

/// Every way `value` fails `compiled`, with where in the value.
fn violations(compiled: &JSONSchema, value: &Value) -> Vec<String> {
    match compiled.validate(value) {
        Ok(()) => Vec::new(),
        Err(errors) => errors
            .map(|e| format!("{} at {}", e, e.instance_path))
            .collect(),
    }
}

// ---------------------------------------------------------------------------------------------
// The subset spec: one component schema at a time

fn subset_components() -> &'static Value {
    static SPEC: OnceLock<Value> = OnceLock::new();
    SPEC.get_or_init(|| {
        load(&find("SKYPLAN_SPEC", "skysql-subset.openapi.yaml"))["components"].clone()
    })
}

/// Validates `value` against the subset spec's `#/components/schemas/<name>`, or an array of
/// it with a `[]` suffix.
pub(crate) fn assert_schema(name: &str, value: &Value) {
    let (name, array) = match name.strip_suffix("[]") {
        Some(n) => (n, true),
        None => (name, false),
    };
    let reference = json!({ "$ref": format!("#/components/schemas/{name}") });
    let schema = if array {
        json!({ "type": "array", "items": reference })
    } else {
        reference
    };
    let errors = violations(&compile(&schema, subset_components()), value);
    if !errors.is_empty() {
        panic!("{value} does not match {name}: {errors:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// The full spec: whole responses

fn full_spec() -> &'static Value {
    static SPEC: OnceLock<Value> = OnceLock::new();
    SPEC.get_or_init(|| load(&find("SKYPLAN_FULL_SPEC", "mariadb-cloud-api.openapi.yaml")))
}

/// The spec's path template a concrete path (query string allowed) falls under.
///
/// Segments compare one by one: a literal segment must be equal, a `{param}` segment matches
/// any non-empty one. Of several matching templates the one whose first differing segment is
/// literal wins (OpenAPI 3.1 §4.8.8: concrete paths match before templated ones), so
/// `/skybackup/v1/backups/schedules` is not `/skybackup/v1/backups/{service_id}`.
pub(crate) fn path_template(concrete: &str) -> Result<&'static str, String> {
    let path = concrete.split_once('?').map_or(concrete, |(p, _)| p);
    let given: Vec<&str> = path.split('/').collect();
    let paths = full_spec()["paths"]
        .as_object()
        .expect("the spec has paths");
    let mut best: Vec<(Vec<bool>, &'static str)> = Vec::new();
    for template in paths.keys() {
        let segments: Vec<&str> = template.split('/').collect();
        if segments.len() != given.len() {
            continue;
        }
        let mut templated = Vec::with_capacity(segments.len());
        let matches = segments.iter().zip(&given).all(|(t, g)| {
            let is_param = t.starts_with('{') && t.ends_with('}');
            templated.push(is_param);
            if is_param {
                !g.is_empty()
            } else {
                t == g
            }
        });
        if matches {
            best.push((templated, template.as_str()));
        }
    }
    best.sort();
    match best.as_slice() {
        [] => Err(format!("{path}: no path of the spec matches")),
        [(a, _), (b, _), ..] if a == b => Err(format!(
            "{path}: ambiguous, matches {:?}",
            best.iter().map(|(_, t)| t).collect::<Vec<_>>()
        )),
        [(_, template), ..] => Ok(template),
    }
}

/// Checks one exchange against the full spec; `Ok` names the operation it matched.
///
/// - The operation is `method` on the path's template ([`path_template`]); a method the
///   template does not declare fails.
/// - The status must be declared: the exact code, else its range (`2XX`), else `default`
///   (OpenAPI 3.1 §4.8.16, Responses Object). The full spec uses exact codes only today; the
///   other two keys are honoured so the check stays right if it gains them.
/// - A declared `application/json` schema: the body must parse and match it, `$ref`s
///   resolved. `application/json` without a schema: the body must be some JSON.
/// - No `content` at all: the body must be empty. A response object without `content`
///   declares a response without a body, and a client written against the spec has nothing
///   there to read, so a body the spec does not describe is a deviation, not a detail.
/// - Only other media types (the billing PDFs): the checker cannot check them and says so
///   rather than passing.
pub(crate) fn conformance(
    method: &str,
    concrete_path: &str,
    status: u16,
    body: &str,
) -> Result<String, String> {
    let template = path_template(concrete_path)?;
    let method = method.to_ascii_lowercase();
    let op = &full_spec()["paths"][template][method.as_str()];
    let operation = format!("{} {template}", method.to_ascii_uppercase());
    if !op.is_object() {
        return Err(format!("{operation}: the spec declares no such operation"));
    }
    let responses = op["responses"]
        .as_object()
        .ok_or_else(|| format!("{operation}: no responses declared"))?;
    let code = status.to_string();
    let range = format!("{}XX", status / 100);
    let (key, response) = [code.as_str(), range.as_str(), "default"]
        .into_iter()
        .find_map(|k| responses.get(k).map(|r| (k, r)))
        .ok_or_else(|| {
            format!(
                "{operation}: status {status} is not among the declared responses {:?}; body: \
                 {body}",
                responses.keys().collect::<Vec<_>>()
            )
        })?;
    if response.get("$ref").is_some() {
        // The spec has none (no `components.responses`); resolving them is not implemented,
        // and reading a `$ref` as "no content" would be wrong.
        return Err(format!(
            "{operation} {key}: response `$ref`s are not supported"
        ));
    }
    let Some(content) = response.get("content").and_then(Value::as_object) else {
        return match body.trim() {
            "" => Ok(operation),
            _ => Err(format!(
                "{operation} {key}: the spec declares no body, got {body}"
            )),
        };
    };
    let Some(json_content) = content.get("application/json") else {
        return Err(format!(
            "{operation} {key}: declares only {:?}, which this checker cannot validate",
            content.keys().collect::<Vec<_>>()
        ));
    };
    let value: Value = serde_json::from_str(body)
        .map_err(|e| format!("{operation} {key}: the body is not JSON ({e}): {body:?}"))?;
    if json_content.get("schema").is_none() {
        return Ok(operation);
    }
    let compiled = cached(format!("response {method} {template} {key}"), || {
        &json_content["schema"]
    });
    let errors = violations(&compiled, &value);
    if errors.is_empty() {
        Ok(operation)
    } else {
        Err(format!(
            "{operation} {key}: {value} does not match the declared schema: {errors:?}"
        ))
    }
}

/// [`conformance`], panicking with the reason when the exchange does not conform.
pub(crate) fn assert_conforms(method: &str, concrete_path: &str, status: u16, body: &str) {
    if let Err(reason) = conformance(method, concrete_path, status, body) {
        panic!("{method} {concrete_path} → {status} does not conform to the spec: {reason}");
    }
}

/// A schema of the full spec, compiled once under `id` (which must name it uniquely).
fn cached(id: String, schema: impl FnOnce() -> &'static Value) -> Arc<JSONSchema> {
    static CACHE: OnceLock<Mutex<HashMap<String, Arc<JSONSchema>>>> = OnceLock::new();
    // A panic while compiling poisons the lock; the map itself is still sound.
    let mut cache = CACHE
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    cache
        .entry(id)
        .or_insert_with(|| Arc::new(compile(schema(), &full_spec()["components"])))
        .clone()
}

// ---------------------------------------------------------------------------------------------
// The request schemas the emulator validates bodies against

/// Every operation of the full spec that takes a JSON body — `{"ops": [{method, path,
/// schema}], "components": {…}}` with only the components those schemas reach — which the
/// emulator embeds (`crates/skyplan-emulator/src/spec_requests.json`) to refuse what SkySQL
/// refuses. Generated here from the spec so the copy can be checked, never edited by hand.
pub(crate) fn request_schemas() -> Value {
    let spec = full_spec();
    let mut ops = Vec::new();
    let mut wanted: Vec<String> = Vec::new();
    if let Some(paths) = spec["paths"].as_object() {
        for (path, item) in paths {
            let Some(item) = item.as_object() else {
                continue;
            };
            for (method, op) in item {
                let schema = &op["requestBody"]["content"]["application/json"]["schema"];
                if schema.is_null() {
                    continue;
                }
                refs(schema, &mut wanted);
                ops.push(json!({
                    "method": method.to_ascii_uppercase(),
                    "path": path,
                    "schema": strip(schema),
                }));
            }
        }
    }
    let all = &spec["components"]["schemas"];
    let mut components = serde_json::Map::new();
    while let Some(name) = wanted.pop() {
        if components.contains_key(&name) {
            continue;
        }
        let schema = &all[&name];
        refs(schema, &mut wanted);
        components.insert(name, strip(schema));
    }
    json!({ "ops": ops, "components": { "schemas": components } })
}

/// The component names `v` refers to (`#/components/schemas/NAME`).
fn refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            if let Some(r) = m.get("$ref").and_then(Value::as_str) {
                if let Some(name) = r.strip_prefix("#/components/schemas/") {
                    out.push(name.to_string());
                }
            }
            m.values().for_each(|x| refs(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
        _ => {}
    }
}

/// A schema without its annotations (descriptions, examples, `x-…`): what validates, only.
fn strip(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| {
                    !k.starts_with("x-")
                        && !matches!(k.as_str(), "description" | "examples" | "example" | "title")
                })
                .map(|(k, x)| {
                    (
                        k.clone(),
                        if k == "properties" {
                            strip_props(x)
                        } else {
                            strip(x)
                        },
                    )
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(strip).collect()),
        other => other.clone(),
    }
}

/// `properties` maps names to schemas: a property may be called `description` or `title`.
fn strip_props(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(m.iter().map(|(k, x)| (k.clone(), strip(x))).collect()),
        other => other.clone(),
    }
}

// ---------------------------------------------------------------------------------------------
// Operations as a client sees them: what requests the spec admits (for generated requests)

/// Every operation of the full spec: `(METHOD, path template)`, in the document's order.
pub(crate) fn operations() -> Vec<(String, &'static str)> {
    const METHODS: [&str; 8] = [
        "get", "put", "post", "delete", "options", "head", "patch", "trace",
    ];
    let mut out = Vec::new();
    for (template, item) in full_spec()["paths"].as_object().into_iter().flatten() {
        for (method, _) in item.as_object().into_iter().flatten() {
            if METHODS.contains(&method.as_str()) {
                out.push((method.to_ascii_uppercase(), template.as_str()));
            }
        }
    }
    out
}

/// One parameter an operation declares.
#[derive(Debug, Clone)]
pub(crate) struct Parameter {
    pub(crate) name: &'static str,
    /// `path`, `query`, `header` or `cookie`.
    pub(crate) location: &'static str,
    pub(crate) required: bool,
    pub(crate) schema: &'static Value,
}

/// The parameters of `method` on `template`: the path item's, overridden by the operation's
/// own of the same name and location (OpenAPI 3.1 §4.8.9), `$ref`s resolved.
pub(crate) fn parameters(method: &str, template: &str) -> Vec<Parameter> {
    let item = &full_spec()["paths"][template];
    let op = &item[method.to_ascii_lowercase().as_str()];
    let mut out: Vec<Parameter> = Vec::new();
    for declared in [&item["parameters"], &op["parameters"]] {
        for p in declared.as_array().into_iter().flatten() {
            let p = resolve(p);
            let (Some(name), Some(location)) = (p["name"].as_str(), p["in"].as_str()) else {
                continue;
            };
            let param = Parameter {
                name,
                location,
                // Path parameters are always required (§4.8.12.2).
                required: location == "path" || p["required"].as_bool().unwrap_or(false),
                schema: resolve(&p["schema"]),
            };
            out.retain(|o| !(o.name == name && o.location == location));
            out.push(param);
        }
    }
    out
}

/// The object a `$ref` names (`#/components/…`, followed until it is not a `$ref`); any
/// other value as it is.
pub(crate) fn resolve(mut v: &'static Value) -> &'static Value {
    while let Some(r) = v.get("$ref").and_then(Value::as_str) {
        match r.strip_prefix('#') {
            Some(pointer) => match full_spec().pointer(pointer) {
                Some(target) => v = target,
                None => panic!("the spec's {r} resolves"),
            },
            None => panic!("{r}: only references into the spec itself are supported"),
        }
    }
    v
}

/// The `application/json` request body schema of an operation, and whether a body is
/// required; `None` when the operation declares no JSON body.
pub(crate) fn request_body(method: &str, template: &str) -> Option<(&'static Value, bool)> {
    let op = &full_spec()["paths"][template][method.to_ascii_lowercase().as_str()];
    let body = resolve(&op["requestBody"]);
    let schema = &body["content"]["application/json"]["schema"];
    (!schema.is_null()).then(|| (schema, body["required"].as_bool().unwrap_or(false)))
}

/// Every way `body` fails the operation's declared request schema (empty: it is valid, or the
/// operation declares no JSON body).
pub(crate) fn request_violations(method: &str, template: &str, body: &Value) -> Vec<String> {
    let Some((schema, _)) = request_body(method, template) else {
        return Vec::new();
    };
    let compiled = cached(format!("request {method} {template}"), || schema);
    violations(&compiled, body)
}

/// Every way a raw parameter value (a path segment or query value, decoded) fails the
/// parameter's schema. The text is read as the schema's type first, as a server reading the
/// parameter does (`style: simple`/`form` of a primitive, §4.8.12.4): an integer must be
/// digits, a boolean `true` or `false`; then the schema's constraints apply.
pub(crate) fn parameter_violations(param: &Parameter, raw: &str) -> Vec<String> {
    let value = match param.schema["type"].as_str() {
        Some("integer") => match raw.parse::<i64>() {
            Ok(n) => Value::from(n),
            Err(_) => return vec![format!("{raw:?} is not an integer")],
        },
        Some("number") => match raw
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
        {
            Some(n) => Value::Number(n),
            None => return vec![format!("{raw:?} is not a number")],
        },
        Some("boolean") => match raw {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => return vec![format!("{raw:?} is not a boolean")],
        },
        _ => Value::String(raw.to_string()),
    };
    let schema = param.schema;
    let compiled = cached(format!("parameter {schema}"), || schema);
    violations(&compiled, &value)
}

/// Every way `value` fails the full spec's `#/components/schemas/<name>`.
pub(crate) fn component_violations(name: &str, value: &Value) -> Vec<String> {
    let schema = &full_spec()["components"]["schemas"][name];
    assert!(schema.is_object(), "the spec has no schema {name}");
    violations(&cached(format!("component {name}"), || schema), value)
}
