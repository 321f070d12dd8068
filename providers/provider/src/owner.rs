//! Whose a resource is, read back from the marks envctl leaves on everything it makes
//! (labels, metadata, extradata): what `envctl gc` and `up`'s repair of lost state use.

use std::path::PathBuf;

use crate::EnvironmentId;

/// An environment as its resources name it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Owner {
    pub env: String,
    pub env_id: String,
    /// The Machinefile's folder, when the resource records it.
    pub project_dir: Option<PathBuf>,
}

/// Everything a backend holds for one environment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holding {
    pub owner: Owner,
    /// One line per resource, e.g. `container example-web1`, for the user to read.
    pub resources: Vec<String>,
}

/// Groups `(owner, resource)` pairs by owner, in a stable order.
pub fn group_holdings(found: impl IntoIterator<Item = (Owner, String)>) -> Vec<Holding> {
    let mut holdings: Vec<Holding> = Vec::new();
    for (owner, resource) in found {
        match holdings.iter_mut().find(|h| h.owner.env_id == owner.env_id) {
            Some(holding) => {
                if holding.owner.project_dir.is_none() {
                    holding.owner.project_dir = owner.project_dir;
                }
                holding.resources.push(resource);
            }
            None => holdings.push(Holding {
                owner,
                resources: vec![resource],
            }),
        }
    }
    for holding in &mut holdings {
        holding.resources.sort();
    }
    holdings.sort_by(|a, b| a.owner.cmp(&b.owner));
    holdings
}

impl EnvironmentId {
    /// The identity of the environment that left `owner`'s resources, to find and remove
    /// them with. It has no console folder: any console log lives in the owner's own state
    /// folder, which is gone or now another environment's.
    pub fn of_owner(owner: &Owner) -> EnvironmentId {
        EnvironmentId {
            name: owner.env.clone(),
            id: owner.env_id.clone(),
            project_dir: owner.project_dir.clone().unwrap_or_default(),
            console_dir: PathBuf::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(id: &str, project: Option<&str>) -> Owner {
        Owner {
            env: "demo".into(),
            env_id: id.into(),
            project_dir: project.map(PathBuf::from),
        }
    }

    #[test]
    fn resources_are_grouped_by_environment_id() {
        let holdings = group_holdings([
            (owner("b", None), "network demo-net".to_string()),
            (owner("a", Some("/p")), "container demo-web2".to_string()),
            (owner("b", Some("/q")), "container demo-web1".to_string()),
            (owner("a", Some("/p")), "container demo-web1".to_string()),
        ]);
        assert_eq!(holdings.len(), 2);
        assert_eq!(holdings[0].owner, owner("a", Some("/p")));
        assert_eq!(
            holdings[0].resources,
            ["container demo-web1", "container demo-web2"]
        );
        // A resource that does not record the folder learns it from one that does.
        assert_eq!(holdings[1].owner, owner("b", Some("/q")));
        assert_eq!(
            holdings[1].resources,
            ["container demo-web1", "network demo-net"]
        );
    }

    #[test]
    fn a_removal_spec_has_no_console_folder() {
        let spec = EnvironmentId::of_owner(&owner("a", Some("/p")));
        assert_eq!(spec.resource_name("web1"), "demo-web1");
        assert_eq!(spec.id, "a");
        assert!(!spec.has_console_dir());
    }
}
