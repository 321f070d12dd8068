//! `envctl status`: each machine's state as the provider sees it now.

use anyhow::Result;
use envctl_provider::{MachineState, Provider};
use serde::Serialize;

use super::{running_provider, Workspace};
use crate::providers::AnyProvider;

/// The `--json` shape of `envctl status`; documented in the README, keep it stable.
#[derive(Debug, Serialize)]
pub struct StatusReport {
    pub environment: String,
    pub provider: Option<String>,
    pub machines: Vec<MachineLine>,
}

#[derive(Debug, Serialize)]
pub struct MachineLine {
    pub name: String,
    /// `running`, `stopped`, `not created`, or the provider's own word.
    pub state: String,
    pub ip: String,
    pub hostname: String,
    /// The provider's id for the machine, when it exists.
    pub id: Option<String>,
    /// False for a machine the provider has but the Machinefile no longer lists.
    pub in_machinefile: bool,
}

pub async fn status(ws: &Workspace) -> Result<StatusReport> {
    let state = ws.state_dir.load()?;
    let kind = running_provider(&state);
    let found = match kind {
        Some(kind) => {
            let provider = AnyProvider::connect(kind, &ws.manifest).await?;
            provider.status(&ws.env_spec(&state)).await?
        }
        None => Vec::new(),
    };
    let mut machines: Vec<MachineLine> = ws
        .manifest
        .machines
        .iter()
        .map(|machine| {
            let seen = found.iter().find(|status| status.name == machine.name);
            MachineLine {
                name: machine.name.clone(),
                state: seen
                    .map_or(MachineState::NotCreated, |s| s.state.clone())
                    .to_string(),
                ip: machine.ip.to_string(),
                hostname: machine.hostname.clone(),
                id: seen.map(|status| status.id.clone()),
                in_machinefile: true,
            }
        })
        .collect();
    for extra in found
        .iter()
        .filter(|s| ws.manifest.machine(&s.name).is_none())
    {
        machines.push(MachineLine {
            name: extra.name.clone(),
            state: extra.state.to_string(),
            ip: String::new(),
            hostname: String::new(),
            id: Some(extra.id.clone()),
            in_machinefile: false,
        });
    }
    Ok(StatusReport {
        environment: ws.manifest.name.clone(),
        provider: kind.map(|kind| kind.to_string()),
        machines,
    })
}
