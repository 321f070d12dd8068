use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use serde::Serialize;

use crate::cli::StatusArgs;
use crate::machine_readable;
use crate::ops::{self, StatusReport, Workspace};
use crate::output;

/// The `--json` shape of `envctl status`; documented in the README: fields are only ever
/// added. Kept apart from [`StatusReport`] so the model can change and this cannot.
#[derive(Serialize)]
struct StatusJson<'a> {
    environment: &'a str,
    provider: Option<&'static str>,
    machines: Vec<MachineJson<'a>>,
}

#[derive(Serialize)]
struct MachineJson<'a> {
    name: &'a str,
    /// `running`, `stopped`, `not created`, or the provider's own word.
    state: String,
    ip: &'a str,
    hostname: &'a str,
    id: Option<&'a str>,
    in_machinefile: bool,
    /// Added with forwarded ports: `[]` for a machine that has none.
    forwarded_ports: Vec<PortJson>,
    /// Added with synced folders: each folder, with the type it gets under the provider.
    synced_folders: Vec<FolderJson<'a>>,
}

#[derive(Serialize)]
struct FolderJson<'a> {
    /// Absolute.
    host: String,
    guest: &'a str,
    /// `bind` or `rsync`: what `auto` became.
    #[serde(rename = "type")]
    kind: &'static str,
}

#[derive(Serialize)]
struct PortJson {
    guest: u16,
    host: u16,
    host_ip: String,
    protocol: &'static str,
    /// Added with auto_correct: `host` is then the port `up` chose, maybe not the asked one.
    auto_correct: bool,
}

impl<'a> From<&'a StatusReport> for StatusJson<'a> {
    fn from(report: &'a StatusReport) -> Self {
        StatusJson {
            environment: &report.environment,
            provider: report.provider.map(|kind| kind.as_str()),
            machines: report
                .machines
                .iter()
                .map(|machine| MachineJson {
                    name: &machine.name,
                    state: machine.state.to_string(),
                    ip: &machine.ip,
                    hostname: &machine.hostname,
                    id: machine.id.as_deref(),
                    in_machinefile: machine.in_machinefile,
                    forwarded_ports: machine
                        .forwarded_ports
                        .iter()
                        .map(|forward| PortJson {
                            guest: forward.guest,
                            host: forward.host,
                            host_ip: forward.host_ip.to_string(),
                            protocol: forward.protocol.as_str(),
                            auto_correct: forward.auto_correct,
                        })
                        .collect(),
                    synced_folders: machine
                        .synced_folders
                        .iter()
                        .map(|folder| FolderJson {
                            host: folder.host.display().to_string(),
                            guest: &folder.guest,
                            kind: folder.used.as_str(),
                        })
                        .collect(),
                })
                .collect(),
        }
    }
}

pub async fn run(ws: &Workspace, args: StatusArgs) -> Result<()> {
    let report = ops::status(ws).await?;
    if args.json {
        let json = serde_json::to_string_pretty(&StatusJson::from(&report))
            .context("encoding the status")?;
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
    let provider = report.provider.map_or("none yet", |kind| kind.as_str());
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
            machine.name,
            machine.state.to_string(),
            machine.ip
        ));
    }
    output::data(&text);
    Ok(())
}
