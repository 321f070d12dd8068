//! envctl's Docker provider: each machine is a container running sshd on the environment's
//! own bridge network, with a fixed address, a hostname and the keys envctl generated.
//!
//! Everything made carries the environment's labels ([`labels`]); a resource with the
//! environment's names but not its id is someone else's and is never touched. The engine
//! is spoken to over its API (bollard), at a version it accepts, and never asked to pull.

mod container;
mod engine;
mod holdings;
mod image;
pub mod labels;
mod network;
mod systemd;

use bollard::Docker;
use envctl_provider::{
    Capabilities, EnvironmentId, EnvironmentSpec, Holding, ImageKind, MachineSpec, MachineStatus,
    MachineUp, Provider, ProviderError, ProviderKind, Report,
};

pub use image::image_tag;

/// A connection to one Docker engine.
pub struct DockerProvider {
    docker: Docker,
    /// Where the engine was reached, as the user would name it.
    endpoint: String,
    /// How the engine runs cgroups, asked the first time a systemd machine needs it.
    cgroup_host: tokio::sync::OnceCell<systemd::CgroupHost>,
}

impl DockerProvider {
    /// Connects to the engine at `DOCKER_HOST`, or the local socket when it is not set, and
    /// settles on an API version both sides speak.
    pub async fn connect() -> Result<DockerProvider, ProviderError> {
        match std::env::var("DOCKER_HOST") {
            Ok(host) if !host.is_empty() => DockerProvider::connect_to(&host).await,
            _ => DockerProvider::connect_to(engine::DEFAULT_SOCKET).await,
        }
    }

    /// Connects to the engine at `host`: `unix:///path`, a socket path, or `tcp://host:port`.
    pub async fn connect_to(host: &str) -> Result<DockerProvider, ProviderError> {
        let docker = engine::connect(host)
            .await
            .map_err(|reason| engine::unavailable(host, reason))?;
        Ok(DockerProvider {
            docker,
            endpoint: host.to_string(),
            cgroup_host: tokio::sync::OnceCell::new(),
        })
    }

    /// Where the engine was reached.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The API version spoken with the engine, e.g. `1.41`.
    pub fn api_version(&self) -> String {
        self.docker.client_version().to_string()
    }
}

impl Provider for DockerProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Docker
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            image_kind: ImageKind::Docker,
        }
    }

    async fn preflight(
        &self,
        env: &EnvironmentSpec,
        machines: &[MachineSpec],
    ) -> Result<(), ProviderError> {
        self.docker
            .ping()
            .await
            .map_err(|err| self.backend_error("asking the docker engine for a ping", err))?;
        self.check_images(machines).await?;
        self.check_network(env, machines).await
    }

    async fn prepare(
        &self,
        env: &EnvironmentSpec,
        machines: &[MachineSpec],
        report: &dyn Report,
    ) -> Result<(), ProviderError> {
        self.build_images(machines, report).await?;
        // Recipes are built by now, so every image can be looked into before the network
        // or any machine is made.
        self.check_systemd_images(machines).await?;
        self.ensure_network(env, machines, report).await
    }

    async fn up(
        &self,
        env: &EnvironmentSpec,
        machine: &MachineSpec,
        report: &dyn Report,
    ) -> Result<MachineUp, ProviderError> {
        self.up_machine(env, machine, report).await
    }

    async fn halt(&self, env: &EnvironmentId, machine: &str) -> Result<(), ProviderError> {
        self.halt_machine(env, machine).await
    }

    async fn destroy(&self, env: &EnvironmentId, machine: &str) -> Result<(), ProviderError> {
        self.destroy_machine(env, machine).await
    }

    async fn teardown(&self, env: &EnvironmentId) -> Result<(), ProviderError> {
        self.remove_shared(env).await
    }

    async fn status(&self, env: &EnvironmentId) -> Result<Vec<MachineStatus>, ProviderError> {
        self.machine_statuses(env).await
    }

    async fn holdings(&self) -> Result<Vec<Holding>, ProviderError> {
        self.all_holdings().await
    }

    async fn log_tail(&self, env: &EnvironmentId, machine: &str, lines: usize) -> Option<String> {
        self.machine_log_tail(env, machine, lines).await
    }
}
