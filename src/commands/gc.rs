use anyhow::Result;

use crate::cli::GcArgs;
use crate::ops::{self, GcOptions};

pub async fn run(args: GcArgs) -> Result<()> {
    let opts = GcOptions {
        provider: args.provider,
        remove: args.remove,
    };
    ops::gc(opts).await
}
