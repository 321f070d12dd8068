//! First contact with a box that follows Vagrant's convention (user `vagrant` trusting
//! Vagrant's public insecure key): install the environment's key and the host key envctl
//! generated, set the hostname (and the static address, when the backend cannot hand it
//! out), and leave the insecure key no longer authorized.
//!
//! It converges from wherever an earlier run was cut off. Each round first tries the
//! pinned connection (environment's key, generated host key): with the marker the script
//! writes last, the machine is done; without it, the script runs again over that
//! connection. Otherwise first contact runs the script: it accepts the box's own host key
//! as first seen and offers both the insecure keys and the environment's key, so a
//! machine half way through (key already swapped, host key not yet) still lets it in.
//!
//! A box with cloud-init that read the libvirt seed answers the pinned connection at
//! once; the script then runs over it once, to the same end state and marker. (The seed
//! could write the marker instead, but then two places would have to agree on what
//! "done" means; running the idempotent script costs one login.)

#[cfg(test)]
mod docker_tests;
mod script;
#[cfg(test)]
mod tests;

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Context, Result};
use envctl_provider::{GuestAddress, MachineSpec};

use crate::ssh::{
    self, classify, pace, Connection, Credentials, Deadline, HostKeyRule, HostKeys, Mode, NotReady,
    Outcome, SshTarget, Verdict,
};
use crate::state::{create_private_dir, write_private, StateDir};
use script::Script;

/// Vagrant's insecure private keys: public knowledge, shipped by Vagrant itself.
const INSECURE_KEYS: [(&str, &str); 2] = [
    (
        "ed25519",
        include_str!("../../../images/libvirt-box/vagrant-insecure-keys/vagrant.key.ed25519"),
    ),
    (
        "rsa",
        include_str!("../../../images/libvirt-box/vagrant-insecure-keys/vagrant.key.rsa"),
    ),
];

/// Makes `spec`'s machine answer with the environment's key and pinned host key, with
/// the script run to its end; a machine already done is only checked.
pub async fn bootstrap(
    state_dir: &StateDir,
    spec: &MachineSpec,
    target: &SshTarget<'_>,
    guest_address: Option<&GuestAddress>,
    creds: Credentials<'_>,
    deadline: Deadline,
) -> Result<()> {
    let (insecure, first_contact) = prepare_state(state_dir, &spec.name)?;
    let machine = Machine {
        target,
        creds,
        insecure: &insecure,
        first_contact: &first_contact,
        generated: ssh::fingerprint(&spec.host_key.public_openssh)
            .context("reading the host key envctl generated")?,
    };
    let script = Script::new(spec, guest_address);
    converge(&machine, &script, deadline)
        .await
        .context("bootstrap over SSH")
}

/// What bootstrap keeps in `.envctl/`: Vagrant's insecure keys, and the file where ssh
/// records the box's own host key at first contact. That file is made here, empty and
/// private, because ssh would create it with the umask's mode. It is emptied on every
/// bootstrap: a machine made anew (removed behind envctl's back, or after a failed `up`)
/// boots a fresh copy of the box with a host key of its own; the key only has to hold
/// across the retries of one bootstrap.
pub(super) fn prepare_state(
    state_dir: &StateDir,
    machine: &str,
) -> Result<(Vec<PathBuf>, PathBuf)> {
    let insecure = write_insecure_keys(state_dir)?;
    let dir = state_dir.root.join("first_contact");
    create_private_dir(&dir)?;
    let first_contact = dir.join(machine);
    OpenOptions::new()
        .write(true)
        .truncate(true)
        .create(true)
        .mode(0o600)
        .open(&first_contact)
        .with_context(|| format!("creating {}", first_contact.display()))?;
    Ok((insecure, first_contact))
}

fn write_insecure_keys(state_dir: &StateDir) -> Result<Vec<PathBuf>> {
    // Machines bootstrap in parallel, and write_private's temporary file is named per
    // process: one writer at a time, and none once the file is right.
    static WRITING: Mutex<()> = Mutex::new(());
    let _one = WRITING.lock().unwrap_or_else(PoisonError::into_inner);
    INSECURE_KEYS
        .iter()
        .map(|(kind, key)| {
            let path = state_dir.root.join(format!("vagrant_insecure_key.{kind}"));
            if !std::fs::read(&path).is_ok_and(|old| old == key.as_bytes()) {
                write_private(&path, key.as_bytes())?;
            }
            Ok(path)
        })
        .collect()
}

/// One machine being bootstrapped: how to reach it both ways.
struct Machine<'a> {
    pub target: &'a SshTarget<'a>,
    pub creds: Credentials<'a>,
    pub insecure: &'a [PathBuf],
    pub first_contact: &'a Path,
    /// The SHA256 fingerprint of the host key envctl generated.
    pub generated: String,
}

/// How one round went.
enum Round {
    Done,
    /// Something was done (the script ran); check again at once.
    Progress,
    NotYet(String),
    Never(String),
}

impl From<Verdict> for Round {
    fn from(verdict: Verdict) -> Round {
        match verdict {
            Verdict::NotYet(seen) => Round::NotYet(seen),
            Verdict::Never(reason) => Round::Never(reason),
        }
    }
}

/// Rounds of pinned check, then first contact, until the marker is there or `deadline`.
async fn converge(
    machine: &Machine<'_>,
    script: &Script,
    deadline: Deadline,
) -> Result<(), NotReady> {
    let (mut pinned_seen, mut first_seen) = ("nothing yet".to_string(), "not tried".to_string());
    for attempt in 0.. {
        let progressed = match pinned_round(machine, script, deadline).await {
            Round::Done => return Ok(()),
            Round::Never(reason) => return Err(NotReady::Never(reason)),
            Round::Progress => true,
            Round::NotYet(seen) => {
                pinned_seen = seen;
                match run_first_contact(machine, &script.full()).await {
                    Round::Done | Round::Progress => true,
                    Round::Never(reason) => return Err(NotReady::Never(reason)),
                    Round::NotYet(seen) => {
                        first_seen = seen;
                        false
                    }
                }
            }
        };
        if deadline.passed() {
            break;
        }
        if !progressed {
            tokio::time::sleep(pace(attempt)).await;
        }
    }
    Err(NotReady::TimedOut {
        allowed: deadline.allowed,
        last_seen: format!(
            "with the environment's key: {pinned_seen}; with Vagrant's insecure key: {first_seen}"
        ),
    })
}

/// Done when the pinned login finds the marker; finishes the script over it when not.
async fn pinned_round(machine: &Machine<'_>, script: &Script, deadline: Deadline) -> Round {
    let args = match ssh::args(
        &Connection::pinned(machine.target, machine.creds),
        Mode::Batch,
    ) {
        Ok(args) => args,
        Err(err) => return Round::Never(format!("{err:#}")),
    };
    let first_seen = ssh::known_fingerprints(machine.first_contact);
    let rule = HostKeyRule::GeneratedOrBox {
        first_seen: &first_seen,
    };
    let probe = format!("cat {} 2>/dev/null; exit 0", script::MARKER_PATH);
    let limit = deadline.budget(Duration::from_secs(5), Duration::from_secs(30));
    match ssh::run(&args, &probe, b"", limit).await {
        Err(seen) => Round::NotYet(seen),
        Ok(found) if found.success() && found.stdout.trim() == script.marker() => Round::Done,
        Ok(found) if found.success() => run_script(&args, &script.full(), rule).await,
        Ok(failed) => classify(&failed.stderr, rule).into(),
    }
}

/// `text` as root over first contact: the box's own host key as first seen (or the
/// generated one, which only the pinned round accepts), any of the keys it may trust.
/// Tests run a cut-off script through it.
async fn run_first_contact(machine: &Machine<'_>, text: &str) -> Round {
    let mut identities: Vec<&Path> = machine.insecure.iter().map(PathBuf::as_path).collect();
    identities.push(machine.creds.private_key);
    let conn = Connection {
        target: machine.target,
        host_keys: HostKeys::FirstContact(machine.first_contact),
        identities,
        // The box's own host key: never a master that a pinned connection would reuse.
        kept_open_in: None,
    };
    let args = match ssh::args(&conn, Mode::Batch) {
        Ok(args) => args,
        Err(err) => return Round::Never(format!("{err:#}")),
    };
    let rule = HostKeyRule::FirstSeenOrGenerated {
        generated: &machine.generated,
    };
    run_script(&args, text, rule).await
}

/// How long one run of the script may take. A run that started is let finish even past
/// the deadline: cutting it there would only leave more to the next `up`.
const SCRIPT_LIMIT: Duration = Duration::from_secs(180);

/// The script as root, on standard input (the host key in it never on a command line).
async fn run_script(args: &[String], text: &str, rule: HostKeyRule<'_>) -> Round {
    match ssh::run(args, "sudo -n sh -s", text.as_bytes(), SCRIPT_LIMIT).await {
        Err(seen) => Round::NotYet(seen),
        Ok(ran) if ran.success() => Round::Progress,
        Ok(failed) if failed.ssh_failed() => classify(&failed.stderr, rule).into(),
        Ok(failed) => Round::Never(step_failure(&failed, rule)),
    }
}

/// The remote side failed: sudo, or a step of the script. Either fails the same way the
/// next time, so it is reported at once; `up` again runs the script again.
fn step_failure(failed: &Outcome, rule: HostKeyRule) -> String {
    let why = match classify(&failed.stderr, rule) {
        Verdict::Never(reason) => reason,
        Verdict::NotYet(_) => failed
            .stderr
            .lines()
            .map(str::trim)
            .rfind(|line| !line.is_empty())
            .unwrap_or("no message")
            .to_string(),
    };
    match script::failed_step(&failed.stdout) {
        Some(step) => format!("bootstrap step `{step}` failed: {why}"),
        None => format!("bootstrap could not start as root: {why}"),
    }
}
