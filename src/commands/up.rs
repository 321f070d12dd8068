use anyhow::Result;

use crate::cli::UpArgs;
use crate::ops::{self, UpOptions, Workspace};

pub async fn run(ws: &Workspace, args: UpArgs) -> Result<()> {
    let opts = UpOptions {
        names: args.names,
        provider: args.provider,
        provision: super::provision_choice(args.provision, args.no_provision),
        switch: args.switch,
    };
    ops::up(ws, opts).await
}
