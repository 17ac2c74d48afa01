//! Progress for people: a live line per running action with elapsed time on a terminal
//! (indicatif, on stderr), plain timestamped lines otherwise (CI logs, pipes), written to the
//! printer's stderr stream so a test reads them back.
//!
//! The plain log is read after the fact, often from a CI job that ran for an hour, so it says
//! only what is new: a wait polls every few seconds and reports the same status each time,
//! which [`LogBook`] prints once, again when it changes, and otherwise as a heartbeat with the
//! elapsed time every [`HEARTBEAT`] — never the same line twice in a row for a step.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::plan::{Action, ActionId};

/// How a step ended, in the words of the apply's summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome<'a> {
    /// Done, with an optional note ("" for none).
    Done(&'a str),
    Failed(&'a str),
    /// The step stopped waiting (an interrupt) while its operation goes on in the cloud.
    StillRunning(&'a str),
}

pub trait Progress: Send + Sync {
    /// The apply is about to run these actions (the plan's, in order): a printer that counts
    /// steps or estimates the time left keeps them.
    fn begin(&self, _actions: &[Action]) {}
    fn started(&self, action: &Action);
    /// What a running action is waiting for ("pending_create", "backup Running", …).
    fn status(&self, id: ActionId, msg: &str);
    fn finished(&self, action: &Action, outcome: Outcome<'_>, took: Duration);
    fn message(&self, msg: &str);
    /// Called about once a second while actions run: a printer that reports quiet steps
    /// (the plain log's heartbeat) does it here.
    fn tick(&self) {}
    /// Nothing more will be reported: leave the terminal clean (no spinner left drawn).
    fn done(&self) {}
}

/// Reports nothing.
pub(crate) struct Silent;

impl Progress for Silent {
    fn started(&self, _: &Action) {}
    fn status(&self, _: ActionId, _: &str) {}
    fn finished(&self, _: &Action, _: Outcome<'_>, _: Duration) {}
    fn message(&self, _: &str) {}
}

/// How long a running step may go without a line in the plain log before a heartbeat says it
/// is still at it.
pub(crate) const HEARTBEAT: Duration = Duration::from_secs(30);

/// The plain log's memory of each running step: what it last said and when. It decides which
/// lines to print and does no I/O; the time is passed in, so it is tested with a fake clock.
#[derive(Debug, Default)]
pub(crate) struct LogBook {
    steps: HashMap<ActionId, StepLog>,
}

#[derive(Debug)]
struct StepLog {
    address: String,
    started: Instant,
    /// The last status printed (None: none yet).
    status: Option<String>,
    /// When the step's last line was printed.
    last_line: Instant,
}

impl LogBook {
    pub(crate) fn started(&mut self, id: ActionId, address: &str, now: Instant) {
        self.steps.insert(
            id,
            StepLog {
                address: address.to_string(),
                started: now,
                status: None,
                last_line: now,
            },
        );
    }

    /// The line to print for this status: it when it is new, a heartbeat when it repeats the
    /// last one and the step has been quiet for [`HEARTBEAT`], else nothing.
    pub(crate) fn status(&mut self, id: ActionId, msg: &str, now: Instant) -> Option<String> {
        // A status of a step not started here (work outside the executor) is logged as well.
        let step = self.steps.entry(id).or_insert_with(|| StepLog {
            address: String::new(),
            started: now,
            status: None,
            last_line: now,
        });
        if step.status.as_deref() == Some(msg) {
            return step.heartbeat(now);
        }
        step.status = Some(msg.to_string());
        step.last_line = now;
        Some(format!("{}: {msg}", step.address))
    }

    /// The heartbeats due at `now`, in action order.
    pub(crate) fn tick(&mut self, now: Instant) -> Vec<String> {
        let mut ids: Vec<&ActionId> = self.steps.keys().collect();
        ids.sort_unstable();
        let ids: Vec<ActionId> = ids.into_iter().copied().collect();
        ids.into_iter()
            .filter_map(|id| self.steps.get_mut(&id).and_then(|s| s.heartbeat(now)))
            .collect()
    }

    /// The step is over: forget it (its final line is the caller's).
    pub(crate) fn finished(&mut self, id: ActionId) {
        self.steps.remove(&id);
    }
}

impl StepLog {
    fn heartbeat(&mut self, now: Instant) -> Option<String> {
        let due = self.last_line + HEARTBEAT;
        if now < due {
            return None;
        }
        // Counted from when it was due, so the ticks' lateness does not add up from one
        // heartbeat to the next (unless they were very late: no burst to catch up).
        self.last_line = if now - due < Duration::from_secs(1) {
            due
        } else {
            now
        };
        let elapsed = clock(now.saturating_duration_since(self.started));
        Some(match &self.status {
            Some(s) => format!("{}: still {s} ({elapsed} elapsed)", self.address),
            None => format!("{}: still running ({elapsed} elapsed)", self.address),
        })
    }
}

/// How far an apply is: `[k/n, ~T left]` after each finished step, `k` the steps finished
/// and the time left the critical path of what is not done, by the plan's estimates
/// ([`crate::plan::estimate::remaining`]). No I/O; the time is passed in.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    actions: Vec<Action>,
    done: std::collections::HashSet<ActionId>,
    running: HashMap<ActionId, Instant>,
}

impl Tally {
    pub(crate) fn begin(&mut self, actions: &[Action]) {
        self.actions = actions.to_vec();
    }
    pub(crate) fn started(&mut self, id: ActionId, now: Instant) {
        self.running.insert(id, now);
    }
    /// The step ended (done or not): `[k/n, ~T left]`, or `[k/n]` at the end or without
    /// estimates.
    pub(crate) fn finished(&mut self, id: ActionId, now: Instant) -> String {
        self.running.remove(&id);
        self.done.insert(id);
        let (k, n) = self.count();
        match self.left(now) {
            Some(ms) if k < n => format!("[{k}/{n}, {} left]", crate::plan::estimate::human(ms)),
            _ => format!("[{k}/{n}]"),
        }
    }
    /// Steps finished, and steps in all.
    pub(crate) fn count(&self) -> (usize, usize) {
        (self.done.len(), self.actions.len().max(self.done.len()))
    }
    /// What the estimates leave, in ms (None without estimates).
    pub(crate) fn left(&self, now: Instant) -> Option<u64> {
        if self.actions.iter().all(|a| a.estimated_ms.is_none()) {
            return None;
        }
        let running = |id| {
            self.running
                .get(&id)
                .map(|t| now.saturating_duration_since(*t).as_millis() as u64)
        };
        Some(crate::plan::estimate::remaining(
            &self.actions,
            &|id| self.done.contains(&id),
            &running,
        ))
    }
}

/// Whole seconds as a person reads them: `45s`, `2m05s`, `1h02m`.
pub(crate) fn clock(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}

/// Timestamped lines, for a log read afterwards (see [`LogBook`]).
pub(crate) struct Lines {
    out: crate::printer::Stream,
    book: Mutex<LogBook>,
    tally: Mutex<Tally>,
}

impl Lines {
    /// Lines on `out`: the printer's stderr stream ([`crate::printer::Printer::err_stream`]).
    pub(crate) fn new(out: crate::printer::Stream) -> Lines {
        Lines {
            out,
            book: Mutex::new(LogBook::default()),
            tally: Mutex::new(Tally::default()),
        }
    }
    fn line(&self, msg: &str) {
        let now = time::OffsetDateTime::now_utc();
        let ts = now
            .format(&time::macros::format_description!(
                "[hour]:[minute]:[second]"
            ))
            .unwrap_or_default();
        self.out.line(&format!("[{ts}] {msg}"));
    }
}

impl Progress for Lines {
    fn begin(&self, actions: &[Action]) {
        if let Ok(mut t) = self.tally.lock() {
            t.begin(actions);
        }
    }
    fn started(&self, a: &Action) {
        if let Ok(mut book) = self.book.lock() {
            book.started(a.id, &a.address, Instant::now());
        }
        if let Ok(mut t) = self.tally.lock() {
            t.started(a.id, Instant::now());
        }
        let what = a.summary.trim();
        self.line(&if what.is_empty() {
            format!("{}: starting", a.address)
        } else {
            format!("{}: starting ({what})", a.address)
        });
    }
    fn status(&self, id: ActionId, msg: &str) {
        // Printed under the lock, so two polls of one step cannot pass each other.
        if let Ok(mut book) = self.book.lock() {
            if let Some(line) = book.status(id, msg, Instant::now()) {
                self.line(&line);
            }
        }
    }
    fn finished(&self, a: &Action, outcome: Outcome<'_>, took: Duration) {
        if let Ok(mut book) = self.book.lock() {
            book.finished(a.id);
        }
        let count = self
            .tally
            .lock()
            .map(|mut t| t.finished(a.id, Instant::now()))
            .unwrap_or_default();
        let (addr, took) = (&a.address, secs(took));
        self.line(&match outcome {
            Outcome::Done("") => format!("{addr}: done after {took} {count}"),
            Outcome::Done(note) => format!("{addr}: done after {took} ({note}) {count}"),
            Outcome::Failed(e) => format!("{addr}: FAILED after {took}: {e} {count}"),
            Outcome::StillRunning(e) => {
                format!("{addr}: still running after {took}: {e} {count}")
            }
        });
    }
    fn message(&self, msg: &str) {
        self.line(msg);
    }
    fn tick(&self) {
        if let Ok(mut book) = self.book.lock() {
            for line in book.tick(Instant::now()) {
                self.line(&line);
            }
        }
    }
}

/// Live spinners on a terminal: indicatif draws them on stderr itself (chosen only when the
/// printer's stderr is a terminal).
pub(crate) struct Bars {
    multi: MultiProgress,
    bars: Mutex<HashMap<ActionId, ProgressBar>>,
    tally: Mutex<Tally>,
}

impl Bars {
    pub(crate) fn new() -> Bars {
        Bars::with_target(ProgressDrawTarget::stderr())
    }

    fn with_target(target: ProgressDrawTarget) -> Bars {
        Bars {
            multi: MultiProgress::with_draw_target(target),
            bars: Mutex::new(HashMap::new()),
            tally: Mutex::new(Tally::default()),
        }
    }
}

impl Default for Bars {
    fn default() -> Self {
        Bars::new()
    }
}

impl Progress for Bars {
    fn begin(&self, actions: &[Action]) {
        if let Ok(mut t) = self.tally.lock() {
            t.begin(actions);
        }
    }
    fn started(&self, a: &Action) {
        if let Ok(mut t) = self.tally.lock() {
            t.started(a.id, Instant::now());
        }
        let bar = self.multi.add(ProgressBar::new_spinner());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {prefix:.bold} [{elapsed}] {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_prefix(a.address.clone());
        bar.set_message("starting");
        bar.enable_steady_tick(Duration::from_millis(120));
        if let Ok(mut m) = self.bars.lock() {
            m.insert(a.id, bar);
        }
    }
    fn status(&self, id: ActionId, msg: &str) {
        if let Some(b) = self.bars.lock().ok().and_then(|m| m.get(&id).cloned()) {
            b.set_message(msg.to_string());
        }
    }
    fn finished(&self, a: &Action, outcome: Outcome<'_>, took: Duration) {
        let bar = self.bars.lock().ok().and_then(|mut m| m.remove(&a.id));
        let count = self
            .tally
            .lock()
            .map(|mut t| t.finished(a.id, Instant::now()))
            .unwrap_or_default();
        let (addr, took) = (&a.address, secs(took));
        let line = match outcome {
            Outcome::Done("") => format!("✓ {addr} ({took}) {count}"),
            Outcome::Done(note) => format!("✓ {addr} ({took}, {note}) {count}"),
            Outcome::Failed(e) => format!("✗ {addr} failed after {took}: {e} {count}"),
            Outcome::StillRunning(e) => {
                format!("… {addr} still running after {took}: {e} {count}")
            }
        };
        if let Some(b) = bar {
            b.finish_and_clear();
        }
        let _ = self.multi.println(line);
    }
    fn message(&self, msg: &str) {
        let _ = self.multi.println(msg);
    }
    fn done(&self) {
        // Bars of steps that never reported an end (the process is about to exit on a second
        // Ctrl-C): stop their ticking and erase them, or the last frame stays on screen.
        let left: Vec<ProgressBar> = self
            .bars
            .lock()
            .map(|mut m| m.drain().map(|(_, b)| b).collect())
            .unwrap_or_default();
        for b in left {
            b.finish_and_clear();
        }
        let _ = self.multi.clear();
    }
}

pub(crate) fn secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::wait::PollPolicy;

    /// What the plain log prints for one step over `seconds` of a fake clock, with the number
    /// of polls: a status from each poll (`every` gives the time to the next, `status_at` what
    /// the poll finds) and a tick every second, as the executor sends them.
    fn log_of(
        seconds: u64,
        every: impl Fn(Duration) -> Duration,
        status_at: impl Fn(Duration) -> String,
    ) -> (Vec<(u64, String)>, usize) {
        let t0 = Instant::now();
        let mut book = LogBook::default();
        book.started(3, "service.primary", t0);
        let (mut next_poll, mut polls) = (Duration::ZERO, 0);
        let mut lines = vec![];
        for ms in (0..=seconds * 1000).step_by(50) {
            let now = Duration::from_millis(ms);
            if now >= next_poll {
                polls += 1;
                if let Some(l) = book.status(3, &status_at(now), t0 + now) {
                    lines.push((now.as_secs(), l));
                }
                next_poll = now + every(now);
            }
            if ms % 1000 == 0 {
                lines.extend(book.tick(t0 + now).into_iter().map(|l| (now.as_secs(), l)));
            }
        }
        (lines, polls)
    }

    fn no_repeats(lines: &[(u64, String)]) {
        for w in lines.windows(2) {
            assert_ne!(w[0].1, w[1].1, "the same line twice in a row: {lines:#?}");
        }
    }

    #[test]
    fn a_wait_is_one_line_then_a_heartbeat_every_30s() {
        // Five minutes of pending_create, polled on the wait's own schedule.
        let policy = PollPolicy::default();
        let (lines, polls) = log_of(
            299,
            |t| policy.interval(t),
            |_| "waiting for service.primary to be ready: pending_create".into(),
        );
        assert!(polls > 50, "{polls} polls");
        no_repeats(&lines);
        let wait = "waiting for service.primary to be ready: pending_create";
        let expected: Vec<(u64, String)> = std::iter::once((0, format!("service.primary: {wait}")))
            .chain((1..=9).map(|k| {
                let elapsed = clock(Duration::from_secs(30 * k));
                (
                    30 * k,
                    format!("service.primary: still {wait} ({elapsed} elapsed)"),
                )
            }))
            .collect();
        assert_eq!(lines, expected);
        assert!(lines[2].1.ends_with("(1m00s elapsed)"), "{lines:?}");
    }

    #[test]
    fn every_change_is_printed_when_it_happens_and_the_heartbeat_restarts_from_it() {
        let (lines, _) = log_of(
            100,
            |_| Duration::from_secs(1),
            |t| match t.as_secs() {
                0..=9 => "restore Pending".into(),
                10..=49 => "restore Running".into(),
                50..=54 => "restore Pending".into(),
                _ => "restore Running".into(),
            },
        );
        no_repeats(&lines);
        let said: Vec<(u64, &str)> = lines.iter().map(|(t, l)| (*t, l.as_str())).collect();
        assert_eq!(
            said,
            [
                (0, "service.primary: restore Pending"),
                (10, "service.primary: restore Running"),
                // 30 s after the step's last line, not after its start.
                (40, "service.primary: still restore Running (40s elapsed)"),
                (50, "service.primary: restore Pending"),
                (55, "service.primary: restore Running"),
                (85, "service.primary: still restore Running (1m25s elapsed)"),
            ]
        );
    }

    #[test]
    fn a_step_that_says_nothing_still_gets_a_heartbeat() {
        // A look delayed by the server's Retry-After, or one long SQL call: no polls at all.
        let t0 = Instant::now();
        let mut book = LogBook::default();
        book.started(0, "replication.secondary", t0);
        book.started(1, "backup.primary", t0 + Duration::from_secs(5));
        let at = |s| t0 + Duration::from_secs(s);
        assert!(book.tick(at(29)).is_empty());
        assert_eq!(
            book.tick(at(30)),
            ["replication.secondary: still running (30s elapsed)"]
        );
        assert!(book.tick(at(31)).is_empty());
        assert_eq!(
            book.tick(at(35)),
            ["backup.primary: still running (30s elapsed)"]
        );
        book.finished(0);
        assert_eq!(
            book.tick(at(65)),
            ["backup.primary: still running (1m00s elapsed)"]
        );
    }

    #[test]
    fn late_ticks_do_not_push_the_heartbeats_later_and_later() {
        // Ticks come a little late, by a varying amount: the heartbeats stay 30 s apart.
        let t0 = Instant::now();
        let mut book = LogBook::default();
        book.started(0, "restore.secondary", t0);
        let mut said = vec![];
        for k in 1..=120u64 {
            let late = Duration::from_millis(if k == 30 { 5 } else { 1 });
            said.extend(book.tick(t0 + Duration::from_secs(k) + late));
        }
        assert_eq!(
            said,
            [
                "restore.secondary: still running (30s elapsed)",
                "restore.secondary: still running (1m00s elapsed)",
                "restore.secondary: still running (1m30s elapsed)",
                "restore.secondary: still running (2m00s elapsed)",
            ]
        );
    }

    #[test]
    fn the_tally_counts_steps_and_says_what_the_estimates_leave() {
        let mut acts = vec![action(0, "service.a"), action(1, "backup.a")];
        acts[1].depends_on = vec![0];
        acts[0].estimated_ms = Some(300_000);
        acts[1].estimated_ms = Some(180_000);
        let t0 = Instant::now();
        let mut t = Tally::default();
        t.begin(&acts);
        t.started(0, t0);
        // 2 minutes into a 5-minute create: 3 + 3 minutes left.
        assert_eq!(t.left(t0 + Duration::from_secs(120)), Some(360_000));
        assert_eq!(
            t.finished(0, t0 + Duration::from_secs(290)),
            "[1/2, ~3 min left]"
        );
        t.started(1, t0 + Duration::from_secs(290));
        assert_eq!(t.finished(1, t0 + Duration::from_secs(400)), "[2/2]");
        // Without estimates (an old saved plan): the count alone.
        let mut bare = Tally::default();
        bare.begin(&[action(0, "a"), action(1, "b")]);
        assert_eq!(bare.finished(0, t0), "[1/2]");
    }

    #[test]
    fn clock_reads_like_a_person_would() {
        let c = |s| clock(Duration::from_secs(s));
        assert_eq!(
            [c(0), c(59), c(60), c(125), c(3599), c(3720)],
            ["0s", "59s", "1m00s", "2m05s", "59m59s", "1h02m"]
        );
    }

    /// A terminal that keeps what is on screen: one string per row, and the cursor's row.
    #[derive(Debug, Default, Clone)]
    struct Screen(std::sync::Arc<Mutex<(Vec<String>, usize)>>);

    impl Screen {
        fn with<T>(&self, f: impl FnOnce(&mut Vec<String>, &mut usize) -> T) -> T {
            let mut g = self.0.lock().unwrap();
            let (rows, cursor) = &mut *g;
            f(rows, cursor)
        }
        fn visible(&self) -> Vec<String> {
            self.with(|rows, _| rows.iter().filter(|r| !r.is_empty()).cloned().collect())
        }
    }

    impl indicatif::TermLike for Screen {
        fn width(&self) -> u16 {
            200
        }
        fn move_cursor_up(&self, n: usize) -> std::io::Result<()> {
            self.with(|_, c| *c = c.saturating_sub(n));
            Ok(())
        }
        fn move_cursor_down(&self, n: usize) -> std::io::Result<()> {
            self.with(|_, c| *c += n);
            Ok(())
        }
        fn move_cursor_right(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_left(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn write_line(&self, s: &str) -> std::io::Result<()> {
            self.write_str(s)?;
            self.with(|_, c| *c += 1);
            Ok(())
        }
        fn write_str(&self, s: &str) -> std::io::Result<()> {
            self.with(|rows, c| {
                if rows.len() <= *c {
                    rows.resize(*c + 1, String::new());
                }
                rows[*c].push_str(s);
            });
            Ok(())
        }
        fn clear_line(&self) -> std::io::Result<()> {
            self.with(|rows, c| {
                if let Some(r) = rows.get_mut(*c) {
                    r.clear();
                }
            });
            Ok(())
        }
        fn flush(&self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn action(id: ActionId, address: &str) -> Action {
        Action {
            id,
            address: address.into(),
            change: crate::plan::Change::Create,
            kind: crate::plan::ActionKind::SetRole {
                key: "x".into(),
                writable: true,
            },
            summary: String::new(),
            depends_on: vec![],
            before: None,
            after: None,
            wipes_data: false,
            reason: None,
            estimated_ms: None,
        }
    }

    /// The plain log as a CI job shows it, read back from a captured printer: starts, the
    /// first of repeated statuses, ends with the count and the time left, a failure, a message.
    #[test]
    fn the_plain_log_goes_through_the_printer() {
        let (ui, cap) = crate::printer::Printer::captured();
        let lines = Lines::new(ui.err_stream());
        let mut a = action(0, "service.primary");
        a.summary = "  + service.primary: launch \"primary\"\n".into();
        a.estimated_ms = Some(300_000);
        let mut b = action(1, "service.secondary");
        b.depends_on = vec![0];
        b.estimated_ms = Some(120_000);
        lines.begin(&[a.clone(), b.clone()]);
        lines.started(&a);
        lines.status(0, "pending_create");
        lines.status(0, "pending_create");
        lines.status(0, "ready");
        lines.finished(&a, Outcome::Done(""), Duration::from_millis(4200));
        lines.started(&b);
        lines.finished(
            &b,
            Outcome::Failed("the API said \"no\""),
            Duration::from_secs(1),
        );
        lines.message("1 of 2 actions done");
        lines.done();
        assert!(cap.out.text().is_empty(), "progress never goes to stdout");
        insta::with_settings!({filters => vec![(r"\[\d\d:\d\d:\d\d\]", "[hh:mm:ss]")]}, {
            insta::assert_snapshot!(cap.err.text());
        });
    }

    #[test]
    fn an_interrupted_apply_leaves_no_spinner_on_screen_and_says_still_running() {
        let screen = Screen::default();
        let bars = Bars::with_target(ProgressDrawTarget::term_like(Box::new(screen.clone())));
        let (a, b) = (action(0, "service.primary"), action(1, "service.secondary"));
        bars.started(&a);
        bars.started(&b);
        bars.status(0, "waiting for service.primary to be ready: pending_create");
        bars.status(
            1,
            "waiting for service.secondary to be ready: pending_create",
        );
        std::thread::sleep(Duration::from_millis(300));
        assert!(
            screen
                .visible()
                .iter()
                .any(|r| r.contains("service.secondary")),
            "{:?}",
            screen.visible()
        );
        // The first step stopped waiting on the interrupt; the second never reports (a second
        // Ctrl-C exits at once), so only `done` can take its spinner off the screen.
        bars.finished(
            &a,
            Outcome::StillRunning("stopped waiting (interrupted)"),
            Duration::from_secs(2),
        );
        bars.done();
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(
            screen.visible(),
            ["… service.primary still running after 2.0s: stopped waiting (interrupted) [1/1]"]
        );
    }
}
