//! One thin function per verb: turn flags into options, load the workspace, call `ops`.

mod boxes;
mod destroy;
mod global_status;
mod status;

use anyhow::Result;

use crate::cli::{Cli, Command, InventoryArgs};
use crate::ops::{self, GcOptions, InventoryFormat, ReloadOptions, UpOptions, Workspace};
use crate::output;

pub async fn run(cli: Cli) -> Result<()> {
    // Boxes belong to the user, not to an environment: no Machinefile needed.
    if let Command::Box(command) = cli.command {
        return boxes::run(command);
    }
    // Nor does looking for what lost environments left.
    if let Command::Gc(args) = cli.command {
        return ops::gc(GcOptions {
            provider: args.provider,
            remove: args.remove,
        })
        .await;
    }
    // Nor does listing every environment of the user's.
    if let Command::GlobalStatus(args) = cli.command {
        return global_status::run(args);
    }
    let ws = Workspace::load(cli.file.as_deref())?;
    match cli.command {
        Command::Up(args) => {
            ops::up(
                &ws,
                UpOptions {
                    names: args.names,
                    provider: args.provider,
                    provision: provision_choice(args.provision, args.no_provision),
                    switch: args.switch,
                },
            )
            .await
        }
        Command::Provision(args) => ops::provision(&ws, &args.names).await,
        Command::Halt(args) => ops::halt(&ws, &args.names).await,
        Command::Reload(args) => {
            ops::reload(
                &ws,
                ReloadOptions {
                    names: args.names,
                    provision: provision_choice(args.provision, args.no_provision),
                },
            )
            .await
        }
        Command::Destroy(args) => destroy::run(&ws, args).await,
        Command::Status(args) => status::run(&ws, args).await,
        Command::Ssh(args) => ops::ssh(&ws, &args.name, &args.command),
        Command::SshConfig(args) => {
            output::data(&ops::ssh_config(&ws, args.name.as_deref())?);
            Ok(())
        }
        Command::Inventory(InventoryArgs { list, host }) => {
            let format = match (list, host) {
                (_, Some(host)) => InventoryFormat::Host(host),
                (true, None) => InventoryFormat::List,
                (false, None) => InventoryFormat::Ini,
            };
            output::data(&ops::inventory(&ws, format)?);
            Ok(())
        }
        Command::Validate => {
            let names: Vec<&str> = ws
                .manifest
                .machines
                .iter()
                .map(|m| m.name.as_str())
                .collect();
            output::status(
                "Valid",
                &format!(
                    "{}: {} machines ({})",
                    ws.manifest.path.display(),
                    names.len(),
                    names.join(", ")
                ),
            );
            Ok(())
        }
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
