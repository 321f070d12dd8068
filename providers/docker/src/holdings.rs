//! Every environment's containers, networks and volumes on this engine, by their labels:
//! what `envctl gc` and `up`'s repair of lost state start from.

use std::collections::HashMap;
use std::path::PathBuf;

use bollard::query_parameters::{
    ListContainersOptionsBuilder, ListNetworksOptionsBuilder, ListVolumesOptionsBuilder,
};
use envctl_provider::{group_holdings, Holding, Owner, ProviderError};

use crate::{labels, DockerProvider};

/// Whose a resource is, if its labels say it is envctl's.
pub(crate) fn owner_of(labels: &HashMap<String, String>) -> Option<Owner> {
    Some(Owner {
        env: labels.get(labels::ENV)?.clone(),
        env_id: labels.get(labels::ENV_ID)?.clone(),
        project_dir: labels.get(labels::PROJECT).map(PathBuf::from),
    })
}

impl DockerProvider {
    pub(crate) async fn all_holdings(&self) -> Result<Vec<Holding>, ProviderError> {
        // Only the key: every value of the environment id label.
        let filter = HashMap::from([("label", vec![labels::ENV_ID.to_string()])]);
        let mut found = Vec::new();
        let options = ListContainersOptionsBuilder::new()
            .all(true)
            .filters(&filter)
            .build();
        let containers = self
            .docker
            .list_containers(Some(options))
            .await
            .map_err(|err| self.backend_error("listing envctl's containers", err))?;
        for container in containers {
            let name = container
                .names
                .unwrap_or_default()
                .first()
                .map(|name| name.trim_start_matches('/').to_string())
                .unwrap_or_default();
            if let Some(owner) = container.labels.as_ref().and_then(owner_of) {
                found.push((owner, format!("container {name}")));
            }
        }
        let options = ListNetworksOptionsBuilder::new().filters(&filter).build();
        let networks = self
            .docker
            .list_networks(Some(options))
            .await
            .map_err(|err| self.backend_error("listing envctl's networks", err))?;
        for network in networks {
            if let Some(owner) = network.labels.as_ref().and_then(owner_of) {
                let name = network.name.unwrap_or_default();
                found.push((owner, format!("network {name}")));
            }
        }
        let options = ListVolumesOptionsBuilder::new().filters(&filter).build();
        let volumes = self
            .docker
            .list_volumes(Some(options))
            .await
            .map_err(|err| self.backend_error("listing envctl's volumes", err))?;
        for volume in volumes.volumes.unwrap_or_default() {
            if let Some(owner) = owner_of(&volume.labels) {
                found.push((owner, format!("volume {}", volume.name)));
            }
        }
        Ok(group_holdings(found))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_labelled_resources_have_an_owner() {
        let labels = HashMap::from([
            (labels::ENV.to_string(), "demo".to_string()),
            (labels::ENV_ID.to_string(), "abc".to_string()),
            (labels::PROJECT.to_string(), "/src/demo".to_string()),
        ]);
        assert_eq!(
            owner_of(&labels),
            Some(Owner {
                env: "demo".into(),
                env_id: "abc".into(),
                project_dir: Some(PathBuf::from("/src/demo")),
            })
        );
        let mut partial = labels.clone();
        partial.remove(labels::ENV_ID);
        assert_eq!(owner_of(&partial), None);
    }
}
