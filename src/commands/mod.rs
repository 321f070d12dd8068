//! One thin function per verb: turn flags into options, load the workspace, call `ops`.

mod boxes;
mod destroy;
mod gc;
mod global_status;
mod inventory;
mod port;
mod reload;
mod ssh_config;
mod status;
mod up;
mod validate;

use anyhow::Result;

use crate::cli::{Cli, Command};
use crate::ops::{self, Workspace};

pub async fn run(cli: Cli) -> Result<()> {
    // What needs no Machinefile: boxes belong to the user, `gc` looks for what lost
    // environments left, `global-status` lists every environment of the user's.
    match cli.command {
        Command::Box(command) => return boxes::run(command),
        Command::Gc(args) => return gc::run(args).await,
        Command::GlobalStatus(args) => return global_status::run(args),
        _ => {}
    }
    let ws = Workspace::load(cli.file.as_deref())?;
    match cli.command {
        Command::Up(args) => up::run(&ws, args).await,
        Command::Provision(args) => ops::provision(&ws, &args.names, &args.provision_with).await,
        Command::Halt(args) => ops::halt(&ws, &args.names).await,
        Command::Reload(args) => reload::run(&ws, args).await,
        Command::Destroy(args) => destroy::run(&ws, args).await,
        Command::Status(args) => status::run(&ws, args).await,
        Command::Ssh(args) => ops::ssh(&ws, &args.name, &args.command),
        Command::SshConfig(args) => ssh_config::run(&ws, args),
        Command::Inventory(args) => inventory::run(&ws, args),
        Command::Port(args) => port::run(&ws, args),
        Command::Rsync(args) => ops::rsync(&ws, &args.names).await,
        Command::RsyncAuto(args) => ops::rsync_auto(&ws, &args.names).await,
        Command::Validate => validate::run(&ws),
        Command::Box(_) | Command::Gc(_) | Command::GlobalStatus(_) => {
            unreachable!("handled above")
        }
    }
}

/// `--provision` (Some(true)), `--no-provision` (Some(false)), or neither (None).
fn provision_choice(provision: bool, no_provision: bool) -> Option<bool> {
    match (provision, no_provision) {
        (true, _) => Some(true),
        (_, true) => Some(false),
        _ => None,
    }
}
