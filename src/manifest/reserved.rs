//! Addresses and names that parse but cannot be used: subnets that cannot hold machines,
//! names Ansible already gives a meaning, host names that another machine's name or
//! address already stands for.

use std::net::Ipv4Addr;

use ipnetwork::Ipv4Network;

/// Ranges no machine can have an address in, with what they are.
const UNUSABLE_RANGES: [(Ipv4Addr, u8, &str); 5] = [
    (Ipv4Addr::new(0, 0, 0, 0), 8, "\"this network\""),
    (Ipv4Addr::new(127, 0, 0, 0), 8, "loopback"),
    (Ipv4Addr::new(169, 254, 0, 0), 16, "link-local"),
    (Ipv4Addr::new(224, 0, 0, 0), 4, "multicast"),
    (Ipv4Addr::new(240, 0, 0, 0), 4, "reserved and broadcast"),
];

/// Why `subnet` cannot hold machines, if it cannot.
pub fn unusable_subnet(subnet: Ipv4Network) -> Option<String> {
    UNUSABLE_RANGES.iter().find_map(|&(ip, prefix, what)| {
        let range = Ipv4Network::new(ip, prefix).ok()?;
        let overlaps = range.contains(subnet.network()) || subnet.contains(range.network());
        overlaps.then(|| {
            format!(
                "{subnet} overlaps {range} ({what}), where machines cannot live: use a private \
                 range, e.g. 192.168.56.0/24"
            )
        })
    })
}

/// Why `name` cannot name a machine, though it is a valid resource name.
pub fn reserved_machine_name(name: &str) -> Option<String> {
    (name == "localhost").then(|| {
        "`localhost` is the control host to Ansible, which would run the playbook's tasks \
         for this machine on this computer"
            .to_string()
    })
}

/// Why `group` cannot be an Ansible group, though it is a valid identifier.
pub fn reserved_group(group: &str) -> Option<String> {
    match group {
        "all" | "ungrouped" => Some(format!(
            "`{group}` is Ansible's own group; every host is in it already"
        )),
        "_meta" => Some(
            "`_meta` is where a dynamic inventory keeps host variables, not a group".to_string(),
        ),
        _ => None,
    }
}

/// One machine as other machines' host names may collide with it.
pub struct Known<'a> {
    pub name: &'a str,
    pub hostname: &'a str,
}

/// Why machine `name` cannot have `hostname`, given every machine. A hostname that is an
/// address (another machine's or not) would be taken for one; the same hostname twice is
/// reported where duplicates are.
pub fn hostname_clash<'a>(
    name: &str,
    hostname: &str,
    machines: impl Iterator<Item = Known<'a>>,
) -> Option<String> {
    if hostname.parse::<Ipv4Addr>().is_ok() {
        return Some(format!(
            "`{hostname}` is an address, not a hostname: give the address as `ip`"
        ));
    }
    let others: Vec<Known> = machines.filter(|known| known.name != name).collect();
    if others
        .iter()
        .any(|known| hostname.eq_ignore_ascii_case(known.hostname))
    {
        return None;
    }
    // The machine's short name is an alias of it too (the first label).
    let short = hostname.split('.').next().unwrap_or(hostname);
    others
        .iter()
        .find(|known| {
            hostname.eq_ignore_ascii_case(known.name) || short.eq_ignore_ascii_case(known.name)
        })
        .map(|known| {
            format!(
                "`{hostname}` would also answer for machine `{}`, whose name it is",
                known.name
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets_that_cannot_hold_machines() {
        for subnet in [
            "0.0.0.0/0",
            "0.0.0.0/8",
            "127.0.0.0/8",
            "127.1.0.0/24",
            "169.254.1.0/24",
            "224.0.0.0/24",
            "239.1.0.0/16",
            "255.255.255.0/24",
            "96.0.0.0/3",
        ] {
            let subnet: Ipv4Network = subnet.parse().unwrap();
            assert!(unusable_subnet(subnet).is_some(), "{subnet}");
        }
        for subnet in [
            "10.0.0.0/8",
            "192.168.56.0/24",
            "172.16.0.0/12",
            "1.0.0.0/8",
        ] {
            let subnet: Ipv4Network = subnet.parse().unwrap();
            assert_eq!(unusable_subnet(subnet), None, "{subnet}");
        }
    }

    #[test]
    fn hostnames_that_stand_for_another_machine() {
        let machines = [("web1", "web1"), ("web2", "web2.demo.test")];
        let clash = |name, hostname| {
            let known = machines
                .iter()
                .map(|&(name, hostname)| Known { name, hostname });
            hostname_clash(name, hostname, known)
        };
        assert!(clash("web1", "web2").is_some());
        assert!(clash("web1", "WEB2.other.test").is_some());
        assert!(clash("web1", "10.1.0.2").is_some());
        assert!(clash("web1", "10.9.9.9").is_some());
        assert_eq!(clash("web1", "web1"), None);
        assert_eq!(clash("web1", "web1.demo.test"), None);
        assert_eq!(clash("web1", "www.web2.test"), None);
        // Reported as a duplicate hostname instead.
        assert_eq!(clash("web1", "web2.demo.test"), None);
    }
}
