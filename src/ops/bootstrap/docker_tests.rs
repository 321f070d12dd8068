//! Bootstrap against a real sshd: a Docker container made like a Vagrant box (user
//! `vagrant` with passwordless sudo trusting Vagrant's insecure keys, a host key of its
//! own made when the image was built, sshd in the foreground). These tests need Docker and
//! the local image debian:bookworm; they fail, never skip, when Docker does not answer.
//! Networks 10.231.21.0/24 and 10.231.22.0/24, names `envctl-ready-*`.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use envctl_provider::{HostKey, ImageSource, MachineSpec};
use futures_util::future::join_all;

use super::script::Script;
use super::{bootstrap, converge, prepare_state, run_first_contact, Machine, Round};
use crate::keys;
use crate::ssh::{
    self, Boot, Connection, Credentials, Deadline, HostKeys, KnownHost, Mode, NotReady, SshTarget,
};
use crate::state::{write_private, StateDir};

const ENV: &str = "ready";

/// A key of the box's other account, `ops`, which it trusts beside Vagrant's insecure
/// keys: bootstrap must take those away from it and leave this one.
const OPS_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOpsOwnKeyOfTheBoxNotVagrantsAtAll ops@box";

/// The fake box. Its tag is the hash of this text, so it is built once per change.
fn dockerfile() -> String {
    let keys = [
        include_str!("../../../images/libvirt-box/vagrant-insecure-keys/vagrant.pub.ed25519"),
        include_str!("../../../images/libvirt-box/vagrant-insecure-keys/vagrant.pub.rsa"),
    ]
    .map(|key| format!("'{}'", key.trim()))
    .join(" ");
    format!(
        r#"FROM debian:bookworm
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends openssh-server sudo \
 && rm -rf /var/lib/apt/lists/*
RUN useradd -m -s /bin/bash vagrant && usermod -p '*' vagrant \
 && printf 'vagrant ALL=(ALL) NOPASSWD:ALL\n' > /etc/sudoers.d/vagrant && chmod 0440 /etc/sudoers.d/vagrant \
 && install -d -m 0700 -o vagrant -g vagrant /home/vagrant/.ssh \
 && printf '%s\n' {keys} > /home/vagrant/.ssh/authorized_keys \
 && chown vagrant:vagrant /home/vagrant/.ssh/authorized_keys && chmod 0600 /home/vagrant/.ssh/authorized_keys \
 && useradd -m -s /bin/bash ops && install -d -m 0700 -o ops -g ops /home/ops/.ssh \
 && printf '%s\n' {keys} '{OPS_KEY}' > /home/ops/.ssh/authorized_keys \
 && chown ops:ops /home/ops/.ssh/authorized_keys && chmod 0600 /home/ops/.ssh/authorized_keys \
 && rm -f /etc/ssh/ssh_host_* \
 && ssh-keygen -q -t ed25519 -N '' -f /etc/ssh/ssh_host_ed25519_key \
 && ssh-keygen -q -t ecdsa -N '' -f /etc/ssh/ssh_host_ecdsa_key \
 && mkdir -p /run/sshd
CMD ["/usr/sbin/sshd", "-D", "-e"]
"#
    )
}

fn docker(args: &[&str]) -> String {
    let output = Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("running docker");
    assert!(
        output.status.success(),
        "docker {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn docker_quietly(args: &[&str]) {
    let _ = docker_succeeds(args);
}

fn docker_succeeds(args: &[&str]) -> bool {
    Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

fn require_docker() {
    assert!(
        docker_succeeds(&["version", "--format", "{{.Server.Version}}"]),
        "the Docker Engine does not answer: start Docker (scripts/ensure-docker)"
    );
    assert!(
        docker_succeeds(&["image", "inspect", "debian:bookworm"]),
        "the image debian:bookworm is missing: run images/docker-base/build"
    );
}

/// Builds the fake box unless an image of this Dockerfile exists; returns its tag.
fn fakebox() -> String {
    static BUILDING: Mutex<()> = Mutex::new(());
    let _one = BUILDING.lock().unwrap_or_else(|poison| poison.into_inner());
    let text = dockerfile();
    let digest = ssh_key::HashAlg::Sha256.digest(text.as_bytes());
    let hex: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
    let tag = format!("envctl-ready/fakebox:{hex}");
    if docker_succeeds(&["image", "inspect", &tag]) {
        return tag;
    }
    let mut child = Command::new("docker")
        .args(["build", "-q", "-t", &tag, "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("running docker build");
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), text.as_bytes()).unwrap();
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success(), "building {tag}");
    tag
}

/// A network and its containers, removed when dropped; and a project folder whose path
/// has a space and a `%`, which every ssh option must survive.
struct Lab {
    network: String,
    prefix: String,
    containers: Mutex<Vec<String>>,
    project: PathBuf,
    state_dir: StateDir,
}

impl Lab {
    fn new(name: &str, subnet: &str) -> Lab {
        require_docker();
        let network = format!("envctl-ready-{name}");
        // What an earlier run that was killed left behind.
        for id in docker(&["ps", "-aq", "--filter", &format!("name=^{network}-")]).lines() {
            docker_quietly(&["rm", "-f", id]);
        }
        docker_quietly(&["network", "rm", &network]);
        docker(&[
            "network",
            "create",
            "--subnet",
            &format!("{subnet}.0/24"),
            &network,
        ]);
        let project =
            std::env::temp_dir().join(format!("envctl-ready {name} 100% {}", keys::random_id()));
        std::fs::create_dir_all(&project).unwrap();
        Lab {
            state_dir: StateDir::new(&project),
            network,
            prefix: subnet.to_string(),
            containers: Mutex::new(Vec::new()),
            project,
        }
    }

    /// Starts a fake box at `.host`; may set the hostname (as a VM's root can).
    fn start(&self, image: &str, name: &str, host: u8) -> String {
        let container = format!("{}-{name}", self.network);
        let ip = format!("{}.{host}", self.prefix);
        docker(&[
            "run",
            "-d",
            "--name",
            &container,
            "--network",
            &self.network,
            "--ip",
            &ip,
            "--cap-add",
            "SYS_ADMIN",
            image,
        ]);
        self.containers.lock().unwrap().push(container);
        ip
    }

    /// A machine spec with this lab's keys, and `known_hosts` listing `machines`.
    fn specs(&self, machines: &[(String, String)]) -> Vec<MachineSpec> {
        let keypair = keys::ensure_keypair(&self.state_dir, ENV).unwrap();
        let specs: Vec<MachineSpec> = machines
            .iter()
            .map(|(name, ip)| MachineSpec {
                name: name.clone(),
                hostname: format!("{name}.ready.test"),
                ip: ip.parse().unwrap(),
                cpus: 1,
                memory_mib: 256,
                user: "vagrant".into(),
                aliases: vec![],
                image: ImageSource::DockerImage("fakebox".into()),
                authorized_key: keypair.public_openssh.clone(),
                host_key: keys::ensure_host_key(&self.state_dir, ENV, name).unwrap(),
                init: envctl_provider::Init::default(),
                forwarded_ports: Vec::new(),
                binds: Vec::new(),
                user_ids: None,
            })
            .collect();
        let hosts: Vec<KnownHost> = specs
            .iter()
            .map(|spec| KnownHost {
                name: &spec.name,
                hostname: &spec.hostname,
                ip: spec.ip,
                public_key: &spec.host_key.public_openssh,
            })
            .collect();
        write_private(
            &self.state_dir.known_hosts(),
            ssh::render_known_hosts(&hosts).as_bytes(),
        )
        .unwrap();
        specs
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for container in self.containers.lock().unwrap().iter() {
            docker_quietly(&["rm", "-f", container]);
        }
        docker_quietly(&["network", "rm", &self.network]);
        let _ = std::fs::remove_dir_all(&self.project);
    }
}

fn target<'a>(spec: &'a MachineSpec, ip: &'a str) -> SshTarget<'a> {
    SshTarget {
        name: &spec.name,
        user: &spec.user,
        host: ip,
        port: 22,
    }
}

/// Runs `text` over first contact as an earlier, cut-off bootstrap did, once sshd answers.
async fn run_cut(machine: &Machine<'_>, text: &str) {
    let deadline = Deadline::after(Duration::from_secs(60));
    loop {
        match run_first_contact(machine, text).await {
            Round::Progress | Round::Done => return,
            Round::Never(reason) => panic!("the cut-off script could not run: {reason}"),
            Round::NotYet(seen) => {
                assert!(!deadline.passed(), "sshd never answered: {seen}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// How the second bootstrap runs: within the same `up` (first-seen key kept), or as the
/// next `up` (the real `bootstrap`, which forgets it).
#[derive(Clone, Copy, Debug)]
enum Retry {
    SameUp,
    NextUp,
}

async fn cut_then_bootstrap(lab: &Lab, spec: &MachineSpec, cut: usize, retry: Retry) {
    let creds = Credentials {
        private_key: &lab.state_dir.private_key(),
        known_hosts: &lab.state_dir.known_hosts(),
    };
    let ip = spec.ip.to_string();
    let target = target(spec, &ip);
    let (insecure, first_contact) = prepare_state(&lab.state_dir, &spec.name).unwrap();
    let machine = Machine {
        target: &target,
        creds,
        insecure: &insecure,
        first_contact: &first_contact,
        generated: ssh::fingerprint(&spec.host_key.public_openssh).unwrap(),
    };
    let script = Script::new(spec, None);
    run_cut(&machine, &script.cut_after(cut)).await;
    let deadline = Deadline::after(Duration::from_secs(90));
    let result = match retry {
        Retry::SameUp => converge(&machine, &script, deadline)
            .await
            .map_err(anyhow::Error::from),
        Retry::NextUp => bootstrap(&lab.state_dir, spec, &target, None, creds, deadline).await,
    };
    if let Err(err) = result {
        panic!("{}: cut after {cut}, {retry:?}: {err:#}", spec.name);
    }
    assert_machine_of_the_environment(lab, &target, spec, &script, &insecure, creds).await;
}

/// Pinned login works, only the environment's key is authorized (and sshd, reloaded,
/// offers nothing but keys), another account's trust of Vagrant's insecure key gone but
/// its own key kept, hostname set, only the generated host key, marker present.
async fn assert_machine_of_the_environment(
    lab: &Lab,
    target: &SshTarget<'_>,
    spec: &MachineSpec,
    script: &Script,
    insecure: &[PathBuf],
    creds: Credentials<'_>,
) {
    let pinned = ssh::args(&Connection::pinned(target, creds), Mode::Batch).unwrap();
    let probe = "cat ~/.ssh/authorized_keys; echo --; cat /etc/hostname; hostname; echo --; \
                 cat /var/lib/envctl/bootstrap; echo --; ls /etc/ssh/ssh_host_*; echo --; \
                 sudo cat /home/ops/.ssh/authorized_keys";
    let seen = ssh::run(&pinned, probe, b"", Duration::from_secs(30))
        .await
        .unwrap();
    assert!(
        seen.success(),
        "{}: pinned login: {}",
        spec.name,
        seen.stderr
    );
    let short = &spec.name;
    let want = format!(
        "{}\n--\n{short}\n{short}\n--\n{}\n--\n/etc/ssh/ssh_host_ed25519_key\n/etc/ssh/ssh_host_ed25519_key.pub\n--\n{OPS_KEY}\n",
        spec.authorized_key,
        script.marker()
    );
    assert_eq!(seen.stdout, want, "{}", spec.name);

    // Vagrant's insecure key no longer gets in, and sshd offers keys only.
    let scratch = lab.project.join(format!("known_hosts.{}", spec.name));
    let conn = Connection {
        target,
        host_keys: HostKeys::FirstContact(&scratch),
        identities: insecure.iter().map(PathBuf::as_path).collect(),
        kept_open_in: None,
    };
    let args = ssh::args(&conn, Mode::Batch).unwrap();
    let refused = ssh::run(&args, "true", b"", Duration::from_secs(30))
        .await
        .unwrap();
    assert!(
        refused.ssh_failed() && refused.stderr.contains("Permission denied (publickey)."),
        "{}: insecure key: {refused:?}",
        spec.name
    );

    // Without systemd, answering SSH is ready.
    let deadline = Deadline::after(Duration::from_secs(30));
    let boot = ssh::wait_ready(target, creds, None, deadline).await;
    assert!(
        matches!(boot, Ok(Boot::NoSystemd)),
        "{}: {boot:?}",
        spec.name
    );
}

/// The script cut off after every one of its steps (nothing run, …, all run), then
/// bootstrap again, in the same `up` and in the next: every time the machine ends as one
/// of the environment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_bootstrap_converges_after_a_cut_at_every_step() {
    let lab = Lab::new("cuts", "10.231.21");
    let image = fakebox();
    let steps = Script::new(&any_spec(), None).step_names().len();
    let mut cases = Vec::new();
    for cut in 0..=steps {
        for (i, retry) in [Retry::SameUp, Retry::NextUp].into_iter().enumerate() {
            let name = format!("c{cut}{}", ["s", "n"][i]);
            let host = u8::try_from(10 + 2 * cut + i).unwrap();
            let ip = lab.start(&image, &name, host);
            cases.push((name, ip, cut, retry));
        }
    }
    let machines: Vec<(String, String)> = cases
        .iter()
        .map(|(name, ip, ..)| (name.clone(), ip.clone()))
        .collect();
    let specs = lab.specs(&machines);
    let started = Instant::now();
    join_all(
        cases
            .iter()
            .zip(&specs)
            .map(|((_, _, cut, retry), spec)| cut_then_bootstrap(&lab, spec, *cut, *retry)),
    )
    .await;
    eprintln!(
        "{} cut-and-retry bootstraps in {:.1}s",
        cases.len(),
        started.elapsed().as_secs_f32()
    );
}

/// A spec only to count the script's steps.
fn any_spec() -> MachineSpec {
    MachineSpec {
        name: "m".into(),
        hostname: "m.ready.test".into(),
        ip: "10.0.0.1".parse().unwrap(),
        cpus: 1,
        memory_mib: 256,
        user: "vagrant".into(),
        aliases: vec![],
        image: ImageSource::DockerImage("fakebox".into()),
        authorized_key: String::new(),
        host_key: HostKey {
            private_openssh: String::new(),
            public_openssh: String::new(),
        },
        init: envctl_provider::Init::default(),
        forwarded_ports: Vec::new(),
        binds: Vec::new(),
        user_ids: None,
    }
}

/// What will never work fails at once with the reason, not at the deadline: sudo that
/// wants a password, and a machine presenting a host key that is neither the box's first
/// seen nor the one envctl generated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_bootstrap_fails_fast_on_what_will_never_work() {
    let lab = Lab::new("never", "10.231.22");
    let image = fakebox();
    let sudo_ip = lab.start(&image, "sudo", 10);
    let odd_ip = lab.start(&image, "odd", 11);
    let specs = lab.specs(&[("sudo".into(), sudo_ip), ("odd".into(), odd_ip)]);
    let creds = Credentials {
        private_key: &lab.state_dir.private_key(),
        known_hosts: &lab.state_dir.known_hosts(),
    };
    let deadline = || Deadline::after(Duration::from_secs(120));

    docker(&[
        "exec",
        "envctl-ready-never-sudo",
        "rm",
        "/etc/sudoers.d/vagrant",
    ]);
    let started = Instant::now();
    let ip = specs[0].ip.to_string();
    let target = target(&specs[0], &ip);
    let err = bootstrap(&lab.state_dir, &specs[0], &target, None, creds, deadline())
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("without a password"), "{err:#}");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "took {:?}",
        started.elapsed()
    );
    eprintln!("sudo wanting a password: failed in {:?}", started.elapsed());

    // First contact sees the box's key; then the machine's key is replaced by a third.
    let spec = &specs[1];
    let ip = spec.ip.to_string();
    let target = self::target(spec, &ip);
    let (insecure, first_contact) = prepare_state(&lab.state_dir, &spec.name).unwrap();
    let machine = Machine {
        target: &target,
        creds,
        insecure: &insecure,
        first_contact: &first_contact,
        generated: ssh::fingerprint(&spec.host_key.public_openssh).unwrap(),
    };
    run_cut(&machine, &Script::new(spec, None).cut_after(0)).await;
    docker(&[
        "exec", "envctl-ready-never-odd", "sh", "-c",
        "rm -f /etc/ssh/ssh_host_* && ssh-keygen -q -t ed25519 -N '' -f /etc/ssh/ssh_host_ed25519_key",
    ]);
    let started = Instant::now();
    let err = converge(&machine, &Script::new(spec, None), deadline())
        .await
        .unwrap_err();
    assert!(matches!(err, NotReady::Never(_)), "{err}");
    assert!(format!("{err}").contains("neither"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "took {:?}",
        started.elapsed()
    );
    eprintln!("a third host key: failed in {:?}", started.elapsed());
}
