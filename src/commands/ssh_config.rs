use anyhow::Result;

use crate::cli::SshConfigArgs;
use crate::ops::{self, Workspace};
use crate::output;

pub fn run(ws: &Workspace, args: SshConfigArgs) -> Result<()> {
    output::data(&ops::ssh_config(ws, args.name.as_deref())?);
    Ok(())
}
