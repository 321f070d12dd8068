//! Bringing one machine from "the backend started it" to "it answers SSH with the
//! environment's key", through bootstrap for boxes that trust Vagrant's insecure key.

use std::time::Duration;

use anyhow::{bail, Result};
use envctl_provider::{Access, EnvironmentSpec, MachineSpec, MachineUp, Provider};

use crate::ops::bootstrap;
use crate::output::Progress;
use crate::providers::AnyProvider;
use crate::ssh::{self, Credentials, SshTarget};
use crate::state::StateDir;

/// How long one machine may take from `up` to answering SSH, unless
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

/// Waits for SSH and, for boxes that trust Vagrant's insecure key, swaps in the
/// environment's own key. A failure says the last thing seen and the machine's log.
pub(super) async fn bring_to_ready(
    reach: &Reach<'_>,
    spec: &MachineSpec,
    up: &MachineUp,
) -> Result<()> {
    let ready = if reach.provider.machines_answer_ssh() {
        wait(reach, spec, up).await
    } else {
        Ok(())
    };
    match ready {
        Ok(()) => {
            let done = if up.changed {
                "ready"
            } else {
                "already running"
            };
            reach.progress.finish(&spec.name, done);
            Ok(())
        }
        Err(last_seen) => {
            reach.progress.finish(&spec.name, "failed");
            let tail = reach
                .provider
                .log_tail(reach.env, &spec.name, 20)
                .await
                .map(|tail| {
                    format!(
                        "\n  last lines of its log:\n    {}",
                        tail.trim_end().replace('\n', "\n    ")
                    )
                })
                .unwrap_or_default();
            bail!(
                "no SSH with the environment's key after {}s; last seen: {last_seen}{tail}",
                ready_timeout().as_secs()
            )
        }
    }
}

async fn wait(reach: &Reach<'_>, spec: &MachineSpec, up: &MachineUp) -> Result<(), String> {
    reach.progress.set(&spec.name, "waiting for ssh");
    let target = SshTarget {
        name: &spec.name,
        user: &spec.user,
        host: &up.endpoint.host,
        port: up.endpoint.port,
    };
    let timeout = ready_timeout();
    match up.access {
        Access::Ready => ssh::wait_ready(&target, reach.creds, timeout).await,
        Access::VagrantInsecureKey => bootstrap::bootstrap(
            reach.state_dir,
            spec,
            &target,
            up.guest_address.as_ref(),
            reach.creds,
            timeout,
        )
        .await
        .map_err(|err| format!("{err:#}")),
    }
}
