//! What envctl made for environments it has lost track of: finding them by the marks on
//! their resources, judging whether their environment still exists, removing them.
//! `envctl gc` lists and removes such leftovers; `up` replaces its own environment's.

use std::path::Path;

use anyhow::{bail, Result};
use envctl_provider::{EnvironmentSpec, Holding, Owner, Provider};
use futures_util::future::join_all;

use crate::output;
use crate::providers::AnyProvider;
use crate::state::StateDir;

/// Whether the environment that made some resources still exists, and if not, why not.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Its state folder records the same environment id.
    Alive,
    /// Nothing on this host claims the resources any more.
    Orphan(String),
}

/// An environment exists while its project's `.envctl/state.json` records its id: a
/// deleted folder, a deleted state folder or a state rebuilt under a new id all orphan
/// what the old id made.
pub fn judge(owner: &Owner) -> Verdict {
    let Some(project) = &owner.project_dir else {
        return Verdict::Orphan("its resources do not say which folder they belong to".into());
    };
    if !project.is_dir() {
        return Verdict::Orphan(format!("{} is gone", project.display()));
    }
    match recorded_id(project) {
        None => Verdict::Orphan(format!("{} has no envctl state", project.display())),
        Some(id) if id == owner.env_id => Verdict::Alive,
        Some(id) => Verdict::Orphan(format!(
            "{} now holds another environment (id {id})",
            project.display()
        )),
    }
}

/// The environment id a project's state records, if it has readable state.
fn recorded_id(project: &Path) -> Option<String> {
    let bytes = std::fs::read(StateDir::new(project).state_file()).ok()?;
    let state: crate::state::State = serde_json::from_slice(&bytes).ok()?;
    Some(state.env_id)
}

/// Removes every machine the backend has for `env`, then what they shared. Destroying by
/// what the backend reports, not by a list, also takes machines no Machinefile names now.
pub async fn remove_all(provider: &AnyProvider, env: &EnvironmentSpec) -> Result<()> {
    let machines = provider.status(env).await?;
    let results = join_all(
        machines
            .iter()
            .map(|machine| provider.destroy(env, &machine.name)),
    )
    .await;
    let failures: Vec<String> = machines
        .iter()
        .zip(results)
        .filter_map(|(machine, result)| Some(format!("{}: {}", machine.name, result.err()?)))
        .collect();
    if !failures.is_empty() {
        bail!("could not remove:\n  {}", failures.join("\n  "));
    }
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
    remove_all(provider, &EnvironmentSpec::for_removal(&holding.owner)).await
}

/// Resources of this environment (same name, same folder) made under an id its state no
/// longer records, e.g. after `.envctl/` was deleted: they hold the environment's names
/// and addresses but trust keys that are gone, so they can only be replaced.
pub fn lost_by(env: &EnvironmentSpec, holdings: Vec<Holding>) -> Vec<Holding> {
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

    use super::*;
    use crate::state::State;

    fn owner(id: &str, project: Option<PathBuf>) -> Owner {
        Owner {
            env: "demo".into(),
            env_id: id.into(),
            project_dir: project,
        }
    }

    #[test]
    fn an_environment_lives_while_its_state_records_its_id() {
        let project =
            std::env::temp_dir().join(format!("envctl-judge-{}", crate::keys::random_id()));
        std::fs::create_dir_all(&project).unwrap();
        let ours = owner("id-1", Some(project.clone()));
        assert!(matches!(judge(&ours), Verdict::Orphan(why) if why.contains("no envctl state")));

        let dir = StateDir::new(&project);
        let state = State {
            env_id: "id-1".into(),
            ..State::default()
        };
        dir.save(&state).unwrap();
        assert_eq!(judge(&ours), Verdict::Alive);

        let rebuilt = State {
            env_id: "id-2".into(),
            ..State::default()
        };
        dir.save(&rebuilt).unwrap();
        assert!(matches!(judge(&ours), Verdict::Orphan(why) if why.contains("id-2")));

        std::fs::remove_dir_all(&project).unwrap();
        assert!(matches!(judge(&ours), Verdict::Orphan(why) if why.contains("is gone")));
        assert!(matches!(judge(&owner("x", None)), Verdict::Orphan(_)));
    }

    #[test]
    fn only_the_same_environment_under_an_old_id_is_lost() {
        let project = PathBuf::from("/src/demo");
        let env = EnvironmentSpec::for_removal(&owner("now", Some(project.clone())));
        let holding = |owner: Owner| Holding {
            owner,
            resources: vec!["container demo-web1".into()],
        };
        let mut other_name = owner("old", Some(project.clone()));
        other_name.env = "other".into();
        let lost = lost_by(
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
