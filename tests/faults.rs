//! Faults on the real Docker Engine: `up` interrupted at different moments, a second
//! Ctrl-C, machines changed behind envctl's back, state lost or damaged, an engine that
//! does not answer, two `up`s at once, a machine that never answers SSH.
//!
//! Each test runs its own copy of the example environment on its own subnet
//! (10.231.N.0/24), so the tests of this file run side by side with each other and with
//! the other end-to-end files.

mod common;

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use common::{docker_objects, require_ansible, require_docker, show, TestEnv};

const MACHINES: [&str; 3] = ["db1", "web1", "web2"];

/// The example environment renamed `faults<n>` on subnet 10.231.<n>.0/24.
fn environment(n: u8, edit: impl Fn(String) -> String) -> TestEnv {
    TestEnv::copy_of("example", |text| {
        edit(
            common::without_example_forward(text)
                .replacen("\nname: example\n", &format!("\nname: faults{n}\n"), 1)
                .replace("192.168.56.", &format!("10.231.{n}."))
                .replace(".example.test", &format!(".faults{n}.test")),
        )
    })
}

/// envctl running in the background, its stderr read line by line.
struct Running {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Running {
    fn start(env: &TestEnv, args: &[&str]) -> Running {
        let mut child = Command::new(env!("CARGO_BIN_EXE_envctl"))
            .args(args)
            .current_dir(&env.dir)
            .env_remove("ENVCTL_PROVIDER")
            .envs(env.vars.iter().map(|(name, value)| (name, value)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Running {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Reads stderr until a line contains `marker`; fails the test if envctl ends first.
    fn wait_for(&mut self, marker: &str) {
        let deadline = Instant::now() + Duration::from_secs(240);
        while Instant::now() < deadline {
            match self.lines.recv_timeout(Duration::from_millis(200)) {
                Ok(line) => {
                    let found = line.contains(marker);
                    self.seen.push(line);
                    if found {
                        return;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        panic!(
            "envctl never said {marker:?}; it said:\n{}",
            self.seen.join("\n")
        );
    }

    fn interrupt(&self) {
        let status = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits at most `limit` for envctl to end; its status and all it said.
    fn finish(mut self, limit: Duration) -> (ExitStatus, String) {
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() >= deadline {
                self.child.kill().ok();
                panic!(
                    "envctl did not end within {limit:?}; it said:\n{}",
                    self.seen.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        self.seen.extend(self.lines.iter());
        (status, self.seen.join("\n"))
    }

    fn still_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

/// Every machine runs, answers as its hostname, and the last playbook run on each covered
/// all three machines under one id.
fn assert_converged(env: &TestEnv, n: u8) {
    let states = env.states();
    for name in MACHINES {
        assert!(
            states.contains(&(name.to_string(), "running".to_string())),
            "{name} is not running: {states:?}"
        );
        assert_eq!(
            env.ssh(name, "hostname -f"),
            format!("{name}.faults{n}.test")
        );
    }
    let last: Vec<String> = MACHINES
        .iter()
        .map(|name| {
            let runs = env.ssh(name, "cat /var/lib/envctl-example/runs");
            runs.lines().last().unwrap_or_default().to_string()
        })
        .collect();
    let id = last[0].split(' ').next().unwrap();
    for line in &last {
        assert!(
            line.ends_with(" db1,web1,web2"),
            "last run {line} was not against all"
        );
        assert!(line.starts_with(id), "the last runs differ: {last:?}");
    }
    // Nothing leaked: one container per machine and one network, no more.
    let label = format!("envctl.env-id={}", env.env_id());
    assert_eq!(docker_objects("container", &label).len(), 3);
    assert_eq!(docker_objects("network", &label).len(), 1);
}

fn destroy_leaves_nothing(env: &TestEnv) {
    let label = format!("envctl.env-id={}", env.env_id());
    env.ok(&["destroy", "--force"]);
    assert!(docker_objects("container", &label).is_empty());
    assert!(docker_objects("network", &label).is_empty());
}

#[test]
fn an_interrupted_up_is_finished_by_the_next_one() {
    require_docker();
    require_ansible();
    let n = 3;
    let env = environment(n, |text| text);
    // While the containers are made, while envctl waits for SSH, while Ansible runs.
    for (marker, settle) in [
        ("web1: creating", 0),
        ("waiting for ssh", 0),
        ("Provisioning", 1500),
    ] {
        let mut up = Running::start(&env, &["up"]);
        up.wait_for(marker);
        std::thread::sleep(Duration::from_millis(settle));
        up.interrupt();
        let (status, said) = up.finish(Duration::from_secs(120));
        assert_eq!(
            status.code(),
            Some(130),
            "interrupted at {marker:?}:\n{said}"
        );
        assert!(said.contains("Interrupted"), "{said}");
        env.ok(&["up"]);
        assert_converged(&env, n);
        destroy_leaves_nothing(&env);
    }
}

/// The recipe of the default image with `extra` appended to its Dockerfile, in the
/// environment's folder under `name`.
fn recipe_with(env: &TestEnv, name: &str, extra: &str) {
    let source = common::repo().join("images/debian");
    let target = env.dir.join(name);
    fs::create_dir_all(&target).unwrap();
    for entry in fs::read_dir(&source).unwrap() {
        let path = entry.unwrap().path();
        fs::copy(&path, target.join(path.file_name().unwrap())).unwrap();
    }
    let dockerfile = target.join("Dockerfile");
    let text = fs::read_to_string(&dockerfile).unwrap();
    fs::write(&dockerfile, format!("{text}\n{extra}\n")).unwrap();
}

#[test]
fn a_second_interrupt_stops_at_once() {
    require_docker();
    require_ansible();
    let n = 4;
    let env = environment(n, |text| {
        text.replace("defaults:\n", "defaults:\n  docker:\n    build: slow\n")
    });
    // A build that takes a while: the first Ctrl-C lets it finish, the second does not.
    let nonce = format!("{}-{:?}", std::process::id(), Instant::now());
    recipe_with(&env, "slow", &format!("RUN echo '{nonce}' && sleep 25"));
    let mut up = Running::start(&env, &["up"]);
    up.wait_for("building image");
    std::thread::sleep(Duration::from_secs(1));
    up.interrupt();
    up.wait_for("Interrupted");
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        up.still_running(),
        "the first Ctrl-C did not let the build finish"
    );
    let second = Instant::now();
    up.interrupt();
    let (status, said) = up.finish(Duration::from_secs(10));
    assert!(second.elapsed() < Duration::from_secs(3), "{said}");
    assert_eq!(status.code(), Some(130), "{said}");
    assert!(said.contains("interrupted twice"), "{said}");
    env.ok(&["up"]);
    assert_converged(&env, n);
    destroy_leaves_nothing(&env);
}

fn docker(args: &[&str]) {
    let output = Command::new("docker").args(args).output().unwrap();
    assert!(
        output.status.success(),
        "docker {args:?}: {}",
        show(&output)
    );
}

#[test]
fn machines_changed_behind_envctls_back_are_repaired() {
    require_docker();
    require_ansible();
    let n = 5;
    let env = environment(n, |text| text);
    env.ok(&["up"]);
    docker(&["rm", "--force", &format!("faults{n}-web1")]);
    docker(&["stop", "--time", "1", &format!("faults{n}-web2")]);
    let states = env.states();
    assert!(
        states.contains(&("web1".into(), "not created".into())),
        "{states:?}"
    );
    assert!(
        states.contains(&("web2".into(), "stopped".into())),
        "{states:?}"
    );
    assert!(
        states.contains(&("db1".into(), "running".into())),
        "{states:?}"
    );

    env.ok(&["up"]);
    assert_converged(&env, n);
    // The new web1 was provisioned: its only run is the one the others saw last.
    let web1_runs = env.ssh("web1", "cat /var/lib/envctl-example/runs");
    assert_eq!(web1_runs.lines().count(), 1, "{web1_runs}");
    destroy_leaves_nothing(&env);
}

#[test]
fn lost_state_is_replaced_by_up_and_listed_by_gc() {
    require_docker();
    let n = 6;
    let env = environment(n, |text| text);
    env.ok(&["up", "--no-provision"]);
    let old_id = env.env_id();
    let old = format!("envctl.env-id={old_id}");
    fs::remove_dir_all(env.state_dir()).unwrap();

    // gc sees the leftovers and, without --remove, leaves them.
    let listed = env.ok(&["gc", "--provider", "docker"]);
    assert!(listed.contains(&old_id), "{listed}");
    assert!(listed.contains("has no envctl state"), "{listed}");
    assert!(
        listed.contains(&format!("container faults{n}-web1")),
        "{listed}"
    );
    assert_eq!(docker_objects("container", &old).len(), 3);

    // up replaces them instead of failing on the names they hold.
    let output = env.envctl(&["up", "--no-provision"]);
    assert!(output.status.success(), "{}", show(&output));
    assert!(String::from_utf8_lossy(&output.stderr).contains("Replacing"));
    assert!(docker_objects("container", &old).is_empty());
    assert!(docker_objects("network", &old).is_empty());
    assert_ne!(env.env_id(), old_id);
    assert_eq!(
        env.ssh("web1", "hostname -f"),
        format!("web1.faults{n}.test")
    );
    let listed = env.ok(&["gc", "--provider", "docker"]);
    assert!(!listed.contains(&old_id), "{listed}");
    assert!(
        !listed.contains(&env.env_id()),
        "a live environment was listed: {listed}"
    );

    // An environment whose folder is gone: listed, then removed when asked.
    let gone = environment(n + 1, |text| text);
    gone.ok(&["up", "--no-provision"]);
    let gone_id = gone.env_id();
    let gone_label = format!("envctl.env-id={gone_id}");
    fs::remove_dir_all(&gone.dir).unwrap();
    let listed = env.ok(&["gc", "--provider", "docker"]);
    assert!(
        listed.contains(&gone_id) && listed.contains("is gone"),
        "{listed}"
    );
    env.ok(&["gc", "--provider", "docker", "--remove"]);
    assert!(docker_objects("container", &gone_label).is_empty());
    assert!(docker_objects("network", &gone_label).is_empty());
    // The live environment was left alone.
    assert_eq!(
        env.states().iter().filter(|(_, s)| s == "running").count(),
        3
    );
    destroy_leaves_nothing(&env);
}

#[test]
fn gc_keeps_what_an_environment_with_damaged_state_holds() {
    require_docker();
    let n = 30;
    let env = environment(n, |text| text);
    env.ok(&["up", "--no-provision"]);
    let id = env.env_id();
    let label = format!("envctl.env-id={id}");
    let state = env.state_dir().join("state.json");
    let saved = fs::read(&state).unwrap();
    // Cut in half, as an interrupted hand edit or a full disk would leave it.
    fs::write(&state, &saved[..saved.len() / 2]).unwrap();

    let output = env.envctl(&["gc", "--provider", "docker", "--remove"]);
    assert!(output.status.success(), "{}", show(&output));
    let listed = String::from_utf8_lossy(&output.stdout);
    let line = listed.lines().find(|line| line.contains(&id));
    assert!(
        line.is_some_and(|line| line.contains("unknown") && line.contains("is damaged")),
        "{}",
        show(&output)
    );
    assert!(!String::from_utf8_lossy(&output.stderr).contains(&format!("(id {id})")));
    assert_eq!(docker_objects("container", &label).len(), 3);
    assert_eq!(docker_objects("network", &label).len(), 1);

    fs::write(&state, saved).unwrap();
    assert_eq!(
        env.states().iter().filter(|(_, s)| s == "running").count(),
        3
    );
    destroy_leaves_nothing(&env);
}

#[test]
fn an_engine_that_does_not_answer_is_named() {
    let n = 8;
    let env = environment(n, |text| text);
    let socket = std::env::temp_dir().join(format!("envctl-nobody-{}.sock", std::process::id()));
    let run = |args: &[&str], var: &str, value: &str| {
        Command::new(env!("CARGO_BIN_EXE_envctl"))
            .args(args)
            .current_dir(&env.dir)
            .env_remove("ENVCTL_PROVIDER")
            .env(var, value)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let host = format!("unix://{}", socket.display());
    let output = run(&["up"], "DOCKER_HOST", &host);
    assert_eq!(output.status.code(), Some(1), "{}", show(&output));
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(said.contains(&socket.display().to_string()), "{said}");
    assert!(!said.contains("panicked"), "{said}");

    let uri = format!("qemu+unix:///system?socket={}", socket.display());
    // (`up` would first ask for the box, which CI adds only for the libvirt tests.)
    let output = run(
        &["gc", "--provider", "libvirt"],
        "LIBVIRT_DEFAULT_URI",
        &uri,
    );
    assert_eq!(output.status.code(), Some(1), "{}", show(&output));
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(said.contains(&uri), "{said}");
}

#[test]
fn two_ups_at_once_take_turns() {
    require_docker();
    require_ansible();
    let n = 9;
    let env = environment(n, |text| text);
    let first = Running::start(&env, &["up"]);
    let second = Running::start(&env, &["up"]);
    let (first_status, first_said) = first.finish(Duration::from_secs(300));
    let (second_status, second_said) = second.finish(Duration::from_secs(300));
    assert!(first_status.success(), "{first_said}");
    assert!(second_status.success(), "{second_said}");
    assert!(
        first_said.contains("Waiting") || second_said.contains("Waiting"),
        "neither waited:\n{first_said}\n---\n{second_said}"
    );
    assert_converged(&env, n);
    // One playbook run in all: the second `up` found everything done.
    for name in MACHINES {
        let runs = env.ssh(name, "cat /var/lib/envctl-example/runs");
        assert_eq!(runs.lines().count(), 1, "{name}: {runs}");
    }
    destroy_leaves_nothing(&env);
}

#[test]
fn a_machine_that_never_answers_is_named_with_its_log() {
    require_docker();
    let n = 10;
    let env = environment(n, |text| {
        text.replace(
            "    hostname: web1.faults10.test\n",
            "    hostname: web1.faults10.test\n    docker:\n      build: broken\n",
        )
    });
    recipe_with(
        &env,
        "broken",
        "RUN printf '#!/bin/sh\\necho sshd-broken-on-purpose >&2\\nexec sleep infinity\\n' \
         > /usr/sbin/sshd && chmod 0755 /usr/sbin/sshd",
    );
    let mut env = env;
    env.vars
        .push(("ENVCTL_READY_TIMEOUT".into(), Path::new("8").into()));
    let output = env.envctl(&["up", "--no-provision"]);
    assert_eq!(output.status.code(), Some(1), "{}", show(&output));
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(said.contains("web1"), "{said}");
    assert!(said.contains("no SSH"), "{said}");
    assert!(said.contains("after 8s"), "{said}");
    assert!(said.contains("sshd-broken-on-purpose"), "{said}");
    // The others came up all the same.
    let states = env.states();
    assert!(
        states.contains(&("web2".into(), "running".into())),
        "{states:?}"
    );
    assert!(
        states.contains(&("db1".into(), "running".into())),
        "{states:?}"
    );
}
