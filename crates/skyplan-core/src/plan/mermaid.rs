//! The Mermaid writer of the plan's and the state's graphs (`graph --format mermaid`), for
//! pull requests: GitHub and GitLab render a ```mermaid block inline. Node ids are generated
//! (`n0`, `n1`, …: Mermaid ids cannot hold dots), and every label is quoted with its quotes,
//! angle brackets and line breaks escaped, so a service key or name can never end a label or
//! start a statement.

use std::collections::HashMap;

use super::dot::GraphWriter;

/// A `flowchart LR` being written.
pub struct Mermaid {
    s: String,
    ids: HashMap<String, String>,
    edges: usize,
    styles: Vec<String>,
}

impl Default for Mermaid {
    fn default() -> Self {
        Mermaid::new()
    }
}

impl Mermaid {
    pub fn new() -> Mermaid {
        Mermaid {
            s: String::from("flowchart LR\n"),
            ids: HashMap::new(),
            edges: 0,
            styles: Vec::new(),
        }
    }

    fn id(&mut self, name: &str) -> String {
        let n = self.ids.len();
        self.ids
            .entry(name.to_string())
            .or_insert_with(|| format!("n{n}"))
            .clone()
    }
}

fn attr<'a>(attrs: &'a [(&str, &str)], key: &str) -> Option<&'a str> {
    attrs.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
}

/// Escaped for a Mermaid quoted label: entity codes for the characters that would end it or
/// be read as markup, `<br/>` for a line break.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("#quot;"),
            '<' => out.push_str("#lt;"),
            '>' => out.push_str("#gt;"),
            '#' => out.push_str("#35;"),
            '\n' => out.push_str("<br/>"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

impl GraphWriter for Mermaid {
    fn node(&mut self, id: &str, label: &str, attrs: &[(&str, &str)]) {
        let n = self.id(id);
        self.s.push_str(&format!("  {n}[\"{}\"]\n", escape(label)));
        if attr(attrs, "color") == Some("red") {
            self.styles
                .push(format!("  style {n} stroke:#d00,stroke-width:2px"));
        }
    }

    fn edge(&mut self, from: &str, to: &str, attrs: &[(&str, &str)]) {
        let (a, b) = (self.id(from), self.id(to));
        let arrow = if attr(attrs, "style") == Some("dashed") {
            "-.->"
        } else {
            "-->"
        };
        let label = attr(attrs, "label")
            .map(|l| format!("|\"{}\"|", escape(l)))
            .unwrap_or_default();
        self.s.push_str(&format!("  {a} {arrow}{label} {b}\n"));
        if attr(attrs, "color") == Some("red") {
            self.styles
                .push(format!("  linkStyle {} stroke:#d00", self.edges));
        }
        self.edges += 1;
    }

    fn finish(mut self) -> String {
        for st in &self.styles {
            self.s.push_str(st);
            self.s.push('\n');
        }
        self.s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_generated_and_labels_escaped() {
        let mut m = Mermaid::new();
        m.node("service.a", "a \"b\" <c>\nd#", &[("color", "red")]);
        m.node("service.b", "b", &[]);
        m.edge(
            "service.a",
            "service.b",
            &[("label", "replication.b"), ("color", "red")],
        );
        m.edge("service.b", "service.a", &[("style", "dashed")]);
        assert_eq!(
            m.finish(),
            "flowchart LR\n  n0[\"a #quot;b#quot; #lt;c#gt;<br/>d#35;\"]\n  n1[\"b\"]\n  \
             n0 -->|\"replication.b\"| n1\n  n1 -.-> n0\n  \
             style n0 stroke:#d00,stroke-width:2px\n  linkStyle 0 stroke:#d00\n"
        );
    }
}
