//! Every environment's domains and networks on this daemon, by envctl's `<metadata>`:
//! what `envctl gc` and `up`'s repair of lost state start from.

use std::path::PathBuf;

use envctl_provider::{group_holdings, Holding, Owner, ProviderError};
use virt::connect::Connect;

use crate::conn::backend_error;
use crate::domain::owner_of;
use crate::network::list_networks;
use crate::{xml, LibvirtProvider};

impl LibvirtProvider {
    pub(crate) async fn all_holdings(&self) -> Result<Vec<Holding>, ProviderError> {
        self.conn.run(holdings).await
    }
}

fn holdings(connect: &Connect) -> Result<Vec<Holding>, ProviderError> {
    let mut found = Vec::new();
    let domains = connect
        .list_all_domains(0)
        .map_err(|err| backend_error("listing libvirt domains", err))?;
    for domain in domains {
        if let Some(owner) = owner_of(&domain) {
            let name = domain.name().unwrap_or_default();
            found.push((public(owner), format!("domain {name}")));
        }
    }
    for info in list_networks(connect)? {
        if let Some(owner) = info.owner {
            found.push((public(owner), format!("network {}", info.name)));
        }
    }
    Ok(group_holdings(found))
}

/// The metadata's owner in the provider trait's terms.
fn public(owner: xml::Owner) -> Owner {
    Owner {
        env: owner.env,
        env_id: owner.env_id,
        project_dir: (!owner.project.is_empty()).then(|| PathBuf::from(owner.project)),
    }
}
