//! What the end-to-end tests share: a copy of an example environment in a temporary
//! folder, envctl run on it, and checks that the services the tests need answer.

#![allow(dead_code)]

pub mod parity;

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::sleep;
use std::time::{Duration, Instant};

pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// One environment in its own temporary folder; destroyed when dropped.
pub struct TestEnv {
    pub dir: PathBuf,
    /// Extra environment for every envctl run (e.g. a private box store); a later entry
    /// for the same name wins. It starts with ENVCTL_DATA_DIR set to `data_dir`.
    pub vars: Vec<(String, PathBuf)>,
    /// The environment's own envctl data folder (box store, registry of environments),
    /// beside `dir` rather than in it, so moving `dir` leaves it where envctl looks:
    /// no test reads or writes the user's.
    pub data_dir: PathBuf,
}

impl TestEnv {
    /// Copies `environments/<example>` (Machinefile, playbook and its templates) to a fresh
    /// folder, passing the Machinefile's text through `edit`.
    pub fn copy_of(example: &str, edit: impl Fn(String) -> String) -> TestEnv {
        let source = repo().join("environments").join(example);
        // Tests of one binary run at once: each environment gets a folder of its own.
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let serial = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!(
            "envctl-test-{example}-{}-{serial}",
            std::process::id()
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        copy_environment_files(&source, &dir);
        let machinefile = dir.join("Machinefile");
        fs::write(
            &machinefile,
            edit(fs::read_to_string(&machinefile).unwrap()),
        )
        .unwrap();
        let data_dir = dir.with_file_name(format!(
            "{}-data",
            dir.file_name().unwrap().to_string_lossy()
        ));
        let _ = fs::remove_dir_all(&data_dir);
        TestEnv {
            dir,
            vars: vec![("ENVCTL_DATA_DIR".into(), data_dir.clone())],
            data_dir,
        }
    }

    /// Runs envctl in the environment's folder, without a terminal.
    pub fn envctl(&self, args: &[&str]) -> Output {
        self.envctl_at(&self.dir, args)
    }

    /// Runs envctl in `dir`, with this environment's variables (its data folder).
    pub fn envctl_at(&self, dir: &Path, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_envctl"))
            .args(args)
            .current_dir(dir)
            .env_remove("ENVCTL_PROVIDER")
            .envs(self.vars.iter().map(|(name, value)| (name, value)))
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// Runs envctl and fails the test, showing its output, unless it succeeds.
    pub fn ok(&self, args: &[&str]) -> String {
        let output = self.envctl(args);
        assert!(
            output.status.success(),
            "envctl {args:?} failed:\n{}",
            show(&output)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Runs a command on a machine over `envctl ssh` and returns its stdout.
    pub fn ssh(&self, machine: &str, command: &str) -> String {
        self.ok(&["ssh", machine, "--", command]).trim().to_string()
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.join(".envctl")
    }

    /// The environment id envctl recorded, which every resource carries.
    pub fn env_id(&self) -> String {
        let state: serde_json::Value =
            serde_json::from_slice(&fs::read(self.state_dir().join("state.json")).unwrap())
                .unwrap();
        state["env_id"].as_str().unwrap().to_string()
    }

    pub fn status_json(&self) -> serde_json::Value {
        serde_json::from_str(&self.ok(&["status", "--json"])).unwrap()
    }

    /// Each machine's state, by name.
    pub fn states(&self) -> Vec<(String, String)> {
        let status = self.status_json();
        status["machines"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["name"].as_str().unwrap().to_string(),
                    m["state"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        if self.state_dir().exists() {
            let _ = self.envctl(&["destroy", "--force"]);
        }
        let _ = fs::remove_dir_all(&self.dir);
        let _ = fs::remove_dir_all(&self.data_dir);
    }
}

/// Copies an example environment's files and folders (templates), but not what `up` left
/// there: its state folder and the inventory copy.
fn copy_environment_files(source: &Path, target: &Path) {
    for entry in fs::read_dir(source).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap();
        if name == "inventory" || name.to_string_lossy().starts_with('.') {
            continue;
        }
        if path.is_dir() {
            fs::create_dir_all(target.join(name)).unwrap();
            copy_environment_files(&path, &target.join(name));
        } else if path.is_file() {
            fs::copy(&path, target.join(name)).unwrap();
        }
    }
}

pub fn envctl_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_envctl"))
        .args(args)
        .current_dir(dir)
        .env_remove("ENVCTL_PROVIDER")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

pub fn show(output: &Output) -> String {
    format!(
        "status: {}\n--- stdout\n{}--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Fails the test, saying what to start, unless the Docker Engine answers and the base
/// image the default recipe builds on is there.
pub fn require_docker() {
    let answers = Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .output()
        .is_ok_and(|output| output.status.success());
    assert!(
        answers,
        "the Docker Engine does not answer: run scripts/ensure-docker (or start dockerd)"
    );
    let base = Command::new("docker")
        .args(["image", "inspect", "debian:bookworm"])
        .output()
        .is_ok_and(|output| output.status.success());
    assert!(
        base,
        "the base image debian:bookworm is missing: run images/docker-base/build"
    );
}

/// Fails the test unless `ansible-playbook` runs.
pub fn require_ansible() {
    let runs = Command::new("ansible-playbook")
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success());
    assert!(
        runs,
        "ansible-playbook is missing: run scripts/ensure-ansible"
    );
}

/// Names of Docker objects of `kind` (container, network, volume) carrying `label`.
pub fn docker_objects(kind: &str, label: &str) -> Vec<String> {
    let mut args = vec![kind, "ls", "--quiet", "--filter"];
    let filter = format!("label={label}");
    args.push(&filter);
    if kind == "container" {
        args.push("--all");
    }
    let output = Command::new("docker").args(&args).output().unwrap();
    assert!(
        output.status.success(),
        "docker {args:?}: {}",
        show(&output)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// Fails the test, saying what to run, unless libvirtd answers on qemu:///system and the
/// offline test box (Vagrant's convention) is built. Returns the box file.
pub fn require_libvirt() -> PathBuf {
    require_libvirt_box("debian-bookworm-test.box", "scripts/ensure-test-box")
}

/// As [`require_libvirt`], for the test box that comes up with cloud-init instead.
pub fn require_cloud_init_box() -> PathBuf {
    require_libvirt_box(
        "debian-bookworm-cloud.box",
        "scripts/ensure-test-box cloud-init",
    )
}

fn require_libvirt_box(file_name: &str, build_with: &str) -> PathBuf {
    let answers = Command::new("virsh")
        .args(["-c", "qemu:///system", "version"])
        .output()
        .is_ok_and(|output| output.status.success());
    assert!(
        answers,
        "libvirtd does not answer on qemu:///system: run scripts/ensure-libvirt"
    );
    let cache = std::env::var_os("ENVCTL_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache/envctl"));
    let box_file = cache.join("boxes").join(file_name);
    assert!(
        box_file.is_file(),
        "the test box {} is missing: run {build_with}",
        box_file.display()
    );
    box_file
}

/// Names of libvirt domains or networks (`list` or `net-list`) that start with `prefix`.
pub fn libvirt_objects(list: &str, prefix: &str) -> Vec<String> {
    let output = Command::new("virsh")
        .args(["-c", "qemu:///system", list, "--all", "--name"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::trim)
        .filter(|name| name.starts_with(prefix))
        .map(str::to_string)
        .collect()
}

/// Runs `virsh` on qemu:///system; fails the test unless it succeeds. Returns stdout.
pub fn virsh(args: &[&str]) -> String {
    let output = Command::new("virsh")
        .args(["-c", "qemu:///system"])
        .args(args)
        .output()
        .unwrap();
    assert!(output.status.success(), "virsh {args:?}: {}", show(&output));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Fails the test unless no domain, network or volume in the `default` pool has a name
/// starting with `prefix` (overlays and seeds are `<env>-<machine>…`).
pub fn assert_nothing_left_in_libvirt(prefix: &str) {
    assert_eq!(
        libvirt_objects("list", prefix),
        Vec::<String>::new(),
        "domains left"
    );
    assert_eq!(
        libvirt_objects("net-list", prefix),
        Vec::<String>::new(),
        "networks left"
    );
    let volumes = virsh(&["vol-list", "default"]);
    let left: Vec<&str> = volumes
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| name.starts_with(prefix))
        .collect();
    assert!(left.is_empty(), "volumes left: {left:?}");
}

/// A libvirt environment from `machinefile` in a fresh folder, with `box_file` added as
/// `box_name` to its own box store (and no Vagrant store to fall back on).
pub fn libvirt_env(machinefile: &str, box_name: &str, box_file: &Path) -> TestEnv {
    let mut env = TestEnv::copy_of("example", |_| machinefile.to_string());
    env.vars
        .push(("VAGRANT_HOME".into(), env.dir.join("no-vagrant")));
    allow_emulated_boots(&mut env);
    env.ok(&["box", "add", box_name, box_file.to_str().unwrap()]);
    env
}

/// Ready means booted (systemd `running`, cloud-init's last stage included): under TCG,
/// with several guests booting at once, that has taken over 300 s, envctl's default.
/// A real timeout still fails, later.
pub fn allow_emulated_boots(env: &mut TestEnv) {
    env.vars
        .push(("ENVCTL_READY_TIMEOUT".into(), PathBuf::from("900")));
}

/// Fails the test, listing each offender, unless nothing under `path` (itself included)
/// has a group or other permission bit: `.envctl/` holds the environment's secrets.
pub fn assert_private_tree(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mut open = Vec::new();
    let mut pending = vec![path.to_path_buf()];
    while let Some(entry) = pending.pop() {
        let meta = fs::symlink_metadata(&entry)
            .unwrap_or_else(|err| panic!("reading {}: {err}", entry.display()));
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            open.push(format!("{:o} {}", mode, entry.display()));
        }
        if meta.is_dir() {
            let children = fs::read_dir(&entry).unwrap();
            pending.extend(children.map(|child| child.unwrap().path()));
        }
    }
    assert!(
        open.is_empty(),
        "open to other users:\n  {}",
        open.join("\n  ")
    );
}

/// Fails the test unless `machine`'s sshd takes keys only: `sshd -T` says passwords,
/// keyboard-interactive and root logins are off, and a real attempt without a key is
/// refused with only `publickey` offered (a Vagrant box's user has the password
/// `vagrant`).
pub fn assert_sshd_hardened(env: &TestEnv, machine: &str) {
    let config = env.ssh(machine, "sudo /usr/sbin/sshd -T");
    for setting in [
        "passwordauthentication no",
        "kbdinteractiveauthentication no",
        "permitrootlogin no",
    ] {
        assert!(
            config.lines().any(|line| line.trim() == setting),
            "{machine}: sshd -T lacks `{setting}`:\n{config}"
        );
    }
    let attempt = Command::new("ssh")
        .arg("-F")
        .arg(env.state_dir().join("ssh_config"))
        .args(["-o", "PubkeyAuthentication=no", "-o", "BatchMode=yes"])
        .args(["-o", "LogLevel=ERROR", "-o", "ConnectTimeout=10"])
        .args([machine, "true"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&attempt.stderr);
    assert!(
        !attempt.status.success() && stderr.contains("Permission denied (publickey)"),
        "{machine}: a login without a key was not refused with only publickey offered:\n{}",
        show(&attempt)
    );
}

/// Fails the test unless the environment's public key is the only key that `machine`'s
/// sshd would accept for its user, in every file its `AuthorizedKeysFile` names.
pub fn assert_only_environment_key(env: &TestEnv, machine: &str) {
    // sshd -T prints the files unexpanded: relative ones start at the user's home.
    let script = r#"user=$(id -un)
for file in $(sudo /usr/sbin/sshd -T | sed -n 's/^authorizedkeysfile //p'); do
  case "$file" in /*) ;; *) file="$HOME/$file" ;; esac
  file=$(printf '%s' "$file" | sed "s|%u|$user|g; s|%h|$HOME|g; s|%%|%|g")
  sudo cat "$file" 2>/dev/null || true
done"#;
    let listed = env.ssh(machine, script);
    let keys: Vec<&str> = listed
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .collect();
    let public_key = fs::read_to_string(env.state_dir().join("id_ed25519.pub")).unwrap();
    assert_eq!(
        keys,
        [public_key.trim()],
        "{machine} authorizes other keys than the environment's"
    );
}

/// How long a service that should be up is given to answer (a VM under TCG starts slowly).
const ANSWER_WITHIN: Duration = Duration::from_secs(60);

/// The example's web servers: name, address, hostname and `http_port`.
pub const EXAMPLE_WEB: [(&str, &str, &str, u16); 2] = [
    ("web1", "192.168.56.11", "web1.example.test", 8080),
    ("web2", "192.168.56.12", "web2.example.test", 8081),
];

/// Fails the test unless each of the example's web servers serves its page (the greeting
/// and its hostname) on its `http_port`, to this host at its address and to `db1` at its
/// hostname, and `web1`'s also at its forwarded port on 127.0.0.1 (the one `status --json`
/// reports: `auto_correct` may have moved it).
pub fn assert_example_pages_answer(env: &TestEnv) {
    for (name, ip, hostname, port) in EXAMPLE_WEB {
        let expected = format!("hello from envctl: {hostname} ({name})");
        page_from_host(ip, port, &expected);
        page_from_machine(env, "db1", &format!("http://{hostname}:{port}/"), &expected);
    }
    let forwarded = example_forwarded_port(env);
    page_from_host(
        "127.0.0.1",
        forwarded,
        "hello from envctl: web1.example.test (web1)",
    );
}

/// The example's forwarded port (web1's 8080) as in effect, from `status --json`.
pub fn example_forwarded_port(env: &TestEnv) -> u16 {
    let status = env.status_json();
    let web1 = status["machines"]
        .as_array()
        .and_then(|machines| machines.iter().find(|m| m["name"] == "web1"))
        .expect("web1 in status --json");
    let forward = &web1["forwarded_ports"][0];
    assert_eq!(forward["guest"], 8080, "{web1}");
    assert_eq!(forward["host_ip"], "127.0.0.1", "{web1}");
    let host = forward["host"].as_u64().expect("a host port") as u16;
    assert!(
        host == 18080 || (2200..=2250).contains(&host),
        "auto_correct chose {host}"
    );
    host
}

/// Fails the test if anything answers at 127.0.0.1:`port`.
pub fn assert_nothing_listens(port: u16) {
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "something still listens at 127.0.0.1:{port}"
    );
}

/// The example Machinefile without its forwarded port, for environments made from it that
/// run beside each other (each would take a port of the host).
pub fn without_example_forward(text: String) -> String {
    let forward = "    forwarded_ports:\n      - {guest: 8080, host: 18080, auto_correct: true}\n";
    assert!(
        text.contains(forward),
        "the example's forward moved: update this helper"
    );
    text.replace(forward, "")
}

/// The page `ip:port` serves to this host, retried until it contains `expected`.
pub fn page_from_host(ip: &str, port: u16, expected: &str) -> String {
    let deadline = Instant::now() + ANSWER_WITHIN;
    loop {
        let seen = http_get(ip, port);
        match &seen {
            Ok(page) if page.contains(expected) => return page.clone(),
            _ if Instant::now() > deadline => {
                panic!("http://{ip}:{port}/ did not answer with {expected:?} in time: {seen:?}")
            }
            _ => sleep(Duration::from_millis(500)),
        }
    }
}

/// The page `url` serves to `machine` (asked there with Python, which every machine has for
/// Ansible), retried until it contains `expected`.
pub fn page_from_machine(env: &TestEnv, machine: &str, url: &str, expected: &str) -> String {
    assert!(
        !expected.contains('\'') && !url.contains('\''),
        "quote-free, please"
    );
    let script = format!(
        "python3 -c '
import sys, time, urllib.request
url, expected, deadline = sys.argv[1], sys.argv[2], time.time() + float(sys.argv[3])
while True:
    try:
        page = urllib.request.urlopen(url, timeout=5).read().decode()
    except Exception as err:
        page = repr(err)
    if expected in page or time.time() > deadline:
        print(page)
        break
    time.sleep(1)
' '{url}' '{expected}' {}",
        ANSWER_WITHIN.as_secs()
    );
    let page = env.ssh(machine, &script);
    assert!(
        page.contains(expected),
        "{machine}: {url} did not answer with {expected:?}: {page}"
    );
    page
}

/// A plain HTTP/1.0 GET of `/`: the body, or what went wrong.
fn http_get(ip: &str, port: u16) -> Result<String, String> {
    let address = format!("{ip}:{port}");
    let addr = address.parse().map_err(|err| format!("{address}: {err}"))?;
    let mut stream =
        TcpStream::connect_timeout(&addr, Duration::from_secs(3)).map_err(|err| err.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|err| err.to_string())?;
    write!(stream, "GET / HTTP/1.0\r\nHost: {ip}\r\n\r\n").map_err(|err| err.to_string())?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .map_err(|err| err.to_string())?;
    match response.split_once("\r\n\r\n") {
        Some((head, body)) if head.starts_with("HTTP/1.") && head.contains(" 200 ") => {
            Ok(body.to_string())
        }
        _ => Err(response),
    }
}
