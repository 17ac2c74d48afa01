//! Any bytes as a topology file: parse and validate must return a topology or located
//! diagnostics, never panic; diagnostics must render; a valid topology must plan and render.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use skyplan_core::observed::Observed;
use skyplan_core::plan::{self, PlanInput};
use skyplan_core::state::State;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match skyplan_core::topology::parse(text, Path::new("fuzz.toml")) {
        Err(diagnostics) => {
            // Rendering places carets under columns: a classic place for panics.
            let _ = diagnostics.to_string();
        }
        Ok(topology) => {
            let state = State::new();
            let observed = Observed::offline();
            let input = PlanInput {
                topology: &topology,
                topology_sha256: "0",
                state: &state,
                observed: &observed,
            };
            if let Ok(p) = plan::build(&input) {
                let _ = plan::render::render(&p, false);
                let _ = plan::graph::to_dot(&p.actions);
            }
        }
    }
});
