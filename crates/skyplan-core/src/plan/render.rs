//! Rendering a plan for people: Terraform-like markers, attribute diffs, a loud mark on every
//! step that wipes data, drift apart from requested changes, and a summary line. Written
//! against a `String` so it is testable without a terminal; colour is a parameter.

use std::fmt::Write;

use console::Style;
use serde_json::Value;
use similar::{ChangeTag, TextDiff};

use super::{Action, ActionKind, Change, Drift, Plan};

/// Colours (or none, for `NO_COLOR` and non-terminals).
pub struct Styles {
    add: Style,
    change: Style,
    destroy: Style,
    wipe: Style,
    dim: Style,
    bold: Style,
}

impl Styles {
    pub fn new(colors: bool) -> Styles {
        let s = |st: Style| st.force_styling(colors);
        Styles {
            add: s(Style::new().green()),
            change: s(Style::new().yellow()),
            destroy: s(Style::new().red()),
            wipe: s(Style::new().red().bold()),
            dim: s(Style::new().dim()),
            bold: s(Style::new().bold()),
        }
    }
}

/// The marker a plan line starts with (`+`, `~`, `!`, `<>`, …).
pub fn marker(a: &Action) -> &'static str {
    match (&a.kind, a.change) {
        (ActionKind::Restore { .. }, _) if a.wipes_data => "!",
        (ActionKind::Switchover { .. }, _) => "<>",
        (ActionKind::Failover { .. }, _) => "<!",
        (_, c) => c.marker(),
    }
}

pub fn render(plan: &Plan, colors: bool) -> String {
    let st = Styles::new(colors);
    let mut out = String::new();
    if !plan.refreshed && !plan.destroy {
        let _ = writeln!(
            out,
            "{}",
            st.dim.apply_to(
                "Note: refresh skipped (--refresh=false); the plan trusts the recorded state.\n"
            )
        );
    }
    if !plan.flags.target.is_empty() {
        let _ = writeln!(
            out,
            "{}",
            st.change.apply_to(format!(
                "Note: a partial plan (--target {}): only these and what they depend on; other changes are neither shown nor made.\n",
                plan.flags.target.join(", --target ")
            ))
        );
    }
    if !plan.drift.is_empty() {
        render_drift(&mut out, &plan.drift, &st);
    }
    if plan.actions.is_empty() {
        if plan.drift.iter().all(|d| d.kind.is_informational()) {
            let _ = writeln!(
                out,
                "{} The services, allowlists and replication match the topology.",
                st.bold.apply_to("No changes.")
            );
        } else {
            let _ = writeln!(
                out,
                "No actions can repair the drift above; it needs a person."
            );
        }
        // Said even when nothing is to be done (a reconnect in progress, say).
        for w in &plan.warnings {
            let _ = writeln!(out, "\n{} {w}", st.change.apply_to("Warning:"));
        }
        return out;
    }
    let _ = writeln!(
        out,
        "skyplan will perform these actions, in dependency order:\n"
    );
    let width = plan
        .actions
        .iter()
        .map(|a| a.address.len())
        .max()
        .unwrap_or(0);
    for a in &plan.actions {
        render_action(&mut out, a, &st, width);
    }
    for w in &plan.warnings {
        let _ = writeln!(out, "\n{} {w}", st.change.apply_to("Warning:"));
    }
    out.push('\n');
    out.push_str(&summary(plan, &st));
    out.push('\n');
    if let Some(e) = &plan.estimate {
        let _ = writeln!(out, "{}", st.dim.apply_to(e.line()));
    }
    out
}

/// One action: marker, address and summary; why; a switchover's steps or the attributes that
/// change; and the loud lines of a step that wipes data, fails over or restarts a server.
fn render_action(out: &mut String, a: &Action, st: &Styles, width: usize) {
    let style = match (a.change, a.wipes_data) {
        (_, true) => &st.wipe,
        (Change::Create, _) => &st.add,
        (Change::Update | Change::Adopt, _) => &st.change,
        (Change::Read, _) => &st.dim,
        (Change::Replace | Change::Delete, _) => &st.destroy,
    };
    let _ = writeln!(
        out,
        "  {} {:<width$}  {}",
        style.apply_to(format!("{:>3}", marker(a))),
        a.address,
        a.summary
    );
    if let Some(reason) = &a.reason {
        let _ = writeln!(out, "        {} {}", st.dim.apply_to("because"), reason);
    }
    if let ActionKind::Switchover { .. } | ActionKind::Failover { .. } = a.kind {
        // Its steps, in order, with the GTIDs refresh saw.
        let steps = a.after.as_ref().and_then(|v| v["steps"].as_array());
        for (i, step) in steps.into_iter().flatten().enumerate() {
            let _ = writeln!(
                out,
                "        {}. {}",
                i + 1,
                step.as_str().unwrap_or_default()
            );
        }
    } else if matches!(a.change, Change::Update | Change::Replace | Change::Adopt) {
        attribute_diff(out, a, st);
    }
    if a.wipes_data {
        let _ = writeln!(
            out,
            "        {}",
            st.wipe.apply_to("!! this step wipes data")
        );
    }
    if let ActionKind::Failover { .. } = a.kind {
        let _ = writeln!(
            out,
            "        {}",
            st.wipe
                .apply_to("!! failover: what the old primary had and the new one lacks is lost")
        );
    }
    if let ActionKind::RestartService { .. } = a.kind {
        let _ = writeln!(
            out,
            "        {}",
            st.change
                .apply_to("!! this step restarts the server: its clients are disconnected")
        );
    }
}

/// The plan's summary line, without colour: `Plan: 2 to add, 0 to change, …`.
pub fn summary_line(plan: &Plan) -> String {
    summary(plan, &Styles::new(false))
}

fn summary(plan: &Plan, st: &Styles) -> String {
    let mut out = String::new();
    let s = &plan.summary;
    let adopt = match s.adopt {
        0 => String::new(),
        n => format!("{n} to adopt, "),
    };
    let _ = write!(
        out,
        "{} {adopt}{} to add, {} to change, {} to replace, {} to destroy.",
        st.bold.apply_to("Plan:"),
        s.add,
        s.change,
        s.replace,
        s.destroy
    );
    if s.drift > 0 {
        let _ = write!(out, " {} changed outside skyplan.", s.drift);
    }
    match s.restarts {
        0 => {}
        1 => {
            let _ = write!(out, " {}", st.change.apply_to("1 step restarts a server."));
        }
        n => {
            let _ = write!(
                out,
                " {}",
                st.change.apply_to(format!("{n} steps restart a server."))
            );
        }
    }
    match s.wipes_data {
        0 => {}
        1 => {
            let _ = write!(out, " {}", st.wipe.apply_to("1 step wipes data."));
        }
        n => {
            let _ = write!(
                out,
                " {}",
                st.wipe.apply_to(format!("{n} steps wipe data."))
            );
        }
    }
    out
}

/// The "Changed outside skyplan" section: one line per drift (marker, resource, kind, detail),
/// then the fields that differ, `field: expected -> found`.
fn render_drift(out: &mut String, drift: &[Drift], st: &Styles) {
    let _ = writeln!(out, "{}", st.bold.apply_to("Changed outside skyplan:"));
    let width = drift.iter().map(|d| d.resource.len()).max().unwrap_or(0);
    for d in drift {
        let (marker, style) = if d.kind.is_informational() {
            ("i", &st.dim)
        } else if d.after.is_null() {
            ("-", &st.destroy)
        } else {
            ("~", &st.change)
        };
        let _ = writeln!(
            out,
            "  {} {:<width$}  {}: {}",
            style.apply_to(marker),
            d.resource,
            d.kind.label(),
            d.detail
        );
        drift_fields(out, d, st);
    }
    out.push('\n');
}

/// What differs between a drift's expected and found values. Nothing when one side is null
/// (the detail says it all); one `expected … found …` line when they share no field; fields
/// found only in reality (server errors) unless the detail already quotes them.
fn drift_fields(out: &mut String, d: &Drift, st: &Styles) {
    let (before, after) = (&d.before, &d.after);
    if before.is_null() || after.is_null() {
        return;
    }
    let (Value::Object(b), Value::Object(a)) = (before, after) else {
        if before != after {
            let _ = writeln!(
                out,
                "        {} {} {}",
                st.destroy.apply_to(compact(before)),
                st.dim.apply_to("->"),
                st.add.apply_to(compact(after))
            );
        }
        return;
    };
    if !b.keys().any(|k| a.contains_key(k)) {
        let _ = writeln!(
            out,
            "        {} {}  {} {}",
            st.dim.apply_to("expected"),
            compact(before),
            st.dim.apply_to("found"),
            compact(after)
        );
        return;
    }
    for (k, old) in b {
        let new = a.get(k).unwrap_or(&Value::Null);
        if old != new {
            let _ = writeln!(
                out,
                "        {k}: {} {} {}",
                st.destroy.apply_to(compact(old)),
                st.dim.apply_to("->"),
                st.add.apply_to(compact(new))
            );
        }
    }
    for (k, new) in a.iter().filter(|(k, _)| !b.contains_key(*k)) {
        if new.as_str().is_some_and(|text| d.detail.contains(text)) {
            continue;
        }
        let _ = writeln!(out, "        {k}: {}", compact(new));
    }
}

/// `field: old -> new` for scalars; a line diff (similar) for lists and maps.
fn attribute_diff(out: &mut String, a: &Action, st: &Styles) {
    let (Some(Value::Object(before)), Some(Value::Object(after))) = (&a.before, &a.after) else {
        return;
    };
    for (k, new) in after {
        let old = before.get(k).unwrap_or(&Value::Null);
        if old == new || new.as_str() == Some(super::KNOWN_AFTER_APPLY) {
            continue;
        }
        match (old, new) {
            (Value::Array(_) | Value::Object(_), _) | (_, Value::Array(_) | Value::Object(_)) => {
                let _ = writeln!(out, "        {k}:");
                let (o, n) = (lines(old), lines(new));
                for change in TextDiff::from_lines(&o, &n).iter_all_changes() {
                    let line = change.value().trim_end();
                    let _ = match change.tag() {
                        ChangeTag::Delete => writeln!(
                            out,
                            "          {}",
                            st.destroy.apply_to(format!("- {line}"))
                        ),
                        ChangeTag::Insert => {
                            writeln!(out, "          {}", st.add.apply_to(format!("+ {line}")))
                        }
                        ChangeTag::Equal => writeln!(out, "            {line}"),
                    };
                }
            }
            _ => {
                let _ = writeln!(
                    out,
                    "        {k}: {} {} {}",
                    st.destroy.apply_to(field(k, old)),
                    st.dim.apply_to("->"),
                    st.add.apply_to(field(k, new))
                );
            }
        }
    }
}

/// One line per list element or map entry, for line diffs.
fn lines(v: &Value) -> String {
    match v {
        Value::Array(items) => items.iter().map(|i| format!("{}\n", compact(i))).collect(),
        Value::Object(m) => m
            .iter()
            .map(|(k, v)| format!("{k} = {}\n", compact(v)))
            .collect(),
        Value::Null => String::new(),
        other => format!("{}\n", compact(other)),
    }
}

/// A field's value; an empty GTID position says so instead of printing as `""`.
fn field(key: &str, v: &Value) -> String {
    match v.as_str() {
        Some(s) if key == "gtid" && s.trim().is_empty() => crate::gtid::EMPTY_POSITION.into(),
        _ => compact(v),
    }
}

fn compact(v: &Value) -> String {
    match v {
        Value::Null => "(none)".into(),
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_gtid_field_says_it_is_empty() {
        // A link wired before its source had any transaction, re-wired from the replica's own
        // position: `gtid: "" -> …` would read as a value missing.
        let v = |s: &str| Value::String(s.into());
        assert_eq!(field("gtid", &v("")), "(empty: no transactions yet)");
        assert_eq!(field("gtid", &v("0-1-5")), "\"0-1-5\"");
        assert_eq!(field("name", &v("")), "\"\"");
    }
}
