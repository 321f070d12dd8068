//! Network subcommands: hostonlyif, hostonlynet (vmnet builds of 7.x only), dhcpserver, and
//! their `list` outputs.

use std::fmt::Write;
use std::net::Ipv4Addr;

use ipnetwork::Ipv4Network;

use crate::getopt::{opt, Args, Item, Opt};
use crate::state::{DhcpServer, HostOnlyIf, HostOnlyNet, State};
use crate::{Ctx, Fail, Out};

fn ip(value: &str) -> Result<Ipv4Addr, Fail> {
    value
        .parse()
        .map_err(|_| Fail::api(format!("Invalid IP address '{value}'"), "E_INVALIDARG"))
}

fn network(address: &str, mask: &str) -> Result<Ipv4Network, Fail> {
    Ipv4Network::with_netmask(ip(address)?, ip(mask)?)
        .map_err(|_| Fail::api(format!("Invalid netmask '{mask}'"), "E_INVALIDARG"))
}

pub fn hostonlyif(ctx: &Ctx, state: &mut State, args: &[String]) -> Out {
    let Some((sub, rest)) = args.split_first() else {
        return Err(Fail::syntax("No sub-command specified".to_string()));
    };
    let table = [
        opt("dhcp", &["--dhcp"], false),
        opt("ip", &["--ip"], true),
        opt("netmask", &["--netmask"], true),
        opt("ipv6", &["--ipv6"], true),
        opt("netmasklengthv6", &["--netmasklengthv6"], true),
    ];
    match sub.as_str() {
        "create" => {
            let table = if ctx.seven {
                vec![opt("machinereadable", &["--machinereadable"], false)]
            } else {
                vec![]
            };
            let mut parsed = Args::new(rest, ctx.seven);
            if let Some(item) = parsed.next(&table) {
                if let Item::Positional(arg) = item? {
                    return Err(Fail::syntax(format!("Invalid parameter '{arg}'")));
                }
            }
            let n = (0..)
                .find(|n| {
                    !state
                        .hostonlyifs
                        .iter()
                        .any(|i| i.name == format!("vboxnet{n}"))
                })
                .unwrap_or(0);
            let name = format!("vboxnet{n}");
            // A new interface gets VirtualBox's default address for its number.
            state.hostonlyifs.push(HostOnlyIf {
                name: name.clone(),
                ip: format!("192.168.{}.1", 56 + n.min(199)),
                mask: "255.255.255.0".to_string(),
            });
            Ok(format!("0%...10%...20%...30%...40%...50%...60%...70%...80%...90%...100%\nInterface '{name}' was successfully created\n"))
        }
        "remove" => {
            let [name] = rest else {
                return Err(Fail::syntax("No interface name was specified".to_string()));
            };
            let at = state.hostonlyif(name)?;
            state.hostonlyifs.remove(at);
            Ok("0%...10%...20%...30%...40%...50%...60%...70%...80%...90%...100%\n".to_string())
        }
        "ipconfig" => {
            let mut parsed = Args::new(rest, ctx.seven);
            let (mut name, mut dhcp, mut address, mut mask, mut v6) =
                (None, false, None, None, false);
            while let Some(item) = parsed.next(&table) {
                match item? {
                    Item::Positional(arg) if name.is_none() => name = Some(arg),
                    Item::Positional(_) => {
                        return Err(Fail::syntax(
                            "Only one interface name can be specified".to_string(),
                        ))
                    }
                    Item::Opt { key: "dhcp", .. } => dhcp = true,
                    Item::Opt {
                        key: "ip", value, ..
                    } => address = value,
                    Item::Opt {
                        key: "netmask",
                        value,
                        ..
                    } => mask = value,
                    Item::Opt { .. } => v6 = true,
                }
            }
            if dhcp && (address.is_some() || mask.is_some() || v6) {
                return Err(Fail::syntax("You can not use --dhcp with static ip configuration parameters: --ip, --netmask, --ipv6 and --netmasklengthv6.".to_string()));
            }
            if (address.is_some() || mask.is_some()) && v6 {
                return Err(Fail::syntax("You can not use ipv4 configuration (--ip and --netmask) with ipv6 (--ipv6 and --netmasklengthv6) simultaneously.".to_string()));
            }
            let name =
                name.ok_or_else(|| Fail::syntax("No interface name was specified".to_string()))?;
            let at = state.hostonlyif(&name)?;
            let Some(address) = address else {
                return if dhcp || v6 {
                    Ok(String::new())
                } else {
                    Err(Fail::syntax(
                        "Neither -dhcp nor -ip nor -ipv6 was specfied".to_string(),
                    ))
                };
            };
            let mask = mask.unwrap_or_else(|| "255.255.255.0".to_string());
            let net = network(&address, &mask)?;
            if !allowed(ctx, net) {
                return Err(Fail::api("Code E_ACCESSDENIED (0x80070005) - Access denied (extended info not available)".to_string(), "E_ACCESSDENIED"));
            }
            state.hostonlyifs[at].ip = address;
            state.hostonlyifs[at].mask = mask;
            Ok(String::new())
        }
        other => Err(Fail::syntax(format!("Unknown sub-command '{other}'"))),
    }
}

/// VBoxNetAdpCtl's rule: the address and its prefix must fall in a `*` network of
/// networks.conf, or in 192.168.56.0/21 when there is no such file.
fn allowed(ctx: &Ctx, net: Ipv4Network) -> bool {
    let text = ctx
        .networks_conf
        .as_ref()
        .and_then(|path| std::fs::read_to_string(path).ok());
    let ranges: Vec<Ipv4Network> = match text {
        None => vec!["192.168.56.1/21".parse().expect("a valid network")],
        Some(text) => text
            .lines()
            .filter_map(|line| {
                let mut words = line.split([' ', '\t']).filter(|w| !w.is_empty());
                (words.next() == Some("*"))
                    .then(|| words.filter_map(|w| w.parse().ok()).collect::<Vec<_>>())
            })
            .flatten()
            .collect(),
    };
    ranges.iter().any(|range| {
        let mask = u32::from(range.mask());
        net.prefix() >= range.prefix() && u32::from(net.ip()) & mask == u32::from(range.ip()) & mask
    })
}

pub fn hostonlynet(ctx: &Ctx, state: &mut State, args: &[String]) -> Out {
    let Some((sub, rest)) = args.split_first() else {
        return Err(Fail::syntax("No sub-command specified".to_string()));
    };
    let table = [
        opt("id", &["--id"], true),
        opt("name", &["--name"], true),
        opt("netmask", &["--netmask"], true),
        opt("lower-ip", &["--lower-ip", "--lowerip"], true),
        opt("upper-ip", &["--upper-ip", "--upperip"], true),
        opt("enable", &["--enable"], false),
        opt("disable", &["--disable"], false),
    ];
    let mut parsed = Args::new(rest, ctx.seven);
    let mut get = std::collections::BTreeMap::new();
    while let Some(item) = parsed.next(&table) {
        match item? {
            Item::Opt { key, value, .. } => get.insert(key, value.unwrap_or_default()),
            Item::Positional(arg) => {
                return Err(Fail::syntax(format!("Invalid parameter '{arg}'")))
            }
        };
    }
    let find = |state: &State| {
        state
            .hostonlynets
            .iter()
            .position(|n| get.get("name") == Some(&n.name) || get.get("id") == Some(&n.id))
    };
    match sub.as_str() {
        "add" => {
            for required in ["name", "netmask", "lower-ip", "upper-ip"] {
                if !get.contains_key(required) {
                    return Err(Fail::syntax(format!(
                        "The --{required} parameter must be specified"
                    )));
                }
            }
            if find(state).is_some() {
                return Err(Fail::api(
                    format!("Host-only network '{}' already exists", get["name"]),
                    "E_INVALIDARG",
                ));
            }
            network(&get["lower-ip"], &get["netmask"])?;
            ip(&get["upper-ip"])?;
            let id = get.get("id").cloned().unwrap_or_else(|| state.uuid());
            state.hostonlynets.push(HostOnlyNet {
                name: get["name"].clone(),
                id,
                mask: get["netmask"].clone(),
                lower: get["lower-ip"].clone(),
                upper: get["upper-ip"].clone(),
                enabled: !get.contains_key("disable"),
            });
            Ok(String::new())
        }
        "remove" => {
            let Some(at) = find(state) else {
                let name = get
                    .get("name")
                    .or(get.get("id"))
                    .cloned()
                    .unwrap_or_default();
                return Err(Fail::api(
                    format!("Could not find a host-only network named '{name}'"),
                    "VBOX_E_OBJECT_NOT_FOUND",
                ));
            };
            state.hostonlynets.remove(at);
            Ok(String::new())
        }
        other => Err(Fail::syntax(format!("Invalid parameter '{other}'"))),
    }
}

/// The MAC address forms VBoxManage reads, as `08:00:27:a8:38:0b`.
fn mac(value: &str) -> Result<String, Fail> {
    let hex: String = value.chars().filter(|c| *c != ':' && *c != '-').collect();
    if hex.len() != 12 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(Fail::syntax(format!("Malformed MAC address '{value}'")));
    }
    let hex = hex.to_ascii_lowercase();
    Ok((0..6)
        .map(|i| &hex[2 * i..2 * i + 2])
        .collect::<Vec<_>>()
        .join(":"))
}

pub fn dhcpserver(ctx: &Ctx, state: &mut State, args: &[String]) -> Out {
    let Some((sub, rest)) = args.split_first() else {
        return Err(Fail::syntax("No sub-command specified".to_string()));
    };
    let table: Vec<Opt> = vec![
        opt("network", &["--network", "--netname"], true),
        opt("interface", &["--interface", "--ifname"], true),
        opt("server-ip", &["--server-ip", "--ip"], true),
        opt("netmask", &["--netmask"], true),
        opt("lower-ip", &["--lower-ip", "--lowerip"], true),
        opt("upper-ip", &["--upper-ip", "--upperip"], true),
        opt("enable", &["--enable"], false),
        opt("disable", &["--disable"], false),
        opt("global", &["--global"], false),
        opt("vm", &["--vm"], true),
        opt("nic", &["--nic"], true),
        opt("mac-address", &["--mac-address"], true),
        opt("fixed-address", &["--fixed-address"], true),
        opt("remove-config", &["--remove-config"], false),
    ];
    let mut parsed = Args::new(rest, ctx.seven);
    let mut items = Vec::new();
    while let Some(item) = parsed.next(&table) {
        match item? {
            Item::Opt { key, value, .. } => items.push((key, value.unwrap_or_default())),
            Item::Positional(arg) => {
                return Err(Fail::syntax(format!("Invalid parameter '{arg}'")))
            }
        }
    }
    let get = |key: &str| {
        items
            .iter()
            .rev()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.clone())
    };
    let network =
        match (get("network"), get("interface")) {
            (Some(network), None) => network,
            (None, Some(interface)) => {
                state.hostonlyif(&interface)?;
                format!("HostInterfaceNetworking-{interface}")
            }
            _ => return Err(Fail::syntax(
                "You need to specify either --network or --interface to identify the DHCP server"
                    .to_string(),
            )),
        };
    let found = state.dhcpservers.iter().position(|s| s.network == network);
    let at = match (sub.as_str(), found) {
        ("add", Some(_)) => {
            return Err(Fail::api(
                format!("DHCP server already exists for '{network}'"),
                "E_INVALIDARG",
            ))
        }
        ("add", None) => {
            for required in ["server-ip", "netmask", "lower-ip", "upper-ip"] {
                if get(required).is_none() {
                    return Err(Fail::syntax(format!(
                        "Missing required option: --{required}"
                    )));
                }
            }
            state.dhcpservers.push(DhcpServer {
                network: network.clone(),
                ..DhcpServer::default()
            });
            state.dhcpservers.len() - 1
        }
        (_, None) => {
            return Err(Fail::api(
                format!("DHCP server does not exist for '{network}'"),
                "VBOX_E_OBJECT_NOT_FOUND",
            ))
        }
        ("remove", Some(at)) => {
            state.dhcpservers.remove(at);
            return Ok(String::new());
        }
        ("modify", Some(at)) => at,
        ("start" | "stop" | "restart", Some(_)) => return Ok(String::new()),
        (other, _) => return Err(Fail::syntax(format!("Unknown sub-command '{other}'"))),
    };
    let server = &mut state.dhcpservers[at];
    let mut scope: Option<String> = None;
    for (key, value) in &items {
        match *key {
            "server-ip" => server.server_ip = ip(value)?.to_string(),
            "netmask" => server.mask = ip(value)?.to_string(),
            "lower-ip" => server.lower = ip(value)?.to_string(),
            "upper-ip" => server.upper = ip(value)?.to_string(),
            "enable" => server.enabled = true,
            "disable" => server.enabled = false,
            "global" => scope = None,
            "vm" => scope = Some(format!("vm {value} nic 1")),
            "nic" => match scope.as_deref().and_then(|s| s.strip_suffix(" nic 1")) {
                Some(vm) => scope = Some(format!("{vm} nic {value}")),
                None => {
                    return Err(Fail::syntax(
                        "--nic can only be used after --vm".to_string(),
                    ))
                }
            },
            "mac-address" => scope = Some(mac(value)?),
            "fixed-address" => match &scope {
                Some(scope) => {
                    server.fixed.insert(scope.clone(), ip(value)?.to_string());
                }
                None => {
                    return Err(Fail::syntax(
                        "--fixed-address can only be used in a VM or MAC address scope".to_string(),
                    ))
                }
            },
            "remove-config" if sub != "modify" => {
                return Err(Fail::syntax("Unknown option: --remove-config".to_string()))
            }
            "remove-config" => match scope.take() {
                Some(scope) if server.fixed.remove(&scope).is_some() => {}
                Some(scope) => {
                    return Err(Fail::api(
                        format!("Could not find the configuration of '{scope}'"),
                        "VBOX_E_OBJECT_NOT_FOUND",
                    ))
                }
                None => return Err(Fail::syntax("Cannot remove the global config".to_string())),
            },
            _ => {}
        }
    }
    if sub == "add" {
        let net = crate::nets::network(&server.server_ip, &server.mask)?;
        for address in [&server.lower, &server.upper] {
            if !net.contains(ip(address)?) {
                return Err(Fail::api(
                    format!("{address} is not in the network of the server"),
                    "E_INVALIDARG",
                ));
            }
        }
    }
    Ok(String::new())
}

pub fn list_hostonlyifs(state: &State) -> String {
    let mut out = String::new();
    for i in &state.hostonlyifs {
        let _ = write!(
            out,
            "Name:            {}\nGUID:            786f6276-656e-4074-8000-0a0027000000\nDHCP:            Disabled\n\
             IPAddress:       {}\nNetworkMask:     {}\nIPV6Address:     \nIPV6NetworkMaskPrefixLength: 0\n\
             HardwareAddress: 0a:00:27:00:00:00\nMediumType:      Ethernet\nWireless:        No\n\
             Status:          Up\nVBoxNetworkName: HostInterfaceNetworking-{}\n\n",
            i.name, i.ip, i.mask, i.name
        );
    }
    out
}

pub fn list_hostonlynets(state: &State) -> String {
    let mut out = String::new();
    for n in &state.hostonlynets {
        let enabled = if n.enabled { "Enabled" } else { "Disabled" };
        let _ = write!(
            out,
            "Name:            {}\nGUID:            {}\n\nState:           {enabled}\nNetworkMask:     {}\n\
             LowerIP:         {}\nUpperIP:         {}\nVBoxNetworkName: hostonly-{}\n\n",
            n.name, n.id, n.mask, n.lower, n.upper, n.name
        );
    }
    out
}

pub fn list_dhcpservers(state: &State) -> String {
    let mut out = String::new();
    for (i, s) in state.dhcpservers.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let enabled = if s.enabled { "Yes" } else { "No" };
        let _ = write!(
            out,
            "NetworkName:    {}\nDhcpd IP:       {}\nLowerIPAddress: {}\nUpperIPAddress: {}\n\
             NetworkMask:    {}\nEnabled:        {enabled}\nGlobal Configuration:\n    DHCP options:     None\n",
            s.network, s.server_ip, s.lower, s.upper, s.mask
        );
        if !s.fixed.is_empty() {
            out.push_str("Individual Configs:\n");
        }
        for (scope, address) in &s.fixed {
            let _ = write!(
                out,
                "    Individual Config: {scope}\n        Fixed Address:    {address}\n"
            );
        }
    }
    out
}
