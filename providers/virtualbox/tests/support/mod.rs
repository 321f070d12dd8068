//! What the VirtualBox tests share: a stand-in VBoxManage with its own state directory, the
//! example environment, and the transcript normalisation.
//!
//! The stand-in is `src/bin/fake-vboxmanage`; these tests need no VirtualBox. Each test gets
//! a directory of its own under the system temp dir, removed when it passes.

#![allow(dead_code)]

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use envctl_provider::{
    BoxImage, EnvironmentSpec, FolderBind, FolderType, HostKey, ImageSource, MachineSpec,
    NetworkSpec, PortForward, Protocol,
};
use envctl_virtualbox::{HostOnlyKind, VirtualboxOptions, VirtualboxProvider};
use serde_json::Value;

pub const FAKE: &str = env!("CARGO_BIN_EXE_fake-vboxmanage");
pub const V7: &str = "7.0.14r161095";
pub const V6: &str = "6.1.50r161033";
pub const ENV_ID: &str = "0f1e2d3c4b5a6978";

/// One test's stand-in VirtualBox.
pub struct Fake {
    pub root: PathBuf,
    pub state: PathBuf,
    pub env: Vec<(String, String)>,
}

impl Fake {
    /// A fresh stand-in that reports `version`, with an unpacked box in `<root>/box`.
    pub fn new(test: &str, version: &str) -> Fake {
        let root = std::env::temp_dir().join(format!("envctl-vbox-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let state = root.join("state");
        std::fs::create_dir_all(&state).unwrap();
        let dir = root.join("box");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("metadata.json"), r#"{"provider":"virtualbox"}"#).unwrap();
        std::fs::write(dir.join("box.ovf"), "<Envelope/>").unwrap();
        std::fs::write(dir.join("box-disk001.vmdk"), "").unwrap();
        let env = vec![
            ("FAKE_VBOX_STATE".to_string(), state.display().to_string()),
            ("FAKE_VBOX_VERSION".to_string(), version.to_string()),
        ];
        Fake { root, state, env }
    }

    /// Sets (or replaces) a variable for the stand-in; takes effect for providers made after.
    pub fn with(mut self, key: &str, value: &str) -> Fake {
        self.set(key, value);
        self
    }

    pub fn set(&mut self, key: &str, value: &str) {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_string(), value.to_string()));
    }

    pub fn unset(&mut self, key: &str) {
        self.env.retain(|(k, _)| k != key);
    }

    pub fn options(&self, host_only: HostOnlyKind) -> VirtualboxOptions {
        VirtualboxOptions {
            vboxmanage: Some(PathBuf::from(FAKE)),
            networks_conf: self.root.join("networks.conf"),
            host_only: Some(host_only),
            halt_timeout: Duration::from_millis(200),
            poll_interval: Duration::from_millis(5),
            env: self.env.clone(),
            ..VirtualboxOptions::default()
        }
    }

    pub async fn provider(&self, host_only: HostOnlyKind) -> VirtualboxProvider {
        VirtualboxProvider::new(self.options(host_only))
            .await
            .expect("the stand-in answers")
    }

    /// Runs the stand-in directly, as a test's own hand on VirtualBox.
    pub fn vboxmanage(&self, args: &[&str]) -> std::process::Output {
        std::process::Command::new(FAKE)
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .output()
            .unwrap()
    }

    /// Writes a `# …` line into the transcript, to show where a phase starts.
    pub fn mark(&self, phase: &str) {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.state.join("transcript"))
            .unwrap();
        writeln!(file, "# {phase}").unwrap();
    }

    /// The stand-in's state (`state.json`).
    pub fn state(&self) -> Value {
        let text =
            std::fs::read_to_string(self.state.join("state.json")).unwrap_or_else(|_| "{}".into());
        serde_json::from_str(&text).unwrap()
    }

    /// Starts the stand-in from `state` (a partial `state.json`).
    pub fn seed(&self, state: Value) {
        std::fs::write(self.state.join("state.json"), state.to_string()).unwrap();
    }

    pub fn vm_names(&self) -> Vec<String> {
        self.state()["vms"]
            .as_array()
            .map(|vms| {
                vms.iter()
                    .map(|vm| vm["name"].as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn vm(&self, name: &str) -> Option<Value> {
        self.state()["vms"]
            .as_array()?
            .iter()
            .find(|vm| vm["name"] == name)
            .cloned()
    }

    pub fn calls(&self) -> u64 {
        self.state()["calls"].as_u64().unwrap_or(0)
    }

    /// The transcript, normalised: see [`normalise`].
    pub fn transcript(&self) -> String {
        let text = std::fs::read_to_string(self.state.join("transcript")).unwrap_or_default();
        normalise(&text, &self.root)
    }

    /// Compares the transcript with `tests/golden/<name>`; `UPDATE_GOLDEN=1` rewrites it.
    pub fn assert_golden(&self, name: &str) {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/golden")
            .join(name);
        let actual = self.transcript();
        if std::env::var("UPDATE_GOLDEN").as_deref() == Ok("1") {
            std::fs::write(&path, &actual).unwrap();
            return;
        }
        let expected = std::fs::read_to_string(&path).unwrap_or_else(|err| {
            panic!(
                "{}: {err}; run with UPDATE_GOLDEN=1 to write it",
                path.display()
            )
        });
        if actual != expected {
            let first = actual
                .lines()
                .zip(expected.lines())
                .position(|(a, e)| a != e)
                .unwrap_or(actual.lines().count().min(expected.lines().count()));
            panic!(
                "transcript differs from {} at line {}:\n  expected: {:?}\n  actual:   {:?}\n\nwhole transcript:\n{actual}",
                path.display(),
                first + 1,
                expected.lines().nth(first),
                actual.lines().nth(first)
            );
        }
    }

    pub fn cleanup(&self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// The only parts of a transcript that change from run to run: the test's temp directory
/// becomes `$TMP`, and the free port envctl picked for each SSH forward becomes `$PORT`.
pub fn normalise(text: &str, root: &Path) -> String {
    let text = text.replace(&root.display().to_string(), "$TMP");
    text.lines()
        .map(|line| {
            // The SSH rule's port only: forwarded ports are the Machinefile's, fixed.
            let rule = "envctl-ssh,tcp,127.0.0.1,";
            let Some(at) = line.find(rule) else {
                return line.to_string();
            };
            let start = at + rule.len();
            let digits = line[start..].bytes().take_while(u8::is_ascii_digit).count();
            format!("{}$PORT{}", &line[..start], &line[start + digits..])
        })
        .map(|line| line + "\n")
        .collect()
}

/// The example environment (environments/example): 192.168.56.0/24, web1, web2, db1.
pub fn example(fake: &Fake) -> (EnvironmentSpec, Vec<MachineSpec>) {
    example_in(fake, "192.168.56.0/24", [192, 168, 56])
}

pub fn example_in(
    fake: &Fake,
    subnet: &str,
    prefix: [u8; 3],
) -> (EnvironmentSpec, Vec<MachineSpec>) {
    let [a, b, c] = prefix;
    let mut env = envctl_testkit::env("example", subnet);
    env.who.id = ENV_ID.to_string();
    env.who.project_dir = fake.root.join("project");
    env.who.console_dir = fake.root.join("console");
    env.network = NetworkSpec {
        subnet: subnet.parse().unwrap(),
        gateway: Ipv4Addr::new(a, b, c, 1),
    };
    let image = ImageSource::Box(BoxImage {
        name: "debian/bookworm64".to_string(),
        version: "12.20240503.1".to_string(),
        dir: fake.root.join("box"),
    });
    let machine = |name: &str, last: u8, memory_mib: u32| MachineSpec {
        hostname: format!("{name}.example.test"),
        ip: Ipv4Addr::new(a, b, c, last),
        memory_mib,
        aliases: vec![name.to_string()],
        authorized_key: "ssh-ed25519 AAAAtest envctl".to_string(),
        host_key: HostKey {
            private_openssh: "unused".to_string(),
            public_openssh: "ssh-ed25519 AAAAhost".to_string(),
        },
        ..envctl_testkit::machine(&env, name, u32::from(last), image.clone())
    };
    // web1 forwards a port, as in environments/example.
    let mut web1 = machine("web1", 11, 512);
    web1.forwarded_ports = vec![PortForward {
        guest: 8080,
        host: 18080,
        host_ip: Ipv4Addr::LOCALHOST,
        protocol: Protocol::Tcp,
        auto_correct: true,
    }];
    let machines = vec![web1, machine("web2", 12, 512), machine("db1", 13, 768)];
    (env, machines)
}

/// A live folder shared as `tag`: the host folder `<root>/shares/<dir>`, made if missing,
/// mounted at `/srv/<dir>` (which the provider does not read).
pub fn bind(fake: &Fake, tag: &str, dir: &str) -> FolderBind {
    let host = fake.share_dir(dir);
    FolderBind {
        kind: FolderType::Virtualbox,
        tag: tag.to_string(),
        host,
        guest: format!("/srv/{dir}"),
        hidden: Vec::new(),
    }
}

impl Fake {
    /// `<root>/shares/<dir>`, made if missing.
    pub fn share_dir(&self, dir: &str) -> PathBuf {
        let host = self.root.join("shares").join(dir);
        std::fs::create_dir_all(&host).unwrap();
        host
    }

    /// The `shared_folders` or `transient_folders` of the stand-in's VM `vm`, as
    /// (name, host path with the test's directory as `$TMP`).
    pub fn shares(&self, vm: &str, scope: &str) -> Vec<(String, String)> {
        let Some(vm) = self.vm(vm) else {
            return Vec::new();
        };
        let root = self.root.display().to_string();
        vm[scope]
            .as_array()
            .into_iter()
            .flatten()
            .map(|share| {
                let name = share["name"].as_str().unwrap_or_default().to_string();
                let path = share["host_path"].as_str().unwrap_or_default();
                (name, path.replace(&root, "$TMP"))
            })
            .collect()
    }
}

/// What the backend reported, in order.
pub type Phases = envctl_testkit::Recorder;
