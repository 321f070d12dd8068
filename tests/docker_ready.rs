//! Ready means booted, end to end on the real Docker Engine: `up` returns once systemd
//! has finished booting (a unit that takes a while included), names the failed units of a
//! machine that booted degraded, and takes SSH alone as ready where sshd runs without
//! systemd. The project lives in a folder whose path has a space and a `%`, which every
//! ssh invocation (readiness, `envctl ssh`) must survive. Subnet 10.231.23.0/24.

mod common;

use std::fs;
use std::time::{Duration, Instant};

use common::{repo, require_docker, show, TestEnv};

const MACHINEFILE: &str = "\
name: envctl-ready-boot
network:
  subnet: 10.231.23.0/24
defaults:
  docker: {build: recipe, init: systemd}
machines:
  - {name: web1, ip: 10.231.23.11, hostname: web1.boot.test}
  - name: web2
    ip: 10.231.23.12
    hostname: web2.boot.test
    docker: {build: recipe, init: sshd}
";

/// How long the slow unit holds the boot at `starting` once sshd already answers.
const SLOW_SECS: u64 = 8;

/// envctl's own recipe plus a unit that fails and one that takes a while, and without
/// D-Bus, as lean images are: the login user's systemctl cannot ask systemd then, and
/// readiness must ask as root.
fn recipe(dir: &std::path::Path) {
    fs::create_dir_all(dir).unwrap();
    for entry in fs::read_dir(repo().join("images/debian")).unwrap() {
        let path = entry.unwrap().path();
        fs::copy(&path, dir.join(path.file_name().unwrap())).unwrap();
    }
    let units = format!(
        "\nRUN printf '%s\\n' '[Unit]' 'Description=fails on purpose' '[Service]' \
         'Type=oneshot' 'ExecStart=/bin/false' '[Install]' 'WantedBy=multi-user.target' \
         > /etc/systemd/system/envctl-fails.service \
         && printf '%s\\n' '[Unit]' 'Description=takes a while' 'After=ssh.service' \
         '[Service]' 'Type=oneshot' 'RemainAfterExit=yes' 'ExecStart=/bin/sleep {SLOW_SECS}' \
         '[Install]' 'WantedBy=multi-user.target' > /etc/systemd/system/envctl-slow.service \
         && systemctl enable envctl-fails.service envctl-slow.service \
         && apt-get purge -y dbus\n"
    );
    let dockerfile = dir.join("Dockerfile");
    let text = fs::read_to_string(&dockerfile).unwrap();
    fs::write(&dockerfile, text + &units).unwrap();
}

#[test]
fn docker_up_waits_for_boot_and_names_failed_units() {
    require_docker();
    let mut env = TestEnv::copy_of("example", |_| MACHINEFILE.to_string());
    // Short, so that the sockets of the masters readiness leaves open fit under it.
    let spaced = env
        .dir
        .with_file_name(format!("envctl-{} 100%", std::process::id()));
    let _ = fs::remove_dir_all(&spaced);
    fs::rename(&env.dir, &spaced).unwrap();
    env.dir = spaced;
    recipe(&env.dir.join("recipe"));
    // Built first, so that the time `up` takes below is the machines' boot.
    env.ok(&["up", "--no-provision"]);
    env.ok(&["destroy", "--force"]);

    let started = Instant::now();
    let output = env.envctl(&["up", "--no-provision"]);
    let took = started.elapsed();
    assert!(output.status.success(), "{}", show(&output));
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(
        said.contains("warning: web1: booted degraded; failed units: envctl-fails.service"),
        "{said}"
    );
    assert!(!said.contains("warning: web2"), "{said}");
    assert!(took >= Duration::from_secs(SLOW_SECS), "up took {took:?}");
    // Boot had finished when `up` returned: the slow unit is done, not activating.
    assert_eq!(
        env.ssh("web1", "sudo systemctl is-active envctl-slow.service"),
        "active"
    );
    assert_eq!(env.ssh("web2", "cat /proc/1/comm"), "sshd");

    // A container on this host's engine is reached over a bridge of virtual ports only:
    // its connections put the cheaper key exchange first, and its sshd takes it.
    let output = env.envctl(&["-v", "ssh", "web2", "--", "true"]);
    assert!(output.status.success(), "{}", show(&output));
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(said.contains("KexAlgorithms=^curve25519-sha256"), "{said}");
    let ssh_config = env.dir.join(".envctl/ssh_config");
    let login = std::process::Command::new("ssh")
        .arg("-F")
        .arg(&ssh_config)
        .args([
            "-v",
            "-o",
            "KexAlgorithms=^curve25519-sha256",
            "web2",
            "true",
        ])
        .output()
        .unwrap();
    assert!(login.status.success(), "{}", show(&login));
    assert!(
        String::from_utf8_lossy(&login.stderr).contains("kex: algorithm: curve25519-sha256"),
        "{}",
        show(&login)
    );

    // The logins that found the machines ready stay open, one master per machine, where
    // Ansible's connections look for theirs: the playbook's first task logs in to none.
    let sockets: Vec<_> = fs::read_dir(env.dir.join(".envctl/cp"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    assert_eq!(sockets.len(), 2, "{sockets:?}");
    for socket in &sockets {
        let check = std::process::Command::new("ssh")
            .arg("-o")
            .arg(format!(
                "ControlPath=\"{}\"",
                socket.display().to_string().replace('%', "%%")
            ))
            .args(["-O", "check", "the-master-knows-where"])
            .output()
            .unwrap();
        assert!(
            check.status.success(),
            "{}: {}",
            socket.display(),
            show(&check)
        );
    }
}
