//! Topology files as users write them: every broken file in `tests/corpus/topology/` is
//! rejected with located, snapshot-tested diagnostics (never a panic), the examples load,
//! and the examples agree with `schemas/topology.schema.json`.

use std::fs;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use skyplan::topology::{self, Diagnostics};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn toml_files(dir: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(root().join(dir))
        .unwrap_or_else(|e| panic!("cannot list {dir}: {e}"))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

/// Loads through the public API by absolute path, and renders with paths relative to the
/// crate root so snapshots are the same on every machine.
fn load_rendered(path: &Path) -> Result<topology::Topology, (Diagnostics, String)> {
    let result = catch_unwind(AssertUnwindSafe(|| topology::load(path)))
        .unwrap_or_else(|_| panic!("topology::load panicked on {}", path.display()));
    result.map_err(|diags| {
        let prefix = format!("{}/", root().display());
        let rendered = diags.to_string().replace(&prefix, "");
        (diags, rendered)
    })
}

fn stem(path: &Path) -> String {
    path.file_stem()
        .and_then(|s| s.to_str())
        .expect("utf-8 file name")
        .to_string()
}

#[test]
fn every_broken_file_is_rejected_with_located_snapshotted_diagnostics() {
    let files = toml_files("tests/corpus/topology");
    assert!(
        files.len() >= 35,
        "the corpus has only {} files",
        files.len()
    );
    for path in &files {
        let name = stem(path);
        let (diags, rendered) = match load_rendered(path) {
            Ok(_) => panic!("{name}.toml was accepted but is broken"),
            Err(e) => e,
        };
        assert!(!diags.is_empty(), "{name}: an error without diagnostics");
        for d in &diags {
            assert!(
                d.location.is_some() && d.snippet.is_some(),
                "{name}: unlocated: {d}"
            );
        }
        let shown = format!("tests/corpus/topology/{name}.toml:");
        assert!(
            rendered.contains(&shown),
            "{name}: path not shown relative:\n{rendered}"
        );
        if name.starts_with("multiple-") {
            assert!(
                diags.len() > 2,
                "{name}: expected several problems:\n{rendered}"
            );
        }
        insta::assert_snapshot!(format!("corpus-{name}"), rendered);
    }
}

#[test]
fn secrets_in_broken_files_are_never_echoed() {
    for name in [
        "api-key-in-file",
        "api-key-env-holds-key",
        "state-backend-password",
    ] {
        let path = root().join(format!("tests/corpus/topology/{name}.toml"));
        let (_, rendered) = load_rendered(&path).expect_err("broken");
        for secret in ["do-not-leak", "hunter2"] {
            assert!(
                !rendered.contains(secret),
                "{name} leaks a secret:\n{rendered}"
            );
        }
    }
}

#[test]
fn an_unreadable_file_is_a_diagnostic_too() {
    let (diags, rendered) =
        load_rendered(&root().join("tests/corpus/topology/does-not-exist.toml"))
            .expect_err("absent");
    assert_eq!(diags.len(), 1);
    assert!(
        rendered.contains("cannot read the topology file"),
        "{rendered}"
    );
}

#[test]
fn examples_load() {
    let files = toml_files("examples");
    assert!(files.len() >= 2);
    for path in &files {
        if let Err((_, rendered)) = load_rendered(path) {
            panic!("{} does not load:\n{rendered}", path.display());
        }
    }
}

#[test]
fn global_replication_example_is_the_guide() {
    let t = topology::load(&root().join("examples/global-replication.toml")).expect("loads");
    assert!(t.provider.is_local());
    assert_eq!(t.provider.api_key_env, "API_KEY");
    assert_eq!(t.services.len(), 2);
    for (key, name, region) in [
        ("primary", "skysql-primary", "us-east4"),
        ("secondary", "skysql-secondary", "us-west1"),
    ] {
        let s = &t.services[key].spec;
        assert_eq!((s.name.as_str(), s.region.as_str()), (name, region));
        assert_eq!(
            (s.provider.as_str(), s.size.as_str(), s.storage),
            ("gcp", "sky-2x8", 100)
        );
        assert_eq!(
            (s.service_type.as_str(), s.topology.as_str()),
            ("transactional", "standalone")
        );
        assert_eq!(
            (s.architecture.as_str(), s.nodes, s.ssl_enabled),
            ("amd64", 1, true)
        );
        assert_eq!(s.allow_list, ["127.0.0.1/32"]);
    }
    let r = t.services["secondary"]
        .replication
        .as_ref()
        .expect("replicates");
    assert_eq!(
        (r.from.as_str(), &r.seed, r.ssl),
        ("primary", &topology::Seed::NewBackup, true)
    );
    assert!(t.services["primary"].replication.is_none());
}

#[test]
fn fan_out_example_has_three_replicas_of_one_primary() {
    let t = topology::load(&root().join("examples/fan-out.toml")).expect("loads");
    let replicas: Vec<_> = t.replicas_of("primary").collect();
    assert_eq!(replicas.len(), 3);
    let mut regions: Vec<&str> = t
        .services
        .values()
        .map(|s| s.spec.region.as_str())
        .collect();
    regions.dedup();
    assert_eq!(regions.len(), 4, "four distinct regions");
    assert!(replicas.iter().all(|s| s.spec.provider == "gcp"));
}

fn schema() -> jsonschema::JSONSchema {
    let text = fs::read_to_string(root().join("schemas/topology.schema.json")).expect("schema");
    let schema: serde_json::Value = serde_json::from_str(&text).expect("schema is JSON");
    jsonschema::JSONSchema::options()
        .with_draft(jsonschema::Draft::Draft7)
        .compile(&schema)
        .expect("schema compiles")
}

fn as_json(path: &Path) -> serde_json::Value {
    let text = fs::read_to_string(path).expect("readable");
    toml::from_str(&text).unwrap_or_else(|e| panic!("{} is not TOML: {e}", path.display()))
}

fn schema_errors(schema: &jsonschema::JSONSchema, path: &Path) -> Vec<String> {
    let instance = as_json(path);
    let errors = match schema.validate(&instance) {
        Ok(()) => Vec::new(),
        Err(errors) => errors
            .map(|e| format!("{}: {e}", e.instance_path))
            .collect(),
    };
    errors
}

#[test]
fn examples_validate_against_the_schema() {
    let schema = schema();
    for path in toml_files("examples") {
        let errors = schema_errors(&schema, &path);
        assert!(
            errors.is_empty(),
            "{}:\n{}",
            path.display(),
            errors.join("\n")
        );
    }
}

#[test]
fn type_errors_fail_the_schema_too() {
    let schema = schema();
    for name in [
        "wrong-type-storage",
        "wrong-type-ssl",
        "wrong-type-nodes-float",
        "wrong-type-allow-list",
        "wrong-type-tags",
        "unknown-key",
        "bad-provider",
        "storage-not-offered",
        "bad-cidr",
        "bad-seed",
    ] {
        let path = root().join(format!("tests/corpus/topology/{name}.toml"));
        assert!(
            !schema_errors(&schema, &path).is_empty(),
            "{name} passes the schema"
        );
    }
}
