//! The parity playbook (`tests/parity/`) on the real Docker Engine, through `envctl up`:
//! containers that boot systemd run a playbook that installs, configures, restarts and
//! checks a real service exactly as VMs do (`libvirt_e2e.rs` runs the same playbook on
//! libvirt), and the service comes back by itself after `halt` and `up`. Subnet
//! 10.231.47.0/24.

mod common;

use common::parity;
use common::{require_ansible, require_docker, TestEnv};

/// Name, address, hostname.
const MACHINES: [(&str, &str, &str); 2] = [
    ("p1", "10.231.47.11", "p1.parity.test"),
    ("p2", "10.231.47.12", "p2.parity.test"),
];

fn machinefile() -> String {
    let mut text = String::from("name: parity\nnetwork: {subnet: 10.231.47.0/24}\nmachines:\n");
    for (name, ip, hostname) in MACHINES {
        text.push_str(&format!(
            "  - {{name: {name}, ip: {ip}, hostname: {hostname}}}\n"
        ));
    }
    text.push_str(&format!(
        "provision:\n  playbook: {}\n",
        parity::playbook().display()
    ));
    text
}

#[test]
fn docker_parity_playbook_passes_and_its_service_survives_halt_and_up() {
    require_docker();
    require_ansible();
    let env = TestEnv::copy_of("example", |_| machinefile());
    let names: Vec<&str> = MACHINES.iter().map(|(name, ..)| *name).collect();

    // `up` runs the parity playbook: every step passes on every machine.
    env.ok(&["up"]);
    let facts = parity::checked_facts(&env, &names);
    for (name, ip, hostname) in MACHINES {
        let facts = &facts[name];
        assert_eq!(facts["fqdn"], hostname, "{name}: {facts:#}");
        assert_eq!(facts["hostname"], name, "{name}: {facts:#}");
        assert_eq!(facts["ip"], ip, "{name}: {facts:#}");
        assert_eq!(facts["user"], "vagrant", "{name}: {facts:#}");
    }
    parity::assert_pages_answer(&env, &MACHINES);

    // halt stops systemd; up (no provisioning) boots it again and nginx, enabled at
    // boot, starts by itself with the configuration of stage 2.
    env.ok(&["halt"]);
    assert!(
        env.states().iter().all(|(_, state)| state == "stopped"),
        "{:?}",
        env.states()
    );
    env.ok(&["up", "--no-provision"]);
    parity::assert_pages_answer(&env, &MACHINES);
    for name in names {
        assert_eq!(env.ssh(name, "systemctl is-active nginx"), "active");
    }
}
