//! Rules for single values, as pure functions: each returns the checked (sometimes
//! normalised) value or a [`Problem`] that the caller locates at the value's span.

use std::net::Ipv4Addr;

use skyplan_api::cidr::Cidr;

use super::model::Seed;
use super::suggest::{did_you_mean, list};

/// What is wrong with a value, before it is given a location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub message: String,
    pub help: Option<String>,
}

impl Problem {
    fn new(message: impl Into<String>) -> Problem {
        Problem {
            message: message.into(),
            help: None,
        }
    }

    fn help(mut self, help: impl Into<String>) -> Problem {
        self.help = Some(help.into());
        self
    }
}

pub const PROVIDERS: &[&str] = &["aws", "gcp", "azure"];
pub const ARCHITECTURES: &[&str] = &["amd64", "arm64"];
pub const SERVICE_TYPES: &[&str] = &["transactional", "transactional_serverless"];
/// The spec documents gp2 and io1; gp3 is accepted too (its `volume_throughput` mentions it).
pub const VOLUME_TYPES: &[&str] = &["gp2", "io1", "gp3"];
/// Topologies named by the spec's enum, its examples and the guide. Others are accepted
/// (the API grows new ones), unless they look like a typo of one of these.
pub const KNOWN_TOPOLOGIES: &[&str] = &[
    "standalone",
    "es-single",
    "es-replica",
    "sa",
    "serverless-standalone",
    "csdw",
    "xpand",
];

pub const MAX_NAME_LEN: usize = 24;

/// A value that must be one of `allowed`.
pub fn one_of(field: &str, value: &str, allowed: &[&str]) -> Result<(), Problem> {
    if allowed.contains(&value) {
        return Ok(());
    }
    let problem = Problem::new(format!("unknown {field} `{value}`"));
    Err(match did_you_mean(value, allowed.iter().copied()) {
        Some(s) => problem.help(format!(
            "did you mean `{s}`? (expected one of {})",
            list(allowed)
        )),
        None => problem.help(format!("expected one of {}", list(allowed))),
    })
}

/// SkySQL service names: `^[a-z][a-z0-9-]+$`, at most 24 characters.
pub fn service_name(name: &str) -> Result<(), Problem> {
    let help = "a name starts with a lowercase letter and has 2 to 24 lowercase letters, \
                digits and `-`, e.g. `skysql-primary`";
    if name.is_empty() {
        return Err(Problem::new("service name is empty").help(help));
    }
    let count = name.chars().count();
    if count > MAX_NAME_LEN {
        return Err(Problem::new(format!(
            "service name `{name}` is {count} characters long; SkySQL allows at most {MAX_NAME_LEN}"
        )));
    }
    let first = name.chars().next().unwrap_or(' ');
    if !first.is_ascii_lowercase() {
        let what = format!("service name `{name}` must start with a lowercase letter");
        return Err(Problem::new(what).help(help));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        let what = format!(
            "invalid service name `{name}`: {} is not allowed",
            describe(bad)
        );
        return Err(Problem::new(what).help(help));
    }
    if count < 2 {
        return Err(Problem::new(format!("service name `{name}` is too short")).help(help));
    }
    Ok(())
}

/// What [`service_key`] accepts, as a pattern (for the schemas).
pub const SERVICE_KEY: &str = "^[a-z][a-z0-9_-]*$";

/// Service keys become addresses (`service.<key>`) and state keys: keep them plain.
pub fn service_key(key: &str) -> Result<(), Problem> {
    let ok = key.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && key
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if ok {
        return Ok(());
    }
    Err(Problem::new(format!("invalid service key `{key}`")).help(
        "a key starts with a lowercase letter and has only lowercase letters, digits, `_` and `-`",
    ))
}

fn describe(c: char) -> String {
    match c {
        ' ' => "a space".into(),
        c if c.is_ascii_uppercase() => format!("uppercase `{c}`"),
        c if c.is_control() => format!("control character U+{:04X}", c as u32),
        c => format!("`{c}`"),
    }
}

/// Storage sizes the API accepts: 100–1000 GB by 100, 2000–10000 GB by 1000.
pub fn storage(gb: i64) -> Result<u32, Problem> {
    let valid = |g: i64| {
        ((100..=1000).contains(&g) && g % 100 == 0)
            || ((2000..=10000).contains(&g) && g % 1000 == 0)
    };
    if valid(gb) {
        return u32::try_from(gb).map_err(|_| Problem::new("storage out of range"));
    }
    let below = (100..=10000).rev().find(|g| *g <= gb && valid(*g));
    let above = (100..=10000).find(|g| *g >= gb && valid(*g));
    let nearest = match (below, above) {
        (Some(b), Some(a)) => format!("; the nearest are {b} and {a}"),
        (None, Some(a)) => format!("; the smallest is {a}"),
        (Some(b), None) => format!("; the largest is {b}"),
        (None, None) => String::new(),
    };
    Err(
        Problem::new(format!("storage {gb} GB is not a size SkySQL offers")).help(format!(
            "use 100 to 1000 in steps of 100, or 2000 to 10000 in steps of 1000{nearest}"
        )),
    )
}

/// A count that must be at least `min` and fit the API's integer.
pub fn at_least(field: &str, value: i64, min: i64) -> Result<u32, Problem> {
    if value < min {
        return Err(Problem::new(format!(
            "{field} must be at least {min}, found {value}"
        )));
    }
    u32::try_from(value).map_err(|_| Problem::new(format!("{field} {value} is too large")))
}

/// The most retries of a failed API call a topology may ask for.
pub const MAX_RETRIES: u32 = 20;

/// Retries of a failed API call (0 = fail at the first error).
pub fn max_retries(value: i64) -> Result<u32, Problem> {
    u32::try_from(value)
        .ok()
        .filter(|n| *n <= MAX_RETRIES)
        .ok_or_else(|| {
            Problem::new(format!(
                "max_retries must be between 0 and {MAX_RETRIES}, found {value}"
            ))
        })
}

pub fn max_lag_seconds(value: i64) -> Result<u64, Problem> {
    u64::try_from(value)
        .ok()
        .filter(|v| *v >= 1)
        .ok_or_else(|| Problem::new(format!("max_lag_seconds must be at least 1, found {value}")))
}

/// `reconnect_grace`: `"2m"`, `"90s"`, `"1h"` or plain seconds, at most a day; in seconds.
pub fn reconnect_grace(value: &str) -> Result<u64, Problem> {
    duration("reconnect_grace", value, 0, 86_400, "at most a day")
}

/// `[provider] lost_after`: how long skyplan waits for the API to answer for one service
/// before it counts that service as lost (a region down): 1 s to an hour; in seconds.
pub fn lost_after(value: &str) -> Result<u64, Problem> {
    duration("lost_after", value, 1, 3_600, "between 1s and an hour")
}

/// `"2m"`, `"90s"`, `"1h"` or plain seconds, within `min..=max` seconds.
fn duration(field: &str, value: &str, min: u64, max: u64, range: &str) -> Result<u64, Problem> {
    let v = value.trim();
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (num, unit) = v.split_at(split);
    let n: Option<u64> = num.parse().ok();
    let secs = match (n, unit) {
        (Some(n), "" | "s") => Some(n),
        (Some(n), "m") => n.checked_mul(60),
        (Some(n), "h") => n.checked_mul(3600),
        _ => None,
    };
    secs.filter(|s| (min..=max).contains(s)).ok_or_else(|| {
        Problem::new(format!(
            "{field} must be a duration {range} such as \"2m\" or \"90s\" (or seconds), found {}",
            echo(value)
        ))
    })
}

/// A plain string value that must not be empty or contain whitespace (sizes, versions).
pub fn word(field: &str, value: &str) -> Result<(), Problem> {
    if value.is_empty() {
        return Err(Problem::new(format!("{field} is empty")));
    }
    if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Problem::new(format!(
            "{field} `{value}` contains whitespace"
        )));
    }
    Ok(())
}

/// Cloud region names are lowercase letters, digits and `-` on every provider.
pub fn region(value: &str) -> Result<(), Problem> {
    let ok = !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        return Ok(());
    }
    Err(Problem::new(format!("invalid region `{value}`")).help(
        "use the provider's region name, e.g. `us-east4` (gcp), `us-east-1` (aws), `eastus` (azure)",
    ))
}

/// Lenient: any plain name is accepted, except empty ones and near-misses of known topologies.
pub fn topology(value: &str) -> Result<(), Problem> {
    if value.is_empty() {
        let help = format!("for example {}", list(KNOWN_TOPOLOGIES));
        return Err(Problem::new("topology is empty").help(help));
    }
    if KNOWN_TOPOLOGIES.contains(&value) {
        return Ok(());
    }
    if let Some(s) = did_you_mean(value, KNOWN_TOPOLOGIES.iter().copied()) {
        return Err(Problem::new(format!("unknown topology `{value}`"))
            .help(format!("did you mean `{s}`?")));
    }
    let plain = value
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if plain {
        return Ok(());
    }
    Err(Problem::new(format!("invalid topology `{value}`"))
        .help(format!("for example {}", list(KNOWN_TOPOLOGIES))))
}

/// At most this many characters of a user's value are repeated in a message.
const ECHO: usize = 64;

/// `value` as a message may repeat it: cut short, control characters escaped.
pub fn echo(value: &str) -> String {
    let mut s: String = value
        .chars()
        .take(ECHO)
        .flat_map(char::escape_debug)
        .collect();
    if value.chars().count() > ECHO {
        s.push('…');
    }
    s
}

/// An allow-list entry: an IPv4 netblock without host bits, or a bare IPv4 address
/// (normalised to `/32`).
pub fn cidr(value: &str) -> Result<String, Problem> {
    let help = "write an IPv4 address (`203.0.113.7`) or netblock (`10.0.0.0/24`)";
    // Written exactly: blanks around an entry are a typo here, not something to guess past.
    let parsed = Cidr::parse(value).filter(|_| value.trim() == value);
    match parsed {
        Some(c) if !c.is_ipv4() => Err(Problem::new(format!(
            "`{value}` is IPv6; SkySQL allow lists take IPv4 only"
        ))
        .help(help)),
        Some(c) if c.has_host_bits() => {
            let addr = c.net().addr();
            Err(Problem::new(format!(
                "`{}` has host bits set: it is not the network it looks like",
                echo(value)
            ))
            .help(format!(
                "write the network `{}`, or the single address `{addr}/32`",
                c.network()
            )))
        }
        Some(c) => Ok(c.to_string()),
        None => Err(Problem::new(format!("invalid CIDR `{value}` in allow_list")).help(help)),
    }
}

/// The whole internet (`0.0.0.0/0`, or any `/0`) only with `allow_public = true`: one
/// mistyped netblock must not open a database to the world.
pub fn not_the_world(cidr: String, allow_public: bool) -> Result<String, Problem> {
    if cidr.ends_with("/0") && !allow_public {
        return Err(Problem::new(format!(
            "`{cidr}` opens the service to the whole internet"
        ))
        .help("list the networks that need access; if the world really must reach it, set `allow_public = true` on the service"));
    }
    Ok(cidr)
}

/// A tag: no control characters in its key or value (they would reach logs and terminals).
pub fn tag(key: &str, value: &str) -> Result<(), Problem> {
    if key.chars().chain(value.chars()).any(char::is_control) {
        return Err(
            Problem::new(format!("tag `{}` holds a control character", echo(key)))
                .help("tags are plain text: remove tabs, newlines and other control characters"),
        );
    }
    Ok(())
}

/// The variable skyplan sets by role (replicas `ON`, primaries `OFF`), in the configuration
/// and at the moment of a switch: never the user's to set.
pub const ROLE_VARIABLE: &str = "read_only";

/// One `[services.<key>.config]` entry: a server variable's name as the catalog spells it
/// (`max_connections`, not `max-connections`), and a value that fits on one line.
pub fn config_variable(name: &str, value: &str) -> Result<(), Problem> {
    if name == ROLE_VARIABLE {
        return Err(Problem::new(format!(
            "`{ROLE_VARIABLE}` is set by skyplan from each service's role"
        ))
        .help("replicas get read_only = ON and primaries OFF, in their configuration and at every switchover; remove it here"));
    }
    let valid_name = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !valid_name {
        let spelled = name.to_ascii_lowercase().replace('-', "_");
        let problem = Problem::new(format!("`{}` is not a server variable name", echo(name)));
        return Err(
            if !spelled.is_empty()
                && spelled
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            {
                problem.help(format!("write it as SkySQL's catalog does: `{spelled}`"))
            } else {
                problem.help("variable names are lowercase letters, digits and `_`")
            },
        );
    }
    if value.chars().any(char::is_control) || value.len() > 1024 {
        return Err(Problem::new(format!(
            "the value of `{name}` holds a control character or is over 1024 bytes"
        ))
        .help("server variables take one plain value"));
    }
    Ok(())
}

pub const SEED_MODES: &[&str] = &["new-backup", "latest-backup", "backup:<id>", "none"];

pub fn seed(value: &str) -> Result<Seed, Problem> {
    if let Some(seed) = Seed::parse(value) {
        return Ok(seed);
    }
    if value == "backup:" {
        return Err(Problem::new("seed `backup:` has no backup id")
            .help("write the id of a full backup of the source: `backup:<id>`"));
    }
    let problem = Problem::new(format!("unknown seed mode `{value}`"));
    Err(match did_you_mean(value, SEED_MODES.iter().copied()) {
        Some(s) => problem.help(format!(
            "did you mean `{s}`? (expected one of {})",
            list(SEED_MODES)
        )),
        None => problem.help(format!("expected one of {}", list(SEED_MODES))),
    })
}

/// `local` (the embedded emulator) or an http(s) URL with a host.
pub fn endpoint(value: &str) -> Result<(), Problem> {
    if value == super::model::LOCAL_ENDPOINT {
        return Ok(());
    }
    let rest = value
        .strip_prefix("https://")
        .or_else(|| value.strip_prefix("http://"));
    let host = rest.map(|r| r.split(['/', '?', '#']).next().unwrap_or(""));
    let ok = host.is_some_and(|h| !h.is_empty() && !h.contains('@'))
        && !value.chars().any(|c| c.is_whitespace() || c.is_control());
    // Plain http sends the API key in clear: only to this machine (a local test server).
    let loopback = |h: &str| {
        let name = h.rsplit_once(':').map_or(h, |(n, port)| {
            if port.chars().all(|c| c.is_ascii_digit()) {
                n
            } else {
                h
            }
        });
        matches!(name, "localhost" | "127.0.0.1" | "[::1]")
            || name.parse::<Ipv4Addr>().is_ok_and(|a| a.is_loopback())
    };
    if ok && value.starts_with("http://") && !host.is_some_and(loopback) {
        return Err(Problem::new(format!(
            "endpoint `{}` is plain http: the API key would travel in clear",
            echo(value)
        ))
        .help("use https://, or http:// only to this machine (localhost, 127.0.0.1)"));
    }
    if ok {
        return Ok(());
    }
    Err(Problem::new(format!("invalid endpoint `{value}`")).help(
        "use \"local\" for the embedded emulator, or an http(s) URL such as \"https://api.skysql.com\"",
    ))
}

/// The name of an environment variable. The value is never repeated in the message: a user
/// who gets this wrong has often pasted the secret itself.
pub fn env_var_name(field: &str, value: &str) -> Result<(), Problem> {
    let ok = value
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && value.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        return Ok(());
    }
    Err(Problem::new(format!(
        "`{field}` must be the name of an environment variable"
    ))
    .help("name the variable that holds the secret (e.g. \"API_KEY\"), never the secret itself"))
}

/// A state backend URL such as `mysql://skyplan@db.example.com:3306/skyplan`, without a password
/// (that comes from the variable named by `password_env`).
pub fn backend_url(value: &str) -> Result<(), Problem> {
    let Some((scheme, rest)) = value.split_once("://") else {
        return Err(Problem::new("invalid state backend URL")
            .help("for example \"mysql://skyplan@db.example.com:3306/skyplan\""));
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let userinfo = authority.rsplit_once('@').map(|(u, _)| u);
    if userinfo.is_some_and(|u| u.contains(':')) {
        return Err(Problem::new("the state backend URL contains a password")
            .help("remove it from the URL and set `password_env` to the variable that holds it"));
    }
    if scheme.is_empty() || authority.is_empty() {
        return Err(Problem::new("invalid state backend URL")
            .help("for example \"mysql://skyplan@db.example.com:3306/skyplan\""));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(service_name("skysql-primary").is_ok());
        assert!(service_name("a1").is_ok());
        assert!(service_name("a").is_err());
        assert!(service_name("1abc").is_err());
        assert!(service_name("Primary").is_err());
        assert!(service_name("pri_mary").is_err());
        assert!(service_name("prîmary")
            .unwrap_err()
            .message
            .contains("`î` is not allowed"));
        assert!(service_name(&"a".repeat(24)).is_ok());
        assert!(service_name(&"a".repeat(25))
            .unwrap_err()
            .message
            .contains("at most 24"));
        assert!(service_name("").is_err());
    }

    #[test]
    fn keys() {
        assert!(service_key("primary").is_ok());
        assert!(service_key("eu_west-2").is_ok());
        assert!(service_key("Primary").is_err());
        assert!(service_key("1st").is_err());
        assert!(service_key("").is_err());
        assert!(service_key("a.b").is_err());
    }

    #[test]
    fn storage_sizes() {
        for ok in [100, 200, 1000, 2000, 5000, 10000] {
            assert_eq!(storage(ok), Ok(ok as u32));
        }
        for bad in [
            0,
            -100,
            50,
            150,
            1100,
            1500,
            2500,
            11000,
            i64::MAX,
            i64::MIN,
        ] {
            assert!(storage(bad).is_err(), "{bad}");
        }
        let p = storage(150).unwrap_err();
        assert!(p.help.unwrap().ends_with("the nearest are 100 and 200"));
        assert!(storage(-5)
            .unwrap_err()
            .help
            .unwrap()
            .ends_with("the smallest is 100"));
    }

    #[test]
    fn counts() {
        assert_eq!(at_least("nodes", 1, 1), Ok(1));
        assert!(at_least("nodes", 0, 1).is_err());
        assert!(at_least("nodes", -3, 1).is_err());
        assert!(at_least("nodes", i64::MAX, 1)
            .unwrap_err()
            .message
            .contains("too large"));
        assert_eq!(max_retries(0), Ok(0));
        assert_eq!(max_retries(20), Ok(20));
        assert!(max_retries(21).is_err());
        assert!(max_retries(-1).is_err());
        assert_eq!(max_lag_seconds(300), Ok(300));
        assert!(max_lag_seconds(0).is_err());
    }

    #[test]
    fn enums_suggest() {
        assert!(one_of("provider", "gcp", PROVIDERS).is_ok());
        let p = one_of("provider", "gpc", PROVIDERS).unwrap_err();
        assert_eq!(p.message, "unknown provider `gpc`");
        assert!(p.help.unwrap().starts_with("did you mean `gcp`?"));
        assert!(one_of("volume_type", "gp3", VOLUME_TYPES).is_ok());
        assert!(one_of("architecture", "x86", ARCHITECTURES).is_err());
    }

    #[test]
    fn topologies_are_lenient() {
        assert!(topology("standalone").is_ok());
        assert!(topology("es-replica").is_ok());
        assert!(topology("galera").is_ok());
        assert!(topology("").is_err());
        assert!(topology("standlone")
            .unwrap_err()
            .help
            .unwrap()
            .contains("standalone"));
        assert!(topology("Stand Alone").is_err());
    }

    #[test]
    fn regions_and_words() {
        assert!(region("us-east4").is_ok());
        assert!(region("eastus2").is_ok());
        assert!(region("US East").is_err());
        assert!(region("").is_err());
        assert!(word("size", "sky-2x8").is_ok());
        assert!(word("size", "").is_err());
        assert!(word("size", "sky 2x8").is_err());
    }

    #[test]
    fn cidrs() {
        assert_eq!(cidr("127.0.0.1/32").unwrap(), "127.0.0.1/32");
        assert_eq!(cidr("10.0.0.0/8").unwrap(), "10.0.0.0/8");
        assert_eq!(cidr("203.0.113.7").unwrap(), "203.0.113.7/32");
        assert!(cidr("10.0.0.300/24").is_err());
        assert!(cidr("10.0.0.0/33").is_err());
        assert!(cidr("localhost").is_err());
        assert!(cidr("").is_err());
        assert!(cidr("::1").unwrap_err().message.contains("IPv6"));
        assert!(cidr("2001:db8::/32").unwrap_err().message.contains("IPv6"));
    }

    #[test]
    fn seeds() {
        assert_eq!(seed("new-backup"), Ok(Seed::NewBackup));
        assert_eq!(seed("latest-backup"), Ok(Seed::LatestBackup));
        assert_eq!(seed("none"), Ok(Seed::None));
        assert_eq!(seed("backup:abc-123"), Ok(Seed::Backup("abc-123".into())));
        assert!(seed("backup:")
            .unwrap_err()
            .message
            .contains("no backup id"));
        let p = seed("new_backup").unwrap_err();
        assert!(p.help.unwrap().starts_with("did you mean `new-backup`?"));
        assert!(seed("snapshot").is_err());
    }

    #[test]
    fn netblocks_without_host_bits_and_never_the_world_by_accident() {
        assert_eq!(cidr("10.0.0.0/24").unwrap(), "10.0.0.0/24");
        assert_eq!(cidr("10.0.0.5").unwrap(), "10.0.0.5/32");
        let e = cidr("10.0.0.5/24").unwrap_err();
        assert!(e.message.contains("host bits"), "{}", e.message);
        assert!(e.help.as_deref().unwrap().contains("`10.0.0.0/24`"));
        assert!(not_the_world("0.0.0.0/0".into(), false).is_err());
        assert_eq!(
            not_the_world("0.0.0.0/0".into(), true).unwrap(),
            "0.0.0.0/0"
        );
        assert!(not_the_world("10.0.0.0/8".into(), false).is_ok());
        assert!(
            cidr("::/0").is_err(),
            "IPv6, the world included, is refused"
        );
    }

    #[test]
    fn tags_are_plain_text_and_echoes_are_short() {
        assert!(tag("team", "data").is_ok());
        assert!(tag("team", "da\nta").is_err());
        assert!(tag("te\u{1b}[31m", "x").is_err());
        let long = "x".repeat(500);
        assert_eq!(echo(&long).chars().count(), ECHO + 1);
        assert_eq!(echo("a\nb"), "a\\nb");
    }

    #[test]
    fn endpoints() {
        assert!(endpoint("local").is_ok());
        assert!(endpoint("https://api.skysql.com").is_ok());
        assert!(endpoint("http://127.0.0.1:8080/").is_ok());
        assert!(endpoint("Local").is_err());
        assert!(endpoint("ftp://api.skysql.com").is_err());
        assert!(endpoint("https://").is_err());
        assert!(endpoint("https://user:pw@host").is_err());
        assert!(endpoint("api.skysql.com").is_err());
        assert!(endpoint("http://localhost:8080").is_ok());
        assert!(endpoint("http://api.skysql.com").is_err());
        assert!(endpoint("http://10.0.0.1:80/").is_err());
    }

    #[test]
    fn env_vars_never_echo_the_value() {
        assert!(env_var_name("api_key_env", "API_KEY").is_ok());
        assert!(env_var_name("api_key_env", "_K2").is_ok());
        let p = env_var_name("api_key_env", "skysql.abc$def").unwrap_err();
        assert!(!p.message.contains("abc") && !p.help.unwrap().contains("abc"));
        assert!(env_var_name("api_key_env", "").is_err());
        assert!(env_var_name("api_key_env", "1KEY").is_err());
    }

    #[test]
    fn backend_urls() {
        assert!(backend_url("mysql://skyplan@db.example.com:3306/skyplan").is_ok());
        assert!(backend_url("db.example.com").is_err());
        let p = backend_url("mysql://u:hunter2@db/x").unwrap_err();
        assert!(p.message.contains("password") && !p.message.contains("hunter2"));
    }
}
