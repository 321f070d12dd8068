//! `envctl reload`: Vagrant's halt then up, under one lock, so no other command runs
//! between the two.

use anyhow::Result;

use super::{halt::halt_selected, up::up_selected, Session, Workspace};

pub struct ReloadOptions {
    /// Machines to reload; all when empty.
    pub names: Vec<String>,
    /// As `up` takes it: `--provision`, `--no-provision`, or None for `up`'s default.
    pub provision: Option<bool>,
}

/// Halts the machines, then brings them up again under the provider the environment runs
/// under, provisioning them as `up` would.
pub async fn reload(ws: &Workspace, opts: ReloadOptions) -> Result<()> {
    let mut session = Session::open(ws, "reload", ws.select(&opts.names)?)?;
    halt_selected(&mut session).await?;
    up_selected(&mut session, opts.provision).await
}
