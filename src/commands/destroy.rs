use std::io::IsTerminal;

use anyhow::{bail, Result};

use crate::cli::DestroyArgs;
use crate::ops::{self, Workspace};
use crate::output;

pub async fn run(ws: &Workspace, args: DestroyArgs) -> Result<()> {
    if !args.force {
        if !std::io::stdin().is_terminal() {
            bail!(
                "destroy asks for confirmation, and there is no terminal to ask at: pass --force"
            );
        }
        let what = if args.names.is_empty() {
            format!("every machine of environment `{}`", ws.manifest.name)
        } else {
            // By name, since `/regex/`es may be among what was asked.
            let selected = ws.select(&args.names)?;
            let names: Vec<&str> = selected.iter().map(|m| m.name.as_str()).collect();
            names.join(", ")
        };
        if !output::confirm(&format!("Destroy {what}?")) {
            output::status("Cancelled", "nothing was destroyed");
            return Ok(());
        }
    }
    ops::destroy(ws, &args.names).await
}
