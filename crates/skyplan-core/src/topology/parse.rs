//! TOML text → [`RawTopology`]: syntax, unknown keys and value types, each located.
//!
//! toml_edit's `ImDocument` keeps the byte span of every key, value and table header, which is
//! what lets every later error point at the exact spot in the file.

use std::ops::Range;

use toml_edit::{ImDocument, Item, TableLike, Value};

use super::diagnostics::{Diagnostic, SourceFile};
use super::raw::*;
use super::suggest;

/// Parses `src`; problems are appended to `diags`. Returns `None` only when the text is not
/// TOML at all (then nothing else can be checked).
pub(super) fn parse_raw(src: &SourceFile<'_>, diags: &mut Vec<Diagnostic>) -> Option<RawTopology> {
    let doc = match ImDocument::parse(src.text) {
        Ok(doc) => doc,
        Err(err) => {
            diags.push(syntax_error(src, &err));
            return None;
        }
    };
    let mut reader = Reader { src: *src, diags };
    Some(reader.document(doc.as_table()))
}

fn syntax_error(src: &SourceFile<'_>, err: &toml_edit::TomlError) -> Diagnostic {
    let message = err.message().lines().collect::<Vec<_>>().join(": ");
    let span = err.span().unwrap_or(0..0);
    if src.text[span.start.min(src.text.len())..].starts_with('[') {
        return src.error(
            src.header_span(span.start),
            format!("invalid TOML: {message}"),
        );
    }
    // The parser reports one character; widen it to the word it starts, for a readable caret.
    let word_len = src.text[span.start.min(src.text.len())..]
        .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '-'))
        .unwrap_or(0);
    let span = span.start..(span.start + word_len).max(span.end);
    src.error(span, format!("invalid TOML: {message}"))
}

struct Reader<'s, 'd> {
    src: SourceFile<'s>,
    diags: &'d mut Vec<Diagnostic>,
}

/// One `key = item` entry of a table, with the key's span.
struct Entry<'t> {
    key: &'t str,
    key_span: Range<usize>,
    item: &'t Item,
}

/// Key names that suggest the user is about to put a secret in the file.
fn looks_secret(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    !k.ends_with("_env")
        && ["api_key", "apikey", "password", "passwd", "secret", "token"]
            .iter()
            .any(|s| k.contains(s))
}

impl Reader<'_, '_> {
    fn entries<'t>(&self, table: &'t dyn TableLike, fallback: &Range<usize>) -> Vec<Entry<'t>> {
        table
            .iter()
            .map(|(key, item)| Entry {
                key,
                key_span: table
                    .key(key)
                    .and_then(|k| k.span())
                    .or_else(|| item.span())
                    .unwrap_or_else(|| fallback.clone()),
                item,
            })
            .collect()
    }

    /// Where a value is, falling back to its key (values of dotted or implicit tables have
    /// no span of their own).
    fn value_span(entry: &Entry<'_>) -> Range<usize> {
        entry.item.span().unwrap_or_else(|| entry.key_span.clone())
    }

    /// Where a table "is" for messages about the table as a whole: its `[header]`, or its key.
    fn header_span(&self, entry: &Entry<'_>) -> Range<usize> {
        match entry.item {
            Item::Table(t) if !t.is_implicit() && !t.is_dotted() => match t.span() {
                Some(s) => self.src.header_span(s.start),
                None => entry.key_span.clone(),
            },
            _ => entry.key_span.clone(),
        }
    }

    fn wrong_type(&mut self, entry: &Entry<'_>, label: &str, expected: &str) {
        let found = type_name(entry.item);
        let message = format!(
            "wrong type for `{}` in {label}: expected {expected}, found {found}",
            entry.key
        );
        let diag = self.src.error(Self::value_span(entry), message);
        let diag = match (expected, entry.item) {
            ("array", Item::Value(Value::String(s))) => diag.with_help(format!(
                "write a list: {} = [{}]",
                entry.key,
                s.display_repr()
            )),
            _ => diag,
        };
        self.diags.push(diag);
    }

    fn unknown_key(&mut self, entry: &Entry<'_>, label: &str, candidates: &[&str]) {
        let message = format!("unknown key `{}` in {label}", entry.key);
        if looks_secret(entry.key) {
            // Never echo what is probably a credential back to the terminal or a CI log.
            let hidden = Self::value_span(entry);
            let diag = self.src.error_hiding(entry.key_span.clone(), hidden, message).with_help(
                "secrets never go in the topology file: put the value in an environment variable \
                 and name that variable (`api_key_env` in [provider], `password_env` in [state])",
            );
            self.diags.push(diag);
            return;
        }
        let help = suggest::help_for(entry.key, candidates);
        self.diags.push(
            self.src
                .error(entry.key_span.clone(), message)
                .with_help(help),
        );
    }

    fn table<'t>(&mut self, entry: &Entry<'t>, label: &str) -> Option<&'t dyn TableLike> {
        match entry.item.as_table_like() {
            Some(t) => Some(t),
            None => {
                self.wrong_type(entry, label, "table");
                None
            }
        }
    }

    fn string(&mut self, entry: &Entry<'_>, label: &str) -> Option<Located<String>> {
        match entry.item.as_str() {
            Some(s) => Some(Located::new(s.to_string(), Self::value_span(entry))),
            None => {
                self.wrong_type(entry, label, "string");
                None
            }
        }
    }

    fn integer(&mut self, entry: &Entry<'_>, label: &str) -> Option<Located<i64>> {
        match entry.item.as_integer() {
            Some(i) => Some(Located::new(i, Self::value_span(entry))),
            None => {
                self.wrong_type(entry, label, "integer");
                None
            }
        }
    }

    fn boolean(&mut self, entry: &Entry<'_>, label: &str) -> Option<Located<bool>> {
        match entry.item.as_bool() {
            Some(b) => Some(Located::new(b, Self::value_span(entry))),
            None => {
                self.wrong_type(entry, label, "boolean");
                None
            }
        }
    }

    fn document(&mut self, root: &dyn TableLike) -> RawTopology {
        let mut raw = RawTopology::default();
        for entry in self.entries(root, &(0..0)) {
            match entry.key {
                "provider" => raw.provider = self.provider(&entry),
                "state" => raw.state = self.state(&entry),
                "backups" => self.backups(&entry),
                "defaults" => {
                    if let Some(t) = self.table(&entry, "the file") {
                        raw.defaults = self.fields(t, "[defaults]", &self.header_span(&entry));
                    }
                }
                "services" => {
                    raw.services_span = Some(self.header_span(&entry));
                    raw.services_declared = match entry.item.as_table_like() {
                        Some(t) => t.len(),
                        None => 1,
                    };
                    if matches!(entry.item, Item::ArrayOfTables(_)) {
                        let diag = self
                            .src
                            .error(entry.key_span.clone(), "`services` is an array of tables")
                            .with_help(
                                "give every service a key: [services.primary], [services.replica]",
                            );
                        self.diags.push(diag);
                    } else if let Some(t) = self.table(&entry, "the file") {
                        raw.services = self.services(t, &entry.key_span);
                    }
                }
                _ => self.unknown_key(&entry, "the file", TOP_LEVEL_KEYS),
            }
        }
        raw
    }

    /// `[backups] keep = N`: a pruning policy SkySQL's API cannot carry out (it has no call to
    /// delete a backup, only one to delete a backup *schedule*). Refused where it is written,
    /// rather than accepted and silently not done.
    fn backups(&mut self, entry: &Entry<'_>) {
        let Some(t) = self.table(entry, "the file") else {
            return;
        };
        for e in self.entries(t, &self.header_span(entry)) {
            if e.key == "keep" {
                if self.integer(&e, "[backups]").is_some() {
                    let diag = self
                        .src
                        .error(
                            Self::value_span(&e),
                            "[backups] keep cannot be carried out: SkySQL's API has no call to delete a backup",
                        )
                        .with_help(
                            "remove it; the backups skyplan took are listed by `skyplan state list` and `skyplan output`, to delete in the SkySQL portal",
                        );
                    self.diags.push(diag);
                }
            } else {
                self.unknown_key(&e, "[backups]", &["keep"]);
            }
        }
    }

    fn provider(&mut self, entry: &Entry<'_>) -> RawProvider {
        let mut p = RawProvider::default();
        let label = "[provider]";
        let Some(t) = self.table(entry, "the file") else {
            return p;
        };
        for e in self.entries(t, &entry.key_span) {
            match e.key {
                "endpoint" => p.endpoint = self.string(&e, label),
                "api_key_env" => p.api_key_env = self.string(&e, label),
                "max_retries" => p.max_retries = self.integer(&e, label),
                "lost_after" => {
                    p.lost_after = match e.item.as_integer() {
                        Some(i) => Some(Located::new(i.to_string(), Self::value_span(&e))),
                        None => self.string(&e, label),
                    }
                }
                _ => self.unknown_key(&e, label, PROVIDER_KEYS),
            }
        }
        p
    }

    fn state(&mut self, entry: &Entry<'_>) -> RawState {
        let mut s = RawState::default();
        let label = "[state]";
        let Some(t) = self.table(entry, "the file") else {
            return s;
        };
        for e in self.entries(t, &entry.key_span) {
            match e.key {
                "path" => s.path = self.string(&e, label),
                "backend" => s.backend = self.string(&e, label),
                "password_env" => s.password_env = self.string(&e, label),
                _ => self.unknown_key(&e, label, STATE_KEYS),
            }
        }
        s
    }

    fn services(&mut self, table: &dyn TableLike, at: &Range<usize>) -> Vec<RawService> {
        let mut services = Vec::new();
        for entry in self.entries(table, at) {
            let label = format!("[services.{}]", entry.key);
            let Some(t) = self.table(&entry, "[services]") else {
                continue;
            };
            let header = self.header_span(&entry);
            let mut replication = None;
            let mut id = None;
            let mut fields = RawFields::default();
            let mut keys: Vec<&str> = SERVICE_FIELDS.to_vec();
            keys.push("replication");
            keys.push("id");
            for e in self.entries(t, &header) {
                if e.key == "id" {
                    id = self.string(&e, &label);
                } else if e.key == "replication" {
                    if let Some(r) = self.table(&e, &label) {
                        let rlabel = format!("[services.{}.replication]", entry.key);
                        replication = Some(self.replication(r, &rlabel, self.header_span(&e)));
                    }
                } else if !self.field(&mut fields, &e, &label) {
                    self.unknown_key(&e, &label, &keys);
                }
            }
            services.push(RawService {
                key: Located::new(entry.key.to_string(), entry.key_span.clone()),
                header,
                fields,
                replication,
                id,
            });
        }
        services
    }

    fn replication(
        &mut self,
        table: &dyn TableLike,
        label: &str,
        header: Range<usize>,
    ) -> RawReplication {
        let mut r = RawReplication {
            header: header.clone(),
            from: None,
            seed: None,
            ssl: None,
            max_lag_seconds: None,
            reconnect_grace: None,
        };
        for e in self.entries(table, &header) {
            match e.key {
                "from" => r.from = self.string(&e, label),
                "seed" => r.seed = self.string(&e, label),
                "ssl" => r.ssl = self.boolean(&e, label),
                "max_lag_seconds" => r.max_lag_seconds = self.integer(&e, label),
                "reconnect_grace" => {
                    r.reconnect_grace = match e.item.as_integer() {
                        Some(i) => Some(Located::new(i.to_string(), Self::value_span(&e))),
                        None => self.string(&e, label),
                    }
                }
                _ => self.unknown_key(&e, label, REPLICATION_KEYS),
            }
        }
        r
    }

    /// Reads `[defaults]`; `replication` is rejected with a hint, since a link names one
    /// specific source and cannot be shared.
    fn fields(&mut self, table: &dyn TableLike, label: &str, at: &Range<usize>) -> RawFields {
        let mut fields = RawFields::default();
        for e in self.entries(table, at) {
            if e.key == "replication" || e.key == "id" {
                let diag = self
                    .src
                    .error(
                        e.key_span.clone(),
                        format!("`{}` cannot be set in [defaults]", e.key),
                    )
                    .with_help(if e.key == "id" {
                        "an id names one service: put it in that service's table"
                    } else {
                        "put it in the replica's own table: [services.<key>.replication]"
                    });
                self.diags.push(diag);
            } else if !self.field(&mut fields, &e, label) {
                self.unknown_key(&e, label, SERVICE_FIELDS);
            }
        }
        fields
    }

    /// Reads one service field into `f`; false if `e` is not a service field.
    fn field(&mut self, f: &mut RawFields, e: &Entry<'_>, label: &str) -> bool {
        match e.key {
            "name" => f.name = self.string(e, label),
            "service_type" => f.service_type = self.string(e, label),
            "topology" => f.topology = self.string(e, label),
            "provider" => f.provider = self.string(e, label),
            "region" => f.region = self.string(e, label),
            "architecture" => f.architecture = self.string(e, label),
            "size" => f.size = self.string(e, label),
            "storage" => f.storage = self.integer(e, label),
            "nodes" => f.nodes = self.integer(e, label),
            "version" => f.version = self.string(e, label),
            "ssl_enabled" => f.ssl_enabled = self.boolean(e, label),
            "volume_type" => f.volume_type = self.string(e, label),
            "volume_iops" => f.volume_iops = self.integer(e, label),
            "deletion_protection" => f.deletion_protection = self.boolean(e, label),
            "is_active" => f.is_active = self.boolean(e, label),
            "allow_public" => f.allow_public = self.boolean(e, label),
            "allow_list" => f.allow_list = self.allow_list(e, label),
            "tags" => f.tags = self.tags(e, label),
            "config" => f.config = self.config(e, label),
            _ => return false,
        }
        true
    }

    fn allow_list(&mut self, e: &Entry<'_>, label: &str) -> Option<Located<Vec<Located<String>>>> {
        let Some(array) = e.item.as_array() else {
            self.wrong_type(e, label, "array");
            return None;
        };
        let mut items = Vec::new();
        for (i, value) in array.iter().enumerate() {
            let span = value.span().unwrap_or_else(|| e.key_span.clone());
            match value.as_str() {
                Some(s) => items.push(Located::new(s.to_string(), span)),
                None => {
                    let message = format!(
                        "wrong type for `allow_list[{i}]` in {label}: expected string, found {}",
                        value_type_name(value)
                    );
                    let diag = self
                        .src
                        .error(span, message)
                        .with_help("write addresses as strings, e.g. \"10.0.0.0/24\"");
                    self.diags.push(diag);
                }
            }
        }
        Some(Located::new(items, Self::value_span(e)))
    }

    /// `[services.<key>.config]`: variable = integer, boolean, float or string, kept as text.
    fn config(&mut self, e: &Entry<'_>, label: &str) -> Option<Located<Tags>> {
        let table = self.table(e, label)?;
        let config_label = format!("{}.config]", label.trim_end_matches(']'));
        let mut vars = Vec::new();
        for v in self.entries(table, &e.key_span) {
            let span = Self::value_span(&v);
            let text = match v.item.as_value() {
                Some(Value::Integer(i)) => i.value().to_string(),
                Some(Value::Float(f)) => f.value().to_string(),
                Some(Value::Boolean(b)) => if *b.value() { "ON" } else { "OFF" }.to_string(),
                Some(Value::String(s)) => s.value().clone(),
                _ => {
                    self.wrong_type(&v, &config_label, "integer, boolean or string");
                    continue;
                }
            };
            vars.push((v.key.to_string(), Located::new(text, span)));
        }
        Some(Located::new(vars, Self::value_span(e)))
    }

    fn tags(&mut self, e: &Entry<'_>, label: &str) -> Option<Located<Tags>> {
        let table = self.table(e, label)?;
        let tags_label = format!("{}.tags]", label.trim_end_matches(']'));
        let mut tags = Vec::new();
        for t in self.entries(table, &e.key_span) {
            if let Some(v) = self.string(&t, &tags_label) {
                tags.push((t.key.to_string(), v));
            }
        }
        Some(Located::new(tags, Self::value_span(e)))
    }
}

/// TOML type names as users write them (an inline table is still a table).
fn type_name(item: &Item) -> &'static str {
    match item {
        Item::Value(v) => value_type_name(v),
        Item::None => "nothing",
        Item::Table(_) => "table",
        Item::ArrayOfTables(_) => "array of tables",
    }
}

fn value_type_name(v: &Value) -> &'static str {
    match v {
        Value::InlineTable(_) => "table",
        v => v.type_name(),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn parse(text: &str) -> (Option<RawTopology>, Vec<Diagnostic>) {
        let src = SourceFile::new(Path::new("t.toml"), text);
        let mut diags = Vec::new();
        let raw = parse_raw(&src, &mut diags);
        (raw, diags)
    }

    fn messages(text: &str) -> Vec<String> {
        parse(text).1.into_iter().map(|d| d.message).collect()
    }

    #[test]
    fn reads_fields_with_their_spans() {
        let text = "[services.a]\nname = \"x\"\nstorage = 100\n";
        let (raw, diags) = parse(text);
        assert!(diags.is_empty(), "{diags:?}");
        let raw = raw.unwrap();
        let a = &raw.services[0];
        assert_eq!(a.key.value, "a");
        assert_eq!(&text[a.header.clone()], "[services.a]");
        let name = a.fields.name.as_ref().unwrap();
        assert_eq!(&text[name.span.clone()], "\"x\"");
        assert_eq!(a.fields.storage.as_ref().unwrap().value, 100);
    }

    #[test]
    fn syntax_errors_are_located() {
        let (raw, diags) = parse("[services.a]\nname = \"x\nx");
        assert!(raw.is_none());
        assert_eq!(diags.len(), 1);
        assert!(
            diags[0].message.starts_with("invalid TOML"),
            "{}",
            diags[0].message
        );
        assert_eq!(diags[0].line(), Some(2));
    }

    #[test]
    fn duplicate_keys_are_syntax_errors() {
        let m = messages("[services.a]\nname = \"x\"\nname = \"y\"\n");
        assert_eq!(
            m,
            ["invalid TOML: duplicate key `name` in table `services.a`"]
        );
    }

    #[test]
    fn unknown_keys_get_a_hint() {
        let (_, diags) = parse("[services.a]\nregoin = \"x\"\n[servces.b]\n");
        assert_eq!(diags.len(), 2);
        assert_eq!(diags[0].message, "unknown key `regoin` in [services.a]");
        assert_eq!(diags[0].help.as_deref(), Some("did you mean `region`?"));
        assert_eq!(diags[1].help.as_deref(), Some("did you mean `services`?"));
    }

    #[test]
    fn wrong_types_say_what_was_expected() {
        let m = messages(
            "[defaults]\nstorage = \"100\"\nssl_enabled = 1\nallow_list = \"1.2.3.4\"\n\
             [services.a]\nnodes = 1.5\ntags = { team = 1 }\n",
        );
        assert_eq!(
            m,
            [
                "wrong type for `storage` in [defaults]: expected integer, found string",
                "wrong type for `ssl_enabled` in [defaults]: expected boolean, found integer",
                "wrong type for `allow_list` in [defaults]: expected array, found string",
                "wrong type for `nodes` in [services.a]: expected integer, found float",
                "wrong type for `team` in [services.a.tags]: expected string, found integer",
            ]
        );
    }

    #[test]
    fn services_must_be_tables() {
        let m = messages("services = 3\n");
        assert_eq!(
            m,
            ["wrong type for `services` in the file: expected table, found integer"]
        );
        let m = messages("[[services]]\nname = \"a\"\n");
        assert_eq!(m, ["`services` is an array of tables"]);
    }

    #[test]
    fn replication_is_not_a_default() {
        let m = messages("[defaults.replication]\nfrom = \"a\"\n");
        assert_eq!(m, ["`replication` cannot be set in [defaults]"]);
    }

    #[test]
    fn secrets_are_not_echoed() {
        let (_, diags) = parse("[provider]\napi_key = \"sk-very-secret\"\n");
        assert_eq!(diags.len(), 1);
        let rendered = diags[0].to_string();
        assert!(!rendered.contains("sk-very-secret"), "{rendered}");
        assert!(rendered.contains("api_key"), "{rendered}");
    }

    #[test]
    fn inline_and_dotted_tables_work() {
        let text = "services.a = { name = \"x\", replication = { from = \"b\" } }\n";
        let (raw, diags) = parse(text);
        assert!(diags.is_empty(), "{diags:?}");
        let a = &raw.unwrap().services[0];
        assert_eq!(
            a.replication.as_ref().unwrap().from.as_ref().unwrap().value,
            "b"
        );
    }
}
