//! A box with cloud-init, on real libvirtd and QEMU under TCG: the machines come up from
//! the NoCloud seed alone (the box has no user `vagrant` and trusts no key, so nothing
//! else could let envctl in), with the environment's key, host keys and hostnames, and
//! resolve each other by single-label names. Subnet 10.231.12.0/24.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::{assert_nothing_left_in_libvirt, libvirt_env, require_cloud_init_box, virsh, TestEnv};

const MACHINEFILE: &str = "\
name: cloudvm
provider: libvirt
network: {subnet: 10.231.12.0/24}
defaults:
  libvirt: {box: envctl/bookworm-cloud, accel: tcg}
machines:
  - {name: c1, ip: 10.231.12.11, hostname: c1.cloudvm.test}
  - {name: c2, ip: 10.231.12.12, hostname: c2.cloudvm.test}
";

fn assert_machine_of_the_environment(env: &TestEnv, name: &str, ip: &str) {
    assert_eq!(
        env.ssh(name, "hostname -f").trim(),
        format!("{name}.cloudvm.test")
    );
    assert_eq!(env.ssh(name, "hostname").trim(), name);
    let addresses = env.ssh(name, "ip -4 -o addr show scope global");
    assert!(addresses.contains(&format!("inet {ip}/24")), "{addresses}");
    common::assert_only_environment_key(env, name);
    common::assert_sshd_hardened(env, name);
}

#[test]
fn a_cloud_init_box_comes_up_from_the_seed() {
    let env = libvirt_env(
        MACHINEFILE,
        "envctl/bookworm-cloud",
        &require_cloud_init_box(),
    );
    env.ok(&["up"]);

    for (name, ip) in [("c1", "10.231.12.11"), ("c2", "10.231.12.12")] {
        assert_machine_of_the_environment(&env, name, ip);
        // cloud-init did it, from the NoCloud seed.
        let status = env.ssh(name, "cloud-init status --wait");
        assert!(status.contains("status: done"), "{name}: {status}");
        let source = env.ssh(name, "cat /run/cloud-init/instance-data.json");
        assert!(source.contains("\"nocloud\""), "{name}: {source}");
    }
    // Single-label names resolve through the network's DNS and the seed's search domain.
    let found = env.ssh("c1", "getent hosts c2");
    assert!(found.starts_with("10.231.12.12 "), "{found}");

    // The seed holds the host's private key: only root (and QEMU, while it runs) reads it.
    let seed = virsh(&["vol-path", "--pool", "default", "cloudvm-c1-seed.img"]);
    let mode = std::fs::metadata(seed.trim()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{}", seed.trim());

    // A reboot keeps the key: cloud-init's once-per-instance steps do not run again.
    env.ok(&["halt"]);
    env.ok(&["up"]);
    assert_machine_of_the_environment(&env, "c1", "10.231.12.11");

    env.ok(&["destroy", "--force"]);
    assert_nothing_left_in_libvirt("cloudvm-");
}
