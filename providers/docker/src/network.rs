//! The environment's bridge network: whether its subnet is free, and making or removing it.
//!
//! The checks are pure functions over plain data (Docker's networks, the host's routes) so
//! the rules can be tested without an engine.

use std::collections::HashMap;
use std::fmt;
use std::net::Ipv4Addr;

use bollard::models::{Ipam, IpamConfig, NetworkCreateRequest};
use bollard::query_parameters::{ListNetworksOptionsBuilder, ListVolumesOptionsBuilder};
use envctl_provider::routes::{conflicting_route, host_routes, HostRoute as Route};
use envctl_provider::{EnvironmentId, EnvironmentSpec, MachineSpec, Phase, ProviderError, Report};
use ipnetwork::Ipv4Network;

use crate::engine::is_not_found;
use crate::{labels, DockerProvider};

/// A Docker network, as the checks see it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct DockerNet {
    pub name: String,
    pub id: String,
    pub labels: HashMap<String, String>,
    /// Its IPv4 IPAM pools: subnet and gateway, if one is set.
    pub pools: Vec<(Ipv4Network, Option<Ipv4Addr>)>,
}

/// What already holds addresses of a subnet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Occupant {
    Network { name: String, subnet: Ipv4Network },
    Route(Route),
}

impl fmt::Display for Occupant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Occupant::Network { name, subnet } => write!(f, "docker network `{name}` ({subnet})"),
            Occupant::Route(route) => write!(f, "{route}"),
        }
    }
}

/// Whether `net` is the environment's own network: the name alone could be anyone's.
pub(crate) fn is_own(env: &EnvironmentId, net: &DockerNet) -> bool {
    net.name == env.network_name() && net.labels.get(labels::ENV_ID) == Some(&env.id)
}

/// The first Docker network or host route the environment's subnet overlaps, leaving out the
/// environment's own network and the routes of its bridge. The default route is no conflict.
pub(crate) fn find_overlap(
    env: &EnvironmentSpec,
    networks: &[DockerNet],
    routes: &[Route],
) -> Option<Occupant> {
    let subnet = env.network.subnet;
    let own_bridge = networks
        .iter()
        .find(|net| is_own(env, net))
        .map(|net| bridge_name(&net.id));
    let network = networks
        .iter()
        .filter(|net| !is_own(env, net))
        .flat_map(|net| net.pools.iter().map(move |(pool, _)| (net, *pool)))
        .find(|(_, pool)| pool.overlaps(subnet))
        .map(|(net, pool)| Occupant::Network {
            name: net.name.clone(),
            subnet: pool,
        });
    network.or_else(|| {
        conflicting_route(routes, subnet, own_bridge.as_deref())
            .map(|route| Occupant::Route(route.clone()))
    })
}

/// Checks that a network with the environment's name is its own and has its addresses.
/// The error says what is wrong and how to get out of it.
pub(crate) fn check_named(env: &EnvironmentSpec, net: &DockerNet) -> Result<(), String> {
    let name = &net.name;
    if net.labels.get(labels::ENV_ID) != Some(&env.id) {
        return Err(format!(
            "network `{name}` already exists and {}; remove it with `docker network rm {name}` \
             (or `envctl destroy` in its project) or rename this environment",
            labels::describe_owner(Some(&net.labels))
        ));
    }
    let wanted = (env.network.subnet, Some(env.network.gateway));
    if net.pools != [wanted] {
        let has: Vec<String> = net
            .pools
            .iter()
            .map(|(subnet, gateway)| match gateway {
                Some(gateway) => format!("{subnet} via {gateway}"),
                None => subnet.to_string(),
            })
            .collect();
        return Err(format!(
            "network `{name}` has subnet {} but the environment wants {} via {}; \
             run `envctl destroy` to remove it, then `envctl up` again",
            if has.is_empty() {
                "none".to_string()
            } else {
                has.join(", ")
            },
            env.network.subnet,
            env.network.gateway
        ));
    }
    Ok(())
}

/// The first machine address already held on the network by a container that is not the
/// machine's own, with the holder's name.
pub(crate) fn foreign_holder(
    env: &EnvironmentId,
    machines: &[MachineSpec],
    attached: &[(String, Ipv4Addr)],
) -> Option<(Ipv4Addr, String)> {
    machines.iter().find_map(|machine| {
        attached
            .iter()
            .find(|(holder, ip)| *ip == machine.ip && *holder != env.resource_name(&machine.name))
            .map(|(holder, ip)| (*ip, holder.clone()))
    })
}

/// The Linux bridge Docker makes for a network: `br-` and the first 12 characters of its id.
pub(crate) fn bridge_name(network_id: &str) -> String {
    format!("br-{}", network_id.get(..12).unwrap_or(network_id))
}

fn from_parts(
    name: Option<String>,
    id: Option<String>,
    labels: Option<HashMap<String, String>>,
    ipam: Option<Ipam>,
) -> DockerNet {
    let pools = ipam
        .and_then(|ipam| ipam.config)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|pool| {
            // IPv6 pools do not parse as IPv4 and cannot collide with an IPv4 subnet.
            let subnet = pool.subnet?.parse().ok()?;
            Some((
                subnet,
                pool.gateway.and_then(|gateway| gateway.parse().ok()),
            ))
        })
        .collect();
    DockerNet {
        name: name.unwrap_or_default(),
        id: id.unwrap_or_default(),
        labels: labels.unwrap_or_default(),
        pools,
    }
}

impl DockerProvider {
    /// Refuses a subnet that overlaps another network or route, a network of the same name
    /// that is not the environment's, and machine addresses that others hold.
    pub(crate) async fn check_network(
        &self,
        env: &EnvironmentSpec,
        machines: &[MachineSpec],
    ) -> Result<(), ProviderError> {
        let networks = self.list_networks(None).await?;
        let routes = host_routes().map_err(|err| {
            ProviderError::backend("reading the host routes from /proc/net/route", err)
        })?;
        if let Some(other) = find_overlap(env, &networks, &routes) {
            return Err(ProviderError::SubnetConflict {
                subnet: env.network.subnet,
                other: other.to_string(),
            });
        }
        let Some(own) = self.named_network(env).await? else {
            return Ok(());
        };
        check_named(env, &own).map_err(|reason| {
            ProviderError::backend(format!("checking network `{}`", own.name), reason)
        })?;
        let attached = self.attached(&own.name).await?;
        match foreign_holder(env, machines, &attached) {
            Some((ip, holder)) => Err(ProviderError::AddressInUse {
                ip,
                holder: format!("container `{holder}`"),
            }),
            None => Ok(()),
        }
    }

    /// Makes the environment's network unless it is there already.
    pub(crate) async fn ensure_network(
        &self,
        env: &EnvironmentSpec,
        machines: &[MachineSpec],
        report: &dyn Report,
    ) -> Result<(), ProviderError> {
        let name = env.network_name();
        if let Some(own) = self.named_network(env).await? {
            return check_named(env, &own).map_err(|reason| {
                ProviderError::backend(format!("checking network `{name}`"), reason)
            });
        }
        if let Some(first) = machines.first() {
            report.phase(&first.name, Phase::CreatingNetwork);
        }
        let request = NetworkCreateRequest {
            name: name.clone(),
            driver: Some("bridge".to_string()),
            internal: Some(false),
            ipam: Some(Ipam {
                driver: Some("default".to_string()),
                config: Some(vec![IpamConfig {
                    subnet: Some(env.network.subnet.to_string()),
                    gateway: Some(env.network.gateway.to_string()),
                    ..Default::default()
                }]),
                options: None,
            }),
            labels: Some(labels::env_labels(env)),
            ..Default::default()
        };
        self.docker
            .create_network(request)
            .await
            .map_err(|err| self.backend_error(format!("creating network `{name}`"), err))?;
        Ok(())
    }

    /// Removes the environment's networks and volumes; what is already gone is no error.
    pub(crate) async fn remove_shared(&self, env: &EnvironmentId) -> Result<(), ProviderError> {
        let mut doomed: Vec<DockerNet> = self.list_networks(Some(env)).await?;
        if let Some(named) = self.named_network(env).await? {
            if is_own(env, &named) && !doomed.iter().any(|net| net.id == named.id) {
                doomed.push(named);
            }
        }
        for net in doomed {
            match self.docker.remove_network(&net.id).await {
                Err(err) if !is_not_found(&err) => {
                    return Err(self.backend_error(format!("removing network `{}`", net.name), err))
                }
                _ => {}
            }
        }
        let options = ListVolumesOptionsBuilder::new()
            .filters(&labels::env_filter(env))
            .build();
        let volumes = self
            .docker
            .list_volumes(Some(options))
            .await
            .map_err(|err| {
                self.backend_error(format!("listing the volumes of `{}`", env.name), err)
            })?;
        for volume in volumes.volumes.unwrap_or_default() {
            match self
                .docker
                .remove_volume(
                    &volume.name,
                    None::<bollard::query_parameters::RemoveVolumeOptions>,
                )
                .await
            {
                Err(err) if !is_not_found(&err) => {
                    return Err(
                        self.backend_error(format!("removing volume `{}`", volume.name), err)
                    )
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Every network, or those carrying `env`'s id.
    async fn list_networks(
        &self,
        env: Option<&EnvironmentId>,
    ) -> Result<Vec<DockerNet>, ProviderError> {
        let options = env.map(|env| {
            ListNetworksOptionsBuilder::new()
                .filters(&labels::env_filter(env))
                .build()
        });
        let networks = self
            .docker
            .list_networks(options)
            .await
            .map_err(|err| self.backend_error("listing docker networks", err))?;
        Ok(networks
            .into_iter()
            .map(|net| from_parts(net.name, net.id, net.labels, net.ipam))
            .collect())
    }

    /// The network named after the environment, whoever made it.
    async fn named_network(&self, env: &EnvironmentId) -> Result<Option<DockerNet>, ProviderError> {
        let name = env.network_name();
        match self.docker.inspect_network(&name, None).await {
            Ok(net) => Ok(Some(from_parts(net.name, net.id, net.labels, net.ipam))),
            Err(err) if is_not_found(&err) => Ok(None),
            Err(err) => Err(self.backend_error(format!("inspecting network `{name}`"), err)),
        }
    }

    /// The containers attached to a network, with their IPv4 addresses.
    async fn attached(&self, name: &str) -> Result<Vec<(String, Ipv4Addr)>, ProviderError> {
        let net = self
            .docker
            .inspect_network(name, None)
            .await
            .map_err(|err| self.backend_error(format!("inspecting network `{name}`"), err))?;
        Ok(net
            .containers
            .unwrap_or_default()
            .into_values()
            .filter_map(|endpoint| {
                // Docker gives the address with its prefix length: "10.213.40.10/24".
                let address = endpoint.ipv4_address?;
                let ip = address.split('/').next()?.parse().ok()?;
                Some((endpoint.name?, ip))
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use envctl_provider::{HostKey, ImageSource, NetworkSpec};

    use super::*;

    fn env(subnet: &str) -> EnvironmentSpec {
        let subnet: Ipv4Network = subnet.parse().unwrap();
        EnvironmentSpec {
            who: EnvironmentId {
                name: "demo".to_string(),
                id: "id-demo".to_string(),
                project_dir: PathBuf::from("/src/demo"),
                console_dir: PathBuf::from("/tmp/console"),
            },
            network: NetworkSpec {
                subnet,
                gateway: subnet.nth(1).unwrap(),
            },
        }
    }

    fn net(name: &str, id: &str, env_id: Option<&str>, subnet: &str) -> DockerNet {
        let subnet: Ipv4Network = subnet.parse().unwrap();
        DockerNet {
            name: name.to_string(),
            id: id.to_string(),
            labels: env_id
                .map(|env_id| HashMap::from([(labels::ENV_ID.to_string(), env_id.to_string())]))
                .unwrap_or_default(),
            pools: vec![(subnet, subnet.nth(1))],
        }
    }

    fn route(iface: &str, dest: &str) -> Route {
        Route {
            iface: iface.to_string(),
            dest: dest.parse().unwrap(),
        }
    }

    /// The environment's subnet, the engine's networks, the host's routes, what overlaps.
    type Case<'a> = (&'a str, Vec<&'a DockerNet>, Vec<&'a Route>, Option<&'a str>);

    #[test]
    fn overlap_table() {
        let bridge = net("bridge", "cc8f855d6419aa", None, "172.17.0.0/16");
        let own = net(
            "demo-net",
            "0123456789abcdef",
            Some("id-demo"),
            "10.1.0.0/24",
        );
        let squatter = net(
            "demo-net",
            "fedcba9876543210",
            Some("id-other"),
            "10.1.0.0/24",
        );
        let other = net(
            "other-net",
            "aaaaaaaaaaaaaaaa",
            Some("id-other"),
            "10.1.0.128/25",
        );
        let default = route("eth0", "0.0.0.0/0");
        let docker0 = route("docker0", "172.17.0.0/16");
        let lan = route("eth0", "192.168.1.0/24");
        let host = route("tun0", "10.1.0.77/32");
        let own_bridge = route("br-0123456789ab", "10.1.0.0/24");
        let other_bridge = route("br-fedcba987654", "10.1.0.0/24");

        let cases: Vec<Case> = vec![
            ("10.1.0.0/24", vec![], vec![], None),
            (
                "10.1.0.0/24",
                vec![&bridge],
                vec![&default, &docker0, &lan],
                None,
            ),
            (
                "172.17.5.0/24",
                vec![&bridge],
                vec![],
                Some("docker network `bridge` (172.17.0.0/16)"),
            ),
            (
                "172.16.0.0/12",
                vec![&bridge],
                vec![],
                Some("docker network `bridge` (172.17.0.0/16)"),
            ),
            (
                "172.17.0.0/16",
                vec![],
                vec![&docker0],
                Some("the host route to 172.17.0.0/16 on docker0"),
            ),
            (
                "192.168.1.128/25",
                vec![],
                vec![&lan],
                Some("the host route to 192.168.1.0/24 on eth0"),
            ),
            ("192.168.2.0/24", vec![], vec![&lan], None),
            ("0.0.0.0/0", vec![], vec![&default], None),
            (
                "10.1.0.0/24",
                vec![],
                vec![&host],
                Some("the host route to 10.1.0.77/32 on tun0"),
            ),
            // The environment's own network and its bridge's route are no conflict.
            ("10.1.0.0/24", vec![&own, &bridge], vec![&own_bridge], None),
            // Same name, another id: a squatter, whose bridge is not ours either.
            (
                "10.1.0.0/24",
                vec![&squatter],
                vec![],
                Some("docker network `demo-net` (10.1.0.0/24)"),
            ),
            (
                "10.1.0.0/24",
                vec![&own],
                vec![&other_bridge],
                Some("the host route to 10.1.0.0/24 on br-fedcba987654"),
            ),
            // Our own network does not hide another one that overlaps.
            (
                "10.1.0.0/24",
                vec![&own, &other],
                vec![],
                Some("docker network `other-net` (10.1.0.128/25)"),
            ),
            // Networks are reported before routes.
            (
                "10.1.0.0/16",
                vec![&other],
                vec![&host],
                Some("docker network `other-net` (10.1.0.128/25)"),
            ),
        ];
        for (subnet, networks, routes, expected) in cases {
            let networks: Vec<DockerNet> = networks.into_iter().cloned().collect();
            let routes: Vec<Route> = routes.into_iter().cloned().collect();
            let found = find_overlap(&env(subnet), &networks, &routes).map(|o| o.to_string());
            assert_eq!(
                found.as_deref(),
                expected,
                "subnet {subnet}, networks {networks:?}, routes {routes:?}"
            );
        }
    }

    #[test]
    fn a_network_with_our_name_must_be_ours_and_match() {
        let env = env("10.1.0.0/24");
        assert_eq!(
            check_named(&env, &net("demo-net", "1", Some("id-demo"), "10.1.0.0/24")),
            Ok(())
        );

        let theirs = check_named(&env, &net("demo-net", "1", Some("id-other"), "10.1.0.0/24"));
        let theirs = theirs.unwrap_err();
        assert!(
            theirs.contains("another envctl environment (id id-other)"),
            "{theirs}"
        );
        assert!(theirs.contains("docker network rm demo-net"), "{theirs}");

        let foreign = check_named(&env, &net("demo-net", "1", None, "10.1.0.0/24")).unwrap_err();
        assert!(foreign.contains("was not made by envctl"), "{foreign}");

        let moved = check_named(&env, &net("demo-net", "1", Some("id-demo"), "10.2.0.0/24"));
        let moved = moved.unwrap_err();
        assert!(
            moved.contains("has subnet 10.2.0.0/24 via 10.2.0.1 but the environment wants 10.1.0.0/24 via 10.1.0.1"),
            "{moved}"
        );
        assert!(moved.contains("envctl destroy"), "{moved}");

        let mut other_gateway = net("demo-net", "1", Some("id-demo"), "10.1.0.0/24");
        other_gateway.pools[0].1 = Some("10.1.0.254".parse().unwrap());
        assert!(check_named(&env, &other_gateway).is_err());
    }

    #[test]
    fn addresses_held_by_other_containers_are_found() {
        let env = env("10.1.0.0/24");
        let machine = |name: &str, ip: &str| MachineSpec {
            name: name.to_string(),
            hostname: format!("{name}.demo.test"),
            ip: ip.parse().unwrap(),
            cpus: 1,
            memory_mib: 256,
            user: "vagrant".to_string(),
            aliases: vec![],
            image: ImageSource::DockerImage("debian:bookworm".to_string()),
            authorized_key: String::new(),
            host_key: HostKey {
                private_openssh: String::new(),
                public_openssh: String::new(),
            },
            init: envctl_provider::Init::Sshd,
            forwarded_ports: Vec::new(),
            binds: Vec::new(),
            user_ids: None,
        };
        let machines = [machine("web", "10.1.0.10"), machine("db", "10.1.0.11")];
        let attached = |list: &[(&str, &str)]| -> Vec<(String, Ipv4Addr)> {
            list.iter()
                .map(|(n, ip)| (n.to_string(), ip.parse().unwrap()))
                .collect()
        };
        assert_eq!(foreign_holder(&env, &machines, &[]), None);
        assert_eq!(
            foreign_holder(
                &env,
                &machines,
                &attached(&[("demo-web", "10.1.0.10"), ("demo-db", "10.1.0.11")])
            ),
            None
        );
        assert_eq!(
            foreign_holder(
                &env,
                &machines,
                &attached(&[("demo-web", "10.1.0.10"), ("stray", "10.1.0.11")])
            ),
            Some(("10.1.0.11".parse().unwrap(), "stray".to_string()))
        );
        // A machine's container holding a sibling's address is a conflict too.
        assert_eq!(
            foreign_holder(&env, &machines, &attached(&[("demo-db", "10.1.0.10")])),
            Some(("10.1.0.10".parse().unwrap(), "demo-db".to_string()))
        );
    }

    #[test]
    fn bridge_names_follow_docker() {
        assert_eq!(bridge_name("0123456789abcdef0123"), "br-0123456789ab");
        assert_eq!(bridge_name("short"), "br-short");
    }
}
