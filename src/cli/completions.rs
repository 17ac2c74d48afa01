//! `skyplan completions SHELL`: a completion script generated from the command definitions
//! themselves (clap_complete), so it never falls behind a new verb or flag.

use anyhow::Result;
use clap::CommandFactory;

use crate::ops::ExitStatus;
use crate::printer::Printer;

#[derive(Debug, clap::Args)]
#[command(after_help = "Install, e.g.:\n  \
    bash: skyplan completions bash > ~/.local/share/bash-completion/completions/skyplan\n  \
    zsh:  skyplan completions zsh > ~/.zfunc/_skyplan   (with ~/.zfunc in fpath)\n  \
    fish: skyplan completions fish > ~/.config/fish/completions/skyplan.fish")]
pub(super) struct Args {
    /// The shell to complete for.
    shell: clap_complete::Shell,
}

pub(super) fn run(args: Args, ui: &Printer) -> Result<ExitStatus> {
    let mut cmd = super::Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "skyplan", &mut script);
    ui.out(&String::from_utf8_lossy(&script));
    Ok(ExitStatus::Success)
}
