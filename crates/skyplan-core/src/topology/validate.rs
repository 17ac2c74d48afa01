//! [`RawTopology`] → [`Topology`]: applies defaults and every rule, collecting all problems.
//! A topology is returned only when nothing was reported.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::path::PathBuf;

use super::defaults;
use super::diagnostics::{Diagnostic, SourceFile};
use super::model::*;
use super::raw::*;
use super::replication;
use super::rules::{self, Problem};
use super::suggest;

/// The outcome of checking one optional value.
enum Checked<T> {
    Absent,
    /// Present but wrong; already reported.
    Invalid,
    Valid(T),
}

impl<T> Checked<T> {
    /// The value, or `default` when absent; `None` when invalid.
    fn or(self, default: T) -> Option<T> {
        match self {
            Checked::Absent => Some(default),
            Checked::Invalid => None,
            Checked::Valid(v) => Some(v),
        }
    }

    fn optional(self) -> Option<Option<T>> {
        match self {
            Checked::Absent => Some(None),
            Checked::Invalid => None,
            Checked::Valid(v) => Some(Some(v)),
        }
    }

    fn required(self) -> Option<T> {
        match self {
            Checked::Valid(v) => Some(v),
            _ => None,
        }
    }
}

pub(super) fn resolve(
    raw: &RawTopology,
    src: &SourceFile<'_>,
    diags: &mut Vec<Diagnostic>,
) -> Option<Topology> {
    let mut v = Validator { src: *src, diags };
    let provider = v.provider(&raw.provider);
    let state = v.state(&raw.state);
    // Check `[defaults]` on its own too, so its mistakes are reported even when every service
    // overrides the field (duplicates from inherited values are dropped by `Diagnostics`).
    v.spec(&raw.defaults);
    if let (Some(name), true) = (&raw.defaults.name, raw.services.len() > 1) {
        let diag = v
            .src
            .error(
                name.span.clone(),
                "`name` cannot be shared through [defaults]",
            )
            .with_help("every service needs its own name: set `name` in each [services.<key>]");
        v.diags.push(diag);
    }
    if raw.services_declared == 0 {
        let at = raw.services_span.clone().unwrap_or(0..0);
        let diag = v.src.error(at, "no services defined").with_help(
            "add a [services.<key>] table with at least name, provider, region, size and storage",
        );
        v.diags.push(diag);
    }

    let merged: Vec<RawFields> = raw
        .services
        .iter()
        .map(|s| defaults::merge(&raw.defaults, &s.fields))
        .collect();
    let mut specs: BTreeMap<String, (ServiceSpec, bool)> = BTreeMap::new();
    for (service, fields) in raw.services.iter().zip(&merged) {
        if let Err(p) = rules::service_key(&service.key.value) {
            v.report(service.key.span.clone(), p);
        }
        let missing = defaults::missing_required(fields);
        if !missing.is_empty() {
            v.missing(service, &missing);
        }
        if let Some(spec) = v.spec(fields) {
            specs.insert(service.key.value.clone(), spec);
        }
    }
    if raw.defaults.name.is_none() {
        v.unique_names(raw, &merged);
    }
    let replications = v.replications(raw, &merged, &specs);
    v.pinned_ids(raw);
    v.stopped_services(raw, &merged);

    let mut services = BTreeMap::new();
    for (service, fields) in raw.services.iter().zip(&merged) {
        let key = &service.key.value;
        let (spec, deletion_protection) = specs.remove(key)?;
        let is_active = fields.is_active.as_ref().is_none_or(|a| a.value);
        let replication = match &service.replication {
            Some(_) => Some(replications.get(key)?.clone()),
            None => None,
        };
        services.insert(
            key.clone(),
            Service {
                key: key.clone(),
                spec,
                replication,
                deletion_protection,
                is_active,
                id: service.id.as_ref().map(|i| i.value.clone()),
                config: v.config(fields)?,
            },
        );
    }
    Some(Topology {
        source: src.path.to_path_buf(),
        provider: provider?,
        state: state?,
        services,
    })
}

struct Validator<'s, 'd> {
    src: SourceFile<'s>,
    diags: &'d mut Vec<Diagnostic>,
}

impl Validator<'_, '_> {
    fn report(&mut self, span: Range<usize>, problem: Problem) {
        let mut diag = self.src.error(span, problem.message);
        diag.help = problem.help;
        self.diags.push(diag);
    }

    /// For values that may be secrets: the snippet shows `<hidden>` instead of the value.
    fn report_hidden(&mut self, span: Range<usize>, problem: Problem) {
        let mut diag = self.src.error_hiding(span.clone(), span, problem.message);
        diag.help = problem.help;
        self.diags.push(diag);
    }

    fn check<T, U>(
        &mut self,
        value: &Option<Located<T>>,
        rule: impl FnOnce(&T) -> Result<U, Problem>,
    ) -> Checked<U> {
        let Some(value) = value else {
            return Checked::Absent;
        };
        match rule(&value.value) {
            Ok(v) => Checked::Valid(v),
            Err(p) => {
                self.report(value.span.clone(), p);
                Checked::Invalid
            }
        }
    }

    fn check_secret_name(
        &mut self,
        field: &str,
        value: &Option<Located<String>>,
    ) -> Checked<String> {
        let Some(value) = value else {
            return Checked::Absent;
        };
        match rules::env_var_name(field, &value.value) {
            Ok(()) => Checked::Valid(value.value.clone()),
            Err(p) => {
                self.report_hidden(value.span.clone(), p);
                Checked::Invalid
            }
        }
    }

    fn provider(&mut self, raw: &RawProvider) -> Option<ProviderConfig> {
        let builtin = ProviderConfig::default();
        let endpoint = self.check(&raw.endpoint, |e| rules::endpoint(e).map(|()| e.clone()));
        let api_key_env = self.check_secret_name("api_key_env", &raw.api_key_env);
        let max_retries = self.check(&raw.max_retries, |n| rules::max_retries(*n));
        let lost_after = self.check(&raw.lost_after, |v| rules::lost_after(v));
        Some(ProviderConfig {
            endpoint: endpoint.or(builtin.endpoint)?,
            api_key_env: api_key_env.or(builtin.api_key_env)?,
            max_retries: max_retries.optional()?,
            lost_after_seconds: lost_after.optional()?,
        })
    }

    fn state(&mut self, raw: &RawState) -> Option<StateConfig> {
        let path = self.check(&raw.path, |p| {
            rules::word("state path", p).map(|()| PathBuf::from(p))
        });
        let backend = match &raw.backend {
            None => Checked::Absent,
            Some(b) => match rules::backend_url(&b.value) {
                Ok(()) => Checked::Valid(b.value.clone()),
                Err(p) => {
                    self.report_hidden(b.span.clone(), p);
                    Checked::Invalid
                }
            },
        };
        let password_env = self.check_secret_name("password_env", &raw.password_env);
        if let (Some(_), Some(backend)) = (&raw.path, &raw.backend) {
            let diag = self
                .src
                .error_hiding(backend.span.clone(), backend.span.clone(), "[state] sets both `path` and `backend`")
                .with_help("keep `path` for a local state file or `backend` for a shared database, not both");
            self.diags.push(diag);
            return None;
        }
        Some(StateConfig {
            path: path.optional()?,
            backend: backend.optional()?,
            password_env: password_env.optional()?,
        })
    }

    /// Checks every field that is set; returns the spec (built-ins filled in) and the
    /// deletion-protection flag when all required fields are set and everything is valid.
    fn spec(&mut self, f: &RawFields) -> Option<(ServiceSpec, bool)> {
        let name = self.check(&f.name, |n| rules::service_name(n).map(|()| n.clone()));
        let service_type = self.check(&f.service_type, |s| {
            rules::one_of("service_type", s, rules::SERVICE_TYPES).map(|()| s.clone())
        });
        let topology = self.check(&f.topology, |t| rules::topology(t).map(|()| t.clone()));
        let provider = self.check(&f.provider, |p| {
            rules::one_of("provider", p, rules::PROVIDERS).map(|()| p.clone())
        });
        let region = self.check(&f.region, |r| rules::region(r).map(|()| r.clone()));
        let architecture = self.check(&f.architecture, |a| {
            rules::one_of("architecture", a, rules::ARCHITECTURES).map(|()| a.clone())
        });
        let size = self.check(&f.size, |s| rules::word("size", s).map(|()| s.clone()));
        let storage = self.check(&f.storage, |s| rules::storage(*s));
        let nodes = self.check(&f.nodes, |n| rules::at_least("nodes", *n, 1));
        let version = self.check(&f.version, |v| {
            rules::word("version", v).map(|()| v.clone())
        });
        let volume_type = self.check(&f.volume_type, |t| {
            rules::one_of("volume_type", t, rules::VOLUME_TYPES).map(|()| t.clone())
        });
        let volume_iops = self.check(&f.volume_iops, |n| rules::at_least("volume_iops", *n, 1));
        let allow_list = self.allow_list(f);
        let tags = match &f.tags {
            None => Some(BTreeMap::new()),
            Some(tags) => {
                let mut ok = true;
                for (k, v) in &tags.value {
                    if let Err(p) = rules::tag(k, &v.value) {
                        self.report(v.span.clone(), p);
                        ok = false;
                    }
                }
                ok.then(|| {
                    tags.value
                        .iter()
                        .map(|(k, v)| (k.clone(), v.value.clone()))
                        .collect()
                })
            }
        };
        let spec = ServiceSpec {
            name: name.required()?,
            service_type: service_type.or(defaults::SERVICE_TYPE.into())?,
            topology: topology.or(defaults::TOPOLOGY.into())?,
            provider: provider.required()?,
            region: region.required()?,
            architecture: architecture.or(defaults::ARCHITECTURE.into())?,
            size: size.required()?,
            storage: storage.required()?,
            nodes: nodes.or(defaults::NODES)?,
            version: version.optional()?,
            ssl_enabled: f
                .ssl_enabled
                .as_ref()
                .map_or(defaults::SSL_ENABLED, |s| s.value),
            volume_type: volume_type.optional()?,
            volume_iops: volume_iops.optional()?,
            allow_list: allow_list?,
            tags: tags?,
        };
        let protection = f
            .deletion_protection
            .as_ref()
            .map_or(defaults::DELETION_PROTECTION, |d| d.value);
        Some((spec, protection))
    }

    /// Every variable is checked (not just the first bad one). Whether the cloud accepts it is
    /// checked at plan time, against its catalog.
    fn config(&mut self, f: &RawFields) -> Option<BTreeMap<String, String>> {
        let Some(config) = &f.config else {
            return Some(BTreeMap::new());
        };
        let mut out = BTreeMap::new();
        let mut ok = true;
        for (name, value) in &config.value {
            match rules::config_variable(name, &value.value) {
                Ok(()) => {
                    out.insert(name.clone(), value.value.clone());
                }
                Err(p) => {
                    self.report(value.span.clone(), p);
                    ok = false;
                }
            }
        }
        ok.then_some(out)
    }

    /// Every entry is checked (not just the first bad one); bare addresses become `/32`.
    fn allow_list(&mut self, f: &RawFields) -> Option<Vec<String>> {
        let Some(list) = &f.allow_list else {
            return Some(Vec::new());
        };
        let public = f.allow_public.as_ref().is_some_and(|p| p.value);
        let mut out = Vec::new();
        let mut ok = true;
        for entry in &list.value {
            match rules::cidr(&entry.value).and_then(|c| rules::not_the_world(c, public)) {
                Ok(cidr) => out.push(cidr),
                Err(p) => {
                    self.report(entry.span.clone(), p);
                    ok = false;
                }
            }
        }
        // The whole internet in pieces (`0.0.0.0/1` + `128.0.0.0/1`, a /1, …) is as public.
        if ok && !public && skyplan_api::cidr::is_public(&out) {
            let diag = self
                .src
                .error(
                    list.span.clone(),
                    "this allow_list opens the service to the whole internet (its entries together cover every IPv4 address, or one is a /1)",
                )
                .with_help("list the networks that need access; if the world really must reach it, set `allow_public = true` on the service");
            self.diags.push(diag);
            ok = false;
        }
        ok.then_some(out)
    }

    fn missing(&mut self, service: &RawService, missing: &[&str]) {
        let label = format!("[services.{}]", service.key.value);
        let fields = suggest::list(missing);
        let s = if missing.len() == 1 { "" } else { "s" };
        let shared: Vec<&str> = missing.iter().copied().filter(|f| *f != "name").collect();
        let help = match (missing.contains(&"name"), shared.is_empty()) {
            (true, true) => format!("set `name` in {label}"),
            (false, _) => format!("set {fields} in {label}, or in [defaults] to share the value"),
            (true, false) => format!(
                "set `name` in {label}; set {} there or in [defaults]",
                suggest::list(&shared)
            ),
        };
        let message = format!("{label} is missing required field{s} {fields}");
        self.diags.push(
            self.src
                .error(service.header.clone(), message)
                .with_help(help),
        );
    }

    fn unique_names(&mut self, raw: &RawTopology, merged: &[RawFields]) {
        let mut seen: HashMap<&str, &str> = HashMap::new();
        for (service, fields) in raw.services.iter().zip(merged) {
            let Some(name) = &fields.name else { continue };
            match seen.get(name.value.as_str()) {
                Some(first) => {
                    let message = format!(
                        "service name `{}` is already used by [services.{first}]",
                        name.value
                    );
                    let diag = self
                        .src
                        .error(name.span.clone(), message)
                        .with_help("service names are unique within an account: pick another");
                    self.diags.push(diag);
                }
                None => {
                    seen.insert(&name.value, &service.key.value);
                }
            }
        }
    }

    /// `id = "…"`: a plain, non-empty id, pinned by one service only.
    fn pinned_ids(&mut self, raw: &RawTopology) {
        let mut seen: HashMap<&str, &str> = HashMap::new();
        for service in &raw.services {
            let Some(id) = &service.id else { continue };
            let value = id.value.as_str();
            if value.is_empty() || value.chars().any(|c| c.is_whitespace() || c == '/') {
                let diag = self
                    .src
                    .error(
                        id.span.clone(),
                        format!("`{value}` is not a SkySQL service id"),
                    )
                    .with_help("an id looks like dbpgf12345678 (`skyplan import` prints it)");
                self.diags.push(diag);
                continue;
            }
            if let Some(first) = seen.insert(value, &service.key.value) {
                let diag = self
                    .src
                    .error(
                        id.span.clone(),
                        format!("id `{value}` is already pinned by [services.{first}]"),
                    )
                    .with_help("one service can be managed under one key only");
                self.diags.push(diag);
            }
        }
    }

    /// A service kept stopped (`is_active = false`) cannot take part in replication: a stopped
    /// source breaks its replicas, and a stopped replica falls behind where no refresh sees it.
    fn stopped_services(&mut self, raw: &RawTopology, merged: &[RawFields]) {
        for (service, fields) in raw.services.iter().zip(merged) {
            let Some(active) = fields.is_active.as_ref().filter(|a| !a.value) else {
                continue;
            };
            let key = service.key.value.as_str();
            let why = match &service.replication {
                Some(r) => r
                    .from
                    .as_ref()
                    .map(|f| format!("it replicates from `{}`", f.value)),
                None => raw
                    .services
                    .iter()
                    .find(|s| {
                        s.replication
                            .as_ref()
                            .and_then(|r| r.from.as_ref())
                            .is_some_and(|f| f.value == key)
                    })
                    .map(|s| format!("[services.{}] replicates from it", s.key.value)),
            };
            if let Some(why) = why {
                let diag = self
                    .src
                    .error(
                        active.span.clone(),
                        format!("[services.{key}] is kept stopped (is_active = false) but {why}"),
                    )
                    .with_help(
                        "a stopped service can neither replicate nor be replicated from; remove \
                         `is_active = false` or the replication",
                    );
                self.diags.push(diag);
            }
        }
    }

    /// A backup restores within one cloud provider only.
    fn seed_within_provider(
        &mut self,
        key: &str,
        r: &RawReplication,
        from: &Located<String>,
        seed: &Option<Seed>,
        fields: &RawFields,
        source: &RawFields,
    ) {
        let (Some(seed), Some(p_replica), Some(p_source)) =
            (seed, &fields.provider, &source.provider)
        else {
            return;
        };
        if seed.uses_backup() && p_replica.value != p_source.value {
            let at = r
                .seed
                .as_ref()
                .map_or(from.span.clone(), |s| s.span.clone());
            let message = format!(
                "[services.{key}] ({}) cannot be seeded from a backup of [services.{}] ({})",
                p_replica.value, from.value, p_source.value
            );
            let help = "backups restore within one cloud provider only; use seed = \"none\" \
                        or put both services on the same provider";
            self.diags.push(self.src.error(at, message).with_help(help));
        }
    }

    /// A link over TLS to a source that offers none would fail only after the replica was
    /// created and restored ("SSL is required, but the server does not support it").
    fn tls_the_source_offers(
        &mut self,
        label: &str,
        r: &RawReplication,
        from: &Located<String>,
        source_ssl: Option<bool>,
    ) {
        let (Some(asked), Some(false)) = (&r.ssl, source_ssl) else {
            return;
        };
        if asked.value {
            let diag = self
                .src
                .error(
                    asked.span.clone(),
                    format!(
                        "{label} asks for TLS, but [services.{}] has ssl_enabled = false",
                        from.value
                    ),
                )
                .with_help(format!(
                    "set ssl_enabled = true on [services.{}] (that replaces it), or ssl = false here",
                    from.value
                ));
            self.diags.push(diag);
        }
    }

    /// Resolves every `[services.<key>.replication]`, then looks for cycles among them.
    fn replications(
        &mut self,
        raw: &RawTopology,
        merged: &[RawFields],
        specs: &BTreeMap<String, (ServiceSpec, bool)>,
    ) -> BTreeMap<String, Replication> {
        let keys: Vec<&str> = raw.services.iter().map(|s| s.key.value.as_str()).collect();
        let by_key: HashMap<&str, &RawFields> = keys.iter().copied().zip(merged).collect();
        let mut links: BTreeMap<String, String> = BTreeMap::new();
        let mut from_spans: HashMap<String, Range<usize>> = HashMap::new();
        let mut resolved = BTreeMap::new();
        for (service, fields) in raw.services.iter().zip(merged) {
            let Some(r) = &service.replication else {
                continue;
            };
            let key = service.key.value.as_str();
            let label = format!("[services.{key}.replication]");
            let seed = self.check(&r.seed, |s| rules::seed(s));
            let max_lag = self.check(&r.max_lag_seconds, |n| rules::max_lag_seconds(*n));
            let grace = self.check(&r.reconnect_grace, |g| rules::reconnect_grace(g));
            let Some(from) = &r.from else {
                let diag = self
                    .src
                    .error(
                        r.header.clone(),
                        format!("{label} is missing required field `from`"),
                    )
                    .with_help(
                        "name the key of the service to replicate from, e.g. from = \"primary\"",
                    );
                self.diags.push(diag);
                continue;
            };
            if from.value == key {
                let message = format!("[services.{key}] replicates from itself");
                let diag = self
                    .src
                    .error(from.span.clone(), message)
                    .with_help("`from` names the key of another service, the source of the data");
                self.diags.push(diag);
                continue;
            }
            let Some(source) = by_key.get(from.value.as_str()) else {
                let message = format!("`from` names an unknown service `{}`", from.value);
                let others: Vec<&str> = keys.iter().copied().filter(|k| *k != key).collect();
                let help = match suggest::did_you_mean(&from.value, others.iter().copied()) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None if others.is_empty() => "define the source service first".to_string(),
                    None => format!("the service keys are {}", suggest::list(&others)),
                };
                self.diags
                    .push(self.src.error(from.span.clone(), message).with_help(help));
                continue;
            };
            links.insert(key.to_string(), from.value.clone());
            from_spans.insert(key.to_string(), from.span.clone());
            let seed = seed.or(defaults::SEED);
            self.seed_within_provider(key, r, from, &seed, fields, source);
            // TLS by default exactly when the source accepts TLS.
            let source_ssl = specs.get(&from.value).map(|(spec, _)| spec.ssl_enabled);
            self.tls_the_source_offers(&label, r, from, source_ssl);
            let ssl = r.ssl.as_ref().map(|s| s.value).or(source_ssl);
            if let (Some(seed), Some(max_lag), Some(grace), Some(ssl)) = (
                seed,
                max_lag.or(DEFAULT_MAX_LAG_SECONDS),
                grace.or(DEFAULT_RECONNECT_GRACE_SECONDS),
                ssl,
            ) {
                let replication = Replication {
                    from: from.value.clone(),
                    seed,
                    ssl,
                    max_lag_seconds: max_lag,
                    reconnect_grace_seconds: grace,
                };
                resolved.insert(key.to_string(), replication);
            }
        }
        for cycle in replication::cycles(&links) {
            let Some(span) = cycle.first().and_then(|k| from_spans.get(k)) else {
                continue;
            };
            let message = format!("replication cycle: {}", replication::describe(&cycle));
            let help = "each service replicates `from` the next one, so none of them is a primary \
                        that could seed the others: remove the `replication` table of the service \
                        that should be the primary";
            self.diags
                .push(self.src.error(span.clone(), message).with_help(help));
        }
        resolved
    }
}
