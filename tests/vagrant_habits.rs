//! Scripts written for Vagrant keep working: `/regex/` machine names, `status
//! --machine-readable`, `global-status` (and `--prune`) and `reload`, end to end on the
//! real Docker Engine and `ansible-playbook`. The environment is the example one renamed
//! `habits`, in a subnet of its own (10.231.1.0/24), so it runs beside the other tests.

mod common;

use std::collections::HashMap;
use std::fs;
use std::process::Command;

use common::{docker_objects, require_ansible, require_docker, show, TestEnv};

fn habits() -> TestEnv {
    TestEnv::copy_of("example", |text| {
        common::without_example_forward(text)
            .replace("name: example", "name: habits")
            .replace(
                "subnet: 192.168.56.0/24",
                "subnet: 10.231.1.0/24\n  gateway: 10.231.1.1",
            )
            .replace("192.168.56.", "10.231.1.")
            .replace(".example.test", ".habits.test")
    })
}

/// `status --machine-readable`, split as scripts split it: every line is
/// `timestamp,target,type,data`, and the data's own fields follow on the same line.
/// Returns (target, type) -> data.
fn machine_readable(env: &TestEnv) -> HashMap<(String, String), String> {
    let text = env.ok(&["status", "--machine-readable"]);
    let mut fields = HashMap::new();
    for line in text.lines() {
        let parts: Vec<&str> = line.splitn(4, ',').collect();
        assert_eq!(parts.len(), 4, "not timestamp,target,type,data: {line:?}");
        assert!(
            parts[0].len() >= 10 && parts[0].bytes().all(|b| b.is_ascii_digit()),
            "no Unix timestamp: {line:?}"
        );
        fields.insert(
            (parts[1].to_string(), parts[2].to_string()),
            parts[3].to_string(),
        );
    }
    fields
}

fn state_of(fields: &HashMap<(String, String), String>, machine: &str) -> String {
    fields
        .get(&(machine.to_string(), "state".to_string()))
        .unwrap_or_else(|| panic!("no state line for {machine}: {fields:?}"))
        .clone()
}

/// When the machine's container last started, as the engine says.
fn started_at(env: &TestEnv, machine: &str) -> String {
    let status = env.status_json();
    let id = status["machines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == machine)
        .and_then(|m| m["id"].as_str())
        .unwrap_or_else(|| panic!("{machine} has no container: {status}"))
        .to_string();
    let output = Command::new("docker")
        .args(["inspect", "--format", "{{.State.StartedAt}}", &id])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", show(&output));
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// The rows of `global-status` for the environment in `dir`, each split into its
/// columns (environment, machine, provider, state, updated, directory), which are set
/// apart by two spaces or more.
fn listed(env: &TestEnv, dir: &std::path::Path) -> Vec<Vec<String>> {
    env.ok(&["global-status"])
        .lines()
        .filter(|line| line.ends_with(&dir.display().to_string()))
        .map(|line| {
            line.split("  ")
                .map(str::trim)
                .filter(|column| !column.is_empty())
                .map(str::to_string)
                .collect()
        })
        .collect()
}

#[test]
fn docker_vagrant_habits_round_trip() {
    require_docker();
    require_ansible();
    let env = habits();

    // A regex picks machines as Vagrant's do; only those come up, and Ansible is limited
    // to them by name.
    env.ok(&["up", "/web[12]/"]);
    let label = format!("envctl.env-id={}", env.env_id());
    assert_eq!(docker_objects("container", &label).len(), 2);
    let mut states = env.states();
    states.sort();
    assert_eq!(
        states,
        [
            ("db1".to_string(), "not created".to_string()),
            ("web1".to_string(), "running".to_string()),
            ("web2".to_string(), "running".to_string()),
        ]
    );
    let runs = env.ssh("web1", "cat /var/lib/envctl-example/runs");
    assert_eq!(runs.lines().count(), 1, "{runs}");
    assert!(runs.ends_with(" web1,web2"), "{runs}");

    // Machine-readable status, in Vagrant's docker words.
    let fields = machine_readable(&env);
    assert_eq!(state_of(&fields, "web1"), "running");
    assert_eq!(state_of(&fields, "web2"), "running");
    assert_eq!(state_of(&fields, "db1"), "not_created");
    for machine in ["web1", "web2", "db1"] {
        let get = |kind: &str| fields.get(&(machine.to_string(), kind.to_string()));
        assert_eq!(get("provider-name").map(String::as_str), Some("docker"));
        assert_eq!(get("metadata").map(String::as_str), Some("provider,docker"));
        assert!(get("state-human-long").is_some_and(|long| !long.is_empty()));
    }
    let listing = &fields[&(String::new(), "ui".to_string())];
    assert!(
        listing.starts_with("info,Current machine states:\\n\\n"),
        "{listing}"
    );

    // global-status lists the environment, from any folder, with the states last seen.
    let rows = listed(&env, &env.dir);
    assert_eq!(rows.len(), 3, "{rows:?}");
    for (machine, state) in [
        ("web1", "running"),
        ("web2", "running"),
        ("db1", "not created"),
    ] {
        assert!(
            rows.iter()
                .any(|row| row[..4] == ["habits", machine, "docker", state]),
            "{machine} not {state} in {rows:?}"
        );
    }
    let anywhere = env.envctl_at(&std::env::temp_dir(), &["global-status"]);
    assert!(anywhere.status.success(), "{}", show(&anywhere));
    assert!(
        String::from_utf8_lossy(&anywhere.stderr).contains("states are cached"),
        "{}",
        show(&anywhere)
    );

    // reload restarts the one machine, keeps it running, and does not provision it
    // again unless asked; a regex names it as well as its name does.
    let web1_before = started_at(&env, "web1");
    let web2_before = started_at(&env, "web2");
    env.ok(&["reload", "web1"]);
    assert_ne!(
        started_at(&env, "web1"),
        web1_before,
        "web1 was not restarted"
    );
    assert_eq!(started_at(&env, "web2"), web2_before, "web2 was restarted");
    assert_eq!(state_of(&machine_readable(&env), "web1"), "running");
    assert_eq!(env.ssh("web1", "hostname -f"), "web1.habits.test");
    assert_eq!(
        env.ssh("web1", "cat /var/lib/envctl-example/runs")
            .lines()
            .count(),
        1
    );
    env.ok(&["reload", "--provision", "/^web2$/"]);
    assert_ne!(
        started_at(&env, "web2"),
        web2_before,
        "web2 was not restarted"
    );
    let runs = env.ssh("web2", "cat /var/lib/envctl-example/runs");
    assert_eq!(runs.lines().count(), 2, "{runs}");
    assert!(runs.ends_with(" web2"), "--provision ran wider: {runs}");

    // ssh takes a regex that selects one machine, and refuses one that selects two.
    assert_eq!(
        env.ok(&["ssh", "/^web2/", "--", "hostname", "-f"]).trim(),
        "web2.habits.test"
    );
    let two = env.envctl(&["ssh", "/web/", "--", "true"]);
    assert_eq!(two.status.code(), Some(2), "{}", show(&two));
    assert!(
        String::from_utf8_lossy(&two.stderr).contains("matches 2 machines (web1, web2)"),
        "{}",
        show(&two)
    );

    // --prune drops an environment whose folder was deleted, says so, and keeps the
    // live one. The gone one is a second folder that `status` recorded.
    let copy = env.dir.with_file_name(format!(
        "{}-copy",
        env.dir.file_name().unwrap().to_string_lossy()
    ));
    fs::create_dir_all(copy.join(".envctl")).unwrap();
    for file in ["Machinefile", "playbook.yml", ".envctl/state.json"] {
        fs::copy(env.dir.join(file), copy.join(file)).unwrap();
    }
    let seen = env.envctl_at(&copy, &["status"]);
    assert!(seen.status.success(), "{}", show(&seen));
    assert_eq!(listed(&env, &copy).len(), 3);
    fs::remove_dir_all(&copy).unwrap();
    let kept = env.ok(&["global-status"]);
    assert!(
        kept.contains(&copy.display().to_string()),
        "without --prune, a gone environment stays listed: {kept}"
    );
    let pruned = env.envctl(&["global-status", "--prune"]);
    assert!(pruned.status.success(), "{}", show(&pruned));
    assert!(
        String::from_utf8_lossy(&pruned.stderr).contains(&format!(
            "Pruned `habits` in {}: its folder is gone",
            copy.display()
        )),
        "{}",
        show(&pruned)
    );
    let stdout = String::from_utf8_lossy(&pruned.stdout);
    assert!(!stdout.contains(&copy.display().to_string()), "{stdout}");
    assert_eq!(listed(&env, &env.dir).len(), 3, "{stdout}");

    // destroy of the whole environment forgets it.
    env.ok(&["destroy", "--force"]);
    assert_eq!(docker_objects("container", &label), Vec::<String>::new());
    let after = env.envctl(&["global-status"]);
    assert!(after.status.success(), "{}", show(&after));
    assert!(
        String::from_utf8_lossy(&after.stdout).trim().is_empty(),
        "{}",
        show(&after)
    );
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(env.data_dir.join("environments/index.json")).unwrap())
            .unwrap();
    assert_eq!(index["environments"], serde_json::json!([]), "{index}");
}
