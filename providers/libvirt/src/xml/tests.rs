use super::*;

/// An XML text, a path of tag names in it, an attribute (or the text) and what it holds.
type Case<'a> = (&'a str, &'a [&'a str], Option<&'a str>, Option<&'a str>);

fn owner(machine: Option<&str>) -> Owner {
    Owner {
        env: "demo".to_string(),
        env_id: "0123abcd".to_string(),
        project: "/home/me/demo & co".to_string(),
        machine: machine.map(str::to_string),
    }
}

/// The text of the one element at `path` (tag names from the root down), or its attribute.
fn pick(xml: &str, path: &[&str], attr: Option<&str>) -> Option<String> {
    let doc = roxmltree::Document::parse(xml).expect("the XML parses");
    let mut node = doc.root_element();
    assert_eq!(node.tag_name().name(), path[0]);
    for name in &path[1..] {
        node = node
            .children()
            .find(|child| child.tag_name().name() == *name)?;
    }
    match attr {
        Some(attr) => node.attribute(attr).map(str::to_string),
        None => node.text().map(str::to_string),
    }
}

#[test]
fn domain_xml_has_what_the_machine_needs() {
    let machine_owner = owner(Some("web"));
    let base = DomainXml {
        name: "demo-web",
        virt_type: "qemu",
        vcpus: 2,
        memory_mib: 1024,
        pool: "default",
        volume: "demo-web.qcow2",
        seed: "demo-web-seed.img",
        network: "demo-net",
        mac: "52:54:00:aa:bb:cc",
        console_log: Some("/tmp/console/web.log"),
        owner: &machine_owner,
        shares: &[],
        uuid: None,
    };
    let tcg = domain(&base);
    let kvm = domain(&DomainXml {
        virt_type: "kvm",
        console_log: None,
        ..base
    });
    let cases: &[Case] = &[
        (&tcg, &["domain"], Some("type"), Some("qemu")),
        (&kvm, &["domain"], Some("type"), Some("kvm")),
        (&tcg, &["domain", "name"], None, Some("demo-web")),
        (&tcg, &["domain", "memory"], None, Some("1024")),
        (&tcg, &["domain", "memory"], Some("unit"), Some("MiB")),
        (&tcg, &["domain", "vcpu"], None, Some("2")),
        (&tcg, &["domain", "os", "type"], None, Some("hvm")),
        (&tcg, &["domain", "os", "type"], Some("machine"), Some("pc")),
        (&tcg, &["domain", "cpu"], Some("mode"), None),
        (
            &kvm,
            &["domain", "cpu"],
            Some("mode"),
            Some("host-passthrough"),
        ),
        (
            &tcg,
            &["domain", "devices", "disk"],
            Some("type"),
            Some("volume"),
        ),
        (
            &tcg,
            &["domain", "devices", "disk", "driver"],
            Some("type"),
            Some("qcow2"),
        ),
        (
            &tcg,
            &["domain", "devices", "disk", "source"],
            Some("pool"),
            Some("default"),
        ),
        (
            &tcg,
            &["domain", "devices", "disk", "source"],
            Some("volume"),
            Some("demo-web.qcow2"),
        ),
        (
            &tcg,
            &["domain", "devices", "disk", "target"],
            Some("bus"),
            Some("virtio"),
        ),
        (
            &tcg,
            &["domain", "devices", "interface"],
            Some("type"),
            Some("network"),
        ),
        (
            &tcg,
            &["domain", "devices", "interface", "source"],
            Some("network"),
            Some("demo-net"),
        ),
        (
            &tcg,
            &["domain", "devices", "interface", "mac"],
            Some("address"),
            Some("52:54:00:aa:bb:cc"),
        ),
        (
            &tcg,
            &["domain", "devices", "interface", "model"],
            Some("type"),
            Some("virtio"),
        ),
        (
            &tcg,
            &["domain", "devices", "serial", "log"],
            Some("file"),
            Some("/tmp/console/web.log"),
        ),
        (
            &tcg,
            &["domain", "devices", "serial", "log"],
            Some("append"),
            Some("off"),
        ),
        (
            &kvm,
            &["domain", "devices", "serial", "log"],
            Some("file"),
            None,
        ),
        (
            &tcg,
            &["domain", "devices", "console", "target"],
            Some("type"),
            Some("serial"),
        ),
    ];
    for (xml, path, attr, expected) in cases {
        assert_eq!(
            pick(xml, path, *attr).as_deref(),
            *expected,
            "{path:?} {attr:?} in\n{xml}"
        );
    }
    let doc = roxmltree::Document::parse(&tcg).unwrap();
    let seed_disk = doc
        .descendants()
        .filter(|node| node.has_tag_name("disk"))
        .find(|disk| {
            disk.children()
                .any(|c| c.has_tag_name("target") && c.attribute("dev") == Some("vdb"))
        })
        .expect("no second disk for the cloud-init seed");
    let child = |name: &str| seed_disk.children().find(|c| c.has_tag_name(name));
    assert_eq!(
        child("source").unwrap().attribute("volume"),
        Some("demo-web-seed.img")
    );
    assert_eq!(child("driver").unwrap().attribute("type"), Some("raw"));
    assert_eq!(child("target").unwrap().attribute("bus"), Some("virtio"));
    assert!(child("readonly").is_some(), "the seed must be read-only");
    assert_eq!(
        parse_owner(&tcg),
        Some(machine_owner.clone()),
        "the owner reads back"
    );
    // virDomainGetMetadata gives the element back without its namespace.
    let fragment =
        r#"<owner env="demo" env-id="0123abcd" project="/home/me/demo &amp; co" machine="web"/>"#;
    assert_eq!(parse_owner(fragment), Some(machine_owner.clone()));
    let foreign = r#"<domain><metadata><x:owner xmlns:x="urn:x" env-id="1"/></metadata></domain>"#;
    assert_eq!(
        parse_owner(foreign),
        None,
        "someone else's `owner` is not envctl's"
    );
}

#[test]
fn virtiofs_exports_come_with_shared_memory_and_read_back() {
    let machine_owner = owner(Some("web"));
    let shares = [
        Share {
            host: "/home/me/demo & co/src".to_string(),
            tag: "envctl1".to_string(),
            binary: "/home/me/demo & co/.envctl/console/virtiofsd-web-envctl1".to_string(),
        },
        Share {
            host: "/srv/data".to_string(),
            tag: "envctl0".to_string(),
            binary: "/home/me/demo & co/.envctl/console/virtiofsd-web-envctl0".to_string(),
        },
    ];
    let base = DomainXml {
        name: "demo-web",
        virt_type: "qemu",
        vcpus: 1,
        memory_mib: 512,
        pool: "default",
        volume: "demo-web.qcow2",
        seed: "demo-web-seed.img",
        network: "demo-net",
        mac: "52:54:00:aa:bb:cc",
        console_log: None,
        owner: &machine_owner,
        shares: &shares,
        uuid: Some("0f7e3c8e-9d5c-4f0e-a1b2-3c4d5e6f7a8b"),
    };
    let with = domain(&base);
    let without = domain(&DomainXml {
        shares: &[],
        uuid: None,
        ..base
    });
    let cases: &[Case] = &[
        (
            &with,
            &["domain", "memoryBacking", "source"],
            Some("type"),
            Some("memfd"),
        ),
        (
            &with,
            &["domain", "memoryBacking", "access"],
            Some("mode"),
            Some("shared"),
        ),
        (&without, &["domain", "memoryBacking"], None, None),
        (
            &with,
            &["domain", "uuid"],
            None,
            Some("0f7e3c8e-9d5c-4f0e-a1b2-3c4d5e6f7a8b"),
        ),
        (&without, &["domain", "uuid"], None, None),
        (
            &with,
            &["domain", "devices", "filesystem", "driver"],
            Some("type"),
            Some("virtiofs"),
        ),
        (
            &with,
            &["domain", "devices", "filesystem"],
            Some("accessmode"),
            Some("passthrough"),
        ),
        (
            &with,
            &["domain", "devices", "filesystem", "binary"],
            Some("path"),
            Some("/home/me/demo & co/.envctl/console/virtiofsd-web-envctl1"),
        ),
    ];
    for (xml, path, attr, expected) in cases {
        assert_eq!(
            pick(xml, path, *attr).as_deref(),
            *expected,
            "{path:?} {attr:?} in\n{xml}"
        );
    }
    let mut sorted = shares.to_vec();
    sorted.sort();
    assert_eq!(parse_shares(&with), sorted, "the exports read back, sorted");
    assert_eq!(parse_shares(&without), Vec::new());
    let nine_p = "<domain><devices><filesystem><driver type='path'/><source dir='/a'/>\
                  <target dir='t'/></filesystem></devices></domain>";
    assert_eq!(
        parse_shares(nine_p),
        Vec::new(),
        "only virtiofs exports count"
    );
}

#[test]
fn network_xml_has_leases_names_and_owner() {
    let net = NetworkXml {
        name: "demo-net".to_string(),
        bridge: "envctl-abcdef".to_string(),
        gateway: "10.213.50.1".parse().unwrap(),
        prefix: 24,
        domain: Some("demo.test".to_string()),
        dhcp_hosts: vec![DhcpHost {
            mac: "52:54:00:aa:bb:cc".to_string(),
            name: "web".to_string(),
            ip: "10.213.50.10".parse().unwrap(),
        }],
        dns_hosts: vec![DnsHost {
            ip: "10.213.50.10".parse().unwrap(),
            hostnames: vec!["web".to_string(), "web.demo.test".to_string()],
        }],
        owner: owner(None),
    };
    let xml = network(&net);
    let cases: &[(&[&str], Option<&str>, Option<&str>)] = &[
        (&["network", "name"], None, Some("demo-net")),
        (&["network", "forward"], Some("mode"), Some("nat")),
        (&["network", "bridge"], Some("name"), Some("envctl-abcdef")),
        (&["network", "domain"], Some("name"), Some("demo.test")),
        (&["network", "ip"], Some("address"), Some("10.213.50.1")),
        (&["network", "ip"], Some("prefix"), Some("24")),
        (&["network", "ip", "dhcp", "range"], Some("start"), None),
        (
            &["network", "ip", "dhcp", "host"],
            Some("mac"),
            Some("52:54:00:aa:bb:cc"),
        ),
        (
            &["network", "ip", "dhcp", "host"],
            Some("name"),
            Some("web"),
        ),
        (
            &["network", "ip", "dhcp", "host"],
            Some("ip"),
            Some("10.213.50.10"),
        ),
        (
            &["network", "dns", "host"],
            Some("ip"),
            Some("10.213.50.10"),
        ),
        (&["network", "dns", "host", "hostname"], None, Some("web")),
    ];
    for (path, attr, expected) in cases {
        assert_eq!(
            pick(&xml, path, *attr).as_deref(),
            *expected,
            "{path:?} {attr:?} in\n{xml}"
        );
    }
    // What is written reads back as the same network.
    let back = parse_network(&xml).expect("the network parses");
    assert_eq!(back.name, net.name);
    assert_eq!(back.bridge.as_deref(), Some("envctl-abcdef"));
    assert_eq!(back.owner, Some(net.owner.clone()));
    assert_eq!(back.ips, vec!["10.213.50.1/24".parse().unwrap()]);
    assert_eq!(back.dhcp_hosts, net.dhcp_hosts);
    assert_eq!(back.dns_hosts, net.dns_hosts);
    let no_domain = network(&NetworkXml {
        domain: None,
        ..net
    });
    assert_eq!(pick(&no_domain, &["network", "domain"], Some("name")), None);
}

#[test]
fn volume_and_pool_xml() {
    let upload = upload_volume("envctl-box-x-1.img");
    let overlay = overlay_volume(
        "demo-web.qcow2",
        3 << 30,
        "/var/lib/libvirt/images/envctl-box-x-1.img",
    );
    let pool = dir_pool("default", "/var/lib/libvirt/images");
    let seed = seed_volume("demo-web-seed.img", 1 << 20);
    let cases: &[Case] = &[
        (&seed, &["volume", "capacity"], None, Some("1048576")),
        (
            &seed,
            &["volume", "target", "format"],
            Some("type"),
            Some("raw"),
        ),
        (
            &seed,
            &["volume", "target", "permissions", "mode"],
            None,
            Some("0600"),
        ),
        (
            &upload,
            &["volume", "name"],
            None,
            Some("envctl-box-x-1.img"),
        ),
        (&upload, &["volume", "capacity"], None, Some("0")),
        (
            &upload,
            &["volume", "target", "format"],
            Some("type"),
            Some("raw"),
        ),
        (
            &upload,
            &["volume", "target", "permissions", "mode"],
            None,
            Some("0644"),
        ),
        (&overlay, &["volume", "name"], None, Some("demo-web.qcow2")),
        (&overlay, &["volume", "capacity"], None, Some("3221225472")),
        (
            &overlay,
            &["volume", "capacity"],
            Some("unit"),
            Some("bytes"),
        ),
        (
            &overlay,
            &["volume", "target", "format"],
            Some("type"),
            Some("qcow2"),
        ),
        (
            &overlay,
            &["volume", "backingStore", "path"],
            None,
            Some("/var/lib/libvirt/images/envctl-box-x-1.img"),
        ),
        (
            &overlay,
            &["volume", "backingStore", "format"],
            Some("type"),
            Some("qcow2"),
        ),
        (&pool, &["pool"], Some("type"), Some("dir")),
        (&pool, &["pool", "name"], None, Some("default")),
        (
            &pool,
            &["pool", "target", "path"],
            None,
            Some("/var/lib/libvirt/images"),
        ),
    ];
    for (xml, path, attr, expected) in cases {
        assert_eq!(
            pick(xml, path, *attr).as_deref(),
            *expected,
            "{path:?} {attr:?} in\n{xml}"
        );
    }
    assert_eq!(volume_format(&overlay).as_deref(), Some("qcow2"));
}

#[test]
fn other_networks_are_read_with_any_mask_notation() {
    let cases = [
        ("<network><name>a</name><ip address='192.168.122.1' netmask='255.255.255.0'/></network>", vec!["192.168.122.1/24"]),
        ("<network><name>b</name><ip address='10.1.0.1' prefix='16'/></network>", vec!["10.1.0.1/16"]),
        ("<network><name>c</name><ip address='10.2.0.1'/></network>", vec!["10.2.0.1/8"]),
        ("<network><name>d</name><ip family='ipv6' address='fd00::1' prefix='64'/></network>", vec![]),
        ("<network><name>e</name></network>", vec![]),
        (
            "<network><name>f</name><ip address='10.3.0.1' prefix='24'/><ip address='10.4.0.1' prefix='24'/></network>",
            vec!["10.3.0.1/24", "10.4.0.1/24"],
        ),
    ];
    for (xml, expected) in cases {
        let info = parse_network(xml).expect("parses");
        let expected: Vec<Ipv4Network> = expected.iter().map(|ip| ip.parse().unwrap()).collect();
        assert_eq!(info.ips, expected, "{xml}");
        assert_eq!(info.owner, None);
    }
    assert_eq!(parse_network("not xml"), None);
}

#[test]
fn owners_are_described_for_errors() {
    let cases = [
        (
            Some(owner(None)),
            "belongs to envctl environment `demo` (id 0123abcd) of /home/me/demo & co",
        ),
        (
            Some(Owner {
                env_id: "ffff".to_string(),
                ..Owner::default()
            }),
            "belongs to another envctl environment (id ffff)",
        ),
        (None, "was not made by envctl"),
    ];
    for (owner, expected) in cases {
        assert_eq!(describe_owner(owner.as_ref()), expected);
    }
}

#[test]
fn text_is_escaped() {
    assert_eq!(esc(r#"a&b<c>d'e"f"#), "a&amp;b&lt;c&gt;d&apos;e&quot;f");
}
