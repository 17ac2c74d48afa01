//! `skyplan version [--json]`: this skyplan's version and the format versions it reads and
//! writes (a state or plan with a higher one is refused, not mangled).

use anyhow::Result;
use serde_json::json;

use crate::ops::ExitStatus;
use crate::printer::Printer;

#[derive(Debug, clap::Args)]
pub(super) struct Args {
    /// Print JSON: version, state_format_version, plan_format_version, output_format_version,
    /// verify_format_version.
    #[arg(long)]
    json: bool,
}

pub(super) fn run(args: Args, ui: &Printer) -> Result<ExitStatus> {
    let version = env!("CARGO_PKG_VERSION");
    let state = crate::state::STATE_FORMAT_VERSION;
    let plan = crate::plan::PLAN_FORMAT_VERSION;
    let output = crate::ops::output::OUTPUT_FORMAT_VERSION;
    let verify = skyplan_core::verify::FORMAT_VERSION;
    if args.json {
        let v = json!({
            "version": version,
            "state_format_version": state,
            "plan_format_version": plan,
            "output_format_version": output,
            "verify_format_version": verify,
        });
        ui.out(&format!("{}\n", serde_json::to_string_pretty(&v)?));
    } else {
        ui.out(&format!(
            "skyplan {version}\nstate format {state}, plan format {plan}, output format {output}, verify format {verify}\n"
        ));
    }
    Ok(ExitStatus::Success)
}
