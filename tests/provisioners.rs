//! Docker and Ansible end to end: the list form of `provision` (shell, file and ansible
//! steps, `run`, `machines`, `--provision-with`, a failing step) and the mapping form.
//! Each test has its own environment name and subnet (10.231.35.0/24, 10.231.36.0/24).

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use common::{assert_private_tree, require_ansible, require_docker, show, TestEnv};

/// A fresh environment folder holding `files`, with its own envctl data folder.
fn env_with(name: &str, files: &[(&str, &str)]) -> TestEnv {
    let dir = std::env::temp_dir().join(format!("envctl-test-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    for (file, text) in files {
        let path = dir.join(file);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }
    let data_dir = PathBuf::from(format!("{}-data", dir.display()));
    let _ = fs::remove_dir_all(&data_dir);
    TestEnv {
        dir,
        vars: vec![("ENVCTL_DATA_DIR".into(), data_dir.clone())],
        data_dir,
    }
}

const MACHINEFILE: &str = r#"name: provlist
network: {subnet: 10.231.35.0/24}
machines:
  - {name: p1, ip: 10.231.35.11}
  - {name: p2, ip: 10.231.35.12}
provision:
  - name: base
    shell:
      inline: "echo base >> /var/tmp/order; echo $GREETING > /var/tmp/greeting"
      env: {GREETING: hello there}
  - name: cert
    file: {source: cert.pem, destination: /tmp/certs/cert.pem}
  - name: site
    ansible: {playbook: site.yml}
  - name: smoke
    shell: {path: smoke.sh, args: [--quick], privileged: false}
    run: always
    machines: ["/p2/"]
  - name: rare
    shell: {inline: "touch /var/tmp/rare"}
    run: never
"#;

const FAILING: &str = r#"  - name: broken
    shell: {inline: "echo about to fail; exit 3"}
    machines: [p1]
    run: never
  - name: after
    shell: {inline: "touch /var/tmp/after"}
    run: never
"#;

#[test]
fn docker_provisioners_run_in_order_by_their_run_and_stop_at_a_failure() {
    require_docker();
    require_ansible();
    let env = env_with(
        "provlist",
        &[
            ("Machinefile", MACHINEFILE),
            ("cert.pem", "not really a certificate\n"),
            (
                "site.yml",
                "- hosts: all\n  become: true\n  tasks:\n    - ansible.builtin.shell: echo ansible >> /var/tmp/order\n",
            ),
            ("smoke.sh", "#!/bin/sh\necho \"$(id -un) $1\" >> /tmp/smoke\n"),
        ],
    );
    fs::set_permissions(env.dir.join("cert.pem"), fs::Permissions::from_mode(0o640)).unwrap();

    let up = env.envctl(&["up"]);
    assert!(up.status.success(), "{}", show(&up));
    let stderr = String::from_utf8_lossy(&up.stderr);
    assert!(
        stderr.contains("Provisioning base on p1, p2"),
        "{}",
        show(&up)
    );
    for machine in ["p1", "p2"] {
        // The shell step ran before the playbook, on every machine.
        assert_eq!(env.ssh(machine, "cat /var/tmp/order"), "base\nansible");
        assert_eq!(env.ssh(machine, "cat /var/tmp/greeting"), "hello there");
        assert_eq!(
            env.ssh(
                machine,
                "stat -c '%a %U' /tmp/certs/cert.pem; cat /tmp/certs/cert.pem"
            ),
            "640 vagrant\nnot really a certificate"
        );
        assert_eq!(env.ssh(machine, "test -e /var/tmp/rare; echo $?"), "1");
    }
    assert_eq!(env.ssh("p2", "cat /tmp/smoke"), "vagrant --quick");
    assert_eq!(env.ssh("p1", "test -e /tmp/smoke; echo $?"), "1");

    // A second `up`: `always` runs again, `once` does not.
    env.ok(&["up"]);
    assert_eq!(
        env.ssh("p2", "cat /tmp/smoke"),
        "vagrant --quick\nvagrant --quick"
    );
    assert_eq!(env.ssh("p1", "cat /var/tmp/order"), "base\nansible");

    // `never` runs only when named, and then alone.
    env.ok(&["provision", "--provision-with", "rare"]);
    assert_eq!(env.ssh("p1", "test -e /var/tmp/rare; echo $?"), "0");
    assert_eq!(env.ssh("p2", "wc -l < /tmp/smoke"), "2");
    let state: serde_json::Value =
        serde_json::from_slice(&fs::read(env.state_dir().join("state.json")).unwrap()).unwrap();
    assert_eq!(
        state["machines"]["p1"]["provisioners"],
        serde_json::json!(["base", "cert", "rare", "site"])
    );

    // A failing step names the machine and its exit status, and stops what follows.
    fs::write(
        env.dir.join("Machinefile"),
        format!("{MACHINEFILE}{FAILING}"),
    )
    .unwrap();
    let failed = env.envctl(&["provision", "--provision-with", "broken,after"]);
    assert!(!failed.status.success(), "{}", show(&failed));
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(
        stderr.contains("p1") && stderr.contains("exit status 3"),
        "{}",
        show(&failed)
    );
    assert!(stderr.contains("about to fail"), "{}", show(&failed));
    for machine in ["p1", "p2"] {
        assert_eq!(env.ssh(machine, "test -e /var/tmp/after; echo $?"), "1");
    }
    assert_eq!(
        env.states(),
        [
            ("p1".to_string(), "running".to_string()),
            ("p2".to_string(), "running".to_string())
        ]
    );
    env.ok(&["destroy", "--force"]);
}

#[test]
fn docker_the_mapping_form_still_runs_one_playbook_with_group_vars_and_children() {
    require_docker();
    require_ansible();
    let env = env_with(
        "provmap",
        &[
            (
                "Machinefile",
                "name: provmap\nnetwork: {subnet: 10.231.36.0/24}\nmachines:\n  - {name: m1, ip: 10.231.36.11, groups: [app]}\nprovision:\n  playbook: site.yml\n  extra_vars: {word: mapped}\ngroups:\n  site: {vars: {region: eu west}, children: [app]}\n  app: {vars: {tier: front}}\n",
            ),
            (
                "site.yml",
                "- hosts: site\n  tasks:\n    - ansible.builtin.copy: {content: \"{{ word }} {{ region }} {{ tier }}\", dest: /tmp/word}\n    - ansible.builtin.copy: {content: \"{{ ansible_facts.python.executable }}\", dest: /tmp/python}\n    - {ansible.builtin.command: id -un, become: true, register: root}\n    - ansible.builtin.copy: {content: \"{{ root.stdout }}\", dest: /tmp/root}\n    - {ansible.builtin.command: \"true\", async: 30, poll: 1}\n",
            ),
        ],
    );
    // A provisioner name the Machinefile does not have is bad input, refused at once.
    for verb in ["up", "reload", "provision"] {
        let bad = env.envctl(&[verb, "--provision-with", "nope"]);
        assert_eq!(bad.status.code(), Some(2), "{}", show(&bad));
        assert!(
            String::from_utf8_lossy(&bad.stderr)
                .contains("no provisioner named nope; it has: ansible"),
            "{}",
            show(&bad)
        );
    }
    assert!(!env.state_dir().exists(), "a bad name created state");
    env.ok(&["up"]);
    // The play targets the parent group: `m1` is in it through `app`, with both groups' vars.
    assert_eq!(env.ssh("m1", "cat /tmp/word"), "mapped eu west front");
    let list: serde_json::Value = serde_json::from_str(&env.ok(&["inventory", "--list"])).unwrap();
    assert_eq!(list["site"]["children"], serde_json::json!(["app"]));
    assert_eq!(list["app"]["hosts"], serde_json::json!(["m1"]));
    assert_eq!(
        list["site"]["vars"]["region"]["__ansible_unsafe"],
        "eu west"
    );
    let ini = fs::read_to_string(env.state_dir().join("inventory")).unwrap();
    assert!(ini.contains("[site:children]\napp\n"), "{ini}");
    let again = env.envctl(&["up"]);
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("nothing to do"),
        "{}",
        show(&again)
    );

    // On envctl's image the modules ran under its python3 that keeps their bytecode: the
    // same interpreter underneath, become and async as ever, a private cache per user.
    assert_eq!(env.ssh("m1", "cat /tmp/python"), "/usr/bin/python3");
    assert_eq!(env.ssh("m1", "cat /tmp/root"), "root");
    let cache = "~/.cache/envctl-ansible-bytecode";
    assert_eq!(
        env.ssh("m1", &format!("stat -c '%a %U' {cache}")),
        "700 vagrant"
    );
    assert_eq!(
        env.ssh(
            "m1",
            "sudo stat -c '%a %U' /root/.cache/envctl-ansible-bytecode"
        ),
        "700 root"
    );
    let kept = |env: &TestEnv| -> usize {
        env.ssh("m1", &format!("ls {cache} | wc -l"))
            .parse()
            .unwrap()
    };
    // The second run uses `file` where the first, which changed files, used `copy`.
    env.ok(&["provision"]);
    let second = kept(&env);
    assert!(second > 10, "{second} files kept");
    // A third run compiles nothing new: the same sources find what was kept.
    env.ok(&["provision"]);
    assert_eq!(kept(&env), second);
    // A cache folder others may read is not used, and the playbook runs as well without it.
    env.ssh("m1", &format!("rm -f {cache}/* && chmod 0755 {cache}"));
    env.ok(&["provision"]);
    assert_eq!(kept(&env), 0);
    assert_eq!(env.ssh("m1", "cat /tmp/root"), "root");
    // A container made from envctl's image before it had that python3 runs Ansible's own
    // choice of interpreter instead of failing.
    env.ssh(
        "m1",
        &format!("chmod 0700 {cache} && sudo rm /usr/libexec/envctl/ansible-python3"),
    );
    env.ok(&["provision"]);
    assert_eq!(kept(&env), 0);
    assert_eq!(env.ssh("m1", "cat /tmp/python"), "/usr/bin/python3");
    env.ok(&["destroy", "--force"]);
}

#[test]
fn docker_galaxy_requirements_install_once_and_ansible_options_apply() {
    require_docker();
    require_ansible();
    let env = env_with(
        "provgalaxy",
        &[
            (
                "site.yml",
                "- hosts: all\n  tasks:\n    - ansible.builtin.import_role: {name: myrole}\n    - ansible.builtin.import_role: {name: envctltest.tools.greet}\n    - ansible.builtin.command: touch /tmp/skipped\n      tags: [skipme]\n",
            ),
            ("coll/galaxy.yml", ""),
        ],
    );
    let dir = env.dir.clone();
    // A collection built from local source, and a role as a local tarball: no Galaxy server.
    fs::write(
        dir.join("coll/galaxy.yml"),
        "namespace: envctltest\nname: tools\nversion: 1.0.0\nreadme: README.md\nauthors: [envctl]\n",
    )
    .unwrap();
    fs::write(dir.join("coll/README.md"), "test\n").unwrap();
    fs::create_dir_all(dir.join("coll/roles/greet/tasks")).unwrap();
    fs::write(
        dir.join("coll/roles/greet/tasks/main.yml"),
        "- ansible.builtin.command: touch /tmp/greet\n",
    )
    .unwrap();
    let build = std::process::Command::new("ansible-galaxy")
        .args(["collection", "build", "coll", "--output-path", "."])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(build.status.success(), "{}", show(&build));
    fs::create_dir_all(dir.join("myrole/tasks")).unwrap();
    fs::create_dir_all(dir.join("myrole/meta")).unwrap();
    fs::write(
        dir.join("myrole/tasks/main.yml"),
        "- ansible.builtin.command: touch /tmp/myrole\n",
    )
    .unwrap();
    fs::write(
        dir.join("myrole/meta/main.yml"),
        "galaxy_info: {author: envctl, description: test, license: MIT, min_ansible_version: '2.9'}\ndependencies: []\n",
    )
    .unwrap();
    let tar = std::process::Command::new("tar")
        .args(["czf", "myrole.tar.gz", "myrole"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(tar.status.success(), "{}", show(&tar));
    fs::write(
        dir.join("requirements.yml"),
        format!(
            "roles:\n  - {{name: myrole, src: 'file://{0}/myrole.tar.gz'}}\ncollections:\n  - {{name: '{0}/envctltest-tools-1.0.0.tar.gz', type: file}}\n",
            dir.display()
        ),
    )
    .unwrap();
    let machinefile = "name: provgalaxy\nnetwork: {subnet: 10.231.37.0/24}\nmachines:\n  - {name: g1, ip: 10.231.37.11}\nprovision:\n  - name: site\n    ansible:\n      playbook: site.yml\n      galaxy_role_file: requirements.yml\n      skip_tags: [skipme]\n      verbose: v\n";
    fs::write(dir.join("Machinefile"), machinefile).unwrap();

    let up = env.envctl(&["up"]);
    assert!(up.status.success(), "{}", show(&up));
    assert!(
        String::from_utf8_lossy(&up.stderr).contains("Installing"),
        "{}",
        show(&up)
    );
    assert_eq!(
        env.ssh("g1", "ls /tmp/myrole /tmp/greet"),
        "/tmp/greet\n/tmp/myrole"
    );
    assert_eq!(env.ssh("g1", "test -e /tmp/skipped; echo $?"), "1");
    assert!(env.state_dir().join("galaxy/roles/myrole").is_dir());
    // What ansible-galaxy and ssh's control sockets left there is private too.
    assert_private_tree(&env.state_dir());

    // Unchanged requirements are not installed again.
    let again = env.envctl(&["provision"]);
    assert!(again.status.success(), "{}", show(&again));
    assert!(
        !String::from_utf8_lossy(&again.stderr).contains("Installing"),
        "{}",
        show(&again)
    );

    fs::write(
        dir.join("Machinefile"),
        format!("{machinefile}      ansible_args: [--ask-become-pass]\n"),
    )
    .unwrap();
    // In a terminal (`script` makes one), ansible-playbook gets it and asks there; an
    // empty answer does for the box's password-less sudo.
    let mut in_terminal = std::process::Command::new("script")
        .args([
            "-qec",
            &format!("{} provision", env!("CARGO_BIN_EXE_envctl")),
            "/dev/null",
        ])
        .current_dir(&dir)
        .envs(env.vars.iter().map(|(name, value)| (name, value)))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = in_terminal.stdin.take().unwrap();
        std::thread::sleep(std::time::Duration::from_secs(3));
        stdin.write_all(b"\n").unwrap();
        // Left open until the command ends: `script` stops at end of input.
        let answered = in_terminal.wait_with_output().unwrap();
        drop(stdin);
        let text = String::from_utf8_lossy(&answered.stdout);
        assert!(answered.status.success(), "{}\n{}", text, show(&answered));
        assert!(text.contains("BECOME password"), "{text}");
    }

    // Without a terminal, an argument that would prompt fails at once instead of hanging.
    let prompt = env.envctl(&["provision"]);
    assert!(!prompt.status.success(), "{}", show(&prompt));
    assert!(
        String::from_utf8_lossy(&prompt.stderr).contains("asks a question on a terminal"),
        "{}",
        show(&prompt)
    );
    env.ok(&["destroy", "--force"]);
}
