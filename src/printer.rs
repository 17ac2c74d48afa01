//! The printer: the one place skyplan writes for people and scripts (cargo's `Shell`,
//! ripgrep's printer over a writer). Results (plans, state, outputs, JSON events) go to its
//! `out` stream, progress and diagnostics to its `err` stream; on the terminal they are stdout
//! and stderr, in tests two buffers ([`Printer::captured`]) that the test reads back. Colour
//! only on a terminal without `NO_COLOR`. Everything else reaches the user through this:
//! clippy's `print_stdout`/`print_stderr` lints hold everywhere else.

use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};

/// Set by `--input=false`: no prompt is ever shown (as without a terminal).
static NEVER_PROMPT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// `--input=false`: from now on no prompt is shown; where one would be needed, the command
/// fails as it does without a terminal.
pub fn never_prompt() {
    NEVER_PROMPT.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// Whether a prompt may be shown: stdin is a terminal and `--input=false` was not given.
pub fn can_prompt() -> bool {
    !NEVER_PROMPT.load(std::sync::atomic::Ordering::Relaxed) && std::io::stdin().is_terminal()
}

/// One of the printer's two streams, shared by whoever writes to it (the progress printer,
/// the JSON events, a signal task): a lock around the writer, so lines never interleave.
#[derive(Clone)]
pub struct Stream(Arc<Mutex<Box<dyn Write + Send>>>);

impl Stream {
    fn new(w: impl Write + Send + 'static) -> Stream {
        Stream(Arc::new(Mutex::new(Box::new(w))))
    }

    /// `bytes` as they are, flushed (a line, a prompt without its line end).
    pub fn put(&self, bytes: &[u8]) {
        if let Ok(mut w) = self.0.lock() {
            let _ = w.write_all(bytes);
            let _ = w.flush();
        }
    }

    /// `s` and a line end.
    pub fn line(&self, s: &str) {
        self.put(format!("{s}\n").as_bytes());
    }
}

/// A [`Stream`] as a `Write`, for what writes through a writer (the JSON events).
impl Write for Stream {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.put(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A buffer a test reads back: what a [`Printer::captured`] printed.
#[derive(Clone, Default)]
pub struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Buffer {
    /// Everything written so far, as text (lossy: a test compares text).
    pub fn text(&self) -> String {
        self.0
            .lock()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }
}

impl Write for Buffer {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut buf) = self.0.lock() {
            buf.extend_from_slice(b);
        }
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// What a captured printer printed: its `out` (stdout) and `err` (stderr) streams.
#[derive(Clone, Default)]
pub struct Captured {
    pub out: Buffer,
    pub err: Buffer,
}

/// The printer: where output goes and whether it is coloured. Cheap to clone (the clones
/// share the streams), so a task that outlives a borrow (the signal handler) can keep one.
#[derive(Clone)]
pub struct Printer {
    pub colors: bool,
    /// stderr is a live terminal: progress draws spinners there instead of log lines.
    pub stderr_tty: bool,
    out: Stream,
    err: Stream,
}

impl Printer {
    /// The terminal's printer: stdout and stderr.
    pub fn new(no_color: bool) -> Printer {
        let no_color_env = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let colors = !no_color && !no_color_env && std::io::stdout().is_terminal();
        console::set_colors_enabled(colors);
        console::set_colors_enabled_stderr(colors && std::io::stderr().is_terminal());
        Printer {
            colors,
            stderr_tty: std::io::stderr().is_terminal(),
            out: Stream::new(std::io::stdout()),
            err: Stream::new(std::io::stderr()),
        }
    }

    /// A printer into two buffers, without colour and as off a terminal (log lines, no
    /// spinners): what a test reads back.
    pub fn captured() -> (Printer, Captured) {
        let cap = Captured::default();
        let p = Printer {
            colors: false,
            stderr_tty: false,
            out: Stream::new(cap.out.clone()),
            err: Stream::new(cap.err.clone()),
        };
        (p, cap)
    }

    /// The data stream (stdout), for what writes a stream of its own (`apply --json`).
    pub fn out_stream(&self) -> Stream {
        self.out.clone()
    }

    /// The people's stream (stderr), for the progress printer.
    pub fn err_stream(&self) -> Stream {
        self.err.clone()
    }

    /// Data on stdout, byte for byte (JSON, a state, a completion script).
    pub fn out(&self, s: &str) {
        self.out.put(s.as_bytes());
    }
    /// Text for people on stdout (a rendered plan): its hint commands name this run's file.
    pub fn out_text(&self, s: &str) {
        self.out(&crate::hints::complete(s));
    }
    pub fn info(&self, s: &str) {
        self.err.line(&crate::hints::complete(s));
    }
    /// `Note: s` on stderr: what happened in the background that the user should know of
    /// (an emulator started, a wait for the state lock).
    pub fn note(&self, s: &str) {
        self.info(&format!("Note: {s}"));
    }
    /// `s` on stderr as it is (it carries its own line ends).
    pub fn info_raw(&self, s: &str) {
        self.err.put(crate::hints::complete(s).as_bytes());
    }
    pub fn error(&self, s: &str) {
        let s = &*crate::hints::complete(s);
        // Located topology diagnostics carry their own `error:` label: not labelled twice.
        if s.starts_with("error: ") {
            self.err.line(s);
            return;
        }
        let style = console::Style::new().red().bold().for_stderr();
        self.err.line(&format!("{} {s}", style.apply_to("Error:")));
    }

    /// [`Printer::confirm`], unless `interrupted` resolves (a Ctrl-C) before the answer comes:
    /// then `None`, so the caller can release what it holds (the state lock) and exit, where
    /// the default SIGINT action would kill the process with the lock still taken.
    pub async fn confirm_unless(
        &self,
        question: &str,
        interrupted: impl std::future::Future<Output = ()>,
    ) -> Result<Option<bool>> {
        if !can_prompt() {
            return self.confirm(question).map(Some);
        }
        self.ask(question);
        let (tx, rx) = tokio::sync::oneshot::channel();
        // A plain thread, not the runtime's blocking pool: the runtime waits for its blocking
        // tasks when it shuts down, and this read may never end once the question is dropped.
        std::thread::spawn(move || {
            let mut answer = String::new();
            let _ = tx.send(std::io::stdin().read_line(&mut answer).map(|_| answer));
        });
        tokio::select! {
            () = interrupted => {
                // The terminal's cursor is still after "Enter a value: ".
                self.info("");
                Ok(None)
            }
            answer = rx => {
                let answer = answer
                    .context("cannot read the answer")?
                    .context("cannot read the answer")?;
                Ok(Some(answer.trim() == "yes"))
            }
        }
    }

    fn ask(&self, question: &str) {
        self.info_raw(&format!(
            "{question}\n  Only 'yes' will be accepted to approve.\n\n  Enter a value: "
        ));
    }

    /// Ask for "yes" on a terminal; refuse (false) when stdin is not a terminal.
    pub fn confirm(&self, question: &str) -> Result<bool> {
        if !can_prompt() {
            self.error("refusing to proceed without confirmation: stdin is not a terminal (use --auto-approve)");
            return Ok(false);
        }
        self.ask(question);
        let mut answer = String::new();
        std::io::stdin()
            .read_line(&mut answer)
            .context("cannot read the answer")?;
        Ok(answer.trim() == "yes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_captured_printer_keeps_data_and_people_apart() {
        let (p, cap) = Printer::captured();
        p.out("{\"a\":1}\n");
        p.info("working");
        p.note("started the emulator");
        p.error("it broke");
        p.error("error: located problem");
        let mut events = p.out_stream();
        let _ = writeln!(events, "{{\"type\":\"x\"}}");
        assert_eq!(cap.out.text(), "{\"a\":1}\n{\"type\":\"x\"}\n");
        assert_eq!(
            cap.err.text(),
            "working\nNote: started the emulator\nError: it broke\nerror: located problem\n"
        );
    }
}
