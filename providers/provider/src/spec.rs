//! The plain data that crosses the provider boundary.

use std::fmt;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::str::FromStr;

use ipnetwork::Ipv4Network;

/// The backends envctl knows, whether or not this build has them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProviderKind {
    Docker,
    Libvirt,
    Virtualbox,
}

impl ProviderKind {
    pub const ALL: [ProviderKind; 3] = [
        ProviderKind::Docker,
        ProviderKind::Libvirt,
        ProviderKind::Virtualbox,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Docker => "docker",
            ProviderKind::Libvirt => "libvirt",
            ProviderKind::Virtualbox => "virtualbox",
        }
    }
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ProviderKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ProviderKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == s)
            .ok_or_else(|| {
                format!("unknown provider `{s}` (expected docker, libvirt or virtualbox)")
            })
    }
}

/// What a backend can do, checked by the planner before any side effect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capabilities {
    /// Which kind of [`ImageSource`] the backend boots machines from.
    pub image_kind: ImageKind,
    /// Whether it publishes a guest's port on the host ([`PortForward`]).
    pub forwarded_ports: bool,
    /// Whether it forwards udp as well as tcp (SSH tunnels carry tcp only).
    pub forwarded_udp: bool,
    /// The live synced-folder types it mounts ([`FolderBind`]), best first. `rsync`, over
    /// SSH, is every provider's and is not listed.
    pub live_folders: &'static [FolderType],
    /// The live type `auto` picks where it can show the folder, as Vagrant picks: a bind,
    /// a VirtualBox shared folder (Vagrant's default there: its boxes carry the Guest
    /// Additions). Not virtiofs, which Vagrant never picks by itself either.
    pub auto_folder: Option<FolderType>,
}

impl ProviderKind {
    /// What the backend `kind` can do, known without connecting to it, so `validate` can
    /// refuse what it cannot do before anything is made.
    pub fn capabilities(self) -> Capabilities {
        match self {
            ProviderKind::Docker => Capabilities {
                image_kind: ImageKind::Docker,
                forwarded_ports: true,
                forwarded_udp: true,
                live_folders: &[FolderType::Bind],
                auto_folder: Some(FolderType::Bind),
            },
            // envctl's SSH tunnels (`src/ops/tunnels.rs`): tcp only.
            ProviderKind::Libvirt => Capabilities {
                image_kind: ImageKind::Box,
                forwarded_ports: true,
                forwarded_udp: false,
                // virtiofs, through the host's virtiofsd. Not 9p: QEMU serves it as
                // libvirt's unprivileged user, who can write none of the user's files.
                live_folders: &[FolderType::Virtiofs],
                auto_folder: None,
            },
            // NAT rules of the VM's first adapter.
            ProviderKind::Virtualbox => Capabilities {
                image_kind: ImageKind::Box,
                forwarded_ports: true,
                forwarded_udp: true,
                live_folders: &[FolderType::Virtualbox],
                auto_folder: Some(FolderType::Virtualbox),
            },
        }
    }
}

/// A synced folder's type, as the Machinefile names it (`synced_folders[].type`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum FolderType {
    /// The best live type the provider has, else rsync.
    #[default]
    Auto,
    /// A Docker bind mount: live, both ways.
    Bind,
    /// libvirt's virtiofs.
    Virtiofs,
    /// libvirt's 9p.
    NineP,
    /// A VirtualBox shared folder.
    Virtualbox,
    /// Copied over SSH by `rsync`: one way, on `up`, `reload`, `envctl rsync`.
    Rsync,
}

impl FolderType {
    pub const ALL: [FolderType; 6] = [
        FolderType::Auto,
        FolderType::Bind,
        FolderType::Virtiofs,
        FolderType::NineP,
        FolderType::Virtualbox,
        FolderType::Rsync,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FolderType::Auto => "auto",
            FolderType::Bind => "bind",
            FolderType::Virtiofs => "virtiofs",
            FolderType::NineP => "9p",
            FolderType::Virtualbox => "virtualbox",
            FolderType::Rsync => "rsync",
        }
    }
}

impl fmt::Display for FolderType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for FolderType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        FolderType::ALL
            .into_iter()
            .find(|kind| kind.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "`{s}` is not a folder type: use auto, bind, virtiofs, 9p, virtualbox or rsync"
                )
            })
    }
}

/// A host folder mounted live in the guest: a Docker bind mount, a virtiofs export or a
/// VirtualBox shared folder. The backend exports it; a VM's guest mounts it by `tag` once
/// it answers SSH (envctl's `ops`), a container's engine mounts it itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FolderBind {
    /// One of the backend's [`Capabilities::live_folders`].
    pub kind: FolderType,
    /// The name the guest mounts the export by (a virtiofs tag, a VirtualBox share name),
    /// unique within the machine and the same on every `up`.
    pub tag: String,
    /// Absolute, an existing folder.
    pub host: PathBuf,
    /// Absolute, normalized.
    pub guest: String,
    /// Guest paths under `guest` to cover with an empty read-only file system, so what the
    /// host keeps there (the project's `.envctl/`, its private keys) never shows. Only a
    /// bind has any: envctl never exports a folder that holds `.envctl/` to a VM, whose
    /// root could uncover it.
    pub hidden: Vec<String>,
}

/// The uid and gid the machine's user takes, so that files in a live folder, which keep
/// their host owners, are the guest user's own (the host folder's owner's).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct UserIds {
    pub uid: u32,
    pub gid: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageKind {
    /// A Docker image, named or built from a recipe.
    Docker,
    /// A Vagrant-format box.
    Box,
}

/// Who an environment is: all a backend needs to find, stop and remove what it made.
/// `halt`, `destroy`, `teardown`, `status` and `log_tail` take only this, so removing
/// what a lost environment left needs nothing made up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnvironmentId {
    /// The environment's name; it prefixes every resource made for it.
    pub name: String,
    /// A random id, unique to this environment, recorded on every resource.
    pub id: String,
    /// The folder of the Machinefile, recorded on resources to say whose they are.
    pub project_dir: PathBuf,
    /// A folder the caller owns where a backend may keep console logs; empty when there is
    /// none (an environment known only from its resources' marks: see
    /// [`EnvironmentId::of_owner`]).
    pub console_dir: PathBuf,
}

impl EnvironmentId {
    /// The name of the resource that backs `machine`, e.g. a container or domain name.
    pub fn resource_name(&self, machine: &str) -> String {
        format!("{}-{}", self.name, machine)
    }

    /// The name of the environment's network.
    pub fn network_name(&self) -> String {
        format!("{}-net", self.name)
    }

    /// Whether the backend may keep console logs for this environment.
    pub fn has_console_dir(&self) -> bool {
        !self.console_dir.as_os_str().is_empty()
    }
}

/// One environment as a backend needs it to make machines: who it is, and its network.
#[derive(Clone, Debug)]
pub struct EnvironmentSpec {
    pub who: EnvironmentId,
    pub network: NetworkSpec,
}

/// A spec is its environment's identity and more: every call that takes an identity
/// takes a spec as it is, and code that makes machines reads `env.name` without a
/// detour.
impl std::ops::Deref for EnvironmentSpec {
    type Target = EnvironmentId;

    fn deref(&self) -> &EnvironmentId {
        &self.who
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetworkSpec {
    pub subnet: Ipv4Network,
    pub gateway: Ipv4Addr,
}

/// One machine, fully resolved for the backend that runs it.
#[derive(Clone, Debug)]
pub struct MachineSpec {
    pub name: String,
    /// The fully qualified hostname the machine gives itself.
    pub hostname: String,
    pub ip: Ipv4Addr,
    pub cpus: u32,
    pub memory_mib: u32,
    /// The login user envctl and Ansible use.
    pub user: String,
    /// Names other machines reach this one by (name, hostname, short hostname).
    pub aliases: Vec<String>,
    pub image: ImageSource,
    /// The environment's provisioning public key, one OpenSSH line.
    pub authorized_key: String,
    pub host_key: HostKey,
    /// Guest ports published on the host, each host port already free or this machine's.
    pub forwarded_ports: Vec<PortForward>,
    /// Live synced folders, of a type the backend listed in [`Capabilities::live_folders`].
    pub binds: Vec<FolderBind>,
    /// Ids the login user takes when the machine is made, for `binds`; None to keep its own.
    pub user_ids: Option<UserIds>,
    /// What runs as the machine's first process. Only containers have a choice: a VM
    /// always boots its box's own init.
    pub init: Init,
}

/// A guest's port reached at a port of the host (Vagrant's `forwarded_port`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PortForward {
    pub guest: u16,
    pub host: u16,
    /// The host address it listens on: 127.0.0.1 unless the Machinefile says otherwise.
    pub host_ip: Ipv4Addr,
    pub protocol: Protocol,
    /// Vagrant's `auto_correct`: a taken host port may be replaced by a free one. Decided
    /// before a backend sees the forward, which then carries the port in effect.
    pub auto_correct: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A container's first process.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Init {
    /// systemd as PID 1, as in a VM: services, journald, graceful shutdown.
    #[default]
    Systemd,
    /// `sshd -D` alone in the foreground: lighter, but no service manager.
    Sshd,
}

impl Init {
    pub fn as_str(self) -> &'static str {
        match self {
            Init::Systemd => "systemd",
            Init::Sshd => "sshd",
        }
    }
}

impl fmt::Display for Init {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a machine's root file system comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImageSource {
    /// A Docker image that must exist in the engine already.
    DockerImage(String),
    /// A Docker image built from a recipe, rebuilt only when the recipe changes.
    DockerBuild(BuildRecipe),
    /// A Vagrant box unpacked on disk.
    Box(BoxImage),
}

impl ImageSource {
    pub fn kind(&self) -> ImageKind {
        match self {
            ImageSource::DockerImage(_) | ImageSource::DockerBuild(_) => ImageKind::Docker,
            ImageSource::Box(_) => ImageKind::Box,
        }
    }
}

/// A Docker build context held in memory, so a recipe embedded in the binary and one read
/// from a folder are built the same way.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildRecipe {
    /// Names the image: `envctl-<name>:<hash of the files>`.
    pub name: String,
    /// Relative path and contents of each file of the context, in a stable order.
    pub files: Vec<(String, Vec<u8>)>,
}

/// A box in Vagrant's format, already unpacked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BoxImage {
    pub name: String,
    pub version: String,
    /// The folder that holds `metadata.json` and the provider's disk files.
    pub dir: PathBuf,
}

/// A machine's SSH host key, generated by envctl so it is known before first contact.
#[derive(Clone, PartialEq, Eq)]
pub struct HostKey {
    /// The private key in OpenSSH format. Secret: never printed or logged.
    pub private_openssh: String,
    /// The public key, one OpenSSH line (`ssh-ed25519 AAAA…`).
    pub public_openssh: String,
}

impl fmt::Debug for HostKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HostKey")
            .field("private_openssh", &"<redacted>")
            .field("public_openssh", &self.public_openssh)
            .finish()
    }
}

/// What a backend is doing to a machine, for the progress display.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    BuildingImage,
    CreatingNetwork,
    Creating,
    Starting,
    Booting,
    AlreadyRunning,
    Stopping,
    Destroying,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::BuildingImage => "building image",
            Phase::CreatingNetwork => "creating network",
            Phase::Creating => "creating",
            Phase::Starting => "starting",
            Phase::Booting => "booting",
            Phase::AlreadyRunning => "already running",
            Phase::Stopping => "stopping",
            Phase::Destroying => "destroying",
        })
    }
}

/// What `up` did and how to reach the machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MachineUp {
    /// The backend's id for the machine (container id, domain UUID, VM UUID).
    pub id: String,
    pub endpoint: SshEndpoint,
    pub access: Access,
    /// An address the guest must be told to take, when the backend cannot hand it out
    /// itself (VirtualBox's host-only NIC); envctl sets it over SSH before anything else.
    pub guest_address: Option<GuestAddress>,
    /// False when the machine was already running and nothing was done.
    pub changed: bool,
}

/// A static address for the guest NIC with `mac`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuestAddress {
    /// Lowercase, colon-separated.
    pub mac: String,
    pub ip: Ipv4Addr,
    pub prefix: u8,
}

/// Where envctl's own SSH connections go. Ansible's inventory always uses the static IP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SshEndpoint {
    pub host: String,
    pub port: u16,
}

/// Which key opens a machine the first time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// The environment's key and host key were put in place by the backend.
    Ready,
    /// The machine may trust only Vagrant's insecure key; envctl must then install its own
    /// and remove it. (A box that read a cloud-init seed already answers with the
    /// environment's key, and bootstrap finds nothing to do.)
    VagrantInsecureKey,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MachineStatus {
    pub name: String,
    pub id: String,
    pub state: MachineState,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MachineState {
    Running,
    Stopped,
    NotCreated,
    /// A backend state envctl does not map, in the backend's words.
    Other(String),
}

impl fmt::Display for MachineState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MachineState::Running => f.write_str("running"),
            MachineState::Stopped => f.write_str("stopped"),
            MachineState::NotCreated => f.write_str("not created"),
            MachineState::Other(state) => f.write_str(state),
        }
    }
}
