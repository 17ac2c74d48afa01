//! The one Graphviz DOT writer (the plan's graph and the state's topology both go through
//! it): every identifier and label is quoted and escaped in one place, so a service key or
//! name can never end a string or start a statement.

/// What the plan's and the state's graphs are written through: Graphviz DOT ([`Dot`], the
/// default) or Mermaid ([`super::mermaid::Mermaid`], which GitHub and GitLab render inline).
/// Attributes are DOT's words (`color`, `style = dashed`, `label`); each writer maps them.
pub trait GraphWriter {
    fn node(&mut self, id: &str, label: &str, attrs: &[(&str, &str)]);
    fn edge(&mut self, from: &str, to: &str, attrs: &[(&str, &str)]);
    fn finish(self) -> String;
}

impl GraphWriter for Dot {
    fn node(&mut self, id: &str, label: &str, attrs: &[(&str, &str)]) {
        Dot::node(self, id, label, attrs);
    }
    fn edge(&mut self, from: &str, to: &str, attrs: &[(&str, &str)]) {
        Dot::edge(self, from, to, attrs);
    }
    fn finish(self) -> String {
        Dot::finish(self)
    }
}

/// A `digraph skyplan` being written: boxes laid out left to right.
pub struct Dot {
    s: String,
}

impl Default for Dot {
    fn default() -> Self {
        Dot::new()
    }
}

impl Dot {
    pub fn new() -> Dot {
        Dot {
            s: String::from("digraph skyplan {\n  rankdir = \"LR\";\n  node [shape = box];\n"),
        }
    }

    /// A node `id` with a label and extra attributes (`("color", "red")`).
    pub fn node(&mut self, id: &str, label: &str, attrs: &[(&str, &str)]) {
        self.s.push_str(&format!(
            "  \"{}\" [label = \"{}\"{}];\n",
            escape(id),
            escape(label),
            more(attrs)
        ));
    }

    /// An edge `from -> to`, with attributes (`("label", "…")`, `("style", "dashed")`).
    pub fn edge(&mut self, from: &str, to: &str, attrs: &[(&str, &str)]) {
        let attrs = if attrs.is_empty() {
            String::new()
        } else {
            format!(" [{}]", list(attrs))
        };
        self.s.push_str(&format!(
            "  \"{}\" -> \"{}\"{attrs};\n",
            escape(from),
            escape(to)
        ));
    }

    pub fn finish(mut self) -> String {
        self.s.push_str("}\n");
        self.s
    }
}

/// Escaped for a DOT double-quoted string: backslashes and quotes; a line break becomes DOT's
/// own `\n`.
fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn list(attrs: &[(&str, &str)]) -> String {
    attrs
        .iter()
        .map(|(k, v)| format!("{k} = \"{}\"", escape(v)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn more(attrs: &[(&str, &str)]) -> String {
    if attrs.is_empty() {
        String::new()
    } else {
        format!(", {}", list(attrs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_and_labels_are_quoted_and_escaped() {
        let mut d = Dot::new();
        d.node("service.a\"b", "a\\b\nc", &[("color", "red")]);
        d.edge("x", "y", &[("label", "l"), ("style", "dashed")]);
        d.edge("x", "z", &[]);
        assert_eq!(
            d.finish(),
            "digraph skyplan {\n  rankdir = \"LR\";\n  node [shape = box];\n  \
             \"service.a\\\"b\" [label = \"a\\\\b\\nc\", color = \"red\"];\n  \
             \"x\" -> \"y\" [label = \"l\", style = \"dashed\"];\n  \"x\" -> \"z\";\n}\n"
        );
    }
}
