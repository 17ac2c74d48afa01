//! schemas/state.schema.json describes what skyplan writes.

use serde_json::Value;
use skyplan::state::codec;

fn schema() -> jsonschema::JSONSchema {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/schemas/state.schema.json"
    ))
    .expect("schema file");
    let schema: Value = serde_json::from_str(&text).expect("schema is JSON");
    jsonschema::JSONSchema::compile(&schema).expect("schema compiles")
}

fn errors(schema: &jsonschema::JSONSchema, v: &Value) -> Vec<String> {
    match schema.validate(v) {
        Ok(()) => vec![],
        Err(errs) => errs
            .map(|e| format!("{} at {}", e, e.instance_path))
            .collect(),
    }
}

#[test]
fn populated_state_validates_and_round_trips() {
    let state = crate::state_support::populated_state();
    let json = codec::to_json(&state).unwrap();
    let value: Value = serde_json::from_str(&json).unwrap();
    let schema = schema();
    assert_eq!(errors(&schema, &value), Vec::<String>::new());
    let back = codec::from_json(json.as_bytes(), "test").unwrap();
    assert_eq!(back, state);
    assert_eq!(codec::to_json(&back).unwrap(), json, "encoding is stable");
}

#[test]
fn empty_state_validates() {
    let value = serde_json::to_value(skyplan::state::new_state()).unwrap();
    assert_eq!(errors(&schema(), &value), Vec::<String>::new());
}

#[test]
fn schema_rejects_what_skyplan_would_refuse() {
    let schema = schema();
    let good = serde_json::to_value(crate::state_support::populated_state()).unwrap();

    let mut unknown = good.clone();
    unknown["resources"]["services"]["primary"]["password"] = "x".into();
    assert!(
        !errors(&schema, &unknown).is_empty(),
        "unknown fields are refused"
    );

    let mut missing = good.clone();
    missing.as_object_mut().unwrap().remove("lineage");
    assert!(!errors(&schema, &missing).is_empty(), "lineage is required");

    let mut negative = good;
    negative["serial"] = (-1).into();
    assert!(
        !errors(&schema, &negative).is_empty(),
        "serial is not negative"
    );
}
