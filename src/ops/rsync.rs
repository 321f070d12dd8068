//! rsync folders: the host folder pushed to the guest by `rsync` over the environment's
//! own SSH (the pinned key and known_hosts, the option set of `ssh::args`), as root
//! through `sudo` so `owner` and `group` apply. `.envctl/` is always left out. `up` and
//! `reload` push before provisioning; `envctl rsync` pushes; `envctl rsync-auto` watches
//! the host folders and pushes what changed, debounced.

use std::path::{Component, Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use envctl_provider::{FolderType, ProviderKind};
use futures_util::future::join_all;
use notify_debouncer_full::notify::RecursiveMode;
use notify_debouncer_full::{new_debouncer, DebounceEventResult};
use tokio::process::Command;

use super::access::{created_target, KeyFiles};
use super::folders::uses;
use super::{choose_provider, MachineFailures, Workspace};
use crate::interrupt;
use crate::manifest::{Machine, SyncedFolder, STATE_DIR_NAME};
use crate::output;
use crate::ssh::{self, Connection, Credentials, Mode, SshTarget};
use crate::state::{Lock, State};

/// How long `rsync-auto` lets changes settle before it pushes: an editor's save or a
/// `git checkout` is one push, not hundreds.
const SETTLE: Duration = Duration::from_millis(200);

/// Where one machine's rsync folders go.
struct Push<'a> {
    machine: &'a Machine,
    target: SshTarget<'a>,
    folders: Vec<&'a SyncedFolder>,
}

/// Pushes the rsync folders of `machines` under `kind`, every machine at once, each
/// folder in turn; fails naming each machine that failed.
pub async fn push(
    ws: &Workspace,
    state: &State,
    kind: ProviderKind,
    machines: &[&Machine],
) -> Result<()> {
    let pushes = plan(ws, state, kind, machines, None)?;
    run(ws, &pushes).await
}

/// `envctl rsync [machines]`.
pub async fn rsync(ws: &Workspace, names: &[String]) -> Result<()> {
    let machines = ws.select(names)?;
    let _lock = lock_if_made(ws, "rsync")?;
    let state = ws.state_dir.load()?;
    let kind = choose_provider(None, &ws.manifest, &state);
    let pushes = plan(ws, &state, kind, &machines, None)?;
    if pushes.is_empty() {
        output::status("Finished", "no rsync folder to push");
        return Ok(());
    }
    run(ws, &pushes).await
}

/// `envctl rsync-auto [machines]`: pushes once, then watches every rsync folder's host
/// folder and pushes the folders that changed, until Ctrl-C.
pub async fn rsync_auto(ws: &Workspace, names: &[String]) -> Result<()> {
    let machines = ws.select(names)?;
    let state = ws.state_dir.load()?;
    let kind = choose_provider(None, &ws.manifest, &state);
    let pushes = plan(ws, &state, kind, &machines, None)?;
    let mut hosts: Vec<PathBuf> = pushes
        .iter()
        .flat_map(|push| push.folders.iter().map(|f| f.host.clone()))
        .collect();
    hosts.sort();
    hosts.dedup();
    if hosts.is_empty() {
        bail!("no rsync folder to watch among the machines selected");
    }
    interrupt::install();
    {
        let _lock = lock_if_made(ws, "rsync-auto")?;
        run(ws, &pushes).await?;
    }

    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<DebounceEventResult>();
    let mut debouncer = new_debouncer(SETTLE, None, move |events| {
        let _ = tx.send(events);
    })
    .context("starting the file watcher")?;
    for host in &hosts {
        debouncer
            .watch(host, RecursiveMode::Recursive)
            .with_context(|| format!("watching {}", host.display()))?;
    }
    output::status(
        "Watching",
        &format!(
            "{} for changes (Ctrl-C to stop)",
            hosts
                .iter()
                .map(|h| h.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );
    loop {
        let events = match interrupt::cancellable(rx.recv()).await {
            Err(_) | Ok(None) => return Ok(()),
            Ok(Some(Ok(events))) => events,
            Ok(Some(Err(errors))) => {
                for err in errors {
                    output::error(&format!("watching: {err}"));
                }
                continue;
            }
        };
        let changed: Vec<PathBuf> = events
            .iter()
            .flat_map(|event| event.paths.iter().cloned())
            .filter(|path| !in_state_dir(path))
            .collect();
        if changed.is_empty() {
            continue;
        }
        let due = plan(ws, &state, kind, &machines, Some(&changed))?;
        // A failed push is said and the watch goes on, as Vagrant's does. The lock is held
        // per push only: a watch that lasts all day must not hold off `up` or `halt`.
        let pushed = match lock_if_made(ws, "rsync-auto") {
            Ok(_lock) => run(ws, &due).await,
            Err(err) => Err(err),
        };
        if let Err(err) = pushed {
            output::error(&format!("{err:#}"));
        }
    }
}

/// The environment's lock, so that a push never meets another envctl's `up`, `halt` or
/// `destroy` half way; none where no environment was made (taking it would make one).
fn lock_if_made(ws: &Workspace, verb: &str) -> Result<Option<Lock>> {
    if !ws.state_dir.root.is_dir() {
        return Ok(None);
    }
    ws.state_dir.lock(verb).map(Some)
}

/// Whether `path` lies in a `.envctl/` folder, whose changes (envctl's own writes) are
/// never pushed.
fn in_state_dir(path: &Path) -> bool {
    path.components()
        .any(|c| c == Component::Normal(STATE_DIR_NAME.as_ref()))
}

/// The pushes due: every rsync folder of `machines`, or those holding one of `changed`.
fn plan<'a>(
    ws: &Workspace,
    state: &'a State,
    kind: ProviderKind,
    machines: &[&'a Machine],
    changed: Option<&[PathBuf]>,
) -> Result<Vec<Push<'a>>> {
    let mut pushes = Vec::new();
    for machine in machines {
        let folders: Vec<&SyncedFolder> = uses(kind, &ws.manifest.dir, machine)
            .into_iter()
            .filter(|u| u.used == FolderType::Rsync)
            .map(|u| u.folder)
            .filter(|f| changed.is_none_or(|paths| paths.iter().any(|p| p.starts_with(&f.host))))
            .collect();
        if folders.is_empty() {
            continue;
        }
        pushes.push(Push {
            machine,
            target: created_target(machine, state)?,
            folders,
        });
    }
    Ok(pushes)
}

async fn run(ws: &Workspace, pushes: &[Push<'_>]) -> Result<()> {
    if pushes.is_empty() {
        return Ok(());
    }
    let keys = KeyFiles::of(ws);
    let creds = keys.creds();
    let results = join_all(pushes.iter().map(|push| async move {
        for folder in &push.folders {
            push_folder(ws, push, folder, creds).await?;
        }
        Ok::<(), anyhow::Error>(())
    }))
    .await;
    let mut failures = MachineFailures::new("push rsync folders to", pushes.len());
    for (push, result) in pushes.iter().zip(results) {
        if let Err(err) = result {
            failures.push(&push.machine.name, err);
        }
    }
    failures.into_result()
}

async fn push_folder(
    ws: &Workspace,
    push: &Push<'_>,
    folder: &SyncedFolder,
    creds: Credentials<'_>,
) -> Result<()> {
    let ssh_args = ssh::args(&Connection::pinned(&push.target, creds), Mode::Batch)?;
    let args = rsync_args(&ssh_args, folder, &push.machine.user, push.target.host);
    let shown = shown_host(&ws.manifest.dir, &folder.host);
    output::status(
        "Syncing",
        &format!("{}: {shown} → {} (rsync)", push.machine.name, folder.guest),
    );
    let out = Command::new("rsync")
        .args(&args)
        .stdin(Stdio::null())
        .output()
        .await
        .context("running rsync (install it on this host: it comes with every distribution)")?;
    if !out.status.success() {
        bail!(
            "rsync of {shown} to {}:{} failed ({}): {}",
            push.machine.name,
            folder.guest,
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// The host folder as the user wrote it, relative to the project where it can be.
pub fn shown_host(project: &Path, host: &Path) -> String {
    match host.strip_prefix(project) {
        Ok(rest) if rest.as_os_str().is_empty() => ".".to_string(),
        Ok(rest) => format!("./{}", rest.display()),
        Err(_) => host.display().to_string(),
    }
}

/// The `rsync` arguments that push `folder` over `ssh_args` (what `ssh::args` gives, its
/// last word the destination host): the folder's contents into `guest`, deleting what the
/// host no longer has, `.envctl/` and `exclude` left out, owned by `owner`:`group` (the
/// machine's user and the group of its name by default).
fn rsync_args(ssh_args: &[String], folder: &SyncedFolder, user: &str, host: &str) -> Vec<String> {
    let (_, options) = ssh_args.split_last().unwrap_or((&String::new(), &[]));
    let mut shell = String::from("ssh");
    for arg in options {
        shell.push(' ');
        shell.push_str(&rsync_quote(arg));
    }
    let owner = folder.owner.as_deref().unwrap_or(user);
    let group = folder.group.as_deref().unwrap_or(owner);
    let guest = sh_quote(&folder.guest);
    let mut args = vec![
        "--archive".to_string(),
        "--delete".to_string(),
        format!("--exclude={STATE_DIR_NAME}/"),
    ];
    args.extend(folder.exclude.iter().map(|p| format!("--exclude={p}")));
    args.extend([
        format!("--chown={owner}:{group}"),
        format!("--rsync-path=sudo -n mkdir -p {guest} && sudo -n rsync"),
        "-e".to_string(),
        shell,
        format!("{}/", folder.host.display()),
        format!("{host}:{}/", folder.guest),
    ]);
    args
}

/// A word for rsync's own splitting of `-e`: single quotes keep everything but a single
/// quote, which goes in double quotes.
fn rsync_quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', "'\"'\"'"))
}

/// A word for the guest's shell.
fn sh_quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', "'\\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rsync_is_told_the_pinned_ssh_and_what_to_leave_out() {
        let folder = SyncedFolder {
            index: 0,
            host: PathBuf::from("/p/my proj"),
            guest: "/srv/it's".into(),
            kind: FolderType::Rsync,
            exclude: vec!["target/".into()],
            owner: Some("www-data".into()),
            group: None,
            create: false,
        };
        let ssh = [
            "-F",
            "/dev/null",
            "-o",
            "UserKnownHostsFile=\"/p/my proj/.envctl/known_hosts\"",
            "-o",
            "StrictHostKeyChecking=yes",
            "10.0.0.5",
        ]
        .map(String::from);
        let args = rsync_args(&ssh, &folder, "vagrant", "10.0.0.5");
        assert_eq!(
            args,
            [
                "--archive",
                "--delete",
                "--exclude=.envctl/",
                "--exclude=target/",
                "--chown=www-data:www-data",
                "--rsync-path=sudo -n mkdir -p '/srv/it'\\''s' && sudo -n rsync",
                "-e",
                "ssh '-F' '/dev/null' '-o' 'UserKnownHostsFile=\"/p/my proj/.envctl/known_hosts\"' \
                 '-o' 'StrictHostKeyChecking=yes'",
                "/p/my proj/",
                "10.0.0.5:/srv/it's/",
            ]
        );
        assert_eq!(rsync_quote("a'b"), "'a'\"'\"'b'");
    }

    #[test]
    fn envctls_own_writes_are_not_changes() {
        assert!(in_state_dir(Path::new("/p/.envctl/state.json")));
        assert!(!in_state_dir(Path::new("/p/src/envctl.rs")));
    }
}
