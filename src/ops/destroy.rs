//! `envctl destroy`: remove machines; with none left, remove what they shared and the
//! state folder, so nothing envctl made remains.

use anyhow::Result;
use envctl_provider::{MachineState, Provider};
use futures_util::future::join_all;

use super::{
    extra_inventory_path, global_status, ownership, running_provider, MachineFailures, Workspace,
};
use crate::interrupt;
use crate::output;
use crate::providers::AnyProvider;

pub struct DestroyOptions {
    /// Machines to destroy; all when empty.
    pub names: Vec<String>,
}

pub async fn destroy(ws: &Workspace, opts: DestroyOptions) -> Result<()> {
    // Names are checked before the lock, which creates .envctl/.
    let selected = ws.select(&opts.names)?;
    let lock = ws.state_dir.lock("destroy")?;
    interrupt::install();
    let mut state = ws.state_dir.load()?;
    let whole = selected.len() == ws.manifest.machines.len();
    if let Some(kind) = running_provider(&state) {
        let provider = AnyProvider::connect(kind, &ws.manifest).await?;
        let env = ws.env_spec(&state);
        let results = join_all(selected.iter().map(|machine| async {
            output::status("Destroying", &machine.name);
            provider.destroy(&env, &machine.name).await
        }))
        .await;
        let mut failures = MachineFailures::new("destroy", selected.len())
            .with_hint("run `envctl destroy` again to finish");
        for (machine, result) in selected.iter().zip(results) {
            match result {
                Ok(()) => {
                    state.machines.remove(&machine.name);
                }
                Err(err) => failures.push(&machine.name, err),
            }
        }
        ws.state_dir.save(&state)?;
        failures.into_result()?;
        if whole {
            // Also machines the backend has that the Machinefile no longer names.
            ownership::remove_all(&provider, &env).await?;
        }
    }
    if whole {
        if let Some(path) = extra_inventory_path(ws) {
            std::fs::remove_file(&path).ok();
        }
        drop(lock);
        ws.state_dir.remove()?;
        global_status::forget(ws);
        output::status("Destroyed", &format!("environment `{}`", ws.manifest.name));
    } else {
        super::access::write_generated(ws, &state)?;
        let seen: Vec<(&str, &MachineState)> = selected
            .iter()
            .map(|machine| (machine.name.as_str(), &MachineState::NotCreated))
            .collect();
        global_status::remember_states(ws, &state, &seen);
        output::status("Destroyed", &format!("{} machines", selected.len()));
    }
    Ok(())
}
