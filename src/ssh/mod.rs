//! envctl's own SSH connections, through the OpenSSH client that Ansible uses too: the
//! readiness barrier, bootstrap and `envctl ssh`, all with one option set (`options`).
//! Host keys are always checked: against the pinned key envctl generated, or, during a
//! box's bootstrap only, against the box's own key as first seen.

mod classify;
mod config;
mod host_keys;
mod locality;
mod options;
mod ready;
mod run;

use std::path::Path;

use anyhow::Result;

pub use classify::{classify, HostKeyRule, Verdict};
pub use config::{render_config, render_known_hosts, KnownHost, SshTarget};
pub use host_keys::{fingerprint, known_fingerprints};
pub use locality::{stays_on_this_host, HOST_LOCAL_KEX};
pub use options::{args, config_path, control_sockets_fit, Connection, HostKeys, Mode};
pub use ready::{pace, wait_ready, Boot, Deadline, NotReady};
pub use run::{run, Outcome};

/// The private key and `known_hosts` every pinned connection uses.
#[derive(Clone, Copy)]
pub struct Credentials<'a> {
    pub private_key: &'a Path,
    pub known_hosts: &'a Path,
}

impl<'a> Connection<'a> {
    /// The environment's key, and only the host key envctl generated.
    pub fn pinned(target: &'a SshTarget<'a>, creds: Credentials<'a>) -> Connection<'a> {
        Connection {
            target,
            host_keys: HostKeys::Pinned(creds.known_hosts),
            identities: vec![creds.private_key],
            kept_open_in: None,
        }
    }
}

/// `ssh` to `target` for a person at a terminal (`envctl ssh`), pinned like every other
/// connection; a remote command may be appended.
pub fn interactive_command(
    target: &SshTarget<'_>,
    creds: Credentials<'_>,
) -> Result<std::process::Command> {
    let mut command = std::process::Command::new("ssh");
    command.args(args(&Connection::pinned(target, creds), Mode::Interactive)?);
    Ok(command)
}
