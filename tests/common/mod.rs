//! What the end-to-end tests share: a copy of an example environment in a temporary
//! folder, envctl run on it, and checks that the services the tests need answer.

#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

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
    /// Copies `environments/<example>` (Machinefile and playbook) to a fresh folder,
    /// passing the Machinefile's text through `edit`.
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
        for entry in fs::read_dir(&source).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap();
            if path.is_file() && name != "inventory" {
                fs::copy(&path, dir.join(name)).unwrap();
            }
        }
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
    env.ok(&["box", "add", box_name, box_file.to_str().unwrap()]);
    env
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
