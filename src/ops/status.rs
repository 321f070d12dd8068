//! `envctl status`: each machine's state as the provider sees it now.

use anyhow::Result;
use envctl_provider::{MachineState, Provider, ProviderKind};
use serde::Serialize;

use super::{choose_provider, global_status, running_provider, Workspace};
use crate::providers::AnyProvider;

/// The `--json` shape of `envctl status`; documented in the README, keep it stable.
#[derive(Debug, Serialize)]
pub struct StatusReport {
    pub environment: String,
    pub provider: Option<String>,
    pub machines: Vec<MachineLine>,
    /// The provider the machines are under, else the one `up` would use.
    #[serde(skip)]
    pub kind: ProviderKind,
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
    /// `state`, before it became words: `--machine-readable` says it in Vagrant's.
    #[serde(skip)]
    pub machine_state: MachineState,
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
            let machine_state = seen.map_or(MachineState::NotCreated, |s| s.state.clone());
            MachineLine {
                name: machine.name.clone(),
                state: machine_state.to_string(),
                machine_state,
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
            machine_state: extra.state.clone(),
        });
    }
    // What was just seen is what `global-status` shows until something sees more.
    let seen: Vec<(&str, &MachineState)> = machines
        .iter()
        .map(|machine| (machine.name.as_str(), &machine.machine_state))
        .collect();
    global_status::remember_states(ws, &state, &seen);
    Ok(StatusReport {
        environment: ws.manifest.name.clone(),
        provider: kind.map(|kind| kind.to_string()),
        machines,
        kind: kind.unwrap_or_else(|| choose_provider(None, &ws.manifest, &state)),
    })
}
