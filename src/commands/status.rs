use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};

use crate::cli::StatusArgs;
use crate::machine_readable;
use crate::ops::{self, Workspace};
use crate::output;

pub async fn run(ws: &Workspace, args: StatusArgs) -> Result<()> {
    let report = ops::status(ws).await?;
    if args.json {
        let json = serde_json::to_string_pretty(&report).context("encoding the status")?;
        output::data(&format!("{json}\n"));
        return Ok(());
    }
    if args.machine_readable {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        output::data(&machine_readable::status(&report, now));
        return Ok(());
    }
    let provider = report.provider.as_deref().unwrap_or("none yet");
    let width = report
        .machines
        .iter()
        .map(|m| m.name.len())
        .max()
        .unwrap_or(0)
        .max(20);
    let mut text = format!(
        "Current machine states ({}, provider {provider}):\n\n",
        report.environment
    );
    for machine in &report.machines {
        let note = if machine.in_machinefile {
            ""
        } else {
            "  (not in the Machinefile)"
        };
        text.push_str(&format!(
            "{:width$}  {:12} {}{note}\n",
            machine.name, machine.state, machine.ip
        ));
    }
    output::data(&text);
    Ok(())
}
