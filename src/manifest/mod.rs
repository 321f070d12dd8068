//! The Machinefile: read once, validated once, into types that carry the guarantees.
//!
//! `raw` is the serde schema, `validate` turns it into a [`Manifest`] or into every
//! [`Problem`] it has, and `lines` finds where each problem stands in the file. Later code
//! trusts a `Manifest` and never checks it again.

mod ansible_vars;
mod folders;
mod groups;
mod image_ref;
mod inventory_path;
mod libvirt_uri;
mod lines;
pub mod ports;
mod provisioners;
mod raw;
mod reserved;
#[cfg(test)]
mod tests;
mod validate;

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use envctl_provider::{Init, NetworkSpec, PortForward, ProviderKind};

pub use folders::SyncedFolder;
pub use inventory_path::{check_inventory_path, is_generated, GENERATED_MARK};
pub use libvirt_uri::check_libvirt_uri;
pub use validate::parse;

/// The file name envctl looks for, in the current folder and then its parents.
pub const FILE_NAME: &str = "Machinefile";

/// The folder beside the Machinefile where envctl keeps its state.
pub const STATE_DIR_NAME: &str = ".envctl";

/// A validated environment.
#[derive(Clone, Debug)]
pub struct Manifest {
    /// The Machinefile, absolute.
    pub path: PathBuf,
    /// The folder of the Machinefile: relative paths in it start here.
    pub dir: PathBuf,
    /// Lowercase letters, digits and dashes; it prefixes every resource.
    pub name: String,
    pub provider: Option<ProviderKind>,
    pub network: NetworkSpec,
    /// At least one; names, IPs and hostnames unique; IPs inside the subnet.
    pub machines: Vec<Machine>,
    /// In the order they run; names unique. The mapping form of `provision` is one
    /// Ansible entry named [`DEFAULT_PROVISIONER`].
    pub provisioners: Vec<Provisioner>,
    /// `groups`: variables and children of Ansible groups, by name. Names are valid,
    /// not reserved, not machines' names; children are known groups, with no cycle.
    pub groups: BTreeMap<String, Group>,
    #[cfg_attr(not(feature = "libvirt"), allow(dead_code))]
    pub libvirt: LibvirtOptions,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Machine {
    pub name: String,
    pub hostname: String,
    pub ip: Ipv4Addr,
    pub cpus: u32,
    pub memory_mib: u32,
    pub user: String,
    pub groups: Vec<String>,
    /// Ansible host vars, in the order of their names.
    pub vars: BTreeMap<String, serde_json::Value>,
    pub docker: DockerImage,
    /// What a container runs as PID 1 (`docker.init`); VMs ignore it.
    pub docker_init: Init,
    /// Guest ports published on the host; no host port claimed twice in the Machinefile.
    pub forwarded_ports: Vec<PortForward>,
    /// Host folders shown in the guest; guest paths unique; none is `.envctl/`.
    pub synced_folders: Vec<SyncedFolder>,
    pub libvirt_box: Option<String>,
    pub virtualbox_box: Option<String>,
}

/// Where a machine's Docker image comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DockerImage {
    /// The recipe embedded in envctl (`images/debian`).
    DefaultRecipe,
    /// A build folder holding a Dockerfile, absolute.
    Build(PathBuf),
    /// An image that must already be in the engine.
    Image(String),
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LibvirtOptions {
    /// One that [`check_libvirt_uri`] accepts.
    pub uri: Option<String>,
    pub accel: Accel,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Accel {
    /// KVM when it really runs, else TCG.
    #[default]
    Auto,
    Kvm,
    Tcg,
}

/// An Ansible group's own variables (no connection variable, no template) and children.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Group {
    pub vars: BTreeMap<String, serde_json::Value>,
    pub children: Vec<String>,
}

/// The name of the one provisioner that the mapping form of `provision` makes.
pub const DEFAULT_PROVISIONER: &str = "ansible";

/// One entry of `provision`.
#[derive(Clone, Debug, PartialEq)]
pub struct Provisioner {
    /// Letters, digits, `-` and `_`; unique.
    pub name: String,
    pub run: Run,
    /// The machines it runs on, by name, in Machinefile order; None for all of them.
    pub machines: Option<Vec<String>>,
    pub action: Action,
}

/// When a provisioner runs without being named in `--provision-with` (Vagrant's `run`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Run {
    /// On the first `up` after a machine is made, and when provisioning is asked for.
    #[default]
    Once,
    /// On every `up`, `reload` and `provision`.
    Always,
    /// Only when named in `--provision-with`.
    Never,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Runs on each machine over SSH.
    Shell(Shell),
    /// Copied to each machine over SSH.
    File(FileUpload),
    /// One `ansible-playbook` run over the machines.
    Ansible(Provision),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Shell {
    pub script: Script,
    pub args: Vec<String>,
    /// Names are identifiers.
    pub env: BTreeMap<String, String>,
    /// Run as root through `sudo` (the default), else as the machine's user.
    pub privileged: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Script {
    Inline(String),
    /// Absolute; the file exists.
    Path(PathBuf),
}

/// Vagrant's `file` provisioner: one file, copied as the machine's user, keeping its mode.
#[derive(Clone, Debug, PartialEq)]
pub struct FileUpload {
    /// Absolute; a regular file.
    pub source: PathBuf,
    /// On the machine; relative paths start in the user's home.
    pub destination: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Provision {
    /// Absolute; the file exists.
    pub playbook: PathBuf,
    pub extra_vars: BTreeMap<String, serde_json::Value>,
    pub limit: Option<String>,
    pub tags: Vec<String>,
    pub ansible_args: Vec<String>,
    /// An extra place to write the inventory, absolute, inside the project: see
    /// [`check_inventory_path`].
    pub inventory_path: Option<PathBuf>,
    pub skip_tags: Vec<String>,
    /// Absolute; the file exists.
    pub vault_password_file: Option<PathBuf>,
    /// Absolute; the file exists. Given to Ansible as `ANSIBLE_CONFIG`.
    pub config_file: Option<PathBuf>,
    /// `-v` to `-vvvv`, when asked for.
    pub verbose: Option<String>,
    /// Absolute; the file exists. Installed with `ansible-galaxy` before the playbook.
    pub galaxy_role_file: Option<PathBuf>,
}

impl Manifest {
    pub fn machine(&self, name: &str) -> Option<&Machine> {
        self.machines.iter().find(|machine| machine.name == name)
    }

    /// Problems with a machine's field found after validation, against the host or the
    /// chosen provider (a host port in use, an ability the provider lacks), reported as
    /// validation reports its own: each with its line, read again from the file.
    pub fn machine_problems(&self, found: Vec<(&str, String, String)>) -> ManifestError {
        let lines = std::fs::read_to_string(&self.path)
            .map(|text| lines::LineIndex::new(&text))
            .ok();
        let problems = found
            .into_iter()
            .map(|(machine, field, message)| {
                let index = self.machines.iter().position(|m| m.name == machine);
                let line = lines.as_ref().and_then(|lines| {
                    index
                        .and_then(|index| lines.line_of(&format!("machines.{index}.{field}")))
                        .or_else(|| lines.line_of(&format!("defaults.{field}")))
                });
                Problem {
                    line,
                    machine: Some(machine.to_string()),
                    field,
                    message,
                }
            })
            .collect();
        ManifestError {
            path: self.path.clone(),
            problems,
        }
    }

    pub fn provisioner(&self, name: &str) -> Option<&Provisioner> {
        self.provisioners.iter().find(|p| p.name == name)
    }

    /// The Ansible options of the first Ansible provisioner.
    pub fn first_ansible(&self) -> Option<&Provision> {
        self.provisioners.iter().find_map(|p| match &p.action {
            Action::Ansible(ansible) => Some(ansible),
            _ => None,
        })
    }
}

/// One thing wrong with a Machinefile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub line: Option<usize>,
    /// The machine the problem belongs to, by name or else by position.
    pub machine: Option<String>,
    /// The field, as a dotted path from the top of the file.
    pub field: String,
    pub message: String,
}

/// Every problem of one Machinefile. Its Display is what the user reads.
#[derive(Debug)]
pub struct ManifestError {
    pub path: PathBuf,
    pub problems: Vec<Problem>,
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.problems.len();
        let noun = if count == 1 { "problem" } else { "problems" };
        write!(f, "{} has {count} {noun}:", self.path.display())?;
        for problem in &self.problems {
            write!(f, "\n  {}", problem.render(&self.path))?;
        }
        Ok(())
    }
}

impl std::error::Error for ManifestError {}

impl Problem {
    /// `FILE:LINE: machine `web1`, field `ip`: MESSAGE`.
    pub fn render(&self, path: &Path) -> String {
        let place = match self.line {
            Some(line) => format!("{}:{line}", path.display()),
            None => path.display().to_string(),
        };
        let machine = match &self.machine {
            Some(machine) => format!("machine `{machine}`, "),
            None => String::new(),
        };
        let field = if self.field.is_empty() {
            String::new()
        } else {
            format!("field `{}`: ", self.field)
        };
        format!("{place}: {machine}{field}{}", self.message)
    }
}

/// The most envctl reads of a Machinefile: a few hundred lines are a large one.
pub const MAX_BYTES: u64 = 1024 * 1024;

/// Reads and validates the Machinefile at `path`.
pub fn load(path: &Path) -> Result<Manifest, ManifestError> {
    let text = read_text(path).map_err(|message| ManifestError {
        path: path.to_path_buf(),
        problems: vec![Problem {
            line: None,
            machine: None,
            field: String::new(),
            message,
        }],
    })?;
    parse(path, &text)
}

/// The text of a regular file of at most [`MAX_BYTES`]. `-f` may name anything: a device
/// would be read forever, a FIFO would wait for a writer, so the file is opened without
/// blocking and refused unless it is a regular file.
fn read_text(path: &Path) -> Result<String, String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;

    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|err| format!("cannot read the file: {err}"))?;
    let meta = file
        .metadata()
        .map_err(|err| format!("cannot read the file: {err}"))?;
    if meta.is_dir() {
        return Err("is a folder, not a Machinefile".into());
    }
    if !meta.is_file() {
        return Err("is not a regular file (a device, FIFO or socket): a Machinefile is read from a file only".into());
    }
    let mut bytes = Vec::new();
    file.take(MAX_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|err| format!("cannot read the file: {err}"))?;
    if bytes.len() as u64 > MAX_BYTES {
        return Err(format!(
            "is larger than {} KiB, more than any Machinefile needs",
            MAX_BYTES / 1024
        ));
    }
    String::from_utf8(bytes).map_err(|_| "is not UTF-8 text".to_string())
}

/// The Machinefile in `start` or the nearest of its parents, as Vagrant finds its
/// Vagrantfile. The nearest thing of that name counts, whatever it is: a folder named
/// `Machinefile` is refused when read, rather than passed over for a parent's file.
pub fn find(start: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .map(|dir| dir.join(FILE_NAME))
        .find(|candidate| candidate.exists())
}
