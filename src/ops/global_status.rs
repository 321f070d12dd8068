//! `envctl global-status`, and keeping the registry it reads up to date as the other
//! commands go: `up` records the environment, commands that learn machine states record
//! them, destroying the whole environment forgets it.
//!
//! The registry is bookkeeping for the user's overview: failing to update it is a
//! warning, never the failure of the command that was updating it.

use std::path::PathBuf;

use anyhow::Result;
use envctl_provider::MachineState;

use super::Workspace;
use crate::liveness::Orphaned;
use crate::output;
use crate::registry::{Entry, MachineEntry, Registry};
use crate::state::State;

pub struct GlobalStatus {
    /// Where the registry is, for the user who wants to look.
    pub path: PathBuf,
    /// Every environment still recorded, by folder.
    pub entries: Vec<Entry>,
    /// What `--prune` dropped, and why.
    pub pruned: Vec<(Entry, Orphaned)>,
}

/// The registry as recorded; with `prune`, first without the environments that are gone.
pub fn global_status(prune: bool) -> Result<GlobalStatus> {
    let registry = Registry::user();
    let pruned = if prune { registry.prune()? } else { Vec::new() };
    Ok(GlobalStatus {
        path: registry.path(),
        entries: registry.entries()?,
        pruned,
    })
}

/// Records the environment with the states just seen of some of its machines.
pub(super) fn remember_states(ws: &Workspace, state: &State, seen: &[(&str, &MachineState)]) {
    // No provider yet: nothing was made, so there is nothing to list.
    let Some(provider) = &state.provider else {
        return;
    };
    let machines = ws
        .manifest
        .machines
        .iter()
        .map(|machine| MachineEntry {
            name: machine.name.clone(),
            state: seen
                .iter()
                .find(|(name, _)| *name == machine.name)
                .map(|(_, state)| state.to_string()),
        })
        .collect();
    let entry = Entry {
        project_dir: ws.manifest.dir.clone(),
        machinefile: ws.manifest.path.clone(),
        name: ws.manifest.name.clone(),
        env_id: state.env_id.clone(),
        provider: provider.to_string(),
        machines,
        updated: 0,
    };
    if let Err(err) = Registry::in_data_dir(&ws.data_dir).record(entry) {
        warn(err);
    }
}

/// Forgets the environment, once nothing of it is left.
pub(super) fn forget(ws: &Workspace) {
    if let Err(err) = Registry::in_data_dir(&ws.data_dir).forget(&ws.manifest.dir) {
        warn(err);
    }
}

fn warn(err: anyhow::Error) {
    output::status(
        "Warning",
        &format!("`envctl global-status` will not show this change: {err:#}"),
    );
}
