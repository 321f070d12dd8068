//! `envctl halt`: stop machines in parallel, keeping them and their state.

use anyhow::Result;
use envctl_provider::{MachineState, Provider};
use futures_util::future::join_all;

use super::{MachineFailures, Session, Workspace};
use crate::output;

pub async fn halt(ws: &Workspace, names: &[String]) -> Result<()> {
    let mut session = Session::open(ws, "halt", ws.select(names)?)?;
    halt_selected(&mut session).await
}

/// Halts the session's machines; `reload` runs it under its own session.
pub(super) async fn halt_selected(session: &mut Session<'_>) -> Result<()> {
    let Some(provider) = session.connect_running().await? else {
        output::status(
            "Finished",
            "nothing to halt: the environment has no machines",
        );
        return Ok(());
    };
    let env = session.env();
    // Their tunnels first: a halted machine forwards nothing, and `up` makes them anew.
    super::tunnels::stop(&env.id, Some(&session.selected_names()));
    let selected = &session.selected;
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
    for name in session.selected_names() {
        if session.state.machines.contains_key(&name) {
            session.saw(&name, MachineState::Stopped);
        }
    }
    output::status("Halted", &format!("{} machines", session.selected.len()));
    Ok(())
}
