//! End to end on real libvirtd and QEMU under TCG, with the offline test box added the
//! way users add boxes: the example environment, unchanged but for `--provider libvirt`.
//! It starts under Docker and is switched to libvirt and back (`up --switch`), comparing
//! the inventories and what the playbook recorded on the machines each time. On the same
//! machines (one boot, many assertions) the parity playbook (`tests/parity/`) runs
//! unchanged under Docker and under libvirt, and what it records must not differ; the
//! example's web servers and the parity playbook's answer again after `halt` and `up`.
//! Under libvirt, web1's /vagrant becomes a virtiofs export by `reload` (live both ways,
//! `.envctl/` covered, mounted again after `halt` and `up`; its forwarded port survives
//! the reload), dropped again before the switch back to Docker, which has no virtiofs.
//! web1's forwarded port answers on the host under Docker, under libvirt (an SSH tunnel,
//! made again by `up` when it died, gone while halted), after the switch back, and
//! nothing listens there after `destroy`.

mod common;

use std::fs;
use std::time::Instant;

use common::parity;
use common::{
    assert_example_pages_answer, docker_objects, libvirt_objects, require_ansible, require_docker,
    require_libvirt, show, TestEnv,
};

const MACHINES: [(&str, &str, &str); 3] = [
    ("web1", "192.168.56.11", "web1.example.test"),
    ("web2", "192.168.56.12", "web2.example.test"),
    ("db1", "192.168.56.13", "db1.example.test"),
];

/// What the playbook left on each machine, and how each machine sees itself.
fn records(env: &TestEnv) -> Vec<String> {
    MACHINES
        .iter()
        .map(|(name, ..)| {
            env.ssh(
                name,
                "hostname -f; ip -4 -o addr show | grep -o 'inet [0-9./]*' | sort; \
                 cat /var/lib/envctl-example/role /var/lib/envctl-example/greeting; \
                 wc -l < /var/lib/envctl-example/runs",
            )
        })
        .collect()
}

/// The machines' names, in the order of [`MACHINES`].
/// The default synced folder, the project at /vagrant, as `kind` (`bind` under Docker,
/// `rsync` under libvirt): there in every machine, a file the host writes reaches it (at
/// once when live, after `envctl rsync` otherwise), and the private key in `.envctl/`
/// cannot be read there, not even by root.
fn assert_folders(env: &TestEnv, kind: &str) {
    let status = env.status_json();
    for machine in status["machines"].as_array().unwrap() {
        assert_eq!(
            machine["synced_folders"][0]["guest"], "/vagrant",
            "{status}"
        );
        assert_eq!(machine["synced_folders"][0]["type"], kind, "{status}");
    }
    let note = format!("written on the host for {kind}\n");
    fs::write(env.dir.join("from-host.txt"), &note).unwrap();
    if kind == "rsync" {
        env.ok(&["rsync"]);
    }
    for (name, ..) in MACHINES {
        assert_eq!(
            env.ssh(
                name,
                "head -1 /vagrant/Machinefile; cat /vagrant/from-host.txt"
            ),
            format!(
                "# The example environment: two web servers and a database, on any provider.\n{}",
                note.trim()
            ),
            "{name}"
        );
        let key = env.envctl(&["ssh", name, "--", "sudo cat /vagrant/.envctl/id_ed25519"]);
        assert!(
            !key.status.success(),
            "{name}: the key was read: {}",
            show(&key)
        );
    }
}

fn names() -> Vec<&'static str> {
    MACHINES.iter().map(|(name, ..)| *name).collect()
}

/// The generated inventory and the copy the Machinefile asks for.
fn inventories(env: &TestEnv) -> (String, String) {
    (
        fs::read_to_string(env.state_dir().join("inventory")).unwrap(),
        fs::read_to_string(env.dir.join("inventory")).unwrap(),
    )
}

#[test]
fn libvirt_example_environment_round_trip() {
    let box_file = require_libvirt();
    require_docker();
    require_ansible();
    let mut env = TestEnv::copy_of("example", |text| text);
    common::allow_emulated_boots(&mut env);
    env.vars
        .push(("ENVCTL_DATA_DIR".into(), env.dir.join("data")));
    env.vars
        .push(("VAGRANT_HOME".into(), env.dir.join("no-vagrant")));
    env.ok(&[
        "box",
        "add",
        "debian/bookworm64",
        box_file.to_str().unwrap(),
    ]);
    assert!(env
        .ok(&["box", "list"])
        .contains("debian/bookworm64 (libvirt, 0)"));

    // First under Docker, the default.
    env.ok(&["up"]);
    let env_id = env.env_id();
    let public_key = fs::read_to_string(env.state_dir().join("id_ed25519.pub")).unwrap();
    let docker_inventories = inventories(&env);
    let docker_records = records(&env);
    assert!(docker_records[1].contains("web 8081"), "{docker_records:?}");
    let label = format!("envctl.env-id={env_id}");
    assert_eq!(docker_objects("container", &label).len(), 3);
    assert_example_pages_answer(&env);

    assert_folders(&env, "bind");

    // The parity playbook, on the environment's own inventory, passes under Docker.
    parity::run(&env);
    let docker_facts = parity::checked_facts(&env, &names());

    // Another provider without --switch is refused, and nothing changes.
    let refused = env.envctl(&["up", "--provider", "libvirt"]);
    assert!(!refused.status.success(), "{}", show(&refused));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("--switch"),
        "{}",
        show(&refused)
    );
    assert!(env.states().iter().all(|(_, state)| state == "running"));

    let switching = Instant::now();
    let up = env.envctl(&["up", "--provider", "libvirt", "--switch"]);
    assert!(up.status.success(), "{}", show(&up));
    eprintln!(
        "up --switch to libvirt (TCG), example playbook included: {:.0} s",
        switching.elapsed().as_secs_f64()
    );
    assert!(docker_objects("container", &label).is_empty());
    assert!(docker_objects("network", &label).is_empty());
    // The same environment: id, key, inventory, and what the playbook recorded.
    assert_eq!(env.env_id(), env_id);
    assert_eq!(
        fs::read_to_string(env.state_dir().join("id_ed25519.pub")).unwrap(),
        public_key
    );
    assert_eq!(inventories(&env), docker_inventories);
    assert_eq!(records(&env), docker_records);
    assert_eq!(libvirt_objects("list", "example-").len(), 3);
    assert_eq!(libvirt_objects("net-list", "example-"), ["example-net"]);

    assert_folders(&env, "rsync");
    for (name, ip, hostname) in MACHINES {
        assert_eq!(env.ssh(name, "hostname -f"), hostname);
        assert!(
            env.ssh(name, "ip -4 -o addr show")
                .contains(&format!("inet {ip}/24")),
            "{name} lacks {ip}"
        );
        // Only the environment's key is authorized: Vagrant's insecure key is gone.
        assert_eq!(
            env.ssh(name, "cat ~/.ssh/authorized_keys"),
            public_key.trim()
        );
        // By hostname and by single-label name (the DHCP search domain). IPv4 only:
        // for its own name a machine's nss-myhostname also answers with link-local IPv6.
        for (other, other_ip, other_hostname) in MACHINES {
            for asked in [other_hostname, other] {
                let seen = env.ssh(name, &format!("getent ahostsv4 {asked}"));
                assert!(
                    seen.starts_with(&format!("{other_ip} ")),
                    "{name} resolves {asked} to {seen:?}"
                );
            }
        }
        common::assert_sshd_hardened(&env, name);
    }
    // The insecure key no longer opens the machine.
    let insecure = env.state_dir().join("vagrant_insecure_key.ed25519");
    let refused = std::process::Command::new("ssh")
        .args([
            "-F",
            "/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
        ])
        .arg("-i")
        .arg(&insecure)
        .args(["vagrant@192.168.56.11", "true"])
        .output()
        .unwrap();
    assert!(
        !refused.status.success(),
        "Vagrant's insecure key still works"
    );

    // The playbook ran once against all three.
    let mut ids = Vec::new();
    for (name, ..) in MACHINES {
        let runs = env.ssh(name, "cat /var/lib/envctl-example/runs");
        let lines: Vec<&str> = runs.lines().collect();
        assert_eq!(lines.len(), 1, "{name}: {runs}");
        assert!(lines[0].ends_with(" db1,web1,web2"), "{name}: {runs}");
        ids.push(lines[0].split(' ').next().unwrap().to_string());
    }
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    assert_eq!(
        env.ssh("web2", "cat /var/lib/envctl-example/role"),
        "web 8081"
    );

    // The example's web servers answer under libvirt, with no change to the Machinefile
    // or the playbook; the parity playbook passes unchanged, and what it records (service
    // manager, hostname, FQDN, manifest address, login user, passwordless sudo) is what
    // it recorded under Docker.
    assert_example_pages_answer(&env);
    parity::run(&env);
    parity::assert_same_facts(&docker_facts, &parity::checked_facts(&env, &names()));

    let machinefile = export_the_project_to_web1(&env);

    // web1's forwarded port is an SSH tunnel kept by envctl under libvirt; one that died
    // is made again by `up` on the running machine.
    let forwarded = common::example_forwarded_port(&env);
    let tunnels = tunnel_pids(&env_id);
    assert_eq!(tunnels.len(), 1, "{tunnels:?}");
    for pid in &tunnels {
        kill(*pid);
    }
    common::assert_nothing_listens(forwarded);
    let again = env.envctl(&["up"]);
    assert!(again.status.success(), "{}", show(&again));
    let again = String::from_utf8_lossy(&again.stderr);
    assert!(
        again.contains(&format!(
            "web1: 8080 (guest) => 127.0.0.1:{forwarded} (host, tcp)"
        )),
        "{again}"
    );
    assert_eq!(
        common::example_forwarded_port(&env),
        forwarded,
        "a second choice"
    );
    assert_example_pages_answer(&env);

    env.ok(&["halt"]);
    assert!(tunnel_pids(&env_id).is_empty(), "a tunnel outlived halt");
    common::assert_nothing_listens(forwarded);
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
    assert_eq!(env.ssh("db1", "hostname -f"), "db1.example.test");
    // The services, enabled at boot, started by themselves; web1's virtiofs folder is
    // mounted again.
    assert_example_pages_answer(&env);
    parity::assert_pages_answer(&env, &MACHINES);
    assert_eq!(env.ssh("web1", "cat /vagrant/live.txt"), "live");
    // Docker has no virtiofs: the example as it was.
    fs::write(env.dir.join("Machinefile"), machinefile).unwrap();

    // And back to Docker: the libvirt machines go, the same environment comes up again,
    // its forwarded port published by Docker in place of the tunnel.
    env.ok(&["up", "--provider", "docker", "--switch"]);
    assert!(
        tunnel_pids(&env_id).is_empty(),
        "a tunnel outlived the switch"
    );
    assert_eq!(common::example_forwarded_port(&env), forwarded);
    assert_example_pages_answer(&env);
    assert_eq!(libvirt_objects("list", "example-"), Vec::<String>::new());
    common::assert_nothing_left_in_libvirt("example-");
    assert_eq!(
        libvirt_objects("net-list", "example-"),
        Vec::<String>::new()
    );
    assert_eq!(env.env_id(), env_id);
    assert_eq!(inventories(&env), docker_inventories);
    assert_eq!(records(&env), docker_records);

    env.ok(&["destroy", "--force"]);
    assert!(docker_objects("container", &label).is_empty());
    assert_eq!(
        libvirt_objects("list", "example-"),
        Vec::<String>::new(),
        "domains left"
    );
    assert_eq!(
        libvirt_objects("net-list", "example-"),
        Vec::<String>::new(),
        "networks left"
    );
    assert!(!env.state_dir().exists());
    common::assert_nothing_listens(forwarded);
}

/// The guest user's uid in the test box, given a folder on the host, as a developer's
/// checkout is theirs (the tests run as root).
const GUEST_UID: u32 = 1000;

/// Makes web1's /vagrant a virtiofs export of the project, applied by `reload web1`: the
/// domain is defined again with the export and the guest mounts it; its forwarded port
/// answers again, on the same host port. A file the host
/// writes is read in the guest at once; one the guest user writes is on the host, the
/// folder owner's; `.envctl/`, covered on the host by virtiofsd's wrapper, shows empty
/// and its key cannot be read, not even by root, who cannot lift the cover either.
/// Returns the Machinefile as it was.
fn export_the_project_to_web1(env: &TestEnv) -> String {
    let path = env.dir.join("Machinefile");
    let machinefile = fs::read_to_string(&path).unwrap();
    let with_virtiofs = machinefile.replace(
        "      http_port: 8080\n",
        "      http_port: 8080\n    synced_folders: [{host: ., guest: /vagrant, type: virtiofs}]\n",
    );
    assert_ne!(with_virtiofs, machinefile, "web1 is no longer where it was");
    let forwarded = common::example_forwarded_port(env);
    let theirs = env.dir.join("theirs");
    fs::create_dir(&theirs).unwrap();
    std::os::unix::fs::chown(&theirs, Some(GUEST_UID), Some(GUEST_UID)).unwrap();
    fs::write(&path, with_virtiofs).unwrap();

    let reload = env.envctl(&["reload", "web1", "--no-provision"]);
    assert!(reload.status.success(), "{}", show(&reload));
    assert!(
        String::from_utf8_lossy(&reload.stderr).contains("web1: . → /vagrant (virtiofs)"),
        "{}",
        show(&reload)
    );
    let status = env.status_json();
    let web1 = &status["machines"][0];
    assert_eq!(web1["name"], "web1", "{status}");
    assert_eq!(web1["synced_folders"][0]["type"], "virtiofs", "{status}");
    // The forward survives `reload`, on the same host port, and web1's service is back.
    assert_eq!(common::example_forwarded_port(env), forwarded);
    assert_example_pages_answer(env);
    assert_eq!(env.ssh("web1", "findmnt -n -o FSTYPE /vagrant"), "virtiofs");
    fs::write(env.dir.join("live.txt"), "live\n").unwrap();
    assert_eq!(env.ssh("web1", "cat /vagrant/live.txt"), "live");
    env.ssh("web1", "echo from the guest > /vagrant/theirs/guest.txt");
    let written = theirs.join("guest.txt");
    assert_eq!(fs::read_to_string(&written).unwrap(), "from the guest\n");
    use std::os::unix::fs::MetadataExt;
    assert_eq!(fs::metadata(&written).unwrap().uid(), GUEST_UID);
    assert_eq!(
        env.ssh("web1", "sudo ls -A /vagrant/.envctl | wc -l"),
        "0",
        "the cover shows an empty folder"
    );
    for as_root in [
        "sudo cat /vagrant/.envctl/id_ed25519",
        "sudo umount /vagrant/.envctl",
        "sudo umount -l /vagrant/.envctl && sudo cat /vagrant/.envctl/id_ed25519",
    ] {
        let tried = env.envctl(&["ssh", "web1", "--", as_root]);
        assert!(!tried.status.success(), "{as_root}: {}", show(&tried));
    }
    machinefile
}

/// The SSH tunnels envctl keeps for environment `env_id`, by the marker on their command
/// line.
fn tunnel_pids(env_id: &str) -> Vec<u32> {
    let marker = format!("SetEnv=ENVCTL_TUNNEL={env_id}/");
    fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|process| {
            let pid: u32 = process.file_name().to_str()?.parse().ok()?;
            let cmdline = fs::read(process.path().join("cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).into_owned();
            cmdline
                .split('\0')
                .any(|arg| arg.starts_with(&marker))
                .then_some(pid)
        })
        .collect()
}

/// Ends process `pid`, as a crash would, and waits for it to go.
fn kill(pid: u32) {
    let status = std::process::Command::new("kill")
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + std::time::Duration::from_secs(5);
    while fs::metadata(format!("/proc/{pid}")).is_ok() && Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}
