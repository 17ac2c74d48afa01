//! The plan as a Markdown document for a pull-request comment (`plan --format markdown`):
//! the summary line, the steps that wipe data or restart a server first with their reasons,
//! the warnings (the data a reviewer consents to lose comes first among them), the drift, a
//! table of every action, and the topology before and after as Mermaid diagrams, which GitHub
//! and GitLab render inline.
//!
//! Every string that came from outside (service names, server errors in drift details, keys)
//! is data: control characters are spelled out and Markdown's and HTML's markup characters
//! are escaped, so a name can never open a link, a table cell or an HTML tag.

use std::fmt::Write;

use super::dot::GraphWriter;
use super::mermaid::Mermaid;
use super::render;
use super::{Action, ActionKind, Plan};
use crate::state::State;
use crate::topology::Topology;

/// The document. `before` is the state the plan was made against (what skyplan manages now).
pub fn render(plan: &Plan, before: &State) -> String {
    let mut out = String::new();
    let file = md(&plan.topology_file);
    let title = if plan.destroy {
        "skyplan destroy plan"
    } else {
        "skyplan plan"
    };
    let _ = writeln!(out, "### {title} for {file}\n");
    if !plan.refreshed && !plan.destroy {
        let _ = writeln!(
            out,
            "> **Note:** refresh skipped (--refresh=false); the plan trusts the recorded state.\n"
        );
    }
    if !plan.flags.target.is_empty() {
        let _ = writeln!(
            out,
            "> **Note:** a partial plan (--target {}): only these and what they depend on.\n",
            md(&plan.flags.target.join(", --target "))
        );
    }
    let _ = writeln!(out, "**{}**\n", md(&render::summary_line(plan)));
    if let Some(e) = &plan.estimate {
        let _ = writeln!(out, "{}\n", md(&e.line()));
    }
    flagged(&mut out, &plan.actions);
    if !plan.warnings.is_empty() {
        let _ = writeln!(out, "#### Warnings\n");
        for w in &plan.warnings {
            let _ = writeln!(out, "- {}", md(w));
        }
        out.push('\n');
    }
    if !plan.drift.is_empty() {
        let _ = writeln!(out, "#### Changed outside skyplan\n");
        for d in &plan.drift {
            let note = if d.kind.is_informational() {
                " (informational)"
            } else {
                ""
            };
            let _ = writeln!(
                out,
                "- **{}** {}{note}: {}",
                md(&d.resource),
                md(d.kind.label()),
                md(&d.detail)
            );
        }
        out.push('\n');
    }
    actions_table(&mut out, plan);
    let _ = writeln!(out, "#### Topology\n");
    if before.resources.services.is_empty() {
        let _ = writeln!(out, "Before: nothing is managed yet.\n");
    } else {
        let _ = writeln!(out, "Before (what the state records):\n");
        mermaid_block(&mut out, &state_picture(before));
    }
    if plan.destroy || plan.topology.services.is_empty() {
        let _ = writeln!(out, "After: nothing is managed.\n");
    } else {
        let _ = writeln!(out, "After (what the file declares):\n");
        mermaid_block(&mut out, &topology_picture(&plan.topology));
    }
    out
}

/// The steps a reviewer must not miss, each with its reason.
fn flagged(out: &mut String, actions: &[Action]) {
    let loud: Vec<&Action> = actions
        .iter()
        .filter(|a| {
            a.wipes_data
                || matches!(
                    a.kind,
                    ActionKind::Failover { .. } | ActionKind::RestartService { .. }
                )
        })
        .collect();
    if loud.is_empty() {
        return;
    }
    let _ = writeln!(out, "#### ⚠️ Steps that wipe data or restart a server\n");
    for a in loud {
        let what = match a.kind {
            ActionKind::Failover { .. } => {
                "failover: what the old primary had and the new one lacks is lost"
            }
            ActionKind::RestartService { .. } => {
                "restarts the server: its clients are disconnected"
            }
            _ => "wipes data",
        };
        let _ = writeln!(out, "- **{}** ({what}): {}", md(&a.address), md(&a.summary));
        if let Some(r) = &a.reason {
            let _ = writeln!(out, "  - because {}", md(r));
        }
    }
    out.push('\n');
}

fn actions_table(out: &mut String, plan: &Plan) {
    if plan.actions.is_empty() {
        let _ = writeln!(out, "No actions.\n");
        return;
    }
    let _ = writeln!(out, "#### Actions, in dependency order\n");
    let est = plan.estimate.is_some();
    let _ = write!(out, "| # | | Address | What | After # |");
    let _ = writeln!(out, "{}", if est { " Estimate |" } else { "" });
    let _ = writeln!(
        out,
        "|--:|:-:|---|---|---|{}",
        if est { "--:|" } else { "" }
    );
    for (i, a) in plan.actions.iter().enumerate() {
        let deps: Vec<String> = a
            .depends_on
            .iter()
            .filter_map(|d| plan.actions.iter().position(|x| x.id == *d))
            .map(|p| (p + 1).to_string())
            .collect();
        let deps = if deps.is_empty() {
            "—".to_string()
        } else {
            deps.join(", ")
        };
        let _ = write!(
            out,
            "| {} | {} | {} | {} | {} |",
            i + 1,
            md(render::marker(a)),
            md(&a.address),
            md(&a.summary),
            deps
        );
        if est {
            let ms = a.estimated_ms.unwrap_or(0);
            let _ = write!(out, " {} |", super::estimate::human(ms));
        }
        out.push('\n');
    }
    out.push('\n');
}

fn mermaid_block(out: &mut String, graph: &str) {
    let _ = writeln!(out, "```mermaid\n{graph}```\n");
}

/// A service as the pictures show it.
struct Node {
    key: String,
    name: String,
    provider: String,
    region: String,
}

/// Services and their links (source → replica, ssl), whatever side of the plan they are from.
struct Picture {
    nodes: Vec<Node>,
    links: Vec<(String, String, bool)>,
}

impl Picture {
    /// Each service a node naming its role and region; each link an edge from source to
    /// replica. A service no link points at is a primary.
    fn draw(&self, mut w: impl GraphWriter) -> String {
        for n in &self.nodes {
            let replica = self.links.iter().any(|(_, r, _)| r == &n.key);
            let role = if replica { "replica" } else { "primary" };
            w.node(
                &n.key,
                &format!(
                    "{}\n{} · {role}\n{} {}",
                    n.key, n.name, n.provider, n.region
                ),
                &[],
            );
        }
        for (source, replica, ssl) in &self.links {
            let label = if *ssl {
                "replicates (ssl)"
            } else {
                "replicates"
            };
            w.edge(source, replica, &[("label", label)]);
        }
        w.finish()
    }
}

impl Node {
    fn of(key: &str, spec: &crate::topology::ServiceSpec) -> Node {
        Node {
            key: key.to_string(),
            name: spec.name.clone(),
            provider: spec.provider.clone(),
            region: spec.region.clone(),
        }
    }
}

fn state_picture(state: &State) -> String {
    let r = &state.resources;
    Picture {
        nodes: r
            .services
            .iter()
            .map(|(k, s)| Node::of(k, &s.spec))
            .collect(),
        links: r
            .replications
            .iter()
            .map(|(replica, l)| (l.source.clone(), replica.clone(), l.ssl))
            .collect(),
    }
    .draw(Mermaid::new())
}

fn topology_picture(t: &Topology) -> String {
    Picture {
        nodes: t
            .services
            .iter()
            .map(|(k, s)| Node::of(k, &s.spec))
            .collect(),
        links: t
            .services
            .iter()
            .filter_map(|(k, s)| {
                s.replication
                    .as_ref()
                    .map(|r| (r.from.clone(), k.clone(), r.ssl))
            })
            .collect(),
    }
    .draw(Mermaid::new())
}

/// Text from anywhere, safe in a Markdown paragraph, list item or table cell: control
/// characters spelled out, HTML's `<`, `>` and `&` as entities, and Markdown's markup
/// characters behind a backslash.
pub fn md(s: &str) -> String {
    let s = skyplan_api::text::escape_controls(s);
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            // A backslash before ASCII punctuation is always a literal in CommonMark.
            '\\' | '`' | '*' | '_' | '[' | ']' | '|' | '#' | '~' | '!' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outside_text_cannot_become_markup() {
        assert_eq!(
            md("a|b *c* [x](javascript:1) <img src=x> `t` #h\n\u{1b}[31m"),
            "a\\|b \\*c\\* \\[x\\](javascript:1) &lt;img src=x&gt; \\`t\\` \\#h\\\\n\\\\x1b\\[31m"
        );
    }
}
