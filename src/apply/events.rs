//! `apply --json`: the apply as a stream of events, one JSON object per line on stdout
//! (`schemas/events.schema.json`), like Terraform's `apply -json`: the plan, each action's
//! start, each change of what it waits for, its end with the count and the time left, the
//! messages, the summary and the diagnostics. Human progress stays on stderr ([`Tee`] runs
//! both). Every event has `type` and `@timestamp`; strings are data (JSON escapes them).

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use schemars::JsonSchema;
use serde::Serialize;

use super::executor::Report;
use super::progress::{Outcome, Progress, Tally};
use crate::plan::{Action, ActionId, Plan};

/// One line of `skyplan apply --json`'s stdout: each line is one JSON object, one of the events
/// below, in the order they happened. People's output (the plan, progress, the summary) goes to
/// stderr meanwhile. A stream ends with a summary event, or with a diagnostic when the command
/// fails before or instead of running the actions.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields, transform = closed_events)]
pub(crate) struct EventLine<'a> {
    /// When the event happened (RFC 3339, UTC).
    #[serde(rename = "@timestamp")]
    pub timestamp: String,
    #[serde(flatten)]
    pub event: Event<'a>,
}

/// The events, by `type`.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum Event<'a> {
    /// The plan about to be applied, as `plan --json` prints it (schemas/plan.schema.json).
    Plan {
        // Described by its own schema, not repeated here.
        #[schemars(with = "serde_json::Map<String, serde_json::Value>")]
        plan: &'a Plan,
    },
    /// The actions start: how many, and how long the plan's estimates say they take (the
    /// critical path; null without estimates).
    ApplyStart {
        actions: usize,
        estimated_ms: Option<u64>,
    },
    /// An action starts.
    ActionStart {
        /// The action's id in the plan.
        id: ActionId,
        address: &'a str,
        summary: &'a str,
        estimated_ms: Option<u64>,
    },
    /// What a running action waits for changed (sent only when it changes).
    ActionStatus {
        id: ActionId,
        address: &'a str,
        status: &'a str,
    },
    /// An action ended: done, failed, or still running in the cloud after an interrupt (the
    /// next apply resumes it). done/total count the actions ended; remaining_ms is what the
    /// estimates leave (null without estimates).
    ActionEnd {
        id: ActionId,
        address: &'a str,
        outcome: ActionOutcome,
        /// done: what it adds (optional).
        #[serde(skip_serializing_if = "Option::is_none")]
        note: Option<&'a str>,
        /// failed or still_running: why.
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<&'a str>,
        elapsed_ms: u64,
        done: usize,
        total: usize,
        remaining_ms: Option<u64>,
    },
    /// A message of the apply (an interrupt received, say).
    Message { message: &'a str },
    /// How the apply ended. applied: every action done (or none was needed); failed: an action
    /// failed; interrupted: Ctrl-C. The lists hold addresses.
    Summary {
        outcome: ApplyOutcome,
        completed: Vec<String>,
        failed: Vec<String>,
        still_running: Vec<String>,
        not_started: Vec<String>,
        elapsed_ms: u64,
        api_calls: u64,
    },
    /// An error that ends the command (a refusal at plan time, an unreachable API, a failed
    /// apply's reason); stderr says the same.
    Diagnostic {
        severity: Severity,
        message: &'a str,
    },
}

/// How an action ended.
#[derive(Debug, Clone, Copy, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ActionOutcome {
    Done,
    Failed,
    StillRunning,
}

/// How the apply ended.
#[derive(Debug, Clone, Copy, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ApplyOutcome {
    Applied,
    Failed,
    Interrupted,
}

/// A diagnostic's severity: the stream reports errors only.
#[derive(Debug, Clone, Copy, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Severity {
    Error,
}

/// Each event is closed, as the objects of the other documents are: it has its own fields and
/// `@timestamp` (which the line, not the event, holds), nothing else.
fn closed_events(schema: &mut schemars::Schema) {
    let Some(serde_json::Value::Array(events)) = schema.get_mut("oneOf") else {
        return;
    };
    for event in events
        .iter_mut()
        .filter_map(serde_json::Value::as_object_mut)
    {
        if let Some(serde_json::Value::Object(p)) = event.get_mut("properties") {
            p.insert("@timestamp".into(), true.into());
        }
        event.insert("additionalProperties".into(), false.into());
    }
}

/// Writes events as lines to `out` (stdout in the binary, a buffer in tests).
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

    /// One event, stamped now, on its own line.
    fn emit(&self, event: Event<'_>) {
        let line = EventLine {
            timestamp: crate::state::backend::now_rfc3339(),
            event,
        };
        let Ok(text) = serde_json::to_string(&line) else {
            return;
        };
        if let Ok(mut out) = self.out.lock() {
            let _ = writeln!(out, "{text}");
            let _ = out.flush();
        }
    }

    /// The plan about to be applied (the same JSON as `plan --json`).
    pub(crate) fn plan(&self, plan: &Plan) {
        self.emit(Event::Plan { plan });
    }

    /// How the apply ended.
    pub(crate) fn summary(&self, plan: &Plan, report: &Report, api_calls: u64) {
        let addresses = |ids: &mut dyn Iterator<Item = ActionId>| -> Vec<String> {
            ids.filter_map(|id| plan.actions.get(id).map(|a| a.address.clone()))
                .collect()
        };
        let outcome = if report.success() {
            ApplyOutcome::Applied
        } else if report.interrupted {
            ApplyOutcome::Interrupted
        } else {
            ApplyOutcome::Failed
        };
        self.emit(Event::Summary {
            outcome,
            completed: addresses(&mut report.completed.iter().copied()),
            failed: addresses(&mut report.failed.iter().map(|(id, _)| *id)),
            still_running: addresses(&mut report.abandoned.iter().map(|(id, _)| *id)),
            not_started: addresses(&mut report.not_started.iter().copied()),
            elapsed_ms: millis(report.elapsed),
            api_calls,
        });
    }

    /// An error that ends the command (also printed on stderr as usual).
    pub(crate) fn diagnostic(&self, message: &str) {
        self.emit(Event::Diagnostic {
            severity: Severity::Error,
            message,
        });
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
        let estimated_ms: Option<u64> = actions
            .iter()
            .any(|a| a.estimated_ms.is_some())
            .then(|| crate::plan::estimate::remaining(actions, &|_| false, &|_| None));
        self.emit(Event::ApplyStart {
            actions: actions.len(),
            estimated_ms,
        });
    }

    fn started(&self, a: &Action) {
        if let Ok(mut t) = self.tally.lock() {
            t.started(a.id, Instant::now());
        }
        self.emit(Event::ActionStart {
            id: a.id,
            address: &a.address,
            summary: a.summary.trim(),
            estimated_ms: a.estimated_ms,
        });
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
        self.emit(Event::ActionStatus {
            id,
            address: &address,
            status: msg,
        });
    }

    fn finished(&self, a: &Action, outcome: Outcome<'_>, took: Duration) {
        let (done, total, remaining_ms) = match self.tally.lock() {
            Ok(mut t) => {
                t.finished(a.id, Instant::now());
                let (k, n) = t.count();
                (k, n, t.left(Instant::now()))
            }
            Err(_) => (0, 0, None),
        };
        let (outcome, text) = match outcome {
            Outcome::Done(note) => (ActionOutcome::Done, note),
            Outcome::Failed(e) => (ActionOutcome::Failed, e),
            Outcome::StillRunning(e) => (ActionOutcome::StillRunning, e),
        };
        let text = (!text.is_empty()).then_some(text);
        let done_note = matches!(outcome, ActionOutcome::Done);
        self.emit(Event::ActionEnd {
            id: a.id,
            address: &a.address,
            outcome,
            note: text.filter(|_| done_note),
            error: text.filter(|_| !done_note),
            elapsed_ms: millis(took),
            done,
            total,
            remaining_ms,
        });
    }

    fn message(&self, msg: &str) {
        self.emit(Event::Message { message: msg });
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
    use serde_json::Value;

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
