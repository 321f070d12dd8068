//! `envctl destroy`: remove machines; with none left, remove what they shared and the
//! state folder, so nothing envctl made remains.

use anyhow::Result;
use envctl_provider::{MachineState, Provider};
use futures_util::future::join_all;

use super::{extra_inventory_path, ownership, MachineFailures, Session, Workspace};
use crate::output;

pub async fn destroy(ws: &Workspace, names: &[String]) -> Result<()> {
    let mut session = Session::open(ws, "destroy", ws.select(names)?)?;
    let session = &mut session;
    let whole = session.selected.len() == ws.manifest.machines.len();
    if let Some(provider) = session.connect_running().await? {
        let env = session.env();
        super::tunnels::stop(&env.id, Some(&session.selected_names()));
        let selected = &session.selected;
        let results = join_all(selected.iter().map(|machine| async {
            output::status("Destroying", &machine.name);
            provider.destroy(&env, &machine.name).await
        }))
        .await;
        let mut failures = MachineFailures::new("destroy", selected.len())
            .with_hint("run `envctl destroy` again to finish");
        let names = session.selected_names();
        for (name, result) in names.into_iter().zip(results) {
            match result {
                Ok(()) => {
                    session.state.machines.remove(&name);
                }
                Err(err) => failures.push(&name, err),
            }
        }
        session.save()?;
        failures.into_result()?;
        if whole {
            // Also machines the backend has that the Machinefile no longer names.
            ownership::remove_all(&provider, &env).await?;
        }
    }
    if whole {
        // Only envctl's own copy: a file put there since is the user's.
        if let Some(path) = extra_inventory_path(ws) {
            if crate::manifest::is_generated(&path) {
                std::fs::remove_file(&path).ok();
            }
        }
        ws.state_dir.remove()?;
        session.forget();
        output::status("Destroyed", &format!("environment `{}`", ws.manifest.name));
        return Ok(());
    }
    super::access::write_generated(ws, &session.state)?;
    for name in session.selected_names() {
        session.saw(&name, MachineState::NotCreated);
    }
    output::status("Destroyed", &format!("{} machines", session.selected.len()));
    Ok(())
}
