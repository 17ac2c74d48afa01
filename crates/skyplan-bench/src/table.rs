//! The one table the benchmark prints: a row per measurement, aligned, pasteable as Markdown.

use std::fmt::Write;
use std::time::Duration;

use super::machine::Machine;

/// Whether a measurement met its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Met,
    Missed,
    /// No target for this row (context for another row).
    Info,
}

#[derive(Debug, Clone)]
pub struct Row {
    pub what: String,
    pub wall: String,
    pub peak_mem: String,
    pub api_calls: String,
    pub target: String,
    pub verdict: Verdict,
    pub note: String,
}

impl Row {
    pub fn new(what: impl Into<String>) -> Row {
        Row {
            what: what.into(),
            wall: String::new(),
            peak_mem: String::new(),
            api_calls: String::new(),
            target: String::new(),
            verdict: Verdict::Info,
            note: String::new(),
        }
    }
    pub fn wall(mut self, d: Duration) -> Row {
        self.wall = duration(d);
        self
    }
    pub fn wall_text(mut self, s: impl Into<String>) -> Row {
        self.wall = s.into();
        self
    }
    pub fn mem_kib(mut self, kib: u64) -> Row {
        self.peak_mem = format!("{:.1} MiB", kib as f64 / 1024.0);
        self
    }
    pub fn calls(mut self, s: impl Into<String>) -> Row {
        self.api_calls = s.into();
        self
    }
    /// A target and whether it was met.
    pub fn target(mut self, target: impl Into<String>, met: bool) -> Row {
        self.target = target.into();
        self.verdict = if met { Verdict::Met } else { Verdict::Missed };
        self
    }
    pub fn note(mut self, s: impl Into<String>) -> Row {
        self.note = s.into();
        self
    }
    /// A row for a measurement that could not be made.
    pub fn failed(what: impl Into<String>, error: &anyhow::Error) -> Row {
        let mut row = Row::new(what);
        row.wall = "error".into();
        row.verdict = Verdict::Missed;
        row.note = format!("{error:#}").replace('\n', " ").replace('|', "/");
        row
    }
}

/// `0.42 ms`, `310 ms`, `2.31 s`.
pub fn duration(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 0.01 {
        format!("{:.2} ms", s * 1000.0)
    } else if s < 1.0 {
        format!("{:.0} ms", s * 1000.0)
    } else {
        format!("{s:.2} s")
    }
}

/// `1,000`.
pub fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub fn render(machine: &Machine, rows: &[Row]) -> String {
    let header = [
        "measurement",
        "wall",
        "peak mem",
        "API calls",
        "target",
        "ok?",
        "notes",
    ];
    let cells: Vec<[String; 7]> = rows
        .iter()
        .map(|r| {
            [
                r.what.clone(),
                r.wall.clone(),
                r.peak_mem.clone(),
                r.api_calls.clone(),
                r.target.clone(),
                match r.verdict {
                    Verdict::Met => "yes".into(),
                    Verdict::Missed => "NO".into(),
                    Verdict::Info => String::new(),
                },
                r.note.clone(),
            ]
        })
        .collect();
    let mut width = header.map(str::len);
    for row in &cells {
        for (w, c) in width.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut s = String::new();
    let _ = writeln!(s, "skyplan-bench {}", env!("CARGO_PKG_VERSION"));
    let _ = writeln!(s, "machine: {}", machine.one_line());
    let _ = writeln!(s);
    let line = |s: &mut String, row: &[String]| {
        s.push('|');
        for (c, w) in row.iter().zip(width) {
            let pad = w - c.chars().count();
            let _ = write!(s, " {c}{} |", " ".repeat(pad));
        }
        s.push('\n');
    };
    line(&mut s, &header.map(String::from));
    line(&mut s, &width.map(|w| "-".repeat(w)));
    for row in &cells {
        line(&mut s, row);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_numbers_for_people() {
        assert_eq!(thousands(10_000), "10,000");
        assert_eq!(thousands(100), "100");
        assert_eq!(duration(Duration::from_micros(420)), "0.42 ms");
        assert_eq!(duration(Duration::from_millis(310)), "310 ms");
        assert_eq!(duration(Duration::from_millis(2314)), "2.31 s");
    }
}
