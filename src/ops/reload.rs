//! Verbs made of others: `up` as the command runs it (bring the machines up, then
//! record them as running for `global-status`), and `reload`, Vagrant's halt then up.

use anyhow::Result;

use super::{global_status, halt, running_provider, up::up as bring_up, UpOptions, Workspace};

pub struct ReloadOptions {
    /// Machines to reload; all when empty.
    pub names: Vec<String>,
    /// As `up` takes it: `--provision`, `--no-provision`, or None for `up`'s default.
    pub provision: Option<bool>,
}

/// `envctl up`. Once it succeeds every machine it selected answers SSH, so they are
/// recorded as running without asking the provider again.
pub async fn up(ws: &Workspace, opts: UpOptions) -> Result<()> {
    let names: Vec<String> = ws
        .select(&opts.names)?
        .iter()
        .map(|machine| machine.name.clone())
        .collect();
    bring_up(ws, opts).await?;
    global_status::remember_running(ws, &names);
    Ok(())
}

/// `envctl reload`: halts the machines, then brings them up again under the provider the
/// environment runs under, provisioning them as `up` would.
pub async fn reload(ws: &Workspace, opts: ReloadOptions) -> Result<()> {
    // Names are checked by `halt` before it takes the lock, so bad ones change nothing.
    halt(ws, &opts.names).await?;
    let provider = running_provider(&ws.state_dir.load()?);
    up(
        ws,
        UpOptions {
            names: opts.names,
            provider,
            provision: opts.provision,
            switch: false,
        },
    )
    .await
}
