//! What the Docker engine tests share: test keys and machines, a bare client to look
//! behind the provider's back, ssh logins, and the cleanup that runs even when a test fails.

#![allow(dead_code)] // Each test binary uses its own part of this module.

use std::collections::HashMap;
use std::io::Read;
use std::net::{Ipv4Addr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use bollard::models::{
    ContainerCreateBody, EndpointIpamConfig, EndpointSettings, NetworkingConfig,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, DownloadFromContainerOptionsBuilder,
    ListContainersOptionsBuilder, ListImagesOptionsBuilder, ListNetworksOptionsBuilder,
    ListVolumesOptionsBuilder, RemoveContainerOptionsBuilder, RemoveImageOptionsBuilder,
};
use bollard::{ClientVersion, Docker};
use envctl_docker::{labels, DockerProvider};
use envctl_provider::{
    BuildRecipe, EnvironmentSpec, HostKey, ImageSource, MachineSpec, MachineState, Provider,
    ProviderError,
};
use futures_util::StreamExt;

pub const BASE_IMAGE: &str = "debian:bookworm";
pub const USER: &str = "tester";

/// Test-only keys, made with `ssh-keygen -t ed25519` for these tests and nothing else.
pub const HOST_KEY: &str = "-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW
QyNTUxOQAAACAtwF60ldrPcz7TSMP9ZYyNsGrQcUPJfygTHBxxB5rDWAAAAIhp5baAaeW2
gAAAAAtzc2gtZWQyNTUxOQAAACAtwF60ldrPcz7TSMP9ZYyNsGrQcUPJfygTHBxxB5rDWA
AAAEA2UA1XJ5FGjKcwfvwDqR0KieU+Ua82P8CIERsEXgi1qy3AXrSV2s9zPtNIw/1ljI2w
atBxQ8l/KBMcHHEHmsNYAAAAAAECAwQF
-----END OPENSSH PRIVATE KEY-----
";
pub const HOST_KEY_PUB: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIC3AXrSV2s9zPtNIw/1ljI2watBxQ8l/KBMcHHEHmsNY";
pub const USER_KEY: &str = "-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW
QyNTUxOQAAACDKrIMyabDJQNw+vj+pb+rFiyeLLorcX39Jll5B07ll6QAAAJDXaWFH12lh
RwAAAAtzc2gtZWQyNTUxOQAAACDKrIMyabDJQNw+vj+pb+rFiyeLLorcX39Jll5B07ll6Q
AAAECOehVgLGw5z60Ika2ejbVLtXNbojtAjf3L3OAUmZU8ZMqsgzJpsMlA3D6+P6lv6sWL
J4suitxff0mWXkHTuWXpAAAAC2VudmN0bC10ZXN0AQI=
-----END OPENSSH PRIVATE KEY-----
";
pub const USER_KEY_PUB: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMqsgzJpsMlA3D6+P6lv6sWLJ4suitxff0mWXkHTuWXp envctl-test";

/// Tests that build the shared test image take turns, so it is built once.
pub static BUILD_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

// Helpers

/// The provider, or a failure that says how to get an engine.
pub async fn provider() -> DockerProvider {
    match DockerProvider::connect().await {
        Ok(provider) => provider,
        Err(err) => panic!("these tests need a docker engine: {err}"),
    }
}

/// What most engine tests start with: the provider, a bare client beside it, whatever an
/// earlier run of the test left removed (and removed again when the test ends), and the
/// base image the test recipes build from.
pub struct Rig {
    pub provider: DockerProvider,
    pub docker: Docker,
    pub cleanup: Cleanup,
}

pub async fn rig(name: &str) -> Rig {
    let provider = provider().await;
    let docker = raw(&provider);
    let cleanup = Cleanup::new(&docker, name, &[], &[]).await;
    ensure_base_image(&docker).await;
    Rig {
        provider,
        docker,
        cleanup,
    }
}

/// A bare bollard client at the version the provider settled on, to look behind its back.
pub fn raw(provider: &DockerProvider) -> Docker {
    let (major, minor) = version_tuple(&provider.api_version());
    let version = ClientVersion {
        major_version: major,
        minor_version: minor,
    };
    let endpoint = provider.endpoint();
    let client = if endpoint.starts_with("tcp://") || endpoint.starts_with("http://") {
        Docker::connect_with_http(endpoint, 120, &version)
    } else {
        Docker::connect_with_unix(endpoint, 120, &version)
    };
    client.expect("a raw client")
}

/// The API version the engine says it speaks, asked independently of the provider: with
/// an old client version (1.24) or, for engines that refuse that, 1.44.
pub async fn server_api_version() -> String {
    let host = std::env::var("DOCKER_HOST").unwrap_or_else(|_| "/var/run/docker.sock".to_string());
    let mut refusals = Vec::new();
    for minor_version in [24, 44] {
        let version = ClientVersion {
            major_version: 1,
            minor_version,
        };
        let client = if host.starts_with("tcp://") || host.starts_with("http://") {
            Docker::connect_with_http(&host, 120, &version)
        } else {
            Docker::connect_with_unix(&host, 120, &version)
        };
        match client.expect("a client").version().await {
            Ok(answer) => {
                return answer
                    .api_version
                    .expect("the engine names its API version")
            }
            Err(err) => refusals.push(err.to_string()),
        }
    }
    panic!("GET /version failed: {refusals:?}");
}

pub fn version_tuple(text: &str) -> (usize, usize) {
    let (major, minor) = text.split_once('.').expect("major.minor");
    (major.parse().expect("major"), minor.parse().expect("minor"))
}

/// Makes sure debian:bookworm exists, running images/docker-base/build if it does not.
pub async fn ensure_base_image(docker: &Docker) {
    let _turn = BUILD_LOCK.lock().await;
    if docker.inspect_image(BASE_IMAGE).await.is_ok() {
        return;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../images/docker-base/build");
    assert!(
        script.exists(),
        "{BASE_IMAGE} is missing and {} does not exist to make it",
        script.display()
    );
    let status = tokio::process::Command::new(&script)
        .status()
        .await
        .expect("run images/docker-base/build");
    assert!(
        status.success(),
        "images/docker-base/build failed ({status})"
    );
}

/// A small image with sshd and a user, the way any image envctl runs would have them.
pub fn test_recipe() -> BuildRecipe {
    let dockerfile = format!(
        "FROM {BASE_IMAGE}\n\
         RUN apt-get update && apt-get install -y --no-install-recommends openssh-server \
         && mkdir -p /run/sshd && rm -f /etc/ssh/ssh_host_* && rm -rf /var/lib/apt/lists/*\n\
         RUN useradd --create-home --shell /bin/bash {USER} && usermod -p '*' {USER}\n"
    );
    BuildRecipe {
        name: "t-sshd".to_string(),
        files: vec![("Dockerfile".to_string(), dockerfile.into_bytes())],
    }
}

#[allow(unused_imports)] // Each test binary uses its own part of this module.
pub use envctl_testkit::{network_spec, Recorder};

/// A fresh id, for names that must not clash with another test's.
pub fn unique() -> String {
    envctl_testkit::unique_id()
}

pub fn env(name: &str, subnet: &str) -> EnvironmentSpec {
    envctl_testkit::env(name, subnet)
}

/// A machine the test user logs in to with the test keys, running sshd alone.
pub fn machine(env: &EnvironmentSpec, name: &str, host: u32, image: ImageSource) -> MachineSpec {
    MachineSpec {
        user: USER.to_string(),
        authorized_key: USER_KEY_PUB.to_string(),
        host_key: HostKey {
            private_openssh: HOST_KEY.to_string(),
            public_openssh: HOST_KEY_PUB.to_string(),
        },
        init: envctl_provider::Init::Sshd,
        forwarded_ports: Vec::new(),
        binds: Vec::new(),
        user_ids: None,
        ..envctl_testkit::machine(env, name, host, image)
    }
}

pub async fn states(
    provider: &DockerProvider,
    env: &EnvironmentSpec,
) -> Vec<(String, MachineState)> {
    let statuses = provider.status(env).await.expect("status");
    statuses
        .into_iter()
        .map(|status| (status.name, status.state))
        .collect()
}

/// The full text of an error's causes, where the explanation of a `Machine` error lives.
pub fn source_text(err: &ProviderError) -> String {
    let mut text = Vec::new();
    let mut cause = std::error::Error::source(err);
    while let Some(current) = cause {
        text.push(current.to_string());
        cause = current.source();
    }
    text.join(": ")
}

/// (path, mode, uid, contents) of each entry of a path downloaded from a container.
pub async fn download(
    docker: &Docker,
    container: &str,
    path: &str,
) -> Vec<(String, u32, u64, String)> {
    let options = DownloadFromContainerOptionsBuilder::new()
        .path(path)
        .build();
    let mut stream = docker.download_from_container(container, Some(options));
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        bytes.extend_from_slice(&chunk.expect("download from the container"));
    }
    let mut archive = tar::Archive::new(bytes.as_slice());
    let mut entries = Vec::new();
    for entry in archive.entries().expect("a tar") {
        let mut entry = entry.expect("a tar entry");
        let header = entry.header().clone();
        let mut text = String::new();
        entry.read_to_string(&mut text).expect("text");
        let path = entry.path().expect("path").display().to_string();
        let path = if header.entry_type().is_dir() && !path.ends_with('/') {
            format!("{path}/")
        } else {
            path
        };
        entries.push((
            path,
            header.mode().expect("mode") & 0o7777,
            header.uid().expect("uid"),
            text,
        ));
    }
    entries
}

/// Logs in as the test user with strict host-key checking against the key envctl installed,
/// retrying while sshd starts, and returns what `command` printed.
pub async fn ssh(env: &EnvironmentSpec, machine: &MachineSpec, command: &str) -> String {
    let dir = std::env::temp_dir().join(format!("envctl-ssh-{}", unique()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let key = dir.join("id_ed25519");
    std::fs::write(&key, USER_KEY).expect("write the user key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600))
        .expect("chmod the user key");
    let known_hosts = dir.join("known_hosts");
    std::fs::write(&known_hosts, format!("{} {HOST_KEY_PUB}\n", machine.ip)).expect("known_hosts");

    // sshd's banner first: the port answers once sshd runs.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = String::new();
    while Instant::now() < deadline {
        let banner = TcpStream::connect_timeout(&(machine.ip, 22).into(), Duration::from_secs(1))
            .and_then(|mut stream| {
                stream.set_read_timeout(Some(Duration::from_secs(2)))?;
                let mut buf = [0u8; 7];
                stream.read_exact(&mut buf)?;
                Ok(buf)
            });
        if matches!(banner, Ok(ref buf) if buf == b"SSH-2.0") {
            let output = tokio::process::Command::new("ssh")
                .arg("-i")
                .arg(&key)
                .args(["-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes"])
                .args([
                    "-o",
                    "StrictHostKeyChecking=yes",
                    "-o",
                    "GlobalKnownHostsFile=/dev/null",
                ])
                .arg("-o")
                .arg(format!("UserKnownHostsFile={}", known_hosts.display()))
                .args(["-o", "ConnectTimeout=3", "-o", "LogLevel=ERROR"])
                .arg(format!("{USER}@{}", machine.ip))
                .arg(command)
                .output()
                .await
                .expect("run ssh (install openssh-client)");
            if output.status.success() {
                let _ = std::fs::remove_dir_all(&dir);
                return String::from_utf8_lossy(&output.stdout).into_owned();
            }
            last = String::from_utf8_lossy(&output.stderr).into_owned();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let _ = std::fs::remove_dir_all(&dir);
    panic!(
        "no ssh login to {} ({}) within 30 s: {last}",
        machine.name,
        env.resource_name(&machine.name)
    );
}

/// A container envctl did not make, from the base image, optionally on a network.
pub async fn create_plain(
    docker: &Docker,
    name: &str,
    labels: HashMap<String, String>,
    network: Option<(&str, Ipv4Addr)>,
) {
    let networking_config = network.map(|(network, ip)| NetworkingConfig {
        endpoints_config: Some(HashMap::from([(
            network.to_string(),
            EndpointSettings {
                ipam_config: Some(EndpointIpamConfig {
                    ipv4_address: Some(ip.to_string()),
                    ..Default::default()
                }),
                ..Default::default()
            },
        )])),
    });
    let body = ContainerCreateBody {
        image: Some(BASE_IMAGE.to_string()),
        cmd: Some(vec!["sleep".to_string(), "infinity".to_string()]),
        labels: Some(labels),
        host_config: network.map(|(network, _)| bollard::models::HostConfig {
            network_mode: Some(network.to_string()),
            ..Default::default()
        }),
        networking_config,
        ..Default::default()
    };
    let options = CreateContainerOptionsBuilder::new().name(name).build();
    docker
        .create_container(Some(options), body)
        .await
        .expect("create a plain container");
}

pub async fn remove_container(docker: &Docker, name: &str) {
    let options = RemoveContainerOptionsBuilder::new()
        .force(true)
        .v(true)
        .build();
    let _ = docker.remove_container(name, Some(options)).await;
}

/// Removes what a test made, by the environment-name label, when the test starts (what an
/// interrupted earlier run left) and when it ends, even by a panic.
pub struct Cleanup(Leftovers);

/// What a test may leave: everything labelled with its environment name, containers it
/// named, images built from its recipes.
#[derive(Clone)]
pub struct Leftovers {
    env_name: String,
    containers: Vec<String>,
    recipes: Vec<String>,
}

impl Cleanup {
    pub async fn new(
        docker: &Docker,
        env_name: &str,
        containers: &[&str],
        recipes: &[&str],
    ) -> Cleanup {
        let leftovers = Leftovers {
            env_name: env_name.to_string(),
            containers: containers.iter().map(|c| c.to_string()).collect(),
            recipes: recipes.iter().map(|r| r.to_string()).collect(),
        };
        leftovers.remove(docker).await;
        Cleanup(leftovers)
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let leftovers = self.0.clone();
        // Drop cannot await, and the test's runtime may be unwinding: use a runtime of its own.
        let swept = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                if let Ok(provider) = DockerProvider::connect().await {
                    leftovers.remove(&raw(&provider)).await;
                }
            });
            Ok::<(), std::io::Error>(())
        });
        let _ = swept.join();
    }
}

impl Leftovers {
    pub async fn remove(&self, docker: &Docker) {
        let by_env = HashMap::from([("label", vec![format!("{}={}", labels::ENV, self.env_name)])]);
        let options = ListContainersOptionsBuilder::new()
            .all(true)
            .filters(&by_env)
            .build();
        let listed = docker
            .list_containers(Some(options))
            .await
            .unwrap_or_default();
        let mut containers: Vec<String> = listed.into_iter().filter_map(|c| c.id).collect();
        containers.extend(self.containers.iter().cloned());
        for container in containers {
            remove_container(docker, &container).await;
        }
        let options = ListNetworksOptionsBuilder::new().filters(&by_env).build();
        for network in docker
            .list_networks(Some(options))
            .await
            .unwrap_or_default()
        {
            let _ = docker.remove_network(&network.id.unwrap_or_default()).await;
        }
        let options = ListVolumesOptionsBuilder::new().filters(&by_env).build();
        let volumes = docker.list_volumes(Some(options)).await.unwrap_or_default();
        for volume in volumes.volumes.unwrap_or_default() {
            let none = None::<bollard::query_parameters::RemoveVolumeOptions>;
            let _ = docker.remove_volume(&volume.name, none).await;
        }
        for recipe in &self.recipes {
            let by_recipe =
                HashMap::from([("label", vec![format!("{}={recipe}", labels::RECIPE)])]);
            let options = ListImagesOptionsBuilder::new().filters(&by_recipe).build();
            for image in docker.list_images(Some(options)).await.unwrap_or_default() {
                let options = RemoveImageOptionsBuilder::new().force(true).build();
                let _ = docker.remove_image(&image.id, Some(options), None).await;
            }
        }
    }
}
