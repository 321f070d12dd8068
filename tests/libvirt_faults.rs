//! A libvirt domain stopped or removed behind envctl's back, on real libvirtd and QEMU
//! under TCG: `status` says so and `up` repairs it. (The Docker side of the same fault,
//! and the other faults, are in `faults.rs`.) Subnet 10.231.11.0/24.

mod common;

use common::{assert_nothing_left_in_libvirt, libvirt_env, require_libvirt, virsh, TestEnv};

const MACHINEFILE: &str = "\
name: faultsvm
provider: libvirt
network: {subnet: 10.231.11.0/24}
defaults:
  libvirt: {box: debian/bookworm64, accel: tcg}
machines:
  - {name: m1, ip: 10.231.11.11, hostname: m1.faultsvm.test}
";

fn assert_up_and_reachable(env: &TestEnv) {
    assert_eq!(env.states(), [("m1".to_string(), "running".to_string())]);
    assert_eq!(env.ssh("m1", "hostname -f").trim(), "m1.faultsvm.test");
    common::assert_only_environment_key(env, "m1");
}

#[test]
fn a_domain_stopped_or_removed_behind_envctls_back_is_repaired() {
    let env = libvirt_env(MACHINEFILE, "debian/bookworm64", &require_libvirt());
    env.ok(&["up"]);
    assert_up_and_reachable(&env);

    // Stopped: status says so, up starts it again.
    virsh(&["destroy", "faultsvm-m1"]);
    assert_eq!(env.states(), [("m1".to_string(), "stopped".to_string())]);
    env.ok(&["up"]);
    assert_up_and_reachable(&env);

    // Removed (its disk left behind, as `virsh undefine` does): up makes it anew from
    // the box, which shows a host key of its own at first contact.
    virsh(&["destroy", "faultsvm-m1"]);
    virsh(&["undefine", "faultsvm-m1"]);
    assert_eq!(
        env.states(),
        [("m1".to_string(), "not created".to_string())]
    );
    env.ok(&["up"]);
    assert_up_and_reachable(&env);

    env.ok(&["destroy", "--force"]);
    assert_nothing_left_in_libvirt("faultsvm-");
}
