//! `envctl destroy`: remove machines; with none left, remove what they shared and the
//! state folder, so nothing envctl made remains.

use anyhow::{bail, Result};
use envctl_provider::Provider;
use futures_util::future::join_all;

use super::{extra_inventory_path, running_provider, Workspace};
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
        let mut failures = Vec::new();
        for (machine, result) in selected.iter().zip(results) {
            match result {
                Ok(()) => {
                    state.machines.remove(&machine.name);
                }
                Err(err) => failures.push(format!("{}: {err}", machine.name)),
            }
        }
        ws.state_dir.save(&state)?;
        if !failures.is_empty() {
            bail!(
                "could not destroy:\n  {}\nrun `envctl destroy` again to finish",
                failures.join("\n  ")
            );
        }
        if whole {
            provider.teardown(&env).await?;
        }
    }
    if whole {
        if let Some(path) = extra_inventory_path(ws) {
            std::fs::remove_file(&path).ok();
        }
        drop(lock);
        ws.state_dir.remove()?;
        output::status("Destroyed", &format!("environment `{}`", ws.manifest.name));
    } else {
        super::access::write_generated(ws, &state)?;
        output::status("Destroyed", &format!("{} machines", selected.len()));
    }
    Ok(())
}
