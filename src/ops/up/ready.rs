//! Bringing one machine from "the backend started it" to ready: it answers SSH with the
//! environment's key and has finished booting (see `ssh::wait_ready`), through bootstrap
//! for boxes that trust Vagrant's insecure key.

use std::time::Duration;

use anyhow::{bail, Result};
use envctl_provider::{Access, EnvironmentSpec, MachineSpec, MachineUp, Provider};

use crate::ops::bootstrap;
use crate::output::Progress;
use crate::providers::AnyProvider;
use crate::ssh::{self, Boot, Credentials, Deadline, SshTarget};
use crate::state::{create_private_dir, StateDir};

/// How long one machine may take from `up` to ready, unless
/// `ENVCTL_READY_TIMEOUT` (seconds) says otherwise.
const READY_TIMEOUT: Duration = Duration::from_secs(300);

fn ready_timeout() -> Duration {
    std::env::var("ENVCTL_READY_TIMEOUT")
        .ok()
        .and_then(|text| text.parse().ok())
        .map_or(READY_TIMEOUT, Duration::from_secs)
}

/// What every machine's wait shares.
pub(super) struct Reach<'a> {
    pub provider: &'a AnyProvider,
    pub env: &'a EnvironmentSpec,
    pub creds: Credentials<'a>,
    pub state_dir: &'a StateDir,
    pub progress: &'a Progress,
}

/// Brings one machine to ready: for boxes that trust Vagrant's insecure key, bootstrap
/// first; then, the same for every provider, SSH with the pinned key and a finished boot.
/// A machine that booted degraded is ready, with its failed units named. A failure says
/// why (at once when it can never work) and shows the end of the machine's log.
pub(super) async fn bring_to_ready(
    reach: &Reach<'_>,
    spec: &MachineSpec,
    up: &MachineUp,
) -> Result<()> {
    let boot = if reach.provider.machines_answer_ssh() {
        match wait(reach, spec, up).await {
            Ok(boot) => boot,
            Err(err) => {
                reach.progress.finish(&spec.name, "failed");
                bail!("{err:#}{}", log_tail(reach, &spec.name).await)
            }
        }
    } else {
        Boot::NoSystemd
    };
    let done = if up.changed {
        "ready"
    } else {
        "already running"
    };
    match boot {
        Boot::Degraded(units) => {
            reach
                .progress
                .finish(&spec.name, &format!("{done} (degraded)"));
            reach.progress.warn(
                &spec.name,
                &format!("booted degraded; failed units: {}", units.join(", ")),
            );
        }
        Boot::Running | Boot::NoSystemd => reach.progress.finish(&spec.name, done),
    }
    Ok(())
}

async fn wait(reach: &Reach<'_>, spec: &MachineSpec, up: &MachineUp) -> Result<Boot> {
    let target = SshTarget {
        name: &spec.name,
        user: &spec.user,
        host: &up.endpoint.host,
        port: up.endpoint.port,
    };
    let deadline = Deadline::after(ready_timeout());
    if up.access == Access::VagrantInsecureKey {
        reach.progress.set(&spec.name, "bootstrapping over ssh");
        let address = up.guest_address.as_ref();
        bootstrap::bootstrap(
            reach.state_dir,
            spec,
            &target,
            address,
            reach.creds,
            deadline,
        )
        .await?;
    }
    reach.progress.set(&spec.name, "waiting for ssh and boot");
    // The login that finds the machine ready stays open for the playbook's first task.
    let control_dir = reach.state_dir.control_dir();
    let kept_open_in = create_private_dir(&control_dir)
        .ok()
        .map(|()| control_dir.as_path());
    Ok(ssh::wait_ready(&target, reach.creds, kept_open_in, deadline).await?)
}

/// The end of the machine's log, to show under a failure; nothing if the backend has none.
async fn log_tail(reach: &Reach<'_>, machine: &str) -> String {
    reach
        .provider
        .log_tail(reach.env, machine, 20)
        .await
        .map(|tail| {
            format!(
                "\n  last lines of its log:\n    {}",
                tail.trim_end().replace('\n', "\n    ")
            )
        })
        .unwrap_or_default()
}
