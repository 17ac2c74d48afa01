//! A deterministic, CI-sized cousin of the cargo-fuzz targets in `fuzz/`: thousands of
//! mutations of the fuzz seeds (the topology corpus, the examples, real state files) thrown at
//! the topology parser and the state loader, with the same checks — no panic, errors render,
//! what loads round-trips and plans.

use std::path::{Path, PathBuf};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use skyplan::observed::Observed;
use skyplan::plan::{self, PlanInput};
use skyplan::state::codec;

const MUTATIONS_PER_SEED: usize = 300;

fn seeds(kind: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join("seeds")
        .join(kind);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    let seeds: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
    assert!(seeds.len() >= 5, "too few seeds in {}", dir.display());
    seeds
}

/// Tokens that steer mutations into interesting corners of TOML and JSON.
const TOKENS: &[&str] = &[
    "[",
    "]",
    "[[",
    "]]",
    "{",
    "}",
    "\"",
    "'''",
    "\"\"\"",
    "=",
    ",",
    ".",
    "#",
    "\n",
    "\r\n",
    "\\u",
    "\t",
    "é",
    "🦀",
    "\u{feff}",
    "\u{0301}",
    "0x",
    "1e999",
    "-0",
    "9999999999999999999999",
    "null",
    "true",
    "[services.",
    "[services.x.replication]",
    "from = ",
    "seed = \"backup:",
    "\"format_version\": ",
    "\"serial\": ",
    "\"resources\": {",
    "\"in_flight\": {",
    "NaN",
];

fn mutate(rng: &mut StdRng, seed: &[u8], others: &[Vec<u8>]) -> Vec<u8> {
    let mut v = seed.to_vec();
    for _ in 0..rng.gen_range(1..=3) {
        let at = if v.is_empty() {
            0
        } else {
            rng.gen_range(0..=v.len())
        };
        match rng.gen_range(0..7) {
            0 => v.truncate(at),
            1 if !v.is_empty() => {
                let i = rng.gen_range(0..v.len());
                v[i] ^= 1 << rng.gen_range(0..8);
            }
            2 => {
                let t = TOKENS[rng.gen_range(0..TOKENS.len())].as_bytes();
                v.splice(at..at, t.iter().copied());
            }
            3 if at < v.len() => {
                let end = rng.gen_range(at..=v.len().min(at + 64));
                v.drain(at..end);
            }
            4 => {
                // Splice a piece of another seed in.
                let o = &others[rng.gen_range(0..others.len())];
                if !o.is_empty() {
                    let a = rng.gen_range(0..o.len());
                    let b = rng.gen_range(a..=o.len().min(a + 200));
                    v.splice(at..at, o[a..b].iter().copied());
                }
            }
            5 if at < v.len() => {
                // Repeat a piece (deep nesting, long lines).
                let end = rng.gen_range(at..=v.len().min(at + 16));
                let piece = v[at..end].to_vec();
                for _ in 0..rng.gen_range(1..50) {
                    v.splice(at..at, piece.iter().copied());
                }
            }
            _ => v.insert(at.min(v.len()), rng.gen()),
        }
    }
    v
}

#[test]
fn mutated_topologies_never_panic_and_valid_ones_plan() {
    let seeds = seeds("topology");
    let mut rng = StdRng::seed_from_u64(6);
    let (mut valid, mut invalid) = (0, 0);
    for seed in &seeds {
        for _ in 0..MUTATIONS_PER_SEED {
            let input = mutate(&mut rng, seed, &seeds);
            let Ok(text) = std::str::from_utf8(&input) else {
                continue;
            };
            let result = std::panic::catch_unwind(|| {
                match skyplan::topology::parse(text, Path::new("fuzz.toml")) {
                    Err(d) => {
                        assert!(!d.to_string().is_empty());
                        false
                    }
                    Ok(t) => {
                        let state = skyplan::state::new_state();
                        let observed = Observed::offline();
                        let input = PlanInput {
                            topology: &t,
                            topology_sha256: "0",
                            state: &state,
                            observed: &observed,
                            flags: Default::default(),
                        };
                        if let Ok(p) = plan::build(&input) {
                            let _ = plan::render::render(&p, false);
                            let _ = plan::graph::to_dot(&p.actions);
                        }
                        true
                    }
                }
            });
            match result {
                Ok(true) => valid += 1,
                Ok(false) => invalid += 1,
                Err(_) => panic!("panicked on this topology:\n{text}"),
            }
        }
    }
    // Both sides were exercised.
    assert!(
        valid > 50 && invalid > 1000,
        "{valid} valid, {invalid} invalid"
    );
}

#[test]
fn mutated_state_files_never_panic_and_loaded_ones_round_trip_and_plan() {
    let seeds = seeds("state");
    let topology = skyplan::topology::load(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("examples")
            .join("fan-out.toml"),
    )
    .unwrap();
    let mut rng = StdRng::seed_from_u64(42);
    let (mut loaded, mut refused) = (0, 0);
    for seed in &seeds {
        for _ in 0..MUTATIONS_PER_SEED * 5 {
            let input = mutate(&mut rng, seed, &seeds);
            let result = std::panic::catch_unwind(|| {
                let state = match codec::from_json(&input, "fuzz.state.json") {
                    Ok(s) => s,
                    Err(e) => {
                        assert!(e.to_string().contains("fuzz.state.json"), "{e}");
                        return false;
                    }
                };
                let json = codec::to_json(&state).unwrap();
                assert_eq!(codec::from_json(json.as_bytes(), "again").unwrap(), state);
                let observed = Observed::offline();
                let input = PlanInput {
                    topology: &topology,
                    topology_sha256: "0",
                    state: &state,
                    observed: &observed,
                    flags: Default::default(),
                };
                if let Ok(p) = plan::build(&input) {
                    let _ = plan::render::render(&p, false);
                }
                let _ = plan::build_destroy(&input);
                true
            });
            match result {
                Ok(true) => loaded += 1,
                Ok(false) => refused += 1,
                Err(_) => panic!(
                    "panicked on this state:\n{}",
                    String::from_utf8_lossy(&input)
                ),
            }
        }
    }
    assert!(
        loaded > 100 && refused > 500,
        "{loaded} loaded, {refused} refused"
    );
}
