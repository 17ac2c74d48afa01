//! `apply --json`: the apply as a stream of events, one JSON object per line on stdout
//! (`schemas/events.schema.json`), like Terraform's `apply -json`: the plan, each action's
//! start, each change of what it waits for, its end with the count and the time left, the
//! messages, the summary and the diagnostics. Human progress stays on stderr ([`Tee`] runs
//! both). Every event has `type` and `@timestamp`; strings are data (JSON escapes them).

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::executor::Report;
use super::progress::{Outcome, Progress, Tally};
use crate::plan::{Action, ActionId, Plan};

/// Writes events as lines to `out` (the printer's stdout stream in the binary, a buffer in
/// tests).
pub(crate) struct JsonEvents {
    out: Mutex<Box<dyn Write + Send>>,
    tally: Mutex<Tally>,
    /// Each action's address, and the last status sent for it (only changes are events).
    steps: Mutex<HashMap<ActionId, (String, Option<String>)>>,
}

impl JsonEvents {
    pub(crate) fn to(out: Box<dyn Write + Send>) -> JsonEvents {
        JsonEvents {
            out: Mutex::new(out),
            tally: Mutex::new(Tally::default()),
            steps: Mutex::new(HashMap::new()),
        }
    }

    /// One event: `{"type": …, "@timestamp": …, …fields}` on its own line.
    fn emit(&self, kind: &str, fields: Value) {
        let mut event = json!({
            "type": kind,
            "@timestamp": crate::state::backend::now_rfc3339(),
        });
        if let (Some(e), Value::Object(f)) = (event.as_object_mut(), fields) {
            e.extend(f);
        }
        if let Ok(mut out) = self.out.lock() {
            let _ = writeln!(out, "{event}");
            let _ = out.flush();
        }
    }

    /// The plan about to be applied (the same JSON as `plan --json`).
    pub(crate) fn plan(&self, plan: &Plan) {
        self.emit("plan", json!({ "plan": plan }));
    }

    /// How the apply ended.
    pub(crate) fn summary(&self, plan: &Plan, report: &Report, api_calls: u64) {
        let addresses = |ids: &mut dyn Iterator<Item = ActionId>| -> Vec<String> {
            ids.filter_map(|id| plan.actions.get(id).map(|a| a.address.clone()))
                .collect()
        };
        let outcome = if report.success() {
            "applied"
        } else if report.interrupted {
            "interrupted"
        } else {
            "failed"
        };
        self.emit(
            "summary",
            json!({
                "outcome": outcome,
                "completed": addresses(&mut report.completed.iter().copied()),
                "failed": addresses(&mut report.failed.iter().map(|(id, _)| *id)),
                "still_running": addresses(&mut report.abandoned.iter().map(|(id, _)| *id)),
                "not_started": addresses(&mut report.not_started.iter().copied()),
                "elapsed_ms": millis(report.elapsed),
                "api_calls": api_calls,
            }),
        );
    }

    /// An error that ends the command (also printed on stderr as usual).
    pub(crate) fn diagnostic(&self, message: &str) {
        self.emit(
            "diagnostic",
            json!({ "severity": "error", "message": message }),
        );
    }
}

fn millis(d: Duration) -> u64 {
    d.as_millis() as u64
}

impl Progress for JsonEvents {
    fn begin(&self, actions: &[Action]) {
        if let Ok(mut t) = self.tally.lock() {
            t.begin(actions);
        }
        if let Ok(mut s) = self.steps.lock() {
            s.extend(actions.iter().map(|a| (a.id, (a.address.clone(), None))));
        }
        let estimate: Option<u64> = actions
            .iter()
            .any(|a| a.estimated_ms.is_some())
            .then(|| crate::plan::estimate::remaining(actions, &|_| false, &|_| None));
        self.emit(
            "apply_start",
            json!({ "actions": actions.len(), "estimated_ms": estimate }),
        );
    }

    fn started(&self, a: &Action) {
        if let Ok(mut t) = self.tally.lock() {
            t.started(a.id, Instant::now());
        }
        self.emit(
            "action_start",
            json!({
                "id": a.id,
                "address": a.address,
                "summary": a.summary.trim(),
                "estimated_ms": a.estimated_ms,
            }),
        );
    }

    fn status(&self, id: ActionId, msg: &str) {
        let address = {
            let Ok(mut steps) = self.steps.lock() else {
                return;
            };
            let entry = steps.entry(id).or_insert_with(|| (String::new(), None));
            if entry.1.as_deref() == Some(msg) {
                return;
            }
            entry.1 = Some(msg.to_string());
            entry.0.clone()
        };
        self.emit(
            "action_status",
            json!({ "id": id, "address": address, "status": msg }),
        );
    }

    fn finished(&self, a: &Action, outcome: Outcome<'_>, took: Duration) {
        let (done, total, left) = match self.tally.lock() {
            Ok(mut t) => {
                t.finished(a.id, Instant::now());
                let (k, n) = t.count();
                (k, n, t.left(Instant::now()))
            }
            Err(_) => (0, 0, None),
        };
        let (word, text) = match outcome {
            Outcome::Done(note) => ("done", note),
            Outcome::Failed(e) => ("failed", e),
            Outcome::StillRunning(e) => ("still_running", e),
        };
        let mut fields = json!({
            "id": a.id,
            "address": a.address,
            "outcome": word,
            "elapsed_ms": millis(took),
            "done": done,
            "total": total,
            "remaining_ms": left,
        });
        if !text.is_empty() {
            let key = if word == "done" { "note" } else { "error" };
            fields[key] = Value::String(text.to_string());
        }
        self.emit("action_end", fields);
    }

    fn message(&self, msg: &str) {
        self.emit("message", json!({ "message": msg }));
    }
}

/// Reports to several printers: the human progress on stderr and the events on stdout.
pub(crate) struct Tee(pub Vec<Arc<dyn Progress>>);

impl Progress for Tee {
    fn begin(&self, actions: &[Action]) {
        self.0.iter().for_each(|p| p.begin(actions));
    }
    fn started(&self, action: &Action) {
        self.0.iter().for_each(|p| p.started(action));
    }
    fn status(&self, id: ActionId, msg: &str) {
        self.0.iter().for_each(|p| p.status(id, msg));
    }
    fn finished(&self, action: &Action, outcome: Outcome<'_>, took: Duration) {
        self.0
            .iter()
            .for_each(|p| p.finished(action, outcome, took));
    }
    fn message(&self, msg: &str) {
        self.0.iter().for_each(|p| p.message(msg));
    }
    fn tick(&self) {
        self.0.iter().for_each(|p| p.tick());
    }
    fn done(&self) {
        self.0.iter().for_each(|p| p.done());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::printer::Buffer;

    fn action(id: ActionId, address: &str, ms: u64, deps: &[ActionId]) -> Action {
        Action {
            id,
            address: address.into(),
            change: crate::plan::Change::Create,
            kind: crate::plan::ActionKind::SetRole {
                key: "x".into(),
                writable: true,
            },
            summary: format!("  {address} \"quoted\"\n"),
            depends_on: deps.to_vec(),
            before: None,
            after: None,
            wipes_data: false,
            reason: None,
            estimated_ms: Some(ms),
        }
    }

    #[test]
    fn each_event_is_one_line_of_json_and_a_repeated_status_is_not_an_event() {
        let buf = Buffer::default();
        let ev = JsonEvents::to(Box::new(buf.clone()));
        let acts = [
            action(0, "service.a", 5000, &[]),
            action(1, "backup.a", 3000, &[0]),
        ];
        ev.begin(&acts);
        ev.started(&acts[0]);
        ev.status(0, "pending_create");
        ev.status(0, "pending_create");
        ev.status(0, "ready\u{1b}[2J");
        ev.finished(&acts[0], Outcome::Done(""), Duration::from_millis(4200));
        ev.started(&acts[1]);
        ev.finished(&acts[1], Outcome::Failed("boom"), Duration::from_millis(10));
        ev.message("bye");
        let text = buf.text();
        let events: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
        assert_eq!(
            kinds,
            [
                "apply_start",
                "action_start",
                "action_status",
                "action_status",
                "action_end",
                "action_start",
                "action_end",
                "message"
            ]
        );
        assert_eq!(events[0]["estimated_ms"], 8000);
        assert_eq!(events[1]["summary"], "service.a \"quoted\"");
        assert_eq!(
            events[3]["status"], "ready\u{1b}[2J",
            "kept as data, escaped by JSON"
        );
        assert!(!text.contains('\u{1b}'), "{text}");
        assert_eq!(events[4]["done"], 1);
        assert_eq!(events[4]["total"], 2);
        assert_eq!(events[4]["elapsed_ms"], 4200);
        assert!(events[4]["remaining_ms"].as_u64().unwrap() >= 3000);
        assert_eq!(events[6]["outcome"], "failed");
        assert_eq!(events[6]["error"], "boom");
        assert!(events.iter().all(|e| e["@timestamp"].is_string()));
    }
}
