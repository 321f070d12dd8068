//! `envctl status`: each machine's state as the provider sees it now.

use super::{choose_provider, global_status, host_ports, Workspace};
use anyhow::Result;
use envctl_provider::{MachineState, PortForward, Provider, ProviderKind};

/// What `status` found: the provider's view of each machine, in envctl's own types. The
/// stable `--json` shape is made from it at the edge (`commands/status.rs`).
#[derive(Debug)]
pub struct StatusReport {
    pub environment: String,
    /// The provider the machines exist under; None before the first `up`.
    pub provider: Option<ProviderKind>,
    pub machines: Vec<MachineLine>,
    /// The provider the machines are under, else the one `up` would use.
    pub kind: ProviderKind,
}

#[derive(Debug)]
pub struct MachineLine {
    pub name: String,
    pub state: MachineState,
    /// Empty for a machine the Machinefile no longer lists.
    pub ip: String,
    pub hostname: String,
    /// The provider's id for the machine, when it exists.
    pub id: Option<String>,
    /// False for a machine the provider has but the Machinefile no longer lists.
    pub in_machinefile: bool,
    /// Host ports as in effect: moved ones (`auto_correct`) as the state records them.
    pub forwarded_ports: Vec<PortForward>,
    pub synced_folders: Vec<FolderLine>,
}

/// A synced folder and the type it gets under the environment's provider.
#[derive(Clone, Debug)]
pub struct FolderLine {
    pub host: std::path::PathBuf,
    pub guest: String,
    pub used: envctl_provider::FolderType,
}

pub async fn status(ws: &Workspace) -> Result<StatusReport> {
    let state = ws.state_dir.load()?;
    let kind = state.provider;
    let found = match kind {
        Some(kind) => ws.connect(kind).await?.status(&ws.env_spec(&state)).await?,
        None => Vec::new(),
    };
    let report_kind = kind.unwrap_or_else(|| choose_provider(None, &ws.manifest, &state));
    let mut machines: Vec<MachineLine> = ws
        .manifest
        .machines
        .iter()
        .map(|machine| {
            let seen = found.iter().find(|status| status.name == machine.name);
            MachineLine {
                name: machine.name.clone(),
                state: seen.map_or(MachineState::NotCreated, |s| s.state.clone()),
                ip: machine.ip.to_string(),
                hostname: machine.hostname.clone(),
                id: seen.map(|status| status.id.clone()),
                in_machinefile: true,
                forwarded_ports: host_ports::in_effect(machine, state.machines.get(&machine.name)),
                synced_folders: super::folders::uses(report_kind, &ws.manifest.dir, machine)
                    .into_iter()
                    .map(|u| FolderLine {
                        host: u.folder.host.clone(),
                        guest: u.folder.guest.clone(),
                        used: u.used,
                    })
                    .collect(),
            }
        })
        .collect();
    for extra in found
        .iter()
        .filter(|s| ws.manifest.machine(&s.name).is_none())
    {
        machines.push(MachineLine {
            name: extra.name.clone(),
            state: extra.state.clone(),
            ip: String::new(),
            hostname: String::new(),
            id: Some(extra.id.clone()),
            in_machinefile: false,
            forwarded_ports: Vec::new(),
            synced_folders: Vec::new(),
        });
    }
    // What was just seen is what `global-status` shows until something sees more.
    let seen: Vec<(&str, &MachineState)> = machines
        .iter()
        .map(|machine| (machine.name.as_str(), &machine.state))
        .collect();
    global_status::remember_states(ws, &state, &seen);
    Ok(StatusReport {
        environment: ws.manifest.name.clone(),
        provider: kind,
        machines,
        kind: kind.unwrap_or_else(|| choose_provider(None, &ws.manifest, &state)),
    })
}
