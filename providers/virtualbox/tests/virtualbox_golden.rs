//! The whole life of the example environment (web1, web2, db1 on 192.168.56.0/24) against
//! the stand-in VBoxManage, compared call by call with the golden transcripts in
//! tests/golden (see tests/golden/README.md for the manual sections each call was checked
//! against). `UPDATE_GOLDEN=1 cargo test -p envctl-virtualbox` rewrites them.

mod support;

use envctl_provider::{Access, GuestAddress, MachineUp, Phase, Provider, SshEndpoint};
use envctl_virtualbox::HostOnlyKind;
use support::{example, Fake, Phases, V6, V7};

async fn whole_life(fake: &Fake, host_only: HostOnlyKind) -> Vec<MachineUp> {
    let (env, machines) = example(fake);
    let provider = fake.provider(host_only).await;
    let phases = Phases::default();

    fake.mark("preflight");
    provider
        .preflight(&env, &machines)
        .await
        .expect("preflight");
    fake.mark("prepare");
    provider
        .prepare(&env, &machines, &phases)
        .await
        .expect("prepare");
    fake.mark("up");
    let mut ups = Vec::new();
    for machine in &machines {
        ups.push(provider.up(&env, machine, &phases).await.expect("up"));
    }
    let running: Vec<_> = ["example-web1", "example-web2", "example-db1"]
        .iter()
        .map(|name| fake.vm(name).expect("the VM exists")["state"].clone())
        .collect();
    assert_eq!(running, ["running", "running", "running"]);

    fake.mark("halt");
    for machine in &machines {
        provider.halt(&env, &machine.name).await.expect("halt");
    }
    assert_eq!(fake.vm("example-db1").unwrap()["state"], "poweroff");

    fake.mark("destroy");
    for machine in &machines {
        provider
            .destroy(&env, &machine.name)
            .await
            .expect("destroy");
    }
    fake.mark("teardown");
    provider.teardown(&env).await.expect("teardown");

    let state = fake.state();
    assert_eq!(state["vms"], serde_json::json!([]), "no VM is left");
    assert_eq!(
        state["hostonlyifs"],
        serde_json::json!([]),
        "no host-only interface is left"
    );
    assert_eq!(
        state["hostonlynets"],
        serde_json::json!([]),
        "no host-only network is left"
    );
    assert_eq!(
        state["dhcpservers"],
        serde_json::json!([]),
        "no DHCP server is left"
    );
    assert_eq!(
        state["global_extradata"],
        serde_json::json!({}),
        "no global extradata is left"
    );

    let seen = phases.phases();
    let of = |phase: Phase| seen.iter().filter(|(_, p)| *p == phase).count();
    assert_eq!(of(Phase::CreatingNetwork), 1);
    assert_eq!(
        of(Phase::BuildingImage),
        3,
        "every machine of the box hears of its import"
    );
    assert_eq!(of(Phase::Creating), 3);
    assert_eq!(of(Phase::Starting), 3);
    ups
}

/// What `up` returned for web1: the forwarded port of its NAT rule and its NIC 2 address.
fn check_web1(up: &MachineUp) {
    assert_eq!(up.endpoint.host, "127.0.0.1");
    assert_ne!(up.endpoint.port, 0);
    assert_eq!(up.access, Access::VagrantInsecureKey);
    assert!(up.changed);
    assert_eq!(
        up.guest_address,
        Some(GuestAddress {
            mac: "08:00:27:a8:38:0b".to_string(),
            ip: "192.168.56.11".parse().unwrap(),
            prefix: 24,
        })
    );
    assert!(
        up.id.starts_with("00000000-0000-4000-8000-"),
        "the VM's UUID, got {}",
        up.id
    );
}

#[tokio::test]
async fn virtualbox_golden_7x_host_only_network() {
    let fake = Fake::new("golden-7-net", V7).with("FAKE_VBOX_VMNET", "1");
    let ups = whole_life(&fake, HostOnlyKind::Network).await;
    check_web1(&ups[0]);
    fake.assert_golden("vbox7-hostonlynet.txt");
    fake.cleanup();
}

#[tokio::test]
async fn virtualbox_golden_7x_host_only_interface() {
    let fake = Fake::new("golden-7-if", V7);
    let ups = whole_life(&fake, HostOnlyKind::Interface).await;
    check_web1(&ups[0]);
    fake.assert_golden("vbox7-hostonlyif.txt");
    fake.cleanup();
}

#[tokio::test]
async fn virtualbox_golden_6x() {
    let fake = Fake::new("golden-6", V6);
    let ups = whole_life(&fake, HostOnlyKind::Interface).await;
    check_web1(&ups[0]);
    fake.assert_golden("vbox6-hostonlyif.txt");
    fake.cleanup();
}

#[tokio::test]
async fn virtualbox_up_reports_the_port_it_forwarded() {
    let fake = Fake::new("port", V7);
    let (env, machines) = example(&fake);
    let provider = fake.provider(HostOnlyKind::Interface).await;
    provider.preflight(&env, &machines).await.unwrap();
    provider
        .prepare(&env, &machines, &Phases::default())
        .await
        .unwrap();
    let up = provider
        .up(&env, &machines[0], &Phases::default())
        .await
        .unwrap();
    let vm = fake.vm("example-web1").unwrap();
    assert_eq!(
        vm["nics"][0]["rules"][0],
        format!("envctl-ssh,tcp,127.0.0.1,{},,22", up.endpoint.port)
    );
    assert_eq!(vm["nics"][1]["mac"], "080027A8380B");
    assert_eq!(vm["uuid"], up.id.as_str());
    assert_eq!(vm["extradata"]["envctl/machine"], "web1");

    // Up again: already running, same port, nothing done.
    let again = provider
        .up(&env, &machines[0], &Phases::default())
        .await
        .unwrap();
    assert!(!again.changed);
    assert_eq!(
        again.endpoint,
        SshEndpoint {
            host: "127.0.0.1".into(),
            port: up.endpoint.port
        }
    );
    fake.cleanup();
}

/// Forwarded ports are NAT rules `envctl-port<N>`: set with `modifyvm` when the VM is
/// off, and on a running VM brought to the Machinefile's list with `controlvm <vm> natpf1`
/// (a changed rule deleted and added again, a new one added, an unchanged one left), as
/// tests/golden/vbox7-ports-live.txt records.
#[tokio::test]
async fn virtualbox_forwarded_ports_are_nat_rules_kept_in_step() {
    let fake = Fake::new("ports-live", V7);
    let (env, mut machines) = example(&fake);
    let provider = fake.provider(HostOnlyKind::Interface).await;
    provider.preflight(&env, &machines).await.unwrap();
    provider
        .prepare(&env, &machines, &Phases::default())
        .await
        .unwrap();
    provider
        .up(&env, &machines[0], &Phases::default())
        .await
        .unwrap();
    let rules = |fake: &Fake| fake.vm("example-web1").unwrap()["nics"][0]["rules"].clone();
    assert_eq!(rules(&fake)[1], "envctl-port0,tcp,127.0.0.1,18080,,8080");

    fake.mark("up, running, forwards changed");
    let web1 = &mut machines[0];
    let mut second = web1.forwarded_ports[0];
    second.guest = 53;
    second.host = 5353;
    second.host_ip = "0.0.0.0".parse().unwrap();
    second.protocol = envctl_provider::Protocol::Udp;
    web1.forwarded_ports[0].host = 18081;
    web1.forwarded_ports.push(second);
    provider
        .up(&env, &machines[0], &Phases::default())
        .await
        .unwrap();
    let now = rules(&fake);
    let now: Vec<&str> = now
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|rule| rule.as_str())
        .filter(|rule| rule.starts_with("envctl-port"))
        .collect();
    assert_eq!(
        now,
        [
            "envctl-port0,tcp,127.0.0.1,18081,,8080",
            "envctl-port1,udp,0.0.0.0,5353,,53"
        ]
    );

    fake.mark("up, running, nothing changed");
    provider
        .up(&env, &machines[0], &Phases::default())
        .await
        .unwrap();

    fake.mark("halt, then up with one forward fewer");
    provider.halt(&env, "web1").await.unwrap();
    machines[0].forwarded_ports.pop();
    provider
        .up(&env, &machines[0], &Phases::default())
        .await
        .unwrap();
    let last = rules(&fake);
    assert_eq!(last[1], "envctl-port0,tcp,127.0.0.1,18081,,8080");
    assert_eq!(last.as_array().unwrap().len(), 2, "{last}");

    fake.mark("destroy");
    provider.destroy(&env, "web1").await.unwrap();
    provider.teardown(&env).await.unwrap();
    assert!(fake.vm("example-web1").is_none());
    fake.assert_golden("vbox7-ports-live.txt");
    fake.cleanup();
}
