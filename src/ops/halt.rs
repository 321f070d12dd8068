//! `envctl halt`: stop machines in parallel, keeping them and their state.

use anyhow::Result;
use envctl_provider::{MachineState, Provider};
use futures_util::future::join_all;

use super::{global_status, running_provider, MachineFailures, Workspace};
use crate::output;
use crate::providers::AnyProvider;

pub async fn halt(ws: &Workspace, names: &[String]) -> Result<()> {
    // Names are checked before the lock, which creates .envctl/.
    let selected = ws.select(names)?;
    let _lock = ws.state_dir.lock("halt")?;
    crate::interrupt::install();
    let state = ws.state_dir.load()?;
    let Some(kind) = running_provider(&state) else {
        output::status(
            "Finished",
            "nothing to halt: the environment has no machines",
        );
        return Ok(());
    };
    let provider = AnyProvider::connect(kind, &ws.manifest).await?;
    let env = ws.env_spec(&state);
    let results = join_all(selected.iter().map(|machine| async {
        output::status("Halting", &machine.name);
        provider.halt(&env, &machine.name).await
    }))
    .await;
    let mut failures = MachineFailures::new("halt", selected.len());
    for (machine, result) in selected.iter().zip(results) {
        if let Err(err) = result {
            failures.push(&machine.name, err);
        }
    }
    failures.into_result()?;
    let seen: Vec<(&str, &MachineState)> = selected
        .iter()
        .filter(|machine| state.machines.contains_key(&machine.name))
        .map(|machine| (machine.name.as_str(), &MachineState::Stopped))
        .collect();
    global_status::remember_states(ws, &state, &seen);
    output::status("Halted", &format!("{} machines", selected.len()));
    Ok(())
}
