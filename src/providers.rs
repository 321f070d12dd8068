//! The closed set of backends, dispatched by enum: a backend compiled out still exists
//! here and answers that it is not compiled in.

use envctl_docker::DockerProvider;
use envctl_provider::{
    Capabilities, EnvironmentId, EnvironmentSpec, Holding, MachineSpec, MachineStatus, MachineUp,
    Provider, ProviderError, ProviderKind, Report,
};
use envctl_virtualbox::VirtualboxProvider;

use crate::manifest::{LibvirtOptions, Manifest};

#[cfg(test)]
pub mod fake;

pub enum AnyProvider {
    Docker(DockerProvider),
    #[cfg(feature = "libvirt")]
    Libvirt(envctl_libvirt::LibvirtProvider),
    Virtualbox(VirtualboxProvider),
    /// The verbs' tests' backend: machines in memory, calls recorded.
    #[cfg(test)]
    Fake(std::sync::Arc<fake::FakeProvider>),
}

/// Calls the same method on whichever backend `self` holds.
macro_rules! dispatch {
    ($self:expr, $backend:ident => $call:expr) => {
        match $self {
            AnyProvider::Docker($backend) => $call,
            #[cfg(feature = "libvirt")]
            AnyProvider::Libvirt($backend) => $call,
            AnyProvider::Virtualbox($backend) => $call,
            #[cfg(test)]
            AnyProvider::Fake($backend) => $call,
        }
    };
}

impl AnyProvider {
    /// Whether its machines answer SSH. Only the tests' fake machines do not: nothing
    /// listens for them, and readiness is taken as given.
    pub fn machines_answer_ssh(&self) -> bool {
        match self {
            #[cfg(test)]
            AnyProvider::Fake(_) => false,
            _ => true,
        }
    }

    /// Connects to the backend `kind` as the Machinefile configures it, or says why it
    /// cannot.
    pub async fn connect(
        kind: ProviderKind,
        manifest: &Manifest,
    ) -> Result<AnyProvider, ProviderError> {
        AnyProvider::connect_with(kind, &manifest.libvirt).await
    }

    /// Connects to the backend `kind` with the settings a Machinefile would give it.
    pub async fn connect_with(
        kind: ProviderKind,
        libvirt: &LibvirtOptions,
    ) -> Result<AnyProvider, ProviderError> {
        match kind {
            ProviderKind::Docker => Ok(AnyProvider::Docker(DockerProvider::connect().await?)),
            ProviderKind::Libvirt => connect_libvirt(libvirt).await,
            ProviderKind::Virtualbox => {
                Ok(AnyProvider::Virtualbox(VirtualboxProvider::detect().await?))
            }
        }
    }
}

#[cfg(feature = "libvirt")]
async fn connect_libvirt(settings: &LibvirtOptions) -> Result<AnyProvider, ProviderError> {
    use crate::manifest::Accel;
    use envctl_libvirt::{
        Accel as LibvirtAccel, LibvirtOptions as BackendOptions, LibvirtProvider,
    };
    let accel = match settings.accel {
        Accel::Auto => LibvirtAccel::Auto,
        Accel::Kvm => LibvirtAccel::Kvm,
        Accel::Tcg => LibvirtAccel::Tcg,
    };
    let opts = BackendOptions {
        uri: Some(libvirt_uri(settings)?),
        accel,
        ..BackendOptions::default()
    };
    Ok(AnyProvider::Libvirt(LibvirtProvider::connect(opts).await?))
}

/// The URI libvirt is reached at, checked whatever set it: `LIBVIRT_DEFAULT_URI` wins over
/// the Machinefile, and either could make libvirt run a program (see
/// `manifest::check_libvirt_uri`).
#[cfg(feature = "libvirt")]
fn libvirt_uri(settings: &LibvirtOptions) -> Result<String, ProviderError> {
    let uri = envctl_libvirt::resolve_uri(settings.uri.as_deref());
    crate::manifest::check_libvirt_uri(&uri).map_err(|why| ProviderError::Unavailable {
        provider: ProviderKind::Libvirt,
        endpoint: uri.clone(),
        reason: format!(
            "envctl refuses this URI (from LIBVIRT_DEFAULT_URI or the Machinefile): it {why}"
        ),
    })?;
    Ok(uri)
}

#[cfg(not(feature = "libvirt"))]
async fn connect_libvirt(_settings: &LibvirtOptions) -> Result<AnyProvider, ProviderError> {
    Err(ProviderError::NotCompiled {
        provider: ProviderKind::Libvirt,
        hint: "rebuild it with `cargo build --features libvirt` (libvirt-dev must be installed)",
    })
}

impl Provider for AnyProvider {
    fn kind(&self) -> ProviderKind {
        dispatch!(self, p => p.kind())
    }

    fn capabilities(&self) -> Capabilities {
        dispatch!(self, p => p.capabilities())
    }

    async fn preflight(
        &self,
        env: &EnvironmentSpec,
        machines: &[MachineSpec],
    ) -> Result<(), ProviderError> {
        dispatch!(self, p => p.preflight(env, machines).await)
    }

    async fn prepare(
        &self,
        env: &EnvironmentSpec,
        machines: &[MachineSpec],
        report: &dyn Report,
    ) -> Result<(), ProviderError> {
        dispatch!(self, p => p.prepare(env, machines, report).await)
    }

    async fn up(
        &self,
        env: &EnvironmentSpec,
        machine: &MachineSpec,
        report: &dyn Report,
    ) -> Result<MachineUp, ProviderError> {
        dispatch!(self, p => p.up(env, machine, report).await)
    }

    async fn halt(&self, env: &EnvironmentId, machine: &str) -> Result<(), ProviderError> {
        dispatch!(self, p => p.halt(env, machine).await)
    }

    async fn destroy(&self, env: &EnvironmentId, machine: &str) -> Result<(), ProviderError> {
        dispatch!(self, p => p.destroy(env, machine).await)
    }

    async fn teardown(&self, env: &EnvironmentId) -> Result<(), ProviderError> {
        dispatch!(self, p => p.teardown(env).await)
    }

    async fn status(&self, env: &EnvironmentId) -> Result<Vec<MachineStatus>, ProviderError> {
        dispatch!(self, p => p.status(env).await)
    }

    async fn holdings(&self) -> Result<Vec<Holding>, ProviderError> {
        dispatch!(self, p => p.holdings().await)
    }

    async fn log_tail(&self, env: &EnvironmentId, machine: &str, lines: usize) -> Option<String> {
        dispatch!(self, p => p.log_tail(env, machine, lines).await)
    }
}
