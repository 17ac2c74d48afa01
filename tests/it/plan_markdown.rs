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
