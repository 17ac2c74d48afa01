//! `plan --format markdown` read by a CommonMark parser (pulldown-cmark, with GitHub's
//! tables): one table whose rows all have the header's cells, the Mermaid blocks, and no raw
//! HTML — also when the API's strings and the servers' messages carry markup.

use pulldown_cmark::{CodeBlockKind, Event, Options, Parser, Tag, TagEnd};
use serde_json::Value;

use crate::support::fixtures::{applied, example, markdown};
use skyplan::plan::{self, Drift, DriftKind, PlanInput};

/// What a previewer would see: tables' rows (cells per row), code blocks' languages, and any
/// raw HTML that got through.
#[derive(Debug, Default)]
struct Read {
    rows: Vec<usize>,
    code: Vec<String>,
    html: Vec<String>,
}

fn read(md: &str) -> Read {
    let mut r = Read::default();
    let mut cells = 0;
    for ev in Parser::new_ext(md, Options::ENABLE_TABLES) {
        match ev {
            Event::Start(Tag::TableHead | Tag::TableRow) => cells = 0,
            Event::Start(Tag::TableCell) => cells += 1,
            Event::End(TagEnd::TableHead | TagEnd::TableRow) => r.rows.push(cells),
            Event::Start(Tag::CodeBlock(CodeBlockKind::Fenced(lang))) => {
                r.code.push(lang.to_string())
            }
            Event::Html(h) | Event::InlineHtml(h) => r.html.push(h.to_string()),
            _ => {}
        }
    }
    r
}

#[test]
fn the_markdown_plan_is_one_table_two_pictures_and_no_html_even_with_hostile_strings() {
    let t = example("global-replication.toml");
    let s = applied(&t);
    let grown = t.clone();
    let mut p = plan::build(&PlanInput {
        topology: &grown,
        topology_sha256: "0000",
        state: &s,
        observed: &skyplan::observed::Observed::offline(),
        flags: Default::default(),
    })
    .unwrap();
    // Strings from outside, as an API or a server could send them.
    let hostile =
        "a | b <img src=x onerror=alert(1)> **bold** [link](http://x) `code`\n# heading\u{1b}[31m";
    p.drift.push(Drift {
        resource: "service.primary".into(),
        kind: DriftKind::ServiceResized,
        before: Value::Null,
        after: Value::Null,
        detail: hostile.into(),
    });
    p.warnings.push(hostile.into());
    let mut action = p.actions.first().cloned().unwrap_or_else(|| {
        // An applied state plans nothing: give the table a row to carry the string.
        plan::Action {
            id: 0,
            address: "service.primary".into(),
            change: plan::Change::Update,
            kind: plan::ActionKind::SetRole {
                key: "primary".into(),
                writable: true,
            },
            summary: String::new(),
            depends_on: vec![],
            before: None,
            after: None,
            wipes_data: true,
            reason: None,
            estimated_ms: None,
        }
    });
    action.summary = hostile.into();
    action.reason = Some(hostile.into());
    p.actions = vec![action];
    let md = markdown(&p, &t, &s);
    let r = read(&md);
    assert!(
        r.html.is_empty(),
        "raw HTML got through: {:?}\n{md}",
        r.html
    );
    assert_eq!(r.rows, [6, 6], "the header and one row of 6 cells\n{md}");
    assert_eq!(r.code, ["mermaid", "mermaid"], "{md}");
    // Nothing became a heading or a link: the only headings are the document's own.
    let headings = Parser::new(&md)
        .filter(|e| matches!(e, Event::Start(Tag::Heading { .. })))
        .count();
    let links = Parser::new(&md)
        .filter(|e| matches!(e, Event::Start(Tag::Link { .. })))
        .count();
    assert_eq!((headings, links), (6, 0), "{md}");
}

#[test]
fn the_guide_plan_reads_as_commonmark() {
    let t = example("global-replication.toml");
    let s = skyplan::state::new_state();
    let p = plan::build(&PlanInput {
        topology: &t,
        topology_sha256: "0000",
        state: &s,
        observed: &skyplan::observed::Observed::offline(),
        flags: Default::default(),
    })
    .unwrap();
    let r = read(&markdown(&p, &t, &s));
    assert!(r.html.is_empty(), "{:?}", r.html);
    assert_eq!(r.rows, [6; 7], "a header and six actions");
    // Nothing is managed yet: one picture, the file's.
    assert_eq!(r.code, ["mermaid"]);
}

/// Where Mermaid's own parser is installed for the tests (npm: mermaid and jsdom), or None
/// when this machine has no Node or cannot install it — then the Mermaid is checked by the
/// snapshots alone, and the test says so.
fn mermaid_parser() -> Option<std::path::PathBuf> {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("mermaid-parser");
    let installed =
        || dir.join("node_modules/mermaid").is_dir() && dir.join("node_modules/jsdom").is_dir();
    if !installed() {
        std::fs::create_dir_all(&dir).ok()?;
        let ok = std::process::Command::new("timeout")
            .args([
                "300",
                "npm",
                "install",
                "--no-audit",
                "--no-fund",
                "--silent",
                "--prefix",
            ])
            .arg(&dir)
            .args(["mermaid@11", "jsdom@24"])
            .stdout(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok || !installed() {
            eprintln!("NOTE: no Mermaid parser (node/npm missing or the npm registry unreachable): the Mermaid output is checked by its snapshots only");
            return None;
        }
    }
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/support/mermaid.mjs"),
        dir.join("mermaid.mjs"),
    )
    .ok()?;
    Some(dir)
}

/// The ```mermaid blocks of a Markdown document.
fn mermaid_blocks(md: &str) -> Vec<String> {
    md.split("```mermaid\n")
        .skip(1)
        .filter_map(|b| b.split("```").next())
        .map(str::to_string)
        .collect()
}

/// Issue 27: every diagram skyplan draws parses with Mermaid itself — the plan's and the
/// state's graphs, the Markdown plan's pictures, and labels that carry markup.
#[test]
fn mermaid_parses_every_diagram_skyplan_draws() {
    use skyplan::plan::dot::GraphWriter;
    use skyplan::plan::graph;

    let guide = example("global-replication.toml");
    let fan = example("fan-out.toml");
    let empty = skyplan::state::new_state();
    let plan_of = |t: &skyplan::topology::Topology, s: &skyplan::state::State| {
        plan::build(&PlanInput {
            topology: t,
            topology_sha256: "0000",
            state: s,
            observed: &skyplan::observed::Observed::offline(),
            flags: Default::default(),
        })
        .unwrap()
    };
    let mut blocks = vec![
        graph::to_mermaid(&plan_of(&guide, &empty).actions),
        graph::to_mermaid(&plan_of(&fan, &empty).actions),
        graph::state_to_mermaid(&applied(&guide)),
        graph::state_to_mermaid(&applied(&fan)),
    ];
    // A third service chained from the secondary: pictures before and after.
    let grown = crate::support::fixtures::topology(&format!(
        "{}\n[services.third]\nname = \"skysql-third\"\nregion = \"europe-west1\"\n\n[services.third.replication]\nfrom = \"secondary\"\nseed = \"new-backup\"\n",
        include_str!("../../examples/global-replication.toml")
    ));
    let applied_guide = applied(&guide);
    let p = plan_of(&grown, &applied_guide);
    let pictures = mermaid_blocks(&markdown(&p, &grown, &applied_guide));
    assert_eq!(pictures.len(), 2, "{pictures:?}");
    blocks.extend(pictures);
    let mut hostile = skyplan::plan::mermaid::Mermaid::new();
    let evil = "a \"b\" <script>x</script> #c ]d[ |e| %% f; `g` end\nh {i} (j)";
    hostile.node("service.a", evil, &[("color", "red")]);
    hostile.node("service.end", evil, &[]);
    hostile.edge(
        "service.a",
        "service.end",
        &[("label", evil), ("style", "dashed")],
    );
    hostile.edge(
        "service.end",
        "service.a",
        &[("label", evil), ("color", "red")],
    );
    blocks.push(hostile.finish());
    assert!(blocks.len() >= 7, "{blocks:?}");

    let Some(dir) = mermaid_parser() else { return };
    let mut child = std::process::Command::new("node")
        .arg(dir.join("mermaid.mjs"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("node runs");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(blocks.join("\n---\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    let results: Vec<&str> = said.lines().collect();
    for (block, result) in blocks.iter().zip(&results) {
        assert_eq!(*result, "ok", "Mermaid refused:\n{block}");
    }
    assert_eq!(
        results.len(),
        blocks.len(),
        "{said}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{said}");
}
