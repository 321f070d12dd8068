//! The whole life of the example environment (web1, web2, db1 on 192.168.56.0/24) against
//! the stand-in VBoxManage, compared call by call with the golden transcripts in
//! tests/golden (see tests/golden/README.md for the manual sections each call was checked
//! against). `UPDATE_GOLDEN=1 cargo test -p envctl-virtualbox` rewrites them.

mod support;

use envctl_provider::{Access, GuestAddress, MachineUp, Phase, Provider, SshEndpoint};
use envctl_virtualbox::HostOnlyKind;
use support::{bind, example, Fake, Phases, V6, V7};

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

/// (name, host path) pairs as `Fake::shares` gives them.
fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(name, path)| (name.to_string(), path.to_string()))
        .collect()
}

/// web1's shared folders over its life, as tests/golden/vbox{7,6}-shares.txt record: made
/// permanent with `sharedfolder add` when the VM is off; brought to a changed list on the
/// next `up` from off (a dropped share removed, a moved one removed and added again, a new
/// one added, the user's own `mine` left alone); added as `--transient` to the running VM,
/// which keeps what it has (a transient share moved again is made anew); made permanent
/// on the `up` after a halt.
async fn shares_life(fake: &Fake) {
    let (env, mut machines) = example(fake);
    let provider = fake.provider(HostOnlyKind::Interface).await;
    provider.preflight(&env, &machines).await.unwrap();
    provider
        .prepare(&env, &machines, &Phases::default())
        .await
        .unwrap();
    let permanent = |fake: &Fake| fake.shares("example-web1", "shared_folders");
    let transient = |fake: &Fake| fake.shares("example-web1", "transient_folders");

    fake.mark("up with two shares");
    machines[0].binds = vec![bind(fake, "envctl0", "a"), bind(fake, "envctl1", "b")];
    provider
        .up(&env, &machines[0], &Phases::default())
        .await
        .unwrap();
    assert_eq!(
        permanent(fake),
        pairs(&[("envctl0", "$TMP/shares/a"), ("envctl1", "$TMP/shares/b")])
    );

    fake.mark("halt; the user shares a folder of their own");
    provider.halt(&env, "web1").await.unwrap();
    let mine = fake.share_dir("mine").display().to_string();
    let own = ["sharedfolder", "add", "example-web1", "--name", "mine"];
    let out = fake.vboxmanage(&[&own[..], &["--hostpath", &mine]].concat());
    assert!(out.status.success(), "{out:?}");

    fake.mark("up with envctl0 dropped, envctl1 moved, envctl2 new");
    machines[0].binds = vec![bind(fake, "envctl1", "c"), bind(fake, "envctl2", "d")];
    provider
        .up(&env, &machines[0], &Phases::default())
        .await
        .unwrap();
    assert_eq!(
        permanent(fake),
        pairs(&[
            ("mine", "$TMP/shares/mine"),
            ("envctl1", "$TMP/shares/c"),
            ("envctl2", "$TMP/shares/d"),
        ])
    );

    fake.mark("up, running, envctl2 moved and envctl3 new");
    machines[0].binds[1] = bind(fake, "envctl2", "f");
    machines[0].binds.push(bind(fake, "envctl3", "e"));
    provider
        .up(&env, &machines[0], &Phases::default())
        .await
        .unwrap();
    assert_eq!(
        transient(fake),
        pairs(&[("envctl2", "$TMP/shares/f"), ("envctl3", "$TMP/shares/e")])
    );
    assert_eq!(
        permanent(fake).len(),
        3,
        "a running VM's permanent shares stay"
    );

    fake.mark("up, running, nothing missing");
    provider
        .up(&env, &machines[0], &Phases::default())
        .await
        .unwrap();

    fake.mark("up, running, envctl3 moved again: its transient share is made anew");
    machines[0].binds[2] = bind(fake, "envctl3", "g");
    provider
        .up(&env, &machines[0], &Phases::default())
        .await
        .unwrap();
    assert_eq!(
        transient(fake),
        pairs(&[("envctl2", "$TMP/shares/f"), ("envctl3", "$TMP/shares/g")])
    );

    fake.mark("halt, then up: the transient shares become permanent");
    provider.halt(&env, "web1").await.unwrap();
    assert_eq!(transient(fake), pairs(&[]), "powered off, they are gone");
    provider
        .up(&env, &machines[0], &Phases::default())
        .await
        .unwrap();
    assert_eq!(
        permanent(fake),
        pairs(&[
            ("mine", "$TMP/shares/mine"),
            ("envctl1", "$TMP/shares/c"),
            ("envctl2", "$TMP/shares/f"),
            ("envctl3", "$TMP/shares/g"),
        ])
    );

    fake.mark("destroy");
    provider.destroy(&env, "web1").await.unwrap();
    provider.teardown(&env).await.unwrap();
}

#[tokio::test]
async fn virtualbox_golden_shared_folders() {
    for (version, golden) in [(V7, "vbox7-shares.txt"), (V6, "vbox6-shares.txt")] {
        let fake = Fake::new(&format!("shares-{version}"), version);
        shares_life(&fake).await;
        fake.assert_golden(golden);
        fake.cleanup();
    }
}
