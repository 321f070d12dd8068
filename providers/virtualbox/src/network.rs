//! The environment's host-only network (NIC 2 of every machine) and its DHCP server.
//!
//! VirtualBox has two kinds. A host-only *interface* (`hostonlyif`, `vboxnetN`) is what
//! VirtualBox 6.x and 7.x have on Linux and Windows: envctl creates one, gives the host the
//! gateway address with `hostonlyif ipconfig`, and adds a DHCP server that hands every
//! machine its fixed address. A host-only *network* (`hostonlynet`) is what VirtualBox 7.x
//! has on macOS instead (built on vmnet, which serves its own DHCP): envctl adds one whose
//! lower address is the gateway. Either way envctl also sets the address in the guest (see
//! `GuestAddress`), so DHCP is a convenience, not a dependency.
//!
//! An interface or network already configured for the subnet is reused and never removed.
//! One envctl creates is recorded in VirtualBox's global extradata as
//! `envctl/hostonly/<name>` = the environment's id, and removed by `teardown`.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use envctl_provider::{
    EnvironmentId, EnvironmentSpec, MachineSpec, NetworkSpec, Phase, ProviderError, Report,
};
use ipnetwork::Ipv4Network;

use crate::parse;
use crate::{keys, HostOnlyKind, VirtualboxProvider};

/// The host-only interface or network the machines' NIC 2 is attached to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct HostOnly {
    pub(crate) kind: HostOnlyKind,
    pub(crate) name: String,
    /// A VirtualBox DHCP server serves this interface, so machines get fixed addresses there.
    pub(crate) dhcp: bool,
}

/// A host-only interface or network as VirtualBox lists it: the host's address and mask.
#[derive(Clone, Debug)]
struct Existing {
    name: String,
    host_ip: Option<Ipv4Addr>,
    mask: Option<Ipv4Addr>,
}

impl Existing {
    /// The subnet it serves; none for one without an address (`0.0.0.0`).
    fn network(&self) -> Option<Ipv4Network> {
        let ip = self.host_ip.filter(|ip| !ip.is_unspecified())?;
        let net = Ipv4Network::with_netmask(ip, self.mask?).ok()?;
        Ipv4Network::new(net.network(), net.prefix()).ok()
    }

    fn serves(&self, net: &NetworkSpec) -> bool {
        self.host_ip == Some(net.gateway) && self.mask == Some(net.subnet.mask())
    }
}

/// NIC 2's MAC address for a machine at `ip`: VirtualBox's own prefix 08:00:27 and the last
/// three bytes of the address. Addresses are unique within the subnet and subnets never
/// share a host-only network, so the MAC is unique where it matters, and the same on every
/// `up`.
pub(crate) fn nic2_mac(ip: Ipv4Addr) -> [u8; 6] {
    let [_, b, c, d] = ip.octets();
    [0x08, 0x00, 0x27, b, c, d]
}

/// `08:00:27:a8:38:0b`: the form envctl's guest configuration and DHCP servers read.
pub(crate) fn mac_colons(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|byte| format!("{byte:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// `080027A8380B`: the form `modifyvm --macaddressN` takes and `showvminfo` prints.
pub(crate) fn mac_vbox(mac: [u8; 6]) -> String {
    mac.iter().map(|byte| format!("{byte:02X}")).collect()
}

/// Reads `080027A8380B` back.
pub(crate) fn mac_from_vbox(text: &str) -> Option<[u8; 6]> {
    if text.len() != 12 || !text.is_ascii() {
        return None;
    }
    let mut mac = [0u8; 6];
    for (i, byte) in mac.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(mac)
}

/// The DHCP server's own address and its one-address pool: the highest addresses of the
/// subnet that neither the host nor any machine uses. Every machine has a fixed address, so
/// the pool only exists because VirtualBox wants one.
pub(crate) fn dhcp_addresses(
    net: &NetworkSpec,
    machines: &[MachineSpec],
) -> Option<(Ipv4Addr, Ipv4Addr)> {
    let first = u32::from(net.subnet.network()).checked_add(1)?;
    let last = u32::from(net.subnet.broadcast()).checked_sub(1)?;
    let mut free = (first..=last)
        .rev()
        .map(Ipv4Addr::from)
        .filter(|ip| *ip != net.gateway && machines.iter().all(|m| m.ip != *ip));
    Some((free.next()?, free.next()?))
}

impl VirtualboxProvider {
    /// Preflight: the subnet does not collide with another host-only interface or network, and
    /// the one serving it (if any) was not made by another environment.
    pub(crate) async fn check_host_only(&self, env: &EnvironmentSpec) -> Result<(), ProviderError> {
        let existing = self.list_host_only().await?;
        let Some(found) = serving(&existing, &env.network, self.host_only)? else {
            return Ok(());
        };
        let key = keys::hostonly(&found.name);
        let owner = self
            .vbox
            .run(["getextradata", "global", key.as_str()])
            .await
            .map_err(|err| self.backend_error("reading VirtualBox's global extradata", err))?;
        match parse::extradata_value(&owner) {
            Some(id) if id != env.id => Err(ProviderError::SubnetConflict {
                subnet: env.network.subnet,
                other: format!(
                    "{} `{}`, made by another envctl environment (id {id}); destroy that \
                     environment first",
                    self.host_only.noun(),
                    found.name
                ),
            }),
            _ => Ok(()),
        }
    }

    /// Prepare: finds or makes the host-only interface or network of `env`, remembers it for
    /// `up`, and returns it. Whatever this call made is removed again if a later step fails.
    pub(crate) async fn ensure_host_only(
        &self,
        env: &EnvironmentSpec,
        machines: &[MachineSpec],
        report: &dyn Report,
    ) -> Result<HostOnly, ProviderError> {
        let existing = self.list_host_only().await?;
        let host_only = match serving(&existing, &env.network, self.host_only)? {
            Some(found) => HostOnly {
                kind: self.host_only,
                name: found.name.clone(),
                dhcp: self.host_only == HostOnlyKind::Interface
                    && self.dhcp_server_exists(&found.name).await?,
            },
            None => {
                if let Some(first) = machines.first() {
                    report.phase(&first.name, Phase::CreatingNetwork);
                }
                self.create_host_only(env, machines).await?
            }
        };
        self.remember(env, host_only.clone());
        Ok(host_only)
    }

    /// What `prepare` found or made; looked up again when this process did not run it.
    pub(crate) async fn host_only_of(
        &self,
        env: &EnvironmentSpec,
    ) -> Result<HostOnly, ProviderError> {
        if let Some(known) = self.remembered(env) {
            return Ok(known);
        }
        let existing = self.list_host_only().await?;
        let Some(found) = serving(&existing, &env.network, self.host_only)? else {
            return Err(ProviderError::backend(
                format!("finding the host-only network of `{}`", env.name),
                format!(
                    "no {} serves {}; run `envctl up` to make it",
                    self.host_only.noun(),
                    env.network.subnet
                ),
            ));
        };
        let host_only = HostOnly {
            kind: self.host_only,
            name: found.name.clone(),
            dhcp: self.host_only == HostOnlyKind::Interface
                && self.dhcp_server_exists(&found.name).await?,
        };
        self.remember(env, host_only.clone());
        Ok(host_only)
    }

    /// Teardown: removes every host-only interface or network recorded as made for `env`
    /// (one the user removed already only loses its record).
    pub(crate) async fn remove_host_only(&self, env: &EnvironmentId) -> Result<(), ProviderError> {
        self.forget(env);
        let all = self
            .vbox
            .run(["getextradata", "global", "enumerate"])
            .await
            .map_err(|err| self.backend_error("reading VirtualBox's global extradata", err))?;
        let ours: Vec<String> = parse::extradata_all(&all)
            .into_iter()
            .filter(|(_, id)| *id == env.id)
            .filter_map(|(key, _)| key.strip_prefix(keys::HOSTONLY_PREFIX).map(str::to_string))
            .collect();
        if ours.is_empty() {
            return Ok(());
        }
        let present: Vec<String> = self
            .list_host_only()
            .await?
            .into_iter()
            .map(|e| e.name)
            .collect();
        for name in ours {
            self.remove_one(&name, present.contains(&name)).await?;
        }
        Ok(())
    }

    async fn create_host_only(
        &self,
        env: &EnvironmentSpec,
        machines: &[MachineSpec],
    ) -> Result<HostOnly, ProviderError> {
        let net = &env.network;
        let name = match self.host_only {
            HostOnlyKind::Interface => {
                let out = self
                    .vbox
                    .run(["hostonlyif", "create"])
                    .await
                    .map_err(|err| self.backend_error("creating a host-only interface", err))?;
                parse::created_interface(&out).ok_or_else(|| {
                    ProviderError::backend(
                        "creating a host-only interface",
                        format!(
                            "VBoxManage did not name the interface it made: {}",
                            out.trim()
                        ),
                    )
                })?
            }
            HostOnlyKind::Network => {
                // The host takes the lower address; the upper one is the last of the subnet.
                let name = env.network_name();
                let mask = net.subnet.mask().to_string();
                let lower = net.gateway.to_string();
                let upper = Ipv4Addr::from(u32::from(net.subnet.broadcast()).saturating_sub(1));
                let upper = upper.to_string();
                let args = [
                    "hostonlynet",
                    "add",
                    "--name",
                    &name,
                    "--netmask",
                    &mask,
                    "--lower-ip",
                    &lower,
                    "--upper-ip",
                    &upper,
                    "--enable",
                ];
                self.vbox.run(args).await.map_err(|err| {
                    self.backend_error(format!("adding host-only network `{name}`"), err)
                })?;
                name
            }
        };
        if let Err(err) = self.configure_host_only(env, machines, &name).await {
            return Err(self.undo_host_only(&name, err).await);
        }
        Ok(HostOnly {
            kind: self.host_only,
            name,
            dhcp: self.host_only == HostOnlyKind::Interface,
        })
    }

    /// Records the interface or network envctl just made, and for an interface gives the host
    /// its address and sets up the DHCP server.
    async fn configure_host_only(
        &self,
        env: &EnvironmentSpec,
        machines: &[MachineSpec],
        name: &str,
    ) -> Result<(), ProviderError> {
        let net = &env.network;
        let key = keys::hostonly(name);
        self.vbox
            .run(["setextradata", "global", key.as_str(), env.id.as_str()])
            .await
            .map_err(|err| {
                self.backend_error(format!("recording `{name}` as made by envctl"), err)
            })?;
        if self.host_only == HostOnlyKind::Network {
            return Ok(());
        }
        let mask = net.subnet.mask().to_string();
        let gateway = net.gateway.to_string();
        self.vbox
            .run([
                "hostonlyif",
                "ipconfig",
                name,
                "--ip",
                &gateway,
                "--netmask",
                &mask,
            ])
            .await
            .map_err(|err| {
                self.backend_error(
                    format!("giving host-only interface `{name}` the address {gateway}"),
                    err,
                )
            })?;
        let (server, pool) = dhcp_addresses(net, machines).ok_or_else(|| {
            ProviderError::backend(
                format!("adding a DHCP server to `{name}`"),
                format!("subnet {} has no two addresses left for it", net.subnet),
            )
        })?;
        // VirtualBox may have made a (disabled) DHCP server with the interface.
        let verb = if self.dhcp_server_exists(name).await? {
            "modify"
        } else {
            "add"
        };
        let (server, pool) = (server.to_string(), pool.to_string());
        let args = [
            "dhcpserver",
            verb,
            "--interface",
            name,
            "--server-ip",
            &server,
            "--netmask",
            &mask,
            "--lower-ip",
            &pool,
            "--upper-ip",
            &pool,
            "--enable",
        ];
        self.vbox.run(args).await.map_err(|err| {
            self.backend_error(format!("setting up the DHCP server of `{name}`"), err)
        })?;
        Ok(())
    }

    /// Removes what `create_host_only` made after `err`, and returns `err`, saying whether the
    /// cleanup worked.
    async fn undo_host_only(&self, name: &str, err: ProviderError) -> ProviderError {
        match self.remove_one(name, true).await {
            Ok(()) => err,
            Err(undo) => ProviderError::backend(
                format!("{err} (removing `{name}` again failed too, so it is left: {undo})"),
                err,
            ),
        }
    }

    /// Removes the host-only interface (with its DHCP server) or network `name` if it is
    /// `present`, and its record.
    async fn remove_one(&self, name: &str, present: bool) -> Result<(), ProviderError> {
        let err = |what: &str| {
            let what = format!("removing {what} `{name}`");
            move |e| self.backend_error(what, e)
        };
        match (present, self.host_only) {
            (false, _) => {}
            (true, HostOnlyKind::Interface) => {
                if self.dhcp_server_exists(name).await? {
                    let args = ["dhcpserver", "remove", "--interface", name];
                    self.vbox
                        .run(args)
                        .await
                        .map_err(err("the DHCP server of"))?;
                }
                let args = ["hostonlyif", "remove", name];
                self.vbox
                    .run(args)
                    .await
                    .map_err(err("host-only interface"))?;
            }
            (true, HostOnlyKind::Network) => {
                let args = ["hostonlynet", "remove", "--name", name];
                self.vbox
                    .run(args)
                    .await
                    .map_err(err("host-only network"))?;
            }
        }
        let key = keys::hostonly(name);
        self.vbox
            .run(["setextradata", "global", key.as_str()])
            .await
            .map_err(err("the record of"))?;
        Ok(())
    }

    async fn list_host_only(&self) -> Result<Vec<Existing>, ProviderError> {
        let (what, first, ip_key) = match self.host_only {
            HostOnlyKind::Interface => ("hostonlyifs", "Name", "IPAddress"),
            HostOnlyKind::Network => ("hostonlynets", "Name", "LowerIP"),
        };
        let out = self.vbox.run(["list", what]).await.map_err(|err| {
            self.backend_error(
                format!("listing VirtualBox's {}s", self.host_only.noun()),
                err,
            )
        })?;
        Ok(parse::records(&out, first)
            .into_iter()
            .filter_map(|record: BTreeMap<String, String>| {
                Some(Existing {
                    name: record.get("Name")?.clone(),
                    host_ip: record.get(ip_key).and_then(|ip| ip.parse().ok()),
                    mask: record.get("NetworkMask").and_then(|mask| mask.parse().ok()),
                })
            })
            .collect())
    }

    async fn dhcp_server_exists(&self, interface: &str) -> Result<bool, ProviderError> {
        let out = self
            .vbox
            .run(["list", "dhcpservers"])
            .await
            .map_err(|err| self.backend_error("listing VirtualBox's DHCP servers", err))?;
        let network = format!("HostInterfaceNetworking-{interface}");
        Ok(parse::records(&out, "NetworkName")
            .iter()
            .any(|record| record.get("NetworkName") == Some(&network)))
    }
}

/// The interface or network already serving `net`, if any; one that overlaps the subnet
/// without serving it exactly is a conflict.
fn serving<'a>(
    existing: &'a [Existing],
    net: &NetworkSpec,
    kind: HostOnlyKind,
) -> Result<Option<&'a Existing>, ProviderError> {
    if let Some(found) = existing.iter().find(|e| e.serves(net)) {
        return Ok(Some(found));
    }
    match existing
        .iter()
        .find(|e| e.network().is_some_and(|other| other.overlaps(net.subnet)))
    {
        Some(other) => Err(ProviderError::SubnetConflict {
            subnet: net.subnet,
            other: format!(
                "{} `{}` ({}/{})",
                kind.noun(),
                other.name,
                other.host_ip.map_or_else(String::new, |ip| ip.to_string()),
                other.network().map_or(0, |n| n.prefix())
            ),
        }),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(subnet: &str, gateway: [u8; 4]) -> NetworkSpec {
        NetworkSpec {
            subnet: subnet.parse().unwrap(),
            gateway: Ipv4Addr::from(gateway),
        }
    }

    fn existing(name: &str, ip: &str, mask: &str) -> Existing {
        Existing {
            name: name.to_string(),
            host_ip: ip.parse().ok(),
            mask: mask.parse().ok(),
        }
    }

    #[test]
    fn mac_comes_from_the_address() {
        let mac = nic2_mac(Ipv4Addr::new(192, 168, 56, 11));
        assert_eq!(mac_colons(mac), "08:00:27:a8:38:0b");
        assert_eq!(mac_vbox(mac), "080027A8380B");
        assert_eq!(mac_from_vbox("080027A8380B"), Some(mac));
        assert_eq!(mac_from_vbox("080027a8380b"), Some(mac));
        assert_eq!(mac_from_vbox("08:00:27:a8"), None);
        assert_eq!(mac_from_vbox("0800ZZA8380B"), None);
        // VirtualBox wants a unicast MAC: the second hex digit even.
        assert_eq!(mac[0] & 1, 0);
        assert_ne!(
            nic2_mac(Ipv4Addr::new(10, 0, 0, 12)),
            nic2_mac(Ipv4Addr::new(10, 0, 0, 13))
        );
    }

    #[test]
    fn dhcp_takes_the_highest_free_addresses() {
        let spec = net("192.168.56.0/24", [192, 168, 56, 1]);
        assert_eq!(
            dhcp_addresses(&spec, &[]),
            Some((
                Ipv4Addr::new(192, 168, 56, 254),
                Ipv4Addr::new(192, 168, 56, 253)
            ))
        );
        let tiny = net("10.0.0.0/30", [10, 0, 0, 1]);
        assert_eq!(dhcp_addresses(&tiny, &[]), None);
    }

    #[test]
    fn serving_finds_the_exact_match_and_refuses_overlaps() {
        let spec = net("192.168.56.0/24", [192, 168, 56, 1]);
        let list = [
            existing("vboxnet0", "192.168.57.1", "255.255.255.0"),
            existing("vboxnet1", "192.168.56.1", "255.255.255.0"),
        ];
        let found = serving(&list, &spec, HostOnlyKind::Interface).unwrap();
        assert_eq!(found.map(|e| e.name.as_str()), Some("vboxnet1"));

        let clash = [existing("vboxnet2", "192.168.56.100", "255.255.254.0")];
        let err = serving(&clash, &spec, HostOnlyKind::Interface).unwrap_err();
        assert_eq!(
            err.to_string(),
            "subnet 192.168.56.0/24 overlaps host-only interface `vboxnet2` (192.168.56.100/23)"
        );
        let unconfigured = [
            existing("vboxnet3", "", ""),
            existing("vboxnet4", "0.0.0.0", "0.0.0.0"),
        ];
        assert!(serving(&unconfigured, &spec, HostOnlyKind::Interface)
            .unwrap()
            .is_none());
    }
}
