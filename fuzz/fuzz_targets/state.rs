//! Any bytes as a state file: loading must return a state or a located error, never panic; a
//! loaded state must round-trip through the one encoding, and planning the fan-out example
//! against it (a hand-edited, inconsistent state) must not panic either.

#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use skyplan_core::observed::Observed;
use skyplan_core::plan::{self, PlanInput};
use skyplan_core::state::codec;
use skyplan_core::topology::Topology;

fn topology() -> &'static Topology {
    static T: OnceLock<Topology> = OnceLock::new();
    T.get_or_init(|| {
        skyplan_core::topology::parse(
            include_str!("../../examples/fan-out.toml"),
            Path::new("fan-out.toml"),
        )
        .expect("the fan-out example is valid")
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(state) = codec::from_json(data, "fuzz.state.json") else {
        return;
    };
    let json = codec::to_json(&state).expect("a loaded state serialises");
    let again = codec::from_json(json.as_bytes(), "again").expect("its own encoding loads");
    assert_eq!(again, state, "the state changed in a round trip");
    let observed = Observed::offline();
    let input = PlanInput {
        topology: topology(),
        topology_sha256: "0",
        state: &state,
        observed: &observed,
    };
    if let Ok(p) = plan::build(&input) {
        let _ = plan::render::render(&p, false);
    }
    let _ = plan::build_destroy(&input);
});
