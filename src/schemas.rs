//! The JSON Schemas in `schemas/`, generated from the types of the documents they describe
//! (`schemars`): the core's (the topology file, the state, the plan, `verify --json`;
//! `skyplan_core::schemas`) and this crate's (`output --json`, the `apply --json` events).
//! Nothing writes them at run time: a test compares the checked-in files with [`generate`] and
//! rewrites them when asked (`SKYPLAN_UPDATE_SCHEMAS=1 cargo test --test it schemas`).

use skyplan_core::schemas::{self as core, document, generator};

use crate::apply::events::EventLine;
use crate::ops::output::OutputDocument;

/// Each file of `schemas/` by name, with its content: pretty JSON and a final newline.
pub fn generate() -> Vec<(&'static str, String)> {
    let schemas = [
        ("topology.schema.json", core::topology()),
        ("state.schema.json", core::state()),
        ("plan.schema.json", core::plan()),
        ("output.schema.json", output()),
        ("verify.schema.json", core::verify()),
        ("events.schema.json", events()),
    ];
    schemas
        .into_iter()
        .map(|(file, schema)| {
            let text = serde_json::to_string_pretty(&schema).expect("a schema is JSON");
            (file, text + "\n")
        })
        .collect()
}

/// `output --json`: all the services, or one with NAME.
fn output() -> schemars::Schema {
    document::<OutputDocument>(
        generator(true),
        Some("https://github.com/skyplan/skyplan/schemas/output.schema.json"),
        "skyplan output --json",
    )
}

/// One line of `apply --json`.
fn events() -> schemars::Schema {
    document::<EventLine>(
        generator(true),
        Some("https://github.com/skyplan/skyplan/schemas/events.schema.json"),
        "skyplan apply --json event",
    )
}
