//! The JSON Schemas of the documents made of the core's types (`schemas/*.schema.json`),
//! derived from those types with `schemars`: a type's doc comments are its schema's
//! descriptions, and the constraints a schema states (patterns, enums, ranges) are attributes
//! beside the fields they constrain, so a field cannot change without its schema changing too.
//! The binary adds its own documents (`output --json`, the `apply --json` events) and writes
//! the files (`skyplan::schemas`); nothing here does I/O.

use schemars::generate::SchemaSettings;
use schemars::transform::{transform_subschemas, RestrictFormats, Transform};
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde_json::Value;

/// A generator for one document. `written`: the document is what skyplan writes (the state,
/// the plan, the reports), so a field is required when it is always written; otherwise it is
/// what skyplan reads (the topology file), and a field is required when it must be given.
pub fn generator(written: bool) -> SchemaGenerator {
    let settings = SchemaSettings::draft07();
    let settings = if written {
        settings.for_serialize()
    } else {
        settings.for_deserialize()
    };
    settings
        .with(|s| {
            // First: the draft-07 transforms that follow (`$ref` siblings, unevaluated
            // properties) must see the optional properties as they end up.
            s.transforms.insert(0, Box::new(AbsentNotNull));
        })
        .with_transform(Paragraphs)
        // Drops the integer formats (`uint32`, …) draft 07 does not define: validators would
        // ignore or, worse, reject them.
        .with_transform(RestrictFormats::default())
        .into_generator()
}

/// The schema of `T` as the root of a published document: with its `$id` (when it has one)
/// and its title, people's name for the document rather than the type's.
pub fn document<T: JsonSchema>(
    mut generator: SchemaGenerator,
    id: Option<&str>,
    title: &str,
) -> Schema {
    let mut schema = generator.root_schema_for::<T>();
    name(&mut schema, id, title);
    schema
}

/// Sets a root schema's `$id` and `title`.
pub fn name(schema: &mut Schema, id: Option<&str>, title: &str) {
    if let Some(id) = id {
        schema.insert("$id".into(), id.into());
    }
    schema.insert("title".into(), title.into());
}

/// `schemas/topology.schema.json`: the topology file as written (TOML, read as its JSON
/// equivalent).
pub fn topology() -> Schema {
    crate::topology::file_schema(generator(false))
}

/// `schemas/state.schema.json`.
pub fn state() -> Schema {
    document::<crate::state::State>(
        generator(true),
        Some("https://github.com/skyplan/skyplan/schemas/state.schema.json"),
        "skyplan state",
    )
}

/// `schemas/plan.schema.json`: `plan --json` and saved plan files.
pub fn plan() -> Schema {
    document::<crate::plan::Plan>(
        generator(true),
        Some("https://skyplan.dev/schemas/plan.schema.json"),
        "skyplan plan",
    )
}

/// `schemas/verify.schema.json`: `verify --json`.
pub fn verify() -> Schema {
    document::<crate::verify::VerifyReport>(
        generator(true),
        Some("https://skyplan.dev/schemas/verify.schema.json"),
        "skyplan verify",
    )
}

/// A description is prose: the line breaks of the doc comment it comes from are spaces
/// (a blank line still parts two paragraphs).
#[derive(Debug, Clone)]
struct Paragraphs;

impl Transform for Paragraphs {
    fn transform(&mut self, schema: &mut Schema) {
        transform_subschemas(self, schema);
        if let Some(Value::String(d)) = schema.get_mut("description") {
            let paragraphs: Vec<String> = d
                .split("\n\n")
                .map(|p| p.split('\n').map(str::trim).collect::<Vec<_>>().join(" "))
                .collect();
            *d = paragraphs.join("\n\n");
        }
    }
}

/// An optional property is absent rather than null: what skyplan writes leaves out a value it
/// does not have (`skip_serializing_if`), and TOML has no null. `Option<T>` alone would let a
/// schema accept `null` there. A required property keeps its null (e.g. `host` in `output`).
#[derive(Debug, Clone)]
struct AbsentNotNull;

impl Transform for AbsentNotNull {
    fn transform(&mut self, schema: &mut Schema) {
        transform_subschemas(self, schema);
        let Some(object) = schema.as_object_mut() else {
            return;
        };
        let required: Vec<String> = object
            .get("required")
            .and_then(Value::as_array)
            .map(|r| {
                r.iter()
                    .filter_map(Value::as_str)
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default();
        let Some(Value::Object(properties)) = object.get_mut("properties") else {
            return;
        };
        for (name, property) in properties.iter_mut() {
            if !required.contains(name) {
                if let Value::Object(p) = property {
                    not_null(p);
                }
            }
        }
    }
}

/// `{"type": [T, "null"]}` → `{"type": T}`; `{"anyOf": [S, {"type": "null"}]}` → S.
fn not_null(p: &mut serde_json::Map<String, Value>) {
    if let Some(Value::Array(types)) = p.get_mut("type") {
        types.retain(|t| t != "null");
        if types.len() == 1 {
            let only = types.remove(0);
            p.insert("type".into(), only);
        }
    }
    let null = serde_json::json!({ "type": "null" });
    let any_of = match p.get_mut("anyOf") {
        Some(Value::Array(any_of)) if any_of.contains(&null) => any_of,
        _ => return,
    };
    any_of.retain(|s| *s != null);
    if any_of.len() == 1 {
        if let Value::Object(only) = any_of.remove(0) {
            p.remove("anyOf");
            // The property's own words (its description) win over the referenced type's.
            for (k, v) in only {
                p.entry(k).or_insert(v);
            }
        }
    }
}
