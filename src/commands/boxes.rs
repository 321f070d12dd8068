use anyhow::Result;

use crate::boxes;
use crate::cli::BoxCommand;
use crate::output;

pub fn run(command: BoxCommand) -> Result<()> {
    match command {
        BoxCommand::Add {
            name,
            file,
            version,
            force,
        } => {
            let added = boxes::add(&name, &file, &version, force)?;
            output::status(
                "Added",
                &format!(
                    "box `{}` ({}, {})",
                    added.name, added.provider, added.version
                ),
            );
        }
        BoxCommand::List => {
            let text: String = boxes::list()?
                .iter()
                .map(|b| {
                    let store = if b.from_vagrant { "  [vagrant]" } else { "" };
                    format!("{} ({}, {}){store}\n", b.name, b.provider, b.version)
                })
                .collect();
            output::data(&text);
        }
        BoxCommand::Remove {
            name,
            provider,
            version,
        } => {
            for removed in boxes::remove(&name, provider.as_deref(), version.as_deref())? {
                output::status(
                    "Removed",
                    &format!(
                        "box `{}` ({}, {})",
                        removed.name, removed.provider, removed.version
                    ),
                );
            }
        }
    }
    Ok(())
}
