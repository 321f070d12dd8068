//! Every environment's VMs and host-only networks in VirtualBox, by envctl's extradata:
//! what `envctl gc` and `up`'s repair of lost state start from.

use std::path::PathBuf;

use envctl_provider::{group_holdings, Holding, Owner, ProviderError};

use crate::{keys, parse, VirtualboxProvider};

impl VirtualboxProvider {
    pub(crate) async fn all_holdings(&self) -> Result<Vec<Holding>, ProviderError> {
        let mut found = Vec::new();
        for (name, _) in self.list_vms().await? {
            let extra = match self
                .vbox
                .run(["getextradata", name.as_str(), "enumerate"])
                .await
            {
                Ok(out) => parse::extradata_all(&out),
                // Gone since it was listed.
                Err(err) if err.is_not_found() => continue,
                Err(err) => {
                    return Err(
                        self.backend_error(format!("reading the extradata of `{name}`"), err)
                    )
                }
            };
            let (Some(env), Some(env_id)) = (extra.get(keys::ENV), extra.get(keys::ENV_ID)) else {
                continue;
            };
            let owner = Owner {
                env: env.clone(),
                env_id: env_id.clone(),
                project_dir: extra.get(keys::PROJECT).map(PathBuf::from),
            };
            found.push((owner, format!("VM {name}")));
        }
        // Host-only networks are recorded globally by id alone; a VM of the same
        // environment, if one is left, supplies the name.
        let global = self
            .vbox
            .run(["getextradata", "global", "enumerate"])
            .await
            .map_err(|err| self.backend_error("reading VirtualBox's global extradata", err))?;
        for (key, env_id) in parse::extradata_all(&global) {
            if let Some(network) = key.strip_prefix(keys::HOSTONLY_PREFIX) {
                let owner = Owner {
                    env: String::new(),
                    env_id,
                    project_dir: None,
                };
                found.push((owner, format!("host-only network {network}")));
            }
        }
        let mut holdings = group_holdings(found);
        for holding in &mut holdings {
            if holding.owner.env.is_empty() {
                holding.owner.env = "?".to_string();
            }
        }
        Ok(holdings)
    }
}
