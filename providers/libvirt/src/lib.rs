//! envctl's libvirt provider: each machine is a QEMU domain booted from a copy-on-write
//! overlay of a Vagrant libvirt box, on the environment's own NAT network where libvirt's
//! dnsmasq hands it a fixed address and resolves every machine's names.
//!
//! Everything made carries envctl's `<metadata>` (environment name, id, project, machine);
//! a domain or network with the environment's names but not its id is someone else's and
//! is never touched. Only libvirt's API is used — storage volumes and stream uploads
//! rather than files — so `qemu+ssh://` works like `qemu:///system`. The one local file
//! is each machine's console log, written only when libvirt runs on this host.

mod accel;
mod conn;
mod domain;
mod holdings;
mod network;
mod seed;
mod shares;
mod storage;
mod xml;

use std::time::Duration;

use envctl_provider::{
    Capabilities, EnvironmentId, EnvironmentSpec, Holding, ImageSource, MachineSpec, MachineStatus,
    MachineUp, Phase, Provider, ProviderError, ProviderKind, Report,
};

pub use accel::Accel;
pub use storage::box_volume_name;

use conn::Conn;

/// How to reach libvirt and run guests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LibvirtOptions {
    /// The Machinefile's URI; `LIBVIRT_DEFAULT_URI` wins over it, `qemu:///system` is the
    /// fallback.
    pub uri: Option<String>,
    pub accel: Accel,
    /// How long `halt` waits for an ACPI shutdown before forcing the machine off.
    pub halt_timeout: Duration,
}

impl Default for LibvirtOptions {
    fn default() -> Self {
        LibvirtOptions {
            uri: None,
            accel: Accel::Auto,
            halt_timeout: Duration::from_secs(60),
        }
    }
}

/// A connection to one libvirt daemon.
pub struct LibvirtProvider {
    conn: Conn,
    accel: Accel,
    halt_timeout: Duration,
}

impl LibvirtProvider {
    /// Connects to the daemon at the URI [`resolve_uri`] picks.
    pub async fn connect(opts: LibvirtOptions) -> Result<LibvirtProvider, ProviderError> {
        let uri = resolve_uri(opts.uri.as_deref());
        Ok(LibvirtProvider {
            conn: Conn::open(&uri).await?,
            accel: opts.accel,
            halt_timeout: opts.halt_timeout,
        })
    }

    /// The URI libvirt was reached at.
    pub fn uri(&self) -> &str {
        self.conn.uri()
    }

    /// `Kvm` or `Tcg`: what new machines run with (`Auto` probes KVM once per process).
    pub async fn acceleration(&self) -> Accel {
        accel::resolve(self.accel, self.conn.is_local()).await
    }
}

/// `LIBVIRT_DEFAULT_URI` when set, else the Machinefile's URI, else `qemu:///system`.
pub fn resolve_uri(machinefile: Option<&str>) -> String {
    match std::env::var("LIBVIRT_DEFAULT_URI") {
        Ok(uri) if !uri.is_empty() => uri,
        _ => machinefile.unwrap_or(conn::DEFAULT_URI).to_string(),
    }
}

impl Provider for LibvirtProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Libvirt
    }

    fn capabilities(&self) -> Capabilities {
        self.kind().capabilities()
    }

    async fn preflight(
        &self,
        env: &EnvironmentSpec,
        machines: &[MachineSpec],
    ) -> Result<(), ProviderError> {
        self.conn.ping().await?;
        for machine in machines {
            let ImageSource::Box(image) = &machine.image else {
                return Err(ProviderError::Unsupported {
                    provider: ProviderKind::Libvirt,
                    what: format!("boot machine `{}` from a Docker image", machine.name),
                });
            };
            storage::check_box(image)?;
        }
        shares::check(env, machines, self.conn.is_local())?;
        self.check_network(env).await
    }

    async fn prepare(
        &self,
        env: &EnvironmentSpec,
        machines: &[MachineSpec],
        report: &dyn Report,
    ) -> Result<(), ProviderError> {
        let mut disks: Vec<(storage::BoxDisk, Vec<String>)> = Vec::new();
        for machine in machines {
            let ImageSource::Box(image) = &machine.image else {
                continue;
            };
            let disk = storage::check_box(image)?;
            match disks
                .iter_mut()
                .find(|(known, _)| known.volume == disk.volume)
            {
                Some((_, users)) => users.push(machine.name.clone()),
                None => disks.push((disk, vec![machine.name.clone()])),
            }
        }
        let missing = self
            .conn
            .run(move |connect| {
                let pool = storage::ensure_pool(connect)?;
                let mut missing = Vec::new();
                for (disk, users) in disks {
                    if !storage::has_box_volume(&pool, &disk)? {
                        missing.push((disk, users));
                    }
                }
                Ok(missing)
            })
            .await?;
        for (disk, users) in missing {
            for user in &users {
                report.phase(user, Phase::BuildingImage);
            }
            self.conn
                .run(move |connect| {
                    let pool = storage::ensure_pool(connect)?;
                    storage::upload_box(connect, &pool, &disk)
                })
                .await?;
        }
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
        let left: Vec<String> = self
            .machine_statuses(env)
            .await?
            .into_iter()
            .map(|m| m.name)
            .collect();
        if !left.is_empty() {
            return Err(ProviderError::backend(
                format!("removing network `{}`", env.network_name()),
                format!(
                    "machines {} still use it; destroy them first",
                    left.join(", ")
                ),
            ));
        }
        self.remove_network(env).await
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
