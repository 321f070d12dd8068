use anyhow::Result;

use crate::cli::ReloadArgs;
use crate::ops::{self, ReloadOptions, Workspace};

pub async fn run(ws: &Workspace, args: ReloadArgs) -> Result<()> {
    let opts = ReloadOptions {
        names: args.names,
        provision: super::provision_choice(args.provision, args.no_provision),
    };
    ops::reload(ws, opts).await
}
