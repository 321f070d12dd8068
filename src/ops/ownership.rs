//! What envctl made for environments it has lost track of: finding them by the marks on
//! their resources, asking whether their environment still exists, removing them.
//! `envctl gc` lists and removes such leftovers; `up` replaces its own environment's.

use anyhow::Result;
use envctl_provider::{EnvironmentId, Holding, Provider};
use futures_util::future::join_all;

use super::MachineFailures;
use crate::liveness::{liveness, Liveness};
use crate::output;
use crate::providers::AnyProvider;

/// Whether the environment that made `holding` still exists: see [`liveness`].
pub fn holding_liveness(holding: &Holding) -> Liveness {
    liveness(holding.owner.project_dir.as_deref(), &holding.owner.env_id)
}

/// Removes every machine the backend has for `env`, then what they shared, and ends the
/// environment's port tunnels. Destroying by
/// what the backend reports, not by a list, also takes machines no Machinefile names now.
pub async fn remove_all(provider: &AnyProvider, env: &EnvironmentId) -> Result<()> {
    // libvirt's forwarded ports, if any: envctl's processes, not the backend's resources.
    super::tunnels::stop(&env.id, None);
    let machines = provider.status(env).await?;
    let results = join_all(
        machines
            .iter()
            .map(|machine| provider.destroy(env, &machine.name)),
    )
    .await;
    let mut failures = MachineFailures::new("remove", machines.len());
    for (machine, result) in machines.iter().zip(results) {
        if let Err(err) = result {
            failures.push(&machine.name, err);
        }
    }
    failures.into_result()?;
    provider.teardown(env).await?;
    Ok(())
}

/// Removes what `holding` lists, whoever it belonged to.
pub async fn remove_holding(provider: &AnyProvider, holding: &Holding) -> Result<()> {
    output::status(
        "Removing",
        &format!(
            "{} of environment `{}` (id {})",
            holding.resources.join(", "),
            holding.owner.env,
            holding.owner.env_id
        ),
    );
    remove_all(provider, &EnvironmentId::of_owner(&holding.owner)).await
}

/// Resources of this environment (same name, same folder) made under an id its state no
/// longer records, e.g. after `.envctl/` was deleted: they hold the environment's names
/// and addresses but trust keys that are gone, so they can only be replaced.
pub fn left_by_an_earlier_state(env: &EnvironmentId, holdings: Vec<Holding>) -> Vec<Holding> {
    holdings
        .into_iter()
        .filter(|holding| {
            holding.owner.env == env.name
                && holding.owner.env_id != env.id
                && holding.owner.project_dir.as_deref() == Some(env.project_dir.as_path())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use envctl_provider::Owner;

    use super::*;

    fn owner(id: &str, project: Option<PathBuf>) -> Owner {
        Owner {
            env: "demo".into(),
            env_id: id.into(),
            project_dir: project,
        }
    }

    #[test]
    fn only_the_same_environment_under_an_old_id_is_lost() {
        let project = PathBuf::from("/src/demo");
        let env = EnvironmentId::of_owner(&owner("now", Some(project.clone())));
        let holding = |owner: Owner| Holding {
            owner,
            resources: vec!["container demo-web1".into()],
        };
        let mut other_name = owner("old", Some(project.clone()));
        other_name.env = "other".into();
        let lost = left_by_an_earlier_state(
            &env,
            vec![
                holding(owner("now", Some(project.clone()))),
                holding(owner("old", Some(project.clone()))),
                holding(owner("old2", Some(PathBuf::from("/elsewhere")))),
                holding(owner("old3", None)),
                holding(other_name),
            ],
        );
        assert_eq!(lost.len(), 1);
        assert_eq!(lost[0].owner.env_id, "old");
    }
}
