//! envctl's VirtualBox provider: each machine is a linked clone of a base VM imported once
//! from a Vagrant box, with NIC 1 on NAT (an SSH port forward on 127.0.0.1) and NIC 2 on the
//! environment's host-only network, and the machine's live folders as VirtualBox shared
//! folders (`shares`), driven through the `VBoxManage` command line.
//!
//! Everything made carries the environment's id in VirtualBox extradata ([`keys`]); a VM or
//! network with the environment's names but not its id is someone else's and is never
//! touched. VBoxManage runs on tokio's blocking pool, one process a call. The provider speaks
//! both VirtualBox 6.x and 7.x: 7 renamed `modifyvm`'s NIC options, and on macOS replaced
//! host-only interfaces with host-only networks ([`HostOnlyKind`]).

mod boxes;
mod holdings;
mod machine;
mod network;
mod parse;
mod ranges;
mod shares;
mod vboxmanage;
mod vm;

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use envctl_provider::{
    Capabilities, EnvironmentId, EnvironmentSpec, Holding, MachineSpec, MachineStatus, MachineUp,
    Provider, ProviderError, ProviderKind, Report,
};

use crate::network::HostOnly;
use crate::ranges::AllowedRanges;
use crate::vboxmanage::{CallError, VBoxManage};

pub use crate::ranges::NETWORKS_CONF;
pub use crate::vboxmanage::Version;

/// The extradata keys envctl sets, so it can find its own things again.
pub mod keys {
    /// On VMs: the environment's name.
    pub const ENV: &str = "envctl/env";
    /// On VMs: the environment's random id, what makes a VM the environment's own.
    pub const ENV_ID: &str = "envctl/env-id";
    /// On VMs: the folder of the environment's Machinefile, to tell whose a VM is.
    pub const PROJECT: &str = "envctl/project";
    /// On machine VMs (not base VMs): the machine's name.
    pub const MACHINE: &str = "envctl/machine";
    /// On machine VMs: the host-only interface whose DHCP server holds the machine's fixed
    /// address, so `destroy` removes it.
    pub const DHCP: &str = "envctl/dhcp";
    /// Global, followed by an interface or network name: the id of the environment envctl
    /// made that host-only interface or network for.
    pub const HOSTONLY_PREFIX: &str = "envctl/hostonly/";

    pub(crate) fn hostonly(name: &str) -> String {
        format!("{HOSTONLY_PREFIX}{name}")
    }
}

/// Which kind of host-only network NIC 2 is attached to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostOnlyKind {
    /// A host-only interface (`VBoxManage hostonlyif`, `vboxnetN`): VirtualBox 6.x, and 7.x
    /// on Linux and Windows.
    Interface,
    /// A host-only network (`VBoxManage hostonlynet`): VirtualBox 7.x on macOS, where it
    /// replaces host-only interfaces.
    Network,
}

impl HostOnlyKind {
    /// What the host has: networks with VirtualBox 7 on macOS, interfaces everywhere else.
    pub fn for_host(version: Version) -> HostOnlyKind {
        if version.major >= 7 && cfg!(target_os = "macos") {
            HostOnlyKind::Network
        } else {
            HostOnlyKind::Interface
        }
    }

    fn noun(self) -> &'static str {
        match self {
            HostOnlyKind::Interface => "host-only interface",
            HostOnlyKind::Network => "host-only network",
        }
    }
}

/// How to reach VirtualBox and how patient to be with it.
#[derive(Clone, Debug)]
pub struct VirtualboxOptions {
    /// The VBoxManage to run; `None` looks for `VBoxManage` on `search_path`.
    pub vboxmanage: Option<PathBuf>,
    /// Where to look for VBoxManage; `None` is the `PATH` of this process.
    pub search_path: Option<OsString>,
    /// VirtualBox's list of allowed host-only ranges, [`NETWORKS_CONF`] unless testing.
    pub networks_conf: PathBuf,
    /// `None` is [`HostOnlyKind::for_host`].
    pub host_only: Option<HostOnlyKind>,
    /// How long `halt` waits for the guest to power off after the ACPI button.
    pub halt_timeout: Duration,
    /// How often `halt` looks whether the guest is off.
    pub poll_interval: Duration,
    /// Variables added to the environment of every VBoxManage call, e.g. `VBOX_USER_HOME`
    /// for a VirtualBox configuration other than the user's.
    pub env: Vec<(String, String)>,
}

impl Default for VirtualboxOptions {
    fn default() -> VirtualboxOptions {
        VirtualboxOptions {
            vboxmanage: None,
            search_path: None,
            networks_conf: PathBuf::from(NETWORKS_CONF),
            host_only: None,
            halt_timeout: Duration::from_secs(60),
            poll_interval: Duration::from_secs(1),
            env: Vec::new(),
        }
    }
}

/// One VirtualBox installation, reached through its VBoxManage.
pub struct VirtualboxProvider {
    vbox: VBoxManage,
    version: Version,
    host_only: HostOnlyKind,
    networks_conf: PathBuf,
    halt_timeout: Duration,
    poll_interval: Duration,
    /// What `prepare` found or made for each environment (by id), for `up`.
    host_only_nets: Mutex<HashMap<String, HostOnly>>,
}

impl VirtualboxProvider {
    /// Finds `VBoxManage` on the `PATH` and reads its version.
    pub async fn detect() -> Result<VirtualboxProvider, ProviderError> {
        VirtualboxProvider::new(VirtualboxOptions::default()).await
    }

    /// Finds VBoxManage as `opts` says and reads its version; `Unavailable` when there is
    /// none or it does not answer.
    pub async fn new(opts: VirtualboxOptions) -> Result<VirtualboxProvider, ProviderError> {
        let path = match opts.vboxmanage {
            Some(path) => path,
            None => find_vboxmanage(opts.search_path)?,
        };
        let vbox = VBoxManage::new(path, opts.env);
        let unavailable = |reason: String| unavailable(vbox.path(), reason);
        let out = vbox
            .run(["--version"])
            .await
            .map_err(|err| unavailable(err.to_string()))?;
        let version = Version::parse(&out).ok_or_else(|| {
            unavailable(format!(
                "`VBoxManage --version` printed no version: {}",
                out.trim()
            ))
        })?;
        if version.major < 6 {
            return Err(unavailable(format!(
                "VirtualBox {version} is too old; envctl needs 6.0 or later"
            )));
        }
        let host_only = opts
            .host_only
            .unwrap_or_else(|| HostOnlyKind::for_host(version));
        if host_only == HostOnlyKind::Network && version.major < 7 {
            return Err(ProviderError::Unsupported {
                provider: ProviderKind::Virtualbox,
                what: format!(
                    "use host-only networks with VirtualBox {version}; they came with 7.0"
                ),
            });
        }
        Ok(VirtualboxProvider {
            vbox,
            version,
            host_only,
            networks_conf: opts.networks_conf,
            halt_timeout: opts.halt_timeout,
            poll_interval: opts.poll_interval,
            host_only_nets: Mutex::new(HashMap::new()),
        })
    }

    /// The VirtualBox version VBoxManage reported.
    pub fn version(&self) -> Version {
        self.version
    }

    /// The VBoxManage this provider runs.
    pub fn vboxmanage(&self) -> &Path {
        self.vbox.path()
    }

    /// The kind of host-only network machines are attached to.
    pub fn host_only_kind(&self) -> HostOnlyKind {
        self.host_only
    }

    /// Preflight: the subnet is one VirtualBox lets a host-only network have.
    fn check_subnet(&self, env: &EnvironmentSpec) -> Result<(), ProviderError> {
        let allowed = AllowedRanges::read(&self.networks_conf).map_err(|err| {
            ProviderError::backend(format!("reading {}", self.networks_conf.display()), err)
        })?;
        if allowed.allows(env.network.subnet) {
            return Ok(());
        }
        Err(ProviderError::Unsupported {
            provider: ProviderKind::Virtualbox,
            what: allowed.refusal(env.network.subnet, &self.networks_conf),
        })
    }

    fn remember(&self, env: &EnvironmentId, host_only: HostOnly) {
        if let Ok(mut known) = self.host_only_nets.lock() {
            known.insert(env.id.clone(), host_only);
        }
    }

    fn remembered(&self, env: &EnvironmentId) -> Option<HostOnly> {
        self.host_only_nets.lock().ok()?.get(&env.id).cloned()
    }

    fn forget(&self, env: &EnvironmentId) {
        if let Ok(mut known) = self.host_only_nets.lock() {
            known.remove(&env.id);
        }
    }

    /// A failed call that is not about one machine, or `Unavailable` if VBoxManage is gone.
    fn backend_error(&self, action: impl Into<String>, err: CallError) -> ProviderError {
        match err {
            CallError::Spawn { .. } => unavailable(self.vbox.path(), err.to_string()),
            err => ProviderError::backend(action, err),
        }
    }

    /// A failed call about `machine`, or `Unavailable` if VBoxManage is gone.
    fn machine_error(
        &self,
        machine: &str,
        action: impl Into<String>,
        err: CallError,
    ) -> ProviderError {
        match err {
            CallError::Spawn { .. } => unavailable(self.vbox.path(), err.to_string()),
            err => ProviderError::machine(machine, action, err),
        }
    }
}

fn find_vboxmanage(search_path: Option<OsString>) -> Result<PathBuf, ProviderError> {
    let found = match &search_path {
        Some(paths) => which::which_in("VBoxManage", Some(paths), std::env::temp_dir()),
        None => which::which("VBoxManage"),
    };
    found.map_err(|_| ProviderError::Unavailable {
        provider: ProviderKind::Virtualbox,
        endpoint: "VBoxManage".to_string(),
        reason: "no VBoxManage on the PATH; install VirtualBox (6.x or 7.x) from \
                 https://www.virtualbox.org/wiki/Downloads and make sure VBoxManage is on the PATH"
            .to_string(),
    })
}

fn unavailable(path: &Path, reason: String) -> ProviderError {
    ProviderError::Unavailable {
        provider: ProviderKind::Virtualbox,
        endpoint: path.display().to_string(),
        reason,
    }
}

impl Provider for VirtualboxProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Virtualbox
    }

    fn capabilities(&self) -> Capabilities {
        self.kind().capabilities()
    }

    async fn preflight(
        &self,
        env: &EnvironmentSpec,
        machines: &[MachineSpec],
    ) -> Result<(), ProviderError> {
        for machine in machines {
            boxes::check_box(boxes::box_of(machine)?)?;
        }
        self.check_subnet(env)?;
        self.check_host_only(env).await?;
        self.check_names(env, machines).await
    }

    async fn prepare(
        &self,
        env: &EnvironmentSpec,
        machines: &[MachineSpec],
        report: &dyn Report,
    ) -> Result<(), ProviderError> {
        self.ensure_host_only(env, machines, report).await?;
        self.ensure_bases(env, machines, report).await
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
        self.remove_bases(env).await?;
        self.remove_host_only(env).await
    }

    async fn status(&self, env: &EnvironmentId) -> Result<Vec<MachineStatus>, ProviderError> {
        self.machine_statuses(env).await
    }

    async fn holdings(&self) -> Result<Vec<Holding>, ProviderError> {
        self.all_holdings().await
    }

    async fn log_tail(&self, env: &EnvironmentId, machine: &str, lines: usize) -> Option<String> {
        let path = env.console_dir.join(format!("{machine}.log"));
        let text = tokio::fs::read(&path).await.ok()?;
        let text = String::from_utf8_lossy(&text);
        let all: Vec<&str> = text.lines().collect();
        let tail = all[all.len().saturating_sub(lines)..].join("\n");
        (!tail.trim().is_empty()).then_some(tail)
    }
}
