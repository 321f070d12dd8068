//! A libvirt domain stopped or removed behind envctl's back, on real libvirtd and QEMU
//! under TCG: `status` says so and `up` repairs it. (The Docker side of the same fault,
//! and the other faults, are in `faults.rs`.) Subnet 10.231.11.0/24.

mod common;

use std::process::Command;

use common::{libvirt_objects, require_libvirt, show, TestEnv};

const MACHINEFILE: &str = "\
name: faultsvm
provider: libvirt
network: {subnet: 10.231.11.0/24}
defaults:
  libvirt: {box: debian/bookworm64, accel: tcg}
machines:
  - {name: m1, ip: 10.231.11.11, hostname: m1.faultsvm.test}
";

fn virsh(args: &[&str]) {
    let output = Command::new("virsh")
        .args(["-c", "qemu:///system"])
        .args(args)
        .output()
        .unwrap();
    assert!(output.status.success(), "virsh {args:?}: {}", show(&output));
}

fn assert_up_and_reachable(env: &TestEnv) {
    assert_eq!(env.states(), [("m1".to_string(), "running".to_string())]);
    assert_eq!(env.ssh("m1", "hostname -f").trim(), "m1.faultsvm.test");
    common::assert_only_environment_key(env, "m1");
}

#[test]
fn a_domain_stopped_or_removed_behind_envctls_back_is_repaired() {
    let box_file = require_libvirt();
    let mut env = TestEnv::copy_of("example", |_| MACHINEFILE.to_string());
    env.vars
        .push(("VAGRANT_HOME".into(), env.dir.join("no-vagrant")));
    env.ok(&[
        "box",
        "add",
        "debian/bookworm64",
        box_file.to_str().unwrap(),
    ]);
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
    assert!(libvirt_objects("list", "faultsvm-").is_empty());
    assert!(libvirt_objects("net-list", "faultsvm-").is_empty());
    let volumes = Command::new("virsh")
        .args(["-c", "qemu:///system", "vol-list", "default"])
        .output()
        .unwrap();
    let volumes = String::from_utf8_lossy(&volumes.stdout);
    assert!(!volumes.contains("faultsvm-"), "volumes left:\n{volumes}");
}
