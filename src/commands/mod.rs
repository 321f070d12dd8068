//! One thin function per verb: turn flags into options, load the workspace, call `ops`.

mod boxes;
mod destroy;
mod status;

use anyhow::Result;

use crate::cli::{Cli, Command, InventoryArgs};
use crate::ops::{self, InventoryFormat, UpOptions, Workspace};
use crate::output;

pub async fn run(cli: Cli) -> Result<()> {
    // Boxes belong to the user, not to an environment: no Machinefile needed.
    if let Command::Box(command) = cli.command {
        return boxes::run(command);
    }
    let ws = Workspace::load(cli.file.as_deref())?;
    match cli.command {
        Command::Up(args) => {
            let provision = match (args.provision, args.no_provision) {
                (true, _) => Some(true),
                (_, true) => Some(false),
                _ => None,
            };
            ops::up(
                &ws,
                UpOptions {
                    names: args.names,
                    provider: args.provider,
                    provision,
                },
            )
            .await
        }
        Command::Provision(args) => ops::provision(&ws, &args.names).await,
        Command::Halt(args) => ops::halt(&ws, &args.names).await,
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
        Command::Box(_) => unreachable!("handled above"),
    }
}
