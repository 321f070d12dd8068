//! The command line, as clap types only: no behaviour here.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use envctl_provider::ProviderKind;

#[derive(Debug, Parser)]
#[command(
    name = "envctl",
    version,
    about = "Bring up multi-machine development environments from one Machinefile"
)]
pub struct Cli {
    /// The Machinefile to use, instead of the nearest one from the current folder up
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Say more (repeat for even more)
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create and start machines, wait until they answer SSH, then provision them
    Up(UpArgs),
    /// Run the provisioners again on running machines
    Provision(ProvisionArgs),
    /// Stop machines, keeping them
    Halt(NamesArgs),
    /// Halt machines, then bring them up again (Vagrant's reload)
    Reload(ReloadArgs),
    /// Remove machines; with none left, everything envctl made for the environment
    Destroy(DestroyArgs),
    /// Show each machine's state
    Status(StatusArgs),
    /// List every envctl environment on this machine, with the machine states last seen
    GlobalStatus(GlobalStatusArgs),
    /// Open a shell on a machine, or run a command there
    Ssh(SshArgs),
    /// Print OpenSSH `Host` blocks for the machines, for `Include` in ~/.ssh/config
    SshConfig(SshConfigArgs),
    /// Print the Ansible inventory (INI, or dynamic-inventory JSON)
    Inventory(InventoryArgs),
    /// Print each machine's forwarded ports, guest => host (Vagrant's `port`)
    Port(PortArgs),
    /// Push the rsync synced folders to the machines (Vagrant's rsync)
    Rsync(NamesArgs),
    /// Push the rsync synced folders, then push again whenever they change, until Ctrl-C
    RsyncAuto(NamesArgs),
    /// Check the Machinefile and report every problem in it
    Validate,
    /// List (or with --remove, remove) what envctl made for environments that are gone
    Gc(GcArgs),
    /// Manage Vagrant boxes for the libvirt and VirtualBox providers
    #[command(subcommand)]
    Box(BoxCommand),
}

#[derive(Debug, Subcommand)]
pub enum BoxCommand {
    /// Add a box from a `.box` file (Vagrant's format)
    Add {
        /// The box's name, e.g. debian/bookworm64
        name: String,
        /// The `.box` file
        file: PathBuf,
        /// The version to record it under
        #[arg(long = "box-version", default_value = "0")]
        version: String,
        /// Replace the box if it is already added
        #[arg(long)]
        force: bool,
    },
    /// List the boxes of envctl's store and of Vagrant's
    List,
    /// Remove a box from envctl's store
    Remove {
        name: String,
        /// Only the box for this provider
        #[arg(long)]
        provider: Option<String>,
        /// Only this version
        #[arg(long = "box-version")]
        version: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct NamesArgs {
    /// Machines to act on (a name, or /regex/); all when none is given
    pub names: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ProvisionArgs {
    /// Machines to provision (a name, or /regex/); all when none is given
    pub names: Vec<String>,
    /// Run just these provisioners (comma-separated names), whatever their `run`
    #[arg(long, value_delimiter = ',')]
    pub provision_with: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ReloadArgs {
    /// Machines to reload (a name, or /regex/); all when none is given
    pub names: Vec<String>,
    /// Run the provisioners (all but `run: never`) even on machines already provisioned
    #[arg(long, conflicts_with = "no_provision")]
    pub provision: bool,
    /// Run no provisioner
    #[arg(long)]
    pub no_provision: bool,
    /// Run just these provisioners (comma-separated names), whatever their `run`
    #[arg(long, value_delimiter = ',', conflicts_with = "no_provision")]
    pub provision_with: Vec<String>,
}

#[derive(Debug, Args)]
pub struct GlobalStatusArgs {
    /// First drop the environments whose folder or .envctl/state.json is gone
    #[arg(long)]
    pub prune: bool,
}

#[derive(Debug, Args)]
pub struct UpArgs {
    /// Machines to bring up (a name, or /regex/); all when none is given
    pub names: Vec<String>,
    /// The provider to use [default: the Machinefile's, else the one in use, else docker]
    #[arg(long, env = "ENVCTL_PROVIDER", value_parser = parse_provider)]
    pub provider: Option<ProviderKind>,
    /// Run the provisioners (all but `run: never`) even on machines already provisioned
    #[arg(long, conflicts_with = "no_provision")]
    pub provision: bool,
    /// Run no provisioner
    #[arg(long)]
    pub no_provision: bool,
    /// Run just these provisioners (comma-separated names), whatever their `run`
    #[arg(long, value_delimiter = ',', conflicts_with = "no_provision")]
    pub provision_with: Vec<String>,
    /// If the environment runs under another provider, destroy it there and bring it up
    /// under this one (same keys, names, addresses)
    #[arg(long)]
    pub switch: bool,
}

#[derive(Debug, Args)]
pub struct DestroyArgs {
    /// Machines to destroy (a name, or /regex/); all when none is given
    pub names: Vec<String>,
    /// Do not ask for confirmation
    #[arg(short, long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct GcArgs {
    /// Only look at this provider [default: every one that answers]
    #[arg(long, value_parser = parse_provider)]
    pub provider: Option<ProviderKind>,
    /// Remove what lost environments left, instead of only listing it
    #[arg(long)]
    pub remove: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print JSON (the format is stable; see the README)
    #[arg(long)]
    pub json: bool,
    /// Print Vagrant's machine-readable lines (`timestamp,target,type,data`)
    #[arg(long, conflicts_with = "json")]
    pub machine_readable: bool,
}

#[derive(Debug, Args)]
pub struct SshArgs {
    /// The machine (a name, or a /regex/ that matches only it)
    pub name: String,
    /// A command to run instead of a shell
    #[arg(last = true)]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct SshConfigArgs {
    /// Only this machine
    pub name: Option<String>,
}

#[derive(Debug, Args)]
pub struct PortArgs {
    /// Only this machine (a name, or a /regex/ that matches only it)
    pub name: Option<String>,
}

#[derive(Debug, Args)]
pub struct InventoryArgs {
    /// Ansible dynamic-inventory JSON for every host and group
    #[arg(long, conflicts_with = "host")]
    pub list: bool,
    /// Ansible dynamic-inventory JSON of one host's variables
    #[arg(long, value_name = "HOST")]
    pub host: Option<String>,
}

fn parse_provider(text: &str) -> Result<ProviderKind, String> {
    text.parse()
}
