//! What each command does. Commands parse flags and call one function here; this layer
//! plans, talks to the provider through [`AnyProvider`], and keeps `.envctl/` true.

mod access;
mod ansible;
mod bootstrap;
mod destroy;
mod failures;
mod folders;
mod galaxy;
mod gc;
mod global_status;
mod halt;
mod host_ports;
mod mounts;
mod ownership;
mod play_recap;
#[cfg(test)]
mod privacy_tests;
mod provision;
mod recipes;
mod reload;
mod remote;
mod rsync;
mod select;
mod session;
mod status;
mod tunnels;
mod up;
#[cfg(test)]
mod verb_tests;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use envctl_provider::{
    BoxImage, EnvironmentId, EnvironmentSpec, ImageSource, MachineSpec, PortForward, ProviderError,
    ProviderKind,
};

use crate::boxes;
use crate::keys::{self, Keypair};
use crate::manifest::{self, DockerImage, Machine, Manifest};
use crate::providers::AnyProvider;
use crate::state::{State, StateDir};

pub use access::{inventory, ssh, ssh_config, InventoryFormat};
pub use destroy::destroy;
pub use failures::MachineFailures;
pub use gc::{gc, GcOptions};
pub use global_status::global_status;
pub use halt::halt;
pub use provision::{provision, UnknownProvisioners};
pub use reload::{reload, ReloadOptions};
pub use rsync::{rsync, rsync_auto};
pub use select::SelectError;
pub use session::Session;
pub use status::{status, StatusReport};
// Named only by the tests that build a report by hand.
#[cfg(test)]
pub use status::MachineLine;
pub use up::{up, UpOptions};

/// No Machinefile in the current folder or its parents: bad input, like a bad one.
#[derive(Debug)]
pub struct NoMachinefile {
    pub dir: PathBuf,
}

impl std::fmt::Display for NoMachinefile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "no {} in {} or its parents: write one (see Machinefile.example) or pass -f FILE",
            manifest::FILE_NAME,
            self.dir.display()
        )
    }
}

impl std::error::Error for NoMachinefile {}

/// A loaded environment: its validated Machinefile and its state folder.
pub struct Workspace {
    pub manifest: Manifest,
    pub state_dir: StateDir,
    /// The user's envctl data folder, where the registry behind `global-status` lives.
    pub data_dir: PathBuf,
    /// In the verbs' tests, the backend every `connect` returns, whatever the kind.
    #[cfg(test)]
    pub fake: Option<std::sync::Arc<crate::providers::fake::FakeProvider>>,
}

impl Workspace {
    /// Finds and validates the Machinefile: `file` if given, else the nearest one from the
    /// current folder up.
    pub fn load(file: Option<&Path>) -> Result<Workspace> {
        let path = match file {
            Some(path) => path.to_path_buf(),
            None => {
                let cwd = std::env::current_dir().context("reading the current folder")?;
                match manifest::find(&cwd) {
                    Some(path) => path,
                    None => return Err(NoMachinefile { dir: cwd }.into()),
                }
            }
        };
        // Canonical, so messages and generated files name it plainly.
        let path = std::fs::canonicalize(&path)
            .or_else(|_| std::path::absolute(&path))
            .with_context(|| format!("resolving {}", path.display()))?;
        Ok(Workspace::new(manifest::load(&path)?))
    }

    /// The workspace of a validated Machinefile: its state lives beside it.
    pub fn new(manifest: Manifest) -> Workspace {
        Workspace {
            state_dir: StateDir::new(&manifest.dir),
            data_dir: boxes::data_dir(),
            manifest,
            #[cfg(test)]
            fake: None,
        }
    }

    /// Connects to the backend `kind`, configured by the Machinefile.
    pub async fn connect(&self, kind: ProviderKind) -> Result<AnyProvider, ProviderError> {
        #[cfg(test)]
        if let Some(fake) = &self.fake {
            return Ok(AnyProvider::Fake(fake.clone()));
        }
        AnyProvider::connect(kind, &self.manifest).await
    }

    // `select` and `select_one` are in select.rs.

    pub fn env_spec(&self, state: &State) -> EnvironmentSpec {
        EnvironmentSpec {
            who: EnvironmentId {
                name: self.manifest.name.clone(),
                id: state.env_id.clone(),
                project_dir: self.manifest.dir.clone(),
                console_dir: self.state_dir.console_dir(),
            },
            network: self.manifest.network,
        }
    }
}

/// What `up` would refuse before making anything, for `validate`: the machines' asks that
/// the provider they would run under cannot meet, or that this host cannot (a host port
/// in use).
pub fn check_against_provider(ws: &Workspace) -> Result<()> {
    let state = ws.state_dir.load()?;
    let kind = choose_provider(None, &ws.manifest, &state);
    let machines: Vec<&Machine> = ws.manifest.machines.iter().collect();
    folders::check(ws, kind, &machines)?;
    host_ports::check(ws, kind, &machines, &state)
}

/// `machine`'s forwarded ports as in effect: host ports `auto_correct` moved as the state
/// records them (`envctl port`).
pub fn forwarded_ports(ws: &Workspace, machine: &Machine) -> Result<Vec<PortForward>> {
    let state = ws.state_dir.load()?;
    Ok(host_ports::in_effect(
        machine,
        state.machines.get(&machine.name),
    ))
}

/// The provider a command uses: the one asked for (flag or ENVCTL_PROVIDER), else the
/// Machinefile's, else the one the environment already runs under, else docker.
pub fn choose_provider(
    asked: Option<ProviderKind>,
    manifest: &Manifest,
    state: &State,
) -> ProviderKind {
    asked
        .or(manifest.provider)
        .or(state.provider)
        .unwrap_or(ProviderKind::Docker)
}

/// Everything the backend `kind` needs for one machine, its image resolved for it.
fn machine_spec(
    ws: &Workspace,
    kind: ProviderKind,
    machine: &Machine,
    image: ImageSource,
    forwarded_ports: Vec<PortForward>,
    keypair: &Keypair,
) -> Result<MachineSpec> {
    let (binds, user_ids) = folders::binds(ws, kind, machine);
    let host_key = keys::ensure_host_key(&ws.state_dir, &ws.manifest.name, &machine.name)?;
    let mut aliases = vec![machine.name.clone(), machine.hostname.clone()];
    if let Some((short, _)) = machine.hostname.split_once('.') {
        aliases.push(short.to_string());
    }
    aliases.dedup();
    Ok(MachineSpec {
        name: machine.name.clone(),
        hostname: machine.hostname.clone(),
        ip: machine.ip,
        cpus: machine.cpus,
        memory_mib: machine.memory_mib,
        user: machine.user.clone(),
        aliases,
        image,
        authorized_key: keypair.public_openssh.clone(),
        host_key,
        init: machine.docker_init,
        forwarded_ports,
        binds,
        user_ids,
    })
}

/// Where `machine`'s image comes from under `kind`; looks, changes nothing.
fn image_source(ws: &Workspace, machine: &Machine, kind: ProviderKind) -> Result<ImageSource> {
    match kind {
        ProviderKind::Docker => match &machine.docker {
            DockerImage::DefaultRecipe => Ok(ImageSource::DockerBuild(recipes::default_recipe())),
            DockerImage::Build(dir) => Ok(ImageSource::DockerBuild(recipes::read_recipe(dir)?)),
            DockerImage::Image(name) => Ok(ImageSource::DockerImage(name.clone())),
        },
        ProviderKind::Libvirt | ProviderKind::Virtualbox => {
            let wanted = match kind {
                ProviderKind::Libvirt => &machine.libvirt_box,
                _ => &machine.virtualbox_box,
            };
            let Some(name) = wanted else {
                bail!(
                    "{}: machine `{}` names no {kind} box: set `{kind}: {{box: NAME}}` under `defaults` or the machine",
                    ws.manifest.path.display(),
                    machine.name
                );
            };
            match boxes::find(name, kind.as_str())? {
                Some(found) => Ok(ImageSource::Box(BoxImage {
                    name: found.name,
                    version: found.version,
                    dir: found.dir,
                })),
                None => bail!(
                    "machine `{}`: box `{name}` for {kind} is not installed: add it with \
                     `envctl box add {name} FILE.box` (`envctl box list` shows what is there)",
                    machine.name
                ),
            }
        }
    }
}

/// Where the generated inventory is also written, if the Machinefile asks.
fn extra_inventory_path(ws: &Workspace) -> Option<PathBuf> {
    ws.manifest.first_ansible()?.inventory_path.clone()
}
