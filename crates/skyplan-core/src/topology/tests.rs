//! Whole-document tests: one per validation rule, through the public `parse`.

use std::path::Path;

use super::*;

const BASE: &str = r#"
[defaults]
provider = "gcp"
size = "sky-2x8"
storage = 100

[services.primary]
name = "skysql-primary"
region = "us-east4"
"#;

fn ok(text: &str) -> Topology {
    match parse(text, Path::new("t.toml")) {
        Ok(t) => t,
        Err(e) => panic!("expected OK, got:\n{e}"),
    }
}

fn errors(text: &str) -> Vec<Diagnostic> {
    match parse(text, Path::new("t.toml")) {
        Ok(_) => panic!("expected errors for:\n{text}"),
        Err(e) => e.into_vec(),
    }
}

/// The only error's message (asserting there is exactly one).
fn error(text: &str) -> Diagnostic {
    let all = errors(text);
    assert_eq!(all.len(), 1, "{all:#?}");
    all.into_iter().next().unwrap()
}

fn with(extra: &str) -> String {
    format!("{BASE}{extra}")
}

const SECONDARY: &str =
    "[services.secondary]\nname = \"skysql-secondary\"\nregion = \"us-west1\"\n";

#[test]
fn builtin_defaults_fill_the_rest() {
    let t = ok(BASE);
    assert_eq!(t.provider, ProviderConfig::default());
    assert_eq!(t.state, StateConfig::default());
    let spec = &t.services["primary"].spec;
    assert_eq!(spec.service_type, "transactional");
    assert_eq!(spec.topology, "standalone");
    assert_eq!(spec.architecture, "amd64");
    assert_eq!(spec.nodes, 1);
    assert!(spec.ssl_enabled);
    assert!(spec.allow_list.is_empty());
    assert!(!t.services["primary"].deletion_protection);
    assert_eq!(t.source, Path::new("t.toml"));
}

#[test]
fn service_fields_override_defaults() {
    let t = ok(&format!(
        "{BASE}storage = 200\nallow_list = [\"10.1.2.3\"]\ntags.team = \"db\"\n"
    ));
    let spec = &t.services["primary"].spec;
    assert_eq!(spec.storage, 200);
    assert_eq!(spec.allow_list, ["10.1.2.3/32"]);
    assert_eq!(spec.tags["team"], "db");
}

#[test]
fn replication_defaults_follow_the_source() {
    let text = with(&format!(
        "ssl_enabled = false\n{SECONDARY}[services.secondary.replication]\nfrom = \"primary\"\n"
    ));
    let r = ok(&text).services["secondary"].replication.clone().unwrap();
    assert_eq!(r.from, "primary");
    assert_eq!(r.seed, Seed::NewBackup);
    assert!(!r.ssl, "ssl follows the source's ssl_enabled");
    assert_eq!(r.max_lag_seconds, DEFAULT_MAX_LAG_SECONDS);
    assert_eq!(r.reconnect_grace_seconds, DEFAULT_RECONNECT_GRACE_SECONDS);
}

#[test]
fn the_whole_internet_in_pieces_needs_allow_public() {
    let split = format!("{BASE}allow_list = [\"0.0.0.0/1\", \"128.0.0.0/1\"]\n");
    let e = parse(&split, Path::new("t.toml")).unwrap_err().to_string();
    assert!(e.contains("opens the service to the whole internet"), "{e}");
    assert!(parse(
        &format!("{split}allow_public = true\n"),
        Path::new("t.toml")
    )
    .is_ok());
}

#[test]
fn a_backup_pruning_policy_is_refused_where_it_is_written() {
    let e = parse(&format!("[backups]\nkeep = 3\n{BASE}"), Path::new("t.toml"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("keep cannot be carried out") && e.contains("no call to delete a backup"),
        "{e}"
    );
}

#[test]
fn tls_to_a_source_without_tls_is_refused_where_ssl_is_written() {
    let text = with(&format!(
        "ssl_enabled = false\n{SECONDARY}[services.secondary.replication]\nfrom = \"primary\"\nssl = true\n"
    ));
    let e = parse(&text, Path::new("t.toml")).unwrap_err().to_string();
    assert!(
        e.contains("asks for TLS, but [services.primary] has ssl_enabled = false")
            && e.contains("ssl = true"),
        "{e}"
    );
}

#[test]
fn reconnect_grace_takes_a_duration_or_seconds_and_refuses_the_rest() {
    let link = |grace: &str| {
        with(&format!(
            "{SECONDARY}[services.secondary.replication]\nfrom = \"primary\"\nreconnect_grace = {grace}\n"
        ))
    };
    for (given, secs) in [
        ("\"2m\"", 120),
        ("\"90s\"", 90),
        ("45", 45),
        ("\"1h\"", 3600),
    ] {
        let r = ok(&link(given)).services["secondary"]
            .replication
            .clone()
            .unwrap();
        assert_eq!(r.reconnect_grace_seconds, secs, "{given}");
    }
    for bad in ["\"2x\"", "\"2 days\"", "-5", "\"25h\"", "true"] {
        let e = error(&link(bad));
        assert!(e.to_string().contains("reconnect_grace"), "{bad}: {e}");
    }
}

#[test]
fn all_problems_are_reported_at_once() {
    let text = with("regoin = \"x\"\nstorage = 150\nnodes = 0\n");
    let all = errors(&text);
    assert_eq!(all.len(), 3, "{all:#?}");
}

#[test]
fn unknown_key_has_a_hint_and_a_location() {
    let d = error(&with("regoin = \"us-east4\"\n"));
    assert_eq!(d.message, "unknown key `regoin` in [services.primary]");
    assert_eq!(d.help.as_deref(), Some("did you mean `region`?"));
    assert_eq!(
        d.location,
        Some(Location {
            line: 10,
            column: 1
        })
    );
}

#[test]
fn missing_required_fields_point_at_the_header() {
    let d = error(&format!("{BASE}[services.b]\nname = \"bb\"\n"));
    assert_eq!(d.message, "[services.b] is missing required field `region`");
    assert_eq!(d.snippet.unwrap().text, "[services.b]");
    let d = error("[services.a]\nregion = \"us-east4\"\n");
    assert!(
        d.message.contains("`name`, `provider`, `size`, `storage`"),
        "{}",
        d.message
    );
}

#[test]
fn name_format_and_length() {
    assert!(error(&BASE.replace("skysql-primary", "Primary"))
        .message
        .contains("lowercase"));
    let long = "a".repeat(25);
    assert!(error(&BASE.replace("skysql-primary", &long))
        .message
        .contains("at most 24"));
}

#[test]
fn names_are_unique() {
    let d = error(&with(
        &SECONDARY.replace("skysql-secondary", "skysql-primary"),
    ));
    assert_eq!(
        d.message,
        "service name `skysql-primary` is already used by [services.primary]"
    );
    assert_eq!(d.line(), Some(11));
}

#[test]
fn a_name_in_defaults_is_rejected_once() {
    let text = format!("{BASE}[services.b]\nregion = \"us-west1\"\n")
        .replace("[defaults]\n", "[defaults]\nname = \"shared\"\n");
    let d = error(&text);
    assert_eq!(d.message, "`name` cannot be shared through [defaults]");
}

#[test]
fn service_keys_are_plain() {
    let d = error(&BASE.replace("[services.primary]", "[services.Primary]"));
    assert_eq!(d.message, "invalid service key `Primary`");
}

#[test]
fn storage_nodes_and_enums() {
    assert!(error(&with("storage = 1500\n")).message.contains("1500 GB"));
    assert!(error(&with("storage = -100\n")).message.contains("-100 GB"));
    assert!(error(&with("nodes = 0\n")).message.contains("at least 1"));
    assert_eq!(
        error(&with("provider = \"gpc\"\n")).message,
        "unknown provider `gpc`"
    );
    assert!(error(&with("architecture = \"x86\"\n"))
        .message
        .contains("architecture"));
    assert!(error(&with("service_type = \"olap\"\n"))
        .message
        .contains("service_type"));
    assert!(error(&with("volume_type = \"gp1\"\n"))
        .message
        .contains("volume_type"));
    assert!(error(&with("topology = \"\"\n"))
        .message
        .contains("topology is empty"));
    ok(&with(
        "topology = \"es-replica\"\nvolume_type = \"gp3\"\nvolume_iops = 3000\n",
    ));
}

#[test]
fn an_invalid_default_is_reported_once_for_all_services() {
    let text = format!("{BASE}{SECONDARY}").replace("storage = 100", "storage = 150");
    let d = error(&text);
    assert_eq!(d.line(), Some(5));
}

#[test]
fn unknown_source_gets_a_hint() {
    let d = error(&with(&format!(
        "{SECONDARY}[services.secondary.replication]\nfrom = \"primay\"\n"
    )));
    assert_eq!(d.message, "`from` names an unknown service `primay`");
    assert_eq!(d.help.as_deref(), Some("did you mean `primary`?"));
}

#[test]
fn self_replication_is_rejected() {
    let d = error(&with("replication = { from = \"primary\" }\n"));
    assert_eq!(d.message, "[services.primary] replicates from itself");
}

#[test]
fn cycles_are_named() {
    let text = with(&format!(
        "replication = {{ from = \"secondary\" }}\n{SECONDARY}replication = {{ from = \"primary\" }}\n"
    ));
    let d = error(&text);
    assert_eq!(
        d.message,
        "replication cycle: primary -> secondary -> primary"
    );
}

#[test]
fn cross_provider_backup_seeding_is_impossible() {
    let text = with(&format!(
        "{SECONDARY}provider = \"aws\"\nregion = \"us-east-1\"\n"
    ))
    .replace("region = \"us-west1\"\n", "");
    let d = error(&format!(
        "{text}[services.secondary.replication]\nfrom = \"primary\"\nseed = \"latest-backup\"\n"
    ));
    assert!(d
        .message
        .contains("(aws) cannot be seeded from a backup of [services.primary] (gcp)"));
    assert!(d
        .help
        .unwrap()
        .contains("backups restore within one cloud provider only"));
    // Without a backup, replication across providers is fine.
    ok(&format!(
        "{text}[services.secondary.replication]\nfrom = \"primary\"\nseed = \"none\"\n"
    ));
}

#[test]
fn seed_modes() {
    let repl = |seed: &str| {
        with(&format!(
            "{SECONDARY}[services.secondary.replication]\nfrom = \"primary\"\nseed = \"{seed}\"\n"
        ))
    };
    let t = ok(&repl("backup:42"));
    assert_eq!(
        t.services["secondary"].replication.as_ref().unwrap().seed,
        Seed::Backup("42".into())
    );
    assert_eq!(error(&repl("fresh")).message, "unknown seed mode `fresh`");
}

#[test]
fn allow_list_cidrs() {
    let d = error(&with(
        "allow_list = [\"10.0.0.1\", \"10.0.0.256/24\", \"10.0.0.0/8\"]\n",
    ));
    assert_eq!(d.message, "invalid CIDR `10.0.0.256/24` in allow_list");
    assert_eq!(d.snippet.unwrap().len, "\"10.0.0.256/24\"".len());
}

#[test]
fn provider_endpoint_and_secrets() {
    let d = error(&format!("[provider]\nendpoint = \"ftp://x\"\n{BASE}"));
    assert_eq!(d.message, "invalid endpoint `ftp://x`");
    let secret = "skysql.1234.very-secret";
    let all = errors(&format!("[provider]\napi_key_env = \"{secret}\"\n{BASE}"));
    let rendered = all.iter().map(|d| d.to_string()).collect::<String>();
    assert!(!rendered.contains(secret), "{rendered}");
    let t = ok(&format!(
        "[provider]\nendpoint = \"https://api.skysql.com\"\napi_key_env = \"SKY\"\n{BASE}"
    ));
    assert!(!t.provider.is_local());
}

#[test]
fn state_table() {
    let t = ok(&format!("[state]\npath = \"state/prod.json\"\n{BASE}"));
    assert_eq!(t.state.path.as_deref(), Some(Path::new("state/prod.json")));
    let t = ok(&format!(
        "[state]\nbackend = \"mysql://skyplan@db:3306/skyplan\"\npassword_env = \"DB_PW\"\n{BASE}"
    ));
    assert_eq!(t.state.password_env.as_deref(), Some("DB_PW"));
    let d = error(&format!(
        "[state]\nbackend = \"mysql://u:hunter2@db/x\"\n{BASE}"
    ));
    assert!(!d.to_string().contains("hunter2"), "{d}");
}

#[test]
fn tags_are_strings() {
    let d = error(&with("tags = { cost = 5 }\n"));
    assert_eq!(
        d.message,
        "wrong type for `cost` in [services.primary.tags]: expected string, found integer"
    );
}

#[test]
fn empty_file_has_no_services() {
    let d = error("");
    assert_eq!(d.message, "no services defined");
    assert_eq!(d.location, Some(Location { line: 1, column: 1 }));
}

#[test]
fn non_utf8_bytes_are_reported_where_they_start() {
    let e = parse_bytes(
        b"[services.a]\nname = \"caf\xe9\"\n".to_vec(),
        Path::new("latin1.toml"),
    )
    .unwrap_err();
    let d = e.iter().next().unwrap();
    assert_eq!(d.message, "the file is not valid UTF-8 text");
    assert_eq!(
        d.location,
        Some(Location {
            line: 2,
            column: 12
        })
    );
}

#[test]
fn a_malformed_services_entry_is_not_also_no_services() {
    let d = error("[services]\nprimary = \"skysql-primary\"\n");
    assert!(
        d.message.starts_with("wrong type for `primary`"),
        "{}",
        d.message
    );
    let d = error("[[services]]\nname = \"skysql-primary\"\n");
    assert_eq!(d.message, "`services` is an array of tables");
}

#[test]
fn crlf_and_byte_order_marks_do_not_shift_positions() {
    let d = error("\u{FEFF}[services.a]\r\nname = \"skysql-a\"\r\nregion = \"us-east4\"\r\n");
    assert_eq!(d.location, Some(Location { line: 1, column: 1 }));
    let d = error(&with("regoin = \"x\"\n").replace('\n', "\r\n"));
    assert_eq!(
        d.location,
        Some(Location {
            line: 10,
            column: 1
        })
    );
    assert_eq!(d.snippet.unwrap().text, "regoin = \"x\"");
}

#[test]
fn the_whole_internet_only_with_allow_public() {
    let world = "allow_list = [\"0.0.0.0/0\"]\n";
    let e = error(&with(world));
    assert!(e.message.contains("whole internet"), "{}", e.message);
    let t = ok(&with(&format!("allow_public = true\n{world}")));
    assert_eq!(t.services["primary"].spec.allow_list, vec!["0.0.0.0/0"]);
}
