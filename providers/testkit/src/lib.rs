//! What the backends' tests share, so each crate's tests build specs and watch progress
//! the same way: a unique id, an environment on a subnet, a machine on it, and a
//! [`Report`] that remembers what it was told. Tests only: no backend depends on it.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use envctl_provider::{
    EnvironmentId, EnvironmentSpec, HostKey, ImageSource, Init, MachineSpec, NetworkSpec, Phase,
    Report,
};
use ipnetwork::Ipv4Network;

/// Sixteen hex digits no other test of this run will get: the process and the clock.
pub fn unique_id() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos());
    format!(
        "{:016x}",
        (nanos as u64) ^ (u64::from(std::process::id()) << 40)
    )
}

/// `subnet` with its first host as the gateway, as envctl's default is.
pub fn network_spec(subnet: &str) -> NetworkSpec {
    let subnet: Ipv4Network = subnet.parse().expect("a subnet");
    NetworkSpec {
        subnet,
        gateway: subnet.nth(1).expect("a gateway"),
    }
}

/// An environment named `name` on `subnet`, with a fresh id; its project folder is
/// `/tmp/envctl-tests/<name>` (recorded, never written) and its console folder the
/// system's temporary folder.
pub fn env(name: &str, subnet: &str) -> EnvironmentSpec {
    EnvironmentSpec {
        who: EnvironmentId {
            name: name.to_string(),
            id: unique_id(),
            project_dir: PathBuf::from(format!("/tmp/envctl-tests/{name}")),
            console_dir: std::env::temp_dir(),
        },
        network: network_spec(subnet),
    }
}

/// Machine `name` at host number `host` of `env`'s subnet, booting `image`: one CPU,
/// 256 MiB, user `vagrant`, hostname `<name>.<env>.test`, no keys. Tests set the rest.
pub fn machine(env: &EnvironmentSpec, name: &str, host: u32, image: ImageSource) -> MachineSpec {
    let hostname = format!("{name}.{}.test", env.name);
    MachineSpec {
        name: name.to_string(),
        hostname: hostname.clone(),
        ip: env
            .network
            .subnet
            .nth(host)
            .expect("an address in the subnet"),
        cpus: 1,
        memory_mib: 256,
        user: "vagrant".to_string(),
        aliases: vec![name.to_string(), hostname],
        image,
        authorized_key: String::new(),
        host_key: HostKey {
            private_openssh: String::new(),
            public_openssh: String::new(),
        },
        init: Init::default(),
        forwarded_ports: Vec::new(),
        binds: Vec::new(),
        user_ids: None,
    }
}

/// A [`Report`] that remembers every phase, in order.
#[derive(Default)]
pub struct Recorder(Mutex<Vec<(String, Phase)>>);

impl Recorder {
    pub fn phases(&self) -> Vec<(String, Phase)> {
        self.0.lock().expect("the recorder's lock").clone()
    }

    pub fn saw(&self, machine: &str, phase: Phase) -> bool {
        self.phases()
            .iter()
            .any(|(m, p)| m == machine && *p == phase)
    }
}

impl Report for Recorder {
    fn phase(&self, machine: &str, phase: Phase) {
        self.0
            .lock()
            .expect("the recorder's lock")
            .push((machine.to_string(), phase));
    }
}
