//! `envctl up`: create and start machines in parallel, wait until every one answers SSH
//! with the environment's key, write the inventory, then run the playbook once.

use std::collections::HashSet;
use std::time::Duration;

use anyhow::{bail, Result};
use envctl_provider::{Access, MachineState, MachineUp, Provider, ProviderKind};
use futures_util::future::join_all;

use super::{
    access, bootstrap, choose_provider, image_source, machine_spec, ownership, provision,
    running_provider, Workspace,
};
use crate::interrupt;
use crate::keys;
use crate::output::{self, Progress};
use crate::providers::AnyProvider;
use crate::ssh::{self, Boot, Credentials, Deadline, SshTarget};
use crate::state::{MachineRecord, State};

/// How long one machine may take from `up` to answering SSH, unless
/// `ENVCTL_READY_TIMEOUT` (seconds) says otherwise.
const READY_TIMEOUT: Duration = Duration::from_secs(300);

fn ready_timeout() -> Duration {
    std::env::var("ENVCTL_READY_TIMEOUT")
        .ok()
        .and_then(|text| text.parse().ok())
        .map_or(READY_TIMEOUT, Duration::from_secs)
}

pub struct UpOptions {
    /// Machines to bring up; all when empty.
    pub names: Vec<String>,
    /// The provider asked for on the command line or in ENVCTL_PROVIDER.
    pub provider: Option<ProviderKind>,
    /// `--provision` (Some(true)), `--no-provision` (Some(false)), or Vagrant's default:
    /// provision machines that have not been provisioned since they were created.
    pub provision: Option<bool>,
    /// Move an environment that runs under another provider: destroy it there first.
    pub switch: bool,
}

pub async fn up(ws: &Workspace, opts: UpOptions) -> Result<()> {
    // Names are checked before the lock, which creates .envctl/.
    let selected = ws.select(&opts.names)?;
    // Images and boxes are resolved before the lock too: a missing one changes nothing.
    let kind = choose_provider(opts.provider, &ws.manifest, &ws.state_dir.load()?);
    let images = selected
        .iter()
        .map(|machine| image_source(ws, machine, kind))
        .collect::<Result<Vec<_>>>()?;
    let _lock = ws.state_dir.lock("up")?;
    interrupt::install();
    let mut state = ws.state_dir.load()?;
    if let Some(current) = running_provider(&state).filter(|current| *current != kind) {
        if !opts.switch && !state.machines.is_empty() {
            bail!(
                "environment `{}` runs under the {current} provider; `envctl up --provider \
                 {kind} --switch` moves it (destroying it under {current} first)",
                ws.manifest.name
            );
        }
        leave_provider(ws, &mut state, current).await?;
    }
    let keypair = keys::ensure_keypair(&ws.state_dir, &ws.manifest.name)?;
    let specs = selected
        .iter()
        .zip(images)
        .map(|(machine, image)| machine_spec(ws, machine, image, &keypair))
        .collect::<Result<Vec<_>>>()?;
    let provider = AnyProvider::connect(kind, &ws.manifest).await?;
    let wanted = provider.capabilities().image_kind;
    if let Some(spec) = specs.iter().find(|spec| spec.image.kind() != wanted) {
        bail!(
            "machine `{}`: the {kind} provider cannot boot its image",
            spec.name
        );
    }
    let env = ws.env_spec(&state);
    for holding in ownership::lost_by(&env, provider.holdings().await?) {
        output::status(
            "Replacing",
            &format!(
                "what an earlier `{}` in this folder left (id {}), which .envctl/ no longer \
                 records and whose keys are gone",
                env.name, holding.owner.env_id
            ),
        );
        ownership::remove_holding(&provider, &holding).await?;
    }
    provider.preflight(&env, &specs).await?;
    interrupt::check()?;

    // From here on resources exist: record the provider first, so an interrupted `up`
    // is finished, not forgotten, by the next command.
    state.provider = Some(kind.to_string());
    ws.state_dir.save(&state)?;
    super::global_status::remember(ws, &state);
    access::write_known_hosts(ws)?;
    ws.state_dir.create_console_dir()?;

    let existing: HashSet<String> = provider
        .status(&env)
        .await?
        .into_iter()
        .filter(|machine| machine.state != MachineState::NotCreated)
        .map(|machine| machine.name)
        .collect();
    let names: Vec<String> = specs.iter().map(|spec| spec.name.clone()).collect();
    let progress = Progress::new(&names);
    provider.prepare(&env, &specs, &progress).await?;
    interrupt::check()?;

    let creds = Credentials {
        private_key: &keypair.private_key_path,
        known_hosts: &ws.state_dir.known_hosts(),
    };
    // A backend call runs to its end even after Ctrl-C; waiting for SSH stops at once.
    let results = join_all(specs.iter().map(|spec| async {
        let up = provider.up(&env, spec, &progress).await?;
        interrupt::check()?;
        interrupt::cancellable(bring_to_ready(
            &provider,
            &env,
            spec,
            &up,
            creds,
            &ws.state_dir,
            &progress,
        ))
        .await??;
        Ok::<MachineUp, anyhow::Error>(up)
    }))
    .await;

    let mut failures = Vec::new();
    let mut changed = false;
    for (spec, result) in specs.iter().zip(results) {
        match result {
            Ok(up) => {
                changed |= up.changed;
                let provisioned = existing.contains(&spec.name)
                    && state
                        .machines
                        .get(&spec.name)
                        .is_some_and(|record| record.provisioned);
                state.machines.insert(
                    spec.name.clone(),
                    MachineRecord {
                        id: up.id,
                        ssh_host: up.endpoint.host,
                        ssh_port: up.endpoint.port,
                        provisioned,
                    },
                );
            }
            Err(err) => failures.push(format!("{}: {err:#}", spec.name)),
        }
    }
    ws.state_dir.save(&state)?;
    access::write_generated(ws, &state)?;
    // After the backends and ssh have written theirs with their own umask.
    ws.state_dir.restrict()?;
    interrupt::check()?;
    if !failures.is_empty() {
        bail!(
            "{} of {} machines did not come up:\n  {}",
            failures.len(),
            specs.len(),
            failures.join("\n  ")
        );
    }

    let unprovisioned = names.iter().any(|name| {
        !state
            .machines
            .get(name)
            .is_some_and(|record| record.provisioned)
    });
    let run_playbook = match opts.provision {
        Some(asked) => asked,
        None => unprovisioned,
    };
    if !changed && !run_playbook {
        output::status(
            "Finished",
            &format!("nothing to do: all {} machines are running", names.len()),
        );
        return Ok(());
    }
    output::status("Ready", &format!("{} machines under {kind}", names.len()));
    if run_playbook && ws.manifest.provision.is_some() {
        provision::run(ws, &mut state, &opts.names).await?;
    }
    Ok(())
}

/// Destroys the environment under the provider it runs under now, keeping its keys, id
/// and names, so `up` can bring it up under another one.
async fn leave_provider(ws: &Workspace, state: &mut State, current: ProviderKind) -> Result<()> {
    let env = ws.env_spec(state);
    if !state.machines.is_empty() {
        output::status(
            "Switching",
            &format!("from {current}: destroying the machines there"),
        );
    }
    let old = match AnyProvider::connect(current, &ws.manifest).await {
        Ok(old) => Some(old),
        // No machine recorded there: an `up` cut off early, nothing worth blocking on.
        Err(err) if state.machines.is_empty() => {
            output::status("Skipping", &format!("the clean-up under {current}: {err}"));
            None
        }
        Err(err) => return Err(err.into()),
    };
    if let Some(old) = old {
        ownership::remove_all(&old, &env).await?;
    }
    state.machines.clear();
    state.provider = None;
    ws.state_dir.save(state)?;
    access::write_generated(ws, state)
}

/// Brings one machine to ready: for boxes that trust Vagrant's insecure key, bootstrap
/// first; then, the same for every provider, SSH with the pinned key and a finished boot.
/// A machine that booted degraded is ready, with its failed units named. A failure says
/// why (at once when it can never work) and shows the end of the machine's log.
async fn bring_to_ready(
    provider: &AnyProvider,
    env: &envctl_provider::EnvironmentSpec,
    spec: &envctl_provider::MachineSpec,
    up: &MachineUp,
    creds: Credentials<'_>,
    state_dir: &crate::state::StateDir,
    progress: &Progress,
) -> Result<()> {
    let target = SshTarget {
        name: &spec.name,
        user: &spec.user,
        host: &up.endpoint.host,
        port: up.endpoint.port,
    };
    let deadline = Deadline::after(ready_timeout());
    let reached = async {
        if up.access == Access::VagrantInsecureKey {
            progress.set(&spec.name, "bootstrapping over ssh");
            let address = up.guest_address.as_ref();
            bootstrap::bootstrap(state_dir, spec, &target, address, creds, deadline).await?;
        }
        progress.set(&spec.name, "waiting for ssh and boot");
        Ok::<Boot, anyhow::Error>(ssh::wait_ready(&target, creds, deadline).await?)
    };
    let boot = match reached.await {
        Ok(boot) => boot,
        Err(err) => {
            progress.finish(&spec.name, "failed");
            bail!("{err:#}{}", log_tail(provider, env, &spec.name).await)
        }
    };
    let word = if up.changed {
        "ready"
    } else {
        "already running"
    };
    match boot {
        Boot::Degraded(units) => {
            progress.finish(&spec.name, &format!("{word} (degraded)"));
            progress.warn(
                &spec.name,
                &format!("booted degraded; failed units: {}", units.join(", ")),
            );
        }
        Boot::Running | Boot::NoSystemd => progress.finish(&spec.name, word),
    }
    Ok(())
}

/// The end of the machine's log, to show under a failure; nothing if the backend has none.
async fn log_tail(
    provider: &AnyProvider,
    env: &envctl_provider::EnvironmentSpec,
    machine: &str,
) -> String {
    provider
        .log_tail(env, machine, 20)
        .await
        .map(|tail| {
            format!(
                "\n  last lines of its log:\n    {}",
                tail.trim_end().replace('\n', "\n    ")
            )
        })
        .unwrap_or_default()
}
