//! The script's shape, without a machine. `docker_tests` runs it on a real sshd.

use envctl_provider::{GuestAddress, HostKey, ImageSource, MachineSpec};

use super::script::{self, Script};

const HOST_PUBLIC: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIN1YdxBpNlzxDqfJyw/QKow1F+wvG9hXGoqiysfJOn5Y host";

fn spec() -> MachineSpec {
    MachineSpec {
        name: "web1".into(),
        hostname: "web1.example.test".into(),
        ip: "192.168.56.11".parse().unwrap(),
        cpus: 1,
        memory_mib: 512,
        user: "vagrant".into(),
        aliases: vec![],
        image: ImageSource::DockerImage("x".into()),
        authorized_key: "ssh-ed25519 AAAAenv envctl example".into(),
        host_key: HostKey {
            private_openssh:
                "-----BEGIN OPENSSH PRIVATE KEY-----\nSECRET\n-----END OPENSSH PRIVATE KEY-----\n"
                    .into(),
            public_openssh: HOST_PUBLIC.into(),
        },
        init: envctl_provider::Init::default(),
        forwarded_ports: Vec::new(),
        binds: Vec::new(),
        user_ids: None,
    }
}

fn address() -> GuestAddress {
    GuestAddress {
        mac: "08:00:27:aa:bb:cc".into(),
        ip: "192.168.56.11".parse().unwrap(),
        prefix: 24,
    }
}

fn is_valid_shell(text: &str) -> bool {
    std::process::Command::new("sh")
        .arg("-n")
        .arg("-c")
        .arg(text)
        .status()
        .unwrap()
        .success()
}

/// The script carries the keys, hostname and address, and is valid shell whole and cut
/// after any step.
#[test]
fn the_script_replaces_keys_and_sets_the_hostname() {
    let script = Script::new(&spec(), None);
    let text = script.full();
    assert!(text.contains(
        "printf '%s\\n' 'ssh-ed25519 AAAAenv envctl example' | put 600 \"$user:$group\" \"$home/.ssh/authorized_keys\""
    ));
    assert!(text.contains("SECRET\n-----END OPENSSH PRIVATE KEY-----\nENVCTL_HOST_KEY\n"));
    assert!(text.contains(
        "printf '%s\\n' '192.168.56.11 web1.example.test web1'; } | put 644 0:0 /etc/hosts"
    ));
    assert!(!text.contains("MACAddress"));
    let with_address = Script::new(&spec(), Some(&address()));
    assert!(with_address
        .full()
        .contains("ip -4 addr replace 192.168.56.11/24 dev \"$iface\""));
    assert!(with_address
        .marker()
        .contains("address=192.168.56.11/24@08:00:27:aa:bb:cc"));
    for script in [&script, &with_address] {
        let steps = script.step_names().len();
        for cut in 0..=steps {
            assert!(is_valid_shell(&script.cut_after(cut)), "cut after {cut}");
        }
    }
}

/// The order that keeps every cut reachable: the environment's key before the host key,
/// sshd reloaded after its configuration, the marker last and only in the whole script.
#[test]
fn steps_come_in_an_order_that_survives_any_cut() {
    let script = Script::new(&spec(), Some(&address()));
    let names = script.step_names();
    let at = |name: &str| names.iter().position(|n| *n == name).unwrap();
    assert!(at("authorize") < at("host_key"));
    assert!(at("sshd_config") < at("reload_sshd"));
    assert!(at("address") < at("reload_sshd"));
    assert_eq!(names.last(), Some(&"marker"));
    let steps = names.len();
    assert!(!script.cut_after(steps - 1).contains(script::MARKER_PATH));
    assert!(!script.cut_after(steps - 1).contains(script::DONE));
    assert!(script.full().contains(script::MARKER_PATH));
}

/// A Vagrant box's user has the password `vagrant`: the drop-in that turns passwords and
/// root logins off must sort before anything else in sshd_config.d (sshd keeps the first
/// value it reads), and networkd must take the DHCP search domain.
#[test]
fn the_script_hardens_sshd_and_takes_the_dhcp_domain() {
    let text = Script::new(&spec(), None).full();
    let dropin = text
        .lines()
        .find(|line| line.ends_with("/etc/ssh/sshd_config.d/00-envctl.conf"))
        .expect("no sshd drop-in");
    for setting in [
        "'PasswordAuthentication no'",
        "'KbdInteractiveAuthentication no'",
        "'PermitRootLogin no'",
    ] {
        assert!(dropin.contains(setting), "{setting} missing from {dropin}");
    }
    assert!(text.contains("'[DHCPv4]' 'UseDomains=yes'"));
    assert!(text.contains("resolvectl domain"));
    // Nothing the script runs may read the rest of it from standard input.
    assert!(text.ends_with("main </dev/null\n"));
}

/// The marker says what was established: a new hostname or key means running again.
#[test]
fn the_marker_names_what_the_script_established() {
    let marker = Script::new(&spec(), None).marker().to_string();
    assert!(marker.starts_with("envctl-bootstrap 1 machine=web1 hostname=web1.example.test"));
    assert!(marker.contains("host-key=SHA256:WkvqjnyPAeC0cbPErYiGP9vqHdgL1MqqvPdIe3lvHgI"));
    let mut renamed = spec();
    renamed.hostname = "www1.example.test".into();
    assert_ne!(Script::new(&renamed, None).marker(), marker);
}

#[test]
fn a_failure_names_the_last_step_started() {
    let stdout = "envctl-step: authorize\nenvctl-step: host_key\nenvctl-step: hostname\n";
    assert_eq!(script::failed_step(stdout), Some("hostname"));
    assert_eq!(script::failed_step(""), None);
}
