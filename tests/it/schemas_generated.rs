//! Issue 29: `schemas/*.schema.json` are generated from the types of the documents they
//! describe (`skyplan::schemas::generate`), never edited by hand: each checked-in file must be
//! what the generator makes now. `SKYPLAN_UPDATE_SCHEMAS=1` writes them again.

use std::path::Path;

#[test]
fn schemas_are_generated_from_the_types() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas");
    let update = std::env::var_os("SKYPLAN_UPDATE_SCHEMAS").is_some();
    let mut stale = Vec::new();
    for (file, text) in skyplan::schemas::generate() {
        let path = dir.join(file);
        if update {
            std::fs::write(&path, &text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        }
        if std::fs::read_to_string(&path).unwrap_or_default() != text {
            stale.push(format!("schemas/{file}"));
        }
    }
    assert!(
        stale.is_empty(),
        "{} not what the types say (a type, a doc comment or a schemars attribute changed); \
         regenerate with `SKYPLAN_UPDATE_SCHEMAS=1 cargo test --test it schemas` and commit \
         the result",
        stale.join(", ")
    );
}

/// A file in `schemas/` that the generator does not make would be hand-written again.
#[test]
fn schemas_holds_only_generated_files() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas");
    let generated: Vec<&str> = skyplan::schemas::generate()
        .iter()
        .map(|(file, _)| *file)
        .collect();
    let mut present: Vec<String> = std::fs::read_dir(&dir)
        .expect("schemas/")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    present.sort();
    let mut expected: Vec<String> = generated.iter().map(|f| f.to_string()).collect();
    expected.sort();
    assert_eq!(present, expected);
}
