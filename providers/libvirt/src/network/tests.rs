use std::net::Ipv4Addr;

use std::path::PathBuf;

use envctl_provider::{BoxImage, HostKey, ImageSource, NetworkSpec};

use super::*;

/// What the case is, the networks and routes there, and the occupant named.
type OverlapCase = (&'static str, Vec<NetInfo>, Vec<Route>, Option<&'static str>);

fn env(subnet: &str) -> EnvironmentSpec {
    let subnet: Ipv4Network = subnet.parse().unwrap();
    EnvironmentSpec {
        who: EnvironmentId {
            name: "demo".to_string(),
            id: "0123abcd".to_string(),
            project_dir: PathBuf::from("/home/me/demo"),
            console_dir: PathBuf::from("/home/me/demo/.envctl/console"),
        },
        network: NetworkSpec {
            subnet,
            gateway: subnet.nth(1).unwrap(),
        },
    }
}

fn machine(name: &str, hostname: &str, ip: &str) -> MachineSpec {
    MachineSpec {
        name: name.to_string(),
        hostname: hostname.to_string(),
        ip: ip.parse().unwrap(),
        cpus: 1,
        memory_mib: 512,
        user: "vagrant".to_string(),
        aliases: vec![
            name.to_string(),
            hostname.to_string(),
            short_name(hostname).to_string(),
        ],
        image: ImageSource::Box(BoxImage {
            name: "envctl/test".to_string(),
            version: "1".to_string(),
            dir: PathBuf::from("/nowhere"),
        }),
        authorized_key: String::new(),
        host_key: HostKey {
            private_openssh: String::new(),
            public_openssh: String::new(),
        },
        init: envctl_provider::Init::default(),
        forwarded_ports: Vec::new(),
        binds: Vec::new(),
        user_ids: None,
    }
}

fn net(name: &str, owner_id: Option<&str>, ips: &[&str]) -> NetInfo {
    NetInfo {
        name: name.to_string(),
        bridge: None,
        owner: owner_id.map(|id| Owner {
            env_id: id.to_string(),
            ..Owner::default()
        }),
        ips: ips.iter().map(|ip| ip.parse().unwrap()).collect(),
        ..NetInfo::default()
    }
}

fn route(iface: &str, dest: &str) -> Route {
    Route {
        iface: iface.to_string(),
        dest: dest.parse().unwrap(),
    }
}

#[test]
fn macs_are_stable_per_environment_and_machine() {
    let web = mac_address("0123abcd", "web");
    assert_eq!(web, mac_address("0123abcd", "web"));
    assert_ne!(web, mac_address("0123abcd", "db"));
    assert_ne!(web, mac_address("ffff0000", "web"));
    for mac in [web, mac_address("x", "y")] {
        assert!(mac.starts_with("52:54:00:"), "{mac}");
        assert_eq!(mac.len(), 17, "{mac}");
        assert!(mac
            .chars()
            .all(|c| c == ':' || c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
    }
    let bridge = bridge_name("0123abcd");
    assert!(
        bridge.starts_with("envctl-") && bridge.len() == 13,
        "{bridge}"
    );
    assert_eq!(bridge, bridge_name("0123abcd"));
}

#[test]
fn overlaps_name_the_first_network_or_route_in_the_way() {
    let env = env("10.213.50.0/24");
    let own_bridge = bridge_name(&env.id);
    let cases: Vec<OverlapCase> = vec![
        ("nothing there", vec![], vec![], None),
        (
            "libvirt's default",
            vec![net("default", None, &["192.168.122.1/24"])],
            vec![],
            None,
        ),
        (
            "another network inside",
            vec![net("other", None, &["10.213.50.129/25"])],
            vec![],
            Some("libvirt network `other` (10.213.50.128/25)"),
        ),
        (
            "another network around",
            vec![net("wide", Some("ffff"), &["10.213.0.1/16"])],
            vec![],
            Some("libvirt network `wide` (10.213.0.0/16)"),
        ),
        (
            "the environment's own network",
            vec![net("demo-net", Some("0123abcd"), &["10.213.50.1/24"])],
            vec![],
            None,
        ),
        (
            "its name with another id",
            vec![net("demo-net", Some("ffff"), &["10.213.50.1/24"])],
            vec![],
            Some("libvirt network `demo-net` (10.213.50.0/24)"),
        ),
        (
            "the default route",
            vec![],
            vec![route("eth0", "0.0.0.0/0")],
            None,
        ),
        (
            "the own bridge's route",
            vec![],
            vec![route(&own_bridge, "10.213.50.0/24")],
            None,
        ),
        (
            "a docker bridge",
            vec![],
            vec![
                route("eth0", "192.0.2.0/24"),
                route("br-1234", "10.213.50.0/26"),
            ],
            Some("the host route to 10.213.50.0/26 on br-1234"),
        ),
        (
            "a network before a route",
            vec![net("other", None, &["10.213.50.1/24"])],
            vec![route("virbr9", "10.213.50.0/24")],
            Some("libvirt network `other` (10.213.50.0/24)"),
        ),
    ];
    for (what, networks, routes, expected) in cases {
        let found = find_overlap(&env, &networks, &routes).map(|occupant| occupant.to_string());
        assert_eq!(found.as_deref(), expected, "{what}");
    }
}

#[test]
fn named_network_must_be_own_with_the_same_address() {
    let env = env("10.213.50.0/24");
    let cases = [
        (net("demo-net", Some("0123abcd"), &["10.213.50.1/24"]), None),
        (
            net("demo-net", None, &["10.213.50.1/24"]),
            Some("was not made by envctl"),
        ),
        (
            net("demo-net", Some("ffff"), &["10.213.50.1/24"]),
            Some("another envctl environment"),
        ),
        (
            net("demo-net", Some("0123abcd"), &["10.213.51.1/24"]),
            Some("has address 10.213.51.1/24"),
        ),
        (
            net("demo-net", Some("0123abcd"), &["10.213.50.1/25"]),
            Some("wants 10.213.50.0/24"),
        ),
    ];
    for (net, expected) in cases {
        match (check_named(&env, &net), expected) {
            (Ok(()), None) => {}
            (Err(reason), Some(expected)) => assert!(reason.contains(expected), "{reason}"),
            (got, expected) => panic!("{net:?}: got {got:?}, expected {expected:?}"),
        }
    }
}

#[test]
fn desired_network_gives_each_machine_a_lease_and_its_names() {
    let env = env("10.213.50.0/24");
    let machines = [
        machine("web", "web.demo.test", "10.213.50.10"),
        machine("db", "db.demo.test", "10.213.50.11"),
    ];
    let wanted = desired(&env, &machines);
    assert_eq!(wanted.name, "demo-net");
    assert_eq!(wanted.gateway, "10.213.50.1".parse::<Ipv4Addr>().unwrap());
    assert_eq!(wanted.prefix, 24);
    assert_eq!(wanted.domain.as_deref(), Some("demo.test"));
    assert_eq!(wanted.owner.env_id, "0123abcd");
    assert_eq!(
        wanted.dhcp_hosts[1],
        DhcpHost {
            mac: mac_address("0123abcd", "db"),
            name: "db".to_string(),
            ip: "10.213.50.11".parse().unwrap(),
        }
    );
    assert_eq!(wanted.dns_hosts[0].hostnames, ["web", "web.demo.test"]);

    let mixed = [
        machine("a", "a.one.test", "10.213.50.10"),
        machine("b", "b.two.test", "10.213.50.11"),
    ];
    assert_eq!(desired(&env, &mixed).domain, None);
    let bare = [machine("a", "a", "10.213.50.10")];
    assert_eq!(desired(&env, &bare).domain, None);
}

#[test]
fn host_changes_add_what_is_missing_and_replace_what_clashes() {
    let env = env("10.213.50.0/24");
    let web = machine("web", "web.demo.test", "10.213.50.10");
    let db = machine("db", "db.demo.test", "10.213.50.11");
    let wanted = desired(&env, &[web.clone(), db.clone()]);
    let current = |machines: &[MachineSpec]| {
        let had = desired(&env, machines);
        NetInfo {
            name: had.name,
            dhcp_hosts: had.dhcp_hosts,
            dns_hosts: had.dns_hosts,
            ..NetInfo::default()
        }
    };
    let summary = |changes: Vec<HostChange>| -> Vec<String> {
        changes
            .into_iter()
            .map(|change| {
                let verb = match change.command {
                    sys::VIR_NETWORK_UPDATE_COMMAND_DELETE => "delete",
                    sys::VIR_NETWORK_UPDATE_COMMAND_ADD_LAST => "add",
                    _ => "other",
                };
                format!("{verb} {}", change.xml)
            })
            .collect()
    };
    let db_dhcp = xml::dhcp_host(&wanted.dhcp_hosts[1]);
    let db_dns = xml::dns_host(&wanted.dns_hosts[1]);

    assert_eq!(
        summary(host_changes(&current(&[web.clone(), db.clone()]), &wanted)),
        Vec::<String>::new()
    );
    assert_eq!(
        summary(host_changes(&current(std::slice::from_ref(&web)), &wanted)),
        [format!("add {db_dhcp}"), format!("add {db_dns}")]
    );
    // Only some machines asked for: the others' entries stay.
    assert_eq!(
        summary(host_changes(
            &current(&[web.clone(), db.clone()]),
            &desired(&env, std::slice::from_ref(&web))
        )),
        Vec::<String>::new()
    );
    // db moved to another address: its old entries go first.
    let moved = machine("db", "db.demo.test", "10.213.50.20");
    let old = current(&[web.clone(), moved]);
    let (old_dhcp, old_dns) = (
        xml::dhcp_host(&old.dhcp_hosts[1]),
        xml::dns_host(&old.dns_hosts[1]),
    );
    assert_eq!(
        summary(host_changes(&old, &wanted)),
        [
            format!("delete {old_dhcp}"),
            format!("add {db_dhcp}"),
            format!("delete {old_dns}"),
            format!("add {db_dns}"),
        ]
    );
}
