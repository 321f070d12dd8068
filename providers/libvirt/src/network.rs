//! The environment's NAT network: whether its subnet is free, making it with a fixed lease
//! and DNS names per machine, keeping those current, and removing it.
//!
//! The rules are pure functions over plain data (libvirt's networks as [`NetInfo`], the
//! host's routes) so they are tested without libvirt.

use std::fmt;

use envctl_provider::routes::{conflicting_route, host_routes, HostRoute as Route};
use envctl_provider::{EnvironmentId, EnvironmentSpec, MachineSpec, Phase, ProviderError, Report};
use ipnetwork::Ipv4Network;
use sha2::{Digest, Sha256};
use virt::connect::Connect;
use virt::sys;

use crate::conn::{backend_error, found};
use crate::xml::{self, DhcpHost, DnsHost, NetInfo, NetworkXml, Owner};
use crate::LibvirtProvider;

/// What already holds addresses of a subnet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Occupant {
    Network { name: String, subnet: Ipv4Network },
    Route(Route),
}

impl fmt::Display for Occupant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Occupant::Network { name, subnet } => write!(f, "libvirt network `{name}` ({subnet})"),
            Occupant::Route(route) => write!(f, "{route}"),
        }
    }
}

/// One `virNetworkUpdate` call that brings the network's hosts to what the machines need.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct HostChange {
    pub command: sys::virNetworkUpdateCommand,
    pub section: sys::virNetworkUpdateSection,
    pub xml: String,
}

/// The machine's NIC address: libvirt's `52:54:00` prefix and three bytes of a hash of
/// the environment id and machine name, so it is the same on every `up`.
pub(crate) fn mac_address(env_id: &str, machine: &str) -> String {
    let hash = Sha256::digest(format!("{env_id}/{machine}").as_bytes());
    format!("52:54:00:{:02x}:{:02x}:{:02x}", hash[0], hash[1], hash[2])
}

/// The Linux bridge of the environment's network: `envctl-` and 6 hex digits of a hash of
/// its id, 13 characters, under the kernel's 15.
pub(crate) fn bridge_name(env_id: &str) -> String {
    let hash = Sha256::digest(env_id.as_bytes());
    format!("envctl-{:02x}{:02x}{:02x}", hash[0], hash[1], hash[2])
}

/// The network the environment wants for `machines`.
pub(crate) fn desired(env: &EnvironmentSpec, machines: &[MachineSpec]) -> NetworkXml {
    NetworkXml {
        name: env.network_name(),
        bridge: bridge_name(&env.id),
        gateway: env.network.gateway,
        prefix: env.network.subnet.prefix(),
        domain: common_domain(machines),
        dhcp_hosts: machines
            .iter()
            .map(|machine| dhcp_host(env, machine))
            .collect(),
        dns_hosts: machines.iter().map(dns_host).collect(),
        owner: Owner {
            env: env.name.clone(),
            env_id: env.id.clone(),
            project: env.project_dir.display().to_string(),
            machine: None,
        },
    }
}

/// Whether `net` is the environment's own network: the name alone could be anyone's.
pub(crate) fn is_own(env: &EnvironmentId, net: &NetInfo) -> bool {
    net.name == env.network_name()
        && net
            .owner
            .as_ref()
            .is_some_and(|owner| owner.env_id == env.id)
}

/// The first libvirt network or host route the subnet overlaps, leaving out the
/// environment's own network and its bridge. The default route is no conflict.
pub(crate) fn find_overlap(
    env: &EnvironmentSpec,
    networks: &[NetInfo],
    routes: &[Route],
) -> Option<Occupant> {
    let subnet = env.network.subnet;
    let own_bridge = bridge_name(&env.id);
    let network = networks
        .iter()
        .filter(|net| !is_own(env, net))
        .flat_map(|net| net.ips.iter().map(move |ip| (net, *ip)))
        .find(|(_, ip)| ip.overlaps(subnet))
        .map(|(net, ip)| Occupant::Network {
            name: net.name.clone(),
            subnet: Ipv4Network::new(ip.network(), ip.prefix()).unwrap_or(ip),
        });
    network.or_else(|| {
        conflicting_route(routes, subnet, Some(&own_bridge))
            .map(|route| Occupant::Route(route.clone()))
    })
}

/// Checks that a network with the environment's name is its own and has its addresses.
pub(crate) fn check_named(env: &EnvironmentSpec, net: &NetInfo) -> Result<(), String> {
    let name = &net.name;
    if !is_own(env, net) {
        return Err(format!(
            "network `{name}` already exists and {}; remove it with `virsh net-destroy {name}; \
             virsh net-undefine {name}` (or `envctl destroy` in its project) or rename this \
             environment",
            xml::describe_owner(net.owner.as_ref())
        ));
    }
    let wanted = Ipv4Network::new(env.network.gateway, env.network.subnet.prefix()).ok();
    if net.ips.len() != 1 || net.ips.first().copied() != wanted {
        let has: Vec<String> = net.ips.iter().map(ToString::to_string).collect();
        return Err(format!(
            "network `{name}` has address {} but the environment wants {} via {}; run \
             `envctl destroy` to remove it, then `envctl up` again",
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

/// The updates that give `current` the leases and names `wanted` lists. Entries of
/// machines not in `wanted` stay: `up` may be asked for some machines only.
pub(crate) fn host_changes(current: &NetInfo, wanted: &NetworkXml) -> Vec<HostChange> {
    let mut changes = section_changes(
        &current.dhcp_hosts,
        &wanted.dhcp_hosts,
        |old, new| old.mac == new.mac || old.ip == new.ip || old.name == new.name,
        xml::dhcp_host,
        sys::VIR_NETWORK_SECTION_IP_DHCP_HOST,
    );
    changes.extend(section_changes(
        &current.dns_hosts,
        &wanted.dns_hosts,
        |old, new| {
            old.ip == new.ip
                || old
                    .hostnames
                    .iter()
                    .any(|name| new.hostnames.contains(name))
        },
        xml::dns_host,
        sys::VIR_NETWORK_SECTION_DNS_HOST,
    ));
    changes
}

/// Adds each wanted entry that is not there as it is, first deleting the entries it
/// clashes with (same MAC, address or name): libvirt refuses an entry that clashes.
fn section_changes<T: PartialEq>(
    current: &[T],
    wanted: &[T],
    clashes: impl Fn(&T, &T) -> bool,
    to_xml: impl Fn(&T) -> String,
    section: sys::virNetworkUpdateSection,
) -> Vec<HostChange> {
    let mut deleted = vec![false; current.len()];
    let mut changes = Vec::new();
    for entry in wanted.iter().filter(|entry| !current.contains(entry)) {
        for (index, old) in current.iter().enumerate() {
            if !deleted[index] && clashes(old, entry) {
                deleted[index] = true;
                changes.push(HostChange {
                    command: sys::VIR_NETWORK_UPDATE_COMMAND_DELETE,
                    section,
                    xml: to_xml(old),
                });
            }
        }
        changes.push(HostChange {
            command: sys::VIR_NETWORK_UPDATE_COMMAND_ADD_LAST,
            section,
            xml: to_xml(entry),
        });
    }
    changes
}

fn dhcp_host(env: &EnvironmentId, machine: &MachineSpec) -> DhcpHost {
    DhcpHost {
        mac: mac_address(&env.id, &machine.name),
        name: short_name(&machine.hostname).to_string(),
        ip: machine.ip,
    }
}

/// Every name the machine answers to: its aliases, hostname and name, once each.
fn dns_host(machine: &MachineSpec) -> DnsHost {
    let mut hostnames: Vec<String> = Vec::new();
    let names = machine
        .aliases
        .iter()
        .chain([&machine.hostname, &machine.name]);
    for name in names {
        if !name.is_empty() && !hostnames.contains(name) {
            hostnames.push(name.clone());
        }
    }
    DnsHost {
        ip: machine.ip,
        hostnames,
    }
}

pub(crate) fn short_name(hostname: &str) -> &str {
    hostname.split('.').next().unwrap_or(hostname)
}

/// The domain part all the machines' hostnames share, if they all have the same one.
pub(crate) fn common_domain(machines: &[MachineSpec]) -> Option<String> {
    let mut domains = machines
        .iter()
        .map(|machine| machine.hostname.split_once('.').map(|(_, d)| d));
    let first = domains.next()??;
    domains
        .all(|domain| domain == Some(first))
        .then(|| first.to_string())
}

/// Every network libvirt knows, read from its XML.
pub(crate) fn list_networks(connect: &Connect) -> Result<Vec<NetInfo>, ProviderError> {
    let networks = connect
        .list_all_networks(0)
        .map_err(|err| backend_error("listing libvirt networks", err))?;
    networks
        .iter()
        .map(|net| {
            let name = net.name().unwrap_or_default();
            let text = net.xml_desc(0).map_err(|err| {
                backend_error(format!("reading the XML of network `{name}`"), err)
            })?;
            xml::parse_network(&text).ok_or_else(|| {
                ProviderError::backend(
                    format!("reading the XML of network `{name}`"),
                    "it does not parse",
                )
            })
        })
        .collect()
}

/// The environment's network as libvirt has it, and whether it runs.
fn lookup(connect: &Connect, name: &str) -> Result<Option<(NetInfo, bool)>, ProviderError> {
    let action = || format!("looking up network `{name}`");
    let Some(net) =
        found(connect.lookup_network_by_name(name)).map_err(|err| backend_error(action(), err))?
    else {
        return Ok(None);
    };
    let text = net
        .xml_desc(0)
        .map_err(|err| backend_error(action(), err))?;
    let info = xml::parse_network(&text)
        .ok_or_else(|| ProviderError::backend(action(), "its XML does not parse"))?;
    let active = net
        .is_active()
        .map_err(|err| backend_error(action(), err))?;
    Ok(Some((info, active)))
}

fn create(connect: &Connect, wanted: &NetworkXml) -> Result<(), ProviderError> {
    let name = &wanted.name;
    let net = connect
        .define_network_xml(&xml::network(wanted))
        .map_err(|err| backend_error(format!("defining network `{name}`"), err))?;
    let started = net
        .set_autostart(false)
        .map_err(|err| backend_error(format!("turning off autostart of network `{name}`"), err))
        .and_then(|_| {
            net.create()
                .map_err(|err| backend_error(format!("starting network `{name}`"), err))
        });
    if started.is_err() {
        let _ = net.undefine();
    }
    started.map(|_| ())
}

fn update(
    connect: &Connect,
    name: &str,
    changes: &[HostChange],
    active: bool,
) -> Result<(), ProviderError> {
    let net = connect
        .lookup_network_by_name(name)
        .map_err(|err| backend_error(format!("looking up network `{name}`"), err))?;
    let flags = if active {
        sys::VIR_NETWORK_UPDATE_AFFECT_LIVE | sys::VIR_NETWORK_UPDATE_AFFECT_CONFIG
    } else {
        sys::VIR_NETWORK_UPDATE_AFFECT_CONFIG
    };
    for change in changes {
        net.update(change.command, change.section, -1, &change.xml, flags)
            .map_err(|err| {
                backend_error(
                    format!("updating network `{name}` with {}", change.xml),
                    err,
                )
            })?;
    }
    if !active {
        net.create()
            .map_err(|err| backend_error(format!("starting network `{name}`"), err))?;
    }
    if net.autostart().unwrap_or(false) {
        net.set_autostart(false).map_err(|err| {
            backend_error(format!("turning off autostart of network `{name}`"), err)
        })?;
    }
    Ok(())
}

fn remove(connect: &Connect, env: &EnvironmentId) -> Result<(), ProviderError> {
    let name = env.network_name();
    let Some((info, active)) = lookup(connect, &name)? else {
        return Ok(());
    };
    if !is_own(env, &info) {
        let reason = format!(
            "it {}; it is left alone",
            xml::describe_owner(info.owner.as_ref())
        );
        return Err(ProviderError::backend(
            format!("removing network `{name}`"),
            reason,
        ));
    }
    let net = connect
        .lookup_network_by_name(&name)
        .map_err(|err| backend_error(format!("looking up network `{name}`"), err))?;
    if active {
        found(net.destroy())
            .map_err(|err| backend_error(format!("stopping network `{name}`"), err))?;
    }
    found(net.undefine())
        .map_err(|err| backend_error(format!("undefining network `{name}`"), err))?;
    Ok(())
}

impl LibvirtProvider {
    /// Refuses a subnet that overlaps another network or a host route, and a network of the
    /// environment's name that is not its own.
    pub(crate) async fn check_network(&self, env: &EnvironmentSpec) -> Result<(), ProviderError> {
        let networks = self.conn.run(list_networks).await?;
        // A remote host's routes are not this one's.
        let routes = match self.conn.is_local() {
            true => host_routes().map_err(|err| {
                ProviderError::backend("reading the host routes from /proc/net/route", err)
            })?,
            false => Vec::new(),
        };
        if let Some(other) = find_overlap(env, &networks, &routes) {
            return Err(ProviderError::SubnetConflict {
                subnet: env.network.subnet,
                other: other.to_string(),
            });
        }
        match networks.iter().find(|net| net.name == env.network_name()) {
            Some(named) => check_named(env, named).map_err(|reason| {
                ProviderError::backend(format!("checking network `{}`", named.name), reason)
            }),
            None => Ok(()),
        }
    }

    /// Makes and starts the environment's network, or brings its hosts up to date.
    pub(crate) async fn ensure_network(
        &self,
        env: &EnvironmentSpec,
        machines: &[MachineSpec],
        report: &dyn Report,
    ) -> Result<(), ProviderError> {
        let wanted = desired(env, machines);
        let name = wanted.name.clone();
        let existing = self.conn.run(move |connect| lookup(connect, &name)).await?;
        match existing {
            None => {
                if let Some(first) = machines.first() {
                    report.phase(&first.name, Phase::CreatingNetwork);
                }
                self.conn.run(move |connect| create(connect, &wanted)).await
            }
            Some((info, active)) => {
                check_named(env, &info).map_err(|reason| {
                    ProviderError::backend(format!("checking network `{}`", info.name), reason)
                })?;
                let changes = host_changes(&info, &wanted);
                if changes.is_empty() && active {
                    return Ok(());
                }
                let name = wanted.name.clone();
                self.conn
                    .run(move |connect| update(connect, &name, &changes, active))
                    .await
            }
        }
    }

    /// Stops and removes the environment's network; a missing one is not an error.
    pub(crate) async fn remove_network(&self, env: &EnvironmentId) -> Result<(), ProviderError> {
        let env = env.clone();
        self.conn.run(move |connect| remove(connect, &env)).await
    }
}

#[cfg(test)]
mod tests;
