//! The parity playbook (`tests/parity/`) and what the tests check with it: the service it
//! starts answers, from the host and from other machines, and what it records on each
//! machine is the same whichever provider runs the machine.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Instant;

use super::{page_from_host, page_from_machine, repo, show, TestEnv};

/// The port the parity playbook's server listens on.
pub const PORT: u16 = 8090;

/// What `facts.json` records that must not differ between providers.
pub const COMPARED: [&str; 6] = ["service_mgr", "hostname", "fqdn", "ip", "user", "sudo"];

pub fn playbook() -> PathBuf {
    repo().join("tests/parity/playbook.yml")
}

/// Runs `playbook` with `ansible-playbook` against the environment's generated inventory,
/// as `envctl provision` runs its own (the JSON form; host keys checked against
/// `.envctl/known_hosts`).
pub fn run_playbook(env: &TestEnv, playbook: &Path) -> Output {
    Command::new("ansible-playbook")
        .arg("--inventory")
        .arg(env.state_dir().join("inventory.json"))
        .arg(playbook)
        .current_dir(&env.dir)
        .env("ANSIBLE_HOST_KEY_CHECKING", "True")
        .env("ANSIBLE_RETRY_FILES_ENABLED", "False")
        // As environments/example/ansible.cfg: VMs under TCG answer slowly.
        .env("ANSIBLE_TIMEOUT", "60")
        .env("ANSIBLE_PIPELINING", "True")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// Runs the parity playbook against the environment and fails the test, with Ansible's
/// output, unless every step passes on every machine.
pub fn run(env: &TestEnv) {
    let started = Instant::now();
    let output = run_playbook(env, &playbook());
    assert!(
        output.status.success(),
        "the parity playbook failed:\n{}",
        show(&output)
    );
    eprintln!("parity playbook: {:.0} s", started.elapsed().as_secs_f64());
}

/// What the parity playbook recorded on `machine`.
pub fn facts(env: &TestEnv, machine: &str) -> serde_json::Value {
    let text = env.ssh(machine, "cat /var/lib/envctl-parity/facts.json");
    serde_json::from_str(&text).unwrap_or_else(|err| panic!("{machine}: facts.json: {err}\n{text}"))
}

/// Each machine's recorded facts, by name, after checking what every run must show:
/// systemd manages services, nginx starts at boot, the machine's manifest address is
/// on it, and the next machine answered by hostname with its page of stage 2.
pub fn checked_facts(env: &TestEnv, machines: &[&str]) -> BTreeMap<String, serde_json::Value> {
    let mut all = BTreeMap::new();
    for machine in machines {
        let facts = facts(env, machine);
        let field = |name: &str| facts[name].as_str().unwrap_or_default().to_string();
        assert_eq!(field("service_mgr"), "systemd", "{machine}: {facts:#}");
        assert_eq!(field("nginx_enabled"), "enabled", "{machine}: {facts:#}");
        assert_eq!(field("sudo"), "passwordless", "{machine}: {facts:#}");
        assert_eq!(facts["ip_on_machine"], true, "{machine}: {facts:#}");
        let page = field("peer_page");
        assert!(
            page.contains(&format!("machine {} ", field("peer"))) && page.contains("stage 2"),
            "{machine}: the next machine answered {page:?}"
        );
        all.insert(machine.to_string(), facts);
    }
    all
}

/// Fails the test, naming each difference, unless the facts of [`COMPARED`] are the same
/// under both providers for every machine.
pub fn assert_same_facts(
    before: &BTreeMap<String, serde_json::Value>,
    after: &BTreeMap<String, serde_json::Value>,
) {
    let mut differences = Vec::new();
    for (machine, facts) in before {
        for name in COMPARED {
            let (was, is) = (&facts[name], &after[machine][name]);
            if was != is {
                differences.push(format!("{machine} {name}: {was} then {is}"));
            }
        }
    }
    assert!(
        differences.is_empty(),
        "the providers differ:\n  {}",
        differences.join("\n  ")
    );
}

/// Fails the test unless every machine's page (name, address, hostname) answers this host
/// at its address, and the next machine at its hostname, with the configuration the
/// handler put in force.
pub fn assert_pages_answer(env: &TestEnv, machines: &[(&str, &str, &str)]) {
    for (index, (name, ip, hostname)) in machines.iter().enumerate() {
        let expected = format!("machine {name} ({hostname}, {ip}), stage 2");
        page_from_host(ip, PORT, &expected);
        let (asker, ..) = machines[(index + 1) % machines.len()];
        page_from_machine(env, asker, &format!("http://{hostname}:{PORT}/"), &expected);
    }
}
