//! The printer: the one place skyplan writes to the terminal. Results (plans, state, outputs)
//! go to stdout, progress and diagnostics to stderr, colour only on a terminal without
//! `NO_COLOR`. The ops layer and the commands write through it; clippy's
//! `print_stdout`/`print_stderr` lints hold everywhere else.

use std::io::{IsTerminal, Write};

use anyhow::{Context, Result};

/// Set by `--input=false`: no prompt is ever shown (as without a terminal).
static NEVER_PROMPT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// `--input=false`: from now on no prompt is shown; where one would be needed, the command
/// fails as it does without a terminal.
pub fn never_prompt() {
    NEVER_PROMPT.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// A note on stderr from a layer that has no [`Printer`] (connecting to the cloud): what
/// happened in the background that the user should know of.
pub fn note(s: &str) {
    let _ = writeln!(std::io::stderr(), "Note: {s}");
}

/// Whether a prompt may be shown: stdin is a terminal and `--input=false` was not given.
pub fn can_prompt() -> bool {
    !NEVER_PROMPT.load(std::sync::atomic::Ordering::Relaxed) && std::io::stdin().is_terminal()
}

/// The printer: where output goes and whether it is coloured. Results go to stdout, progress
/// and diagnostics to stderr; every other module writes through this (clippy's
/// `print_stdout`/`print_stderr` lints hold everywhere else).
pub struct Printer {
    pub colors: bool,
    pub stderr_tty: bool,
}

impl Printer {
    pub fn new(no_color: bool) -> Printer {
        let no_color_env = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let colors = !no_color && !no_color_env && std::io::stdout().is_terminal();
        console::set_colors_enabled(colors);
        console::set_colors_enabled_stderr(colors && std::io::stderr().is_terminal());
        Printer {
            colors,
            stderr_tty: std::io::stderr().is_terminal(),
        }
    }
    /// Data on stdout, byte for byte (JSON, a state, a completion script).
    pub fn out(&self, s: &str) {
        let mut o = std::io::stdout().lock();
        let _ = o.write_all(s.as_bytes());
        let _ = o.flush();
    }
    /// Text for people on stdout (a rendered plan): its hint commands name this run's file.
    pub fn out_text(&self, s: &str) {
        self.out(&crate::hints::complete(s));
    }
    pub fn info(&self, s: &str) {
        let s = crate::hints::complete(s);
        let _ = writeln!(std::io::stderr(), "{s}");
    }
    /// `s` on stderr as it is (it carries its own line ends).
    pub fn info_raw(&self, s: &str) {
        let s = crate::hints::complete(s);
        let mut e = std::io::stderr().lock();
        let _ = e.write_all(s.as_bytes());
        let _ = e.flush();
    }
    pub fn error(&self, s: &str) {
        let s = &*crate::hints::complete(s);
        // Located topology diagnostics carry their own `error:` label: not labelled twice.
        if s.starts_with("error: ") {
            let _ = writeln!(std::io::stderr(), "{s}");
            return;
        }
        let style = console::Style::new().red().bold().for_stderr();
        let _ = writeln!(std::io::stderr(), "{} {s}", style.apply_to("Error:"));
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
