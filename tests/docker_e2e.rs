//! End to end on the real Docker Engine and the real `ansible-playbook`: the example
//! environment, unchanged, through up, provision, halt, up and destroy.

mod common;

use std::fs;

use common::{docker_objects, require_ansible, require_docker, show, TestEnv};

const MACHINES: [(&str, &str, &str); 3] = [
    ("web1", "192.168.56.11", "web1.example.test"),
    ("web2", "192.168.56.12", "web2.example.test"),
    ("db1", "192.168.56.13", "db1.example.test"),
];

/// The lines of each machine's record of playbook runs.
fn runs(env: &TestEnv) -> Vec<Vec<String>> {
    MACHINES
        .iter()
        .map(|(name, ..)| {
            env.ssh(name, "cat /var/lib/envctl-example/runs")
                .lines()
                .map(str::to_string)
                .collect()
        })
        .collect()
}

/// Every machine saw the same number of runs, and each run covered all three machines
/// with one id: the playbook ran once against all of them, `count` times in all.
fn assert_ran_once_against_all(env: &TestEnv, count: usize) {
    let runs = runs(env);
    for (lines, (name, ..)) in runs.iter().zip(MACHINES) {
        assert_eq!(lines.len(), count, "{name} recorded {lines:?}");
        for line in lines {
            assert!(
                line.ends_with(" db1,web1,web2"),
                "{name}: run {line} did not cover all machines"
            );
        }
    }
    for run in 0..count {
        let ids: Vec<&str> = runs
            .iter()
            .map(|lines| lines[run].split(' ').next().unwrap())
            .collect();
        assert!(
            ids.iter().all(|id| *id == ids[0]),
            "run {run} has several ids: {ids:?}"
        );
    }
}

#[test]
fn docker_example_environment_round_trip() {
    require_docker();
    require_ansible();
    let env = TestEnv::copy_of("example", |text| text);

    env.ok(&["up"]);
    let label = format!("envctl.env-id={}", env.env_id());
    assert_eq!(docker_objects("container", &label).len(), 3);
    assert_eq!(docker_objects("network", &label).len(), 1);

    // Each machine is who the Machinefile says, over SSH with the generated key and
    // host keys pinned in .envctl/known_hosts.
    for (name, ip, hostname) in MACHINES {
        assert_eq!(env.ssh(name, "hostname -f"), hostname);
        assert!(
            env.ssh(name, "ip -4 -o addr show")
                .contains(&format!("inet {ip}/24")),
            "{name} lacks {ip}"
        );
        assert_eq!(env.ssh(name, "id -un"), "vagrant");
        // Machines resolve each other by hostname and by name.
        for (other, other_ip, other_hostname) in MACHINES {
            for lookup in [other, other_hostname] {
                let seen = env.ssh(name, &format!("getent hosts {lookup}"));
                assert!(
                    seen.starts_with(other_ip),
                    "{name} resolves {lookup} to {seen:?}, not {other_ip}"
                );
            }
        }
    }

    // The playbook ran exactly once against all three, with the groups, host vars and
    // extra vars of the Machinefile.
    assert_ran_once_against_all(&env, 1);
    assert_eq!(
        env.ssh("web1", "cat /var/lib/envctl-example/role"),
        "web 8080"
    );
    assert_eq!(
        env.ssh("web2", "cat /var/lib/envctl-example/role"),
        "web 8081"
    );
    assert_eq!(env.ssh("db1", "cat /var/lib/envctl-example/role"), "db");
    assert_eq!(
        env.ssh("db1", "cat /var/lib/envctl-example/greeting"),
        "hello from envctl"
    );
    // The web servers serve their page on their http_port, to the host and by hostname.
    common::assert_example_pages_answer(&env);

    // The inventory is written where the Machinefile asks, and is what `inventory` prints.
    let inventory = env.ok(&["inventory"]);
    assert_eq!(
        fs::read_to_string(env.dir.join("inventory")).unwrap(),
        inventory
    );
    assert!(inventory
        .contains("web1 ansible_host=192.168.56.11 ansible_port=22 ansible_user='vagrant'"));

    // ssh-config works with plain OpenSSH and checks host keys strictly.
    let config = env.dir.join("ssh_config_out");
    fs::write(&config, env.ok(&["ssh-config"])).unwrap();
    let plain = std::process::Command::new("ssh")
        .args([
            "-F",
            config.to_str().unwrap(),
            "-o",
            "BatchMode=yes",
            "db1",
            "hostname",
            "-f",
        ])
        .output()
        .unwrap();
    assert!(
        plain.status.success(),
        "ssh with ssh-config: {}",
        show(&plain)
    );
    assert_eq!(
        String::from_utf8_lossy(&plain.stdout).trim(),
        "db1.example.test"
    );

    // A wrong pinned host key is refused, never skipped.
    let known_hosts = env.state_dir().join("known_hosts");
    let good = fs::read_to_string(&known_hosts).unwrap();
    let web2_key = good
        .lines()
        .find(|l| l.starts_with("web2,"))
        .unwrap()
        .split_once(' ')
        .unwrap()
        .1
        .to_string();
    let tampered: String = good
        .lines()
        .map(|line| {
            if line.starts_with("web1,") {
                format!("web1,web1.example.test,192.168.56.11 {web2_key}\n")
            } else {
                format!("{line}\n")
            }
        })
        .collect();
    fs::write(&known_hosts, tampered).unwrap();
    let refused = env.envctl(&["ssh", "web1", "--", "true"]);
    assert!(!refused.status.success(), "a wrong host key was accepted");
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("HOST IDENTIFICATION HAS CHANGED"),
        "{}",
        show(&refused)
    );
    fs::write(&known_hosts, good).unwrap();

    // A second up has nothing to do, says so, and does not run the playbook.
    let again = env.envctl(&["up"]);
    assert!(again.status.success(), "{}", show(&again));
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("nothing to do"),
        "{}",
        show(&again)
    );
    assert_ran_once_against_all(&env, 1);

    // provision runs it again, once, against all.
    env.ok(&["provision"]);
    assert_ran_once_against_all(&env, 2);

    // halt, then up brings the same machines back without provisioning them again.
    env.ok(&["halt"]);
    assert!(
        env.states().iter().all(|(_, state)| state == "stopped"),
        "{:?}",
        env.states()
    );
    env.ok(&["up"]);
    assert!(
        env.states().iter().all(|(_, state)| state == "running"),
        "{:?}",
        env.states()
    );
    assert_eq!(env.ssh("web2", "hostname -f"), "web2.example.test");
    assert_ran_once_against_all(&env, 2);
    // Their web server, enabled at boot, started by itself.
    common::assert_example_pages_answer(&env);

    // destroy leaves no container, network, volume or state.
    env.ok(&["destroy", "--force"]);
    for kind in ["container", "network", "volume"] {
        assert_eq!(
            docker_objects(kind, &label),
            Vec::<String>::new(),
            "{kind}s left behind"
        );
    }
    assert!(!env.state_dir().exists(), ".envctl/ left behind");
    assert!(
        !env.dir.join("inventory").exists(),
        "the inventory copy left behind"
    );
}

#[test]
fn docker_failed_playbook_exits_non_zero_and_leaves_machines_up() {
    require_docker();
    require_ansible();
    let env = TestEnv::copy_of("example", |text| {
        // One machine of its own, in its own subnet, so it runs beside the other test.
        let head = text
            .split("machines:")
            .next()
            .unwrap()
            .replace("name: example", "name: failing")
            .replace("192.168.56.", "192.168.58.");
        format!("{head}machines:\n  - name: solo\n    ip: 192.168.58.20\n    hostname: solo.failing.test\nprovision:\n  playbook: fail.yml\n")
    });
    let playbook = env.dir.join("fail.yml");
    fs::write(
        &playbook,
        "- hosts: all\n  tasks:\n    - ansible.builtin.fail:\n        msg: broken on purpose\n",
    )
    .unwrap();
    let up = env.envctl(&["up"]);
    assert!(
        !up.status.success(),
        "a failed playbook passed: {}",
        show(&up)
    );
    assert!(
        String::from_utf8_lossy(&up.stderr).contains("envctl provision"),
        "{}",
        show(&up)
    );
    assert_eq!(env.states(), [("solo".to_string(), "running".to_string())]);

    // Fixed, `provision` runs it again; a later `up` does not, as it has succeeded.
    fs::write(
        &playbook,
        "- hosts: all\n  tasks:\n    - ansible.builtin.command: touch /tmp/fixed\n",
    )
    .unwrap();
    env.ok(&["provision"]);
    assert_eq!(env.ssh("solo", "ls /tmp/fixed"), "/tmp/fixed");
    let again = env.envctl(&["up"]);
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("nothing to do"),
        "{}",
        show(&again)
    );
}
