//! A VM's live folders, mounted in the guest. The backend exports each one (a virtiofs
//! tag, a VirtualBox shared folder) and the guest mounts it by its tag over the
//! environment's SSH, on every `up` and `reload` once the machine answers, as Vagrant
//! does: a mount does not outlive a reboot. A container needs none of this: the engine
//! mounts its binds.

use std::time::Duration;

use anyhow::{bail, Result};
use envctl_provider::{FolderBind, FolderType, ProviderKind};
use futures_util::future::join_all;

use super::access::{created_target, KeyFiles};
use super::{folders, MachineFailures, Workspace};
use crate::inventory::shell_quote;
use crate::manifest::Machine;
use crate::ssh::{self, Connection, Mode};
use crate::state::State;

/// One mount's bound: a guest that takes longer is stuck (a share the host withdrew).
const MOUNT_LIMIT: Duration = Duration::from_secs(60);

/// Mounts every live folder of `machines` that the guest mounts itself; fails naming each
/// machine whose mount failed, with what the box lacks.
pub async fn mount(
    ws: &Workspace,
    state: &State,
    kind: ProviderKind,
    machines: &[&Machine],
) -> Result<()> {
    let due: Vec<(&Machine, Vec<GuestMount>)> = machines
        .iter()
        .map(|machine| (*machine, guest_mounted(ws, kind, machine)))
        .filter(|(_, binds)| !binds.is_empty())
        .collect();
    if due.is_empty() {
        return Ok(());
    }
    let keys = KeyFiles::of(ws);
    let creds = keys.creds();
    let results = join_all(due.iter().map(|(machine, binds)| async move {
        let target = created_target(machine, state)?;
        let args = ssh::args(&Connection::pinned(&target, creds), Mode::Batch)?;
        let script = mount_script(binds, &machine.user);
        let out = ssh::run(&args, "sudo -n sh -s", script.as_bytes(), MOUNT_LIMIT)
            .await
            .map_err(anyhow::Error::msg)?;
        if !out.success() {
            let binds: Vec<&FolderBind> = binds.iter().map(|m| &m.bind).collect();
            bail!("{}", failure(&binds, &out.stderr));
        }
        Ok(())
    }))
    .await;
    let mut failures = MachineFailures::new("mount synced folders in", due.len());
    for ((machine, _), result) in due.iter().zip(results) {
        if let Err(err) = result {
            failures.push(&machine.name, err);
        }
    }
    failures.into_result()
}

/// A live folder the guest mounts, and whose its files show as (vboxsf only).
struct GuestMount {
    bind: FolderBind,
    owner: Option<String>,
    group: Option<String>,
}

/// The live folders of `machine` that its guest mounts: all but binds.
fn guest_mounted(ws: &Workspace, kind: ProviderKind, machine: &Machine) -> Vec<GuestMount> {
    folders::live(ws, kind, machine)
        .into_iter()
        .filter(|(bind, _)| bind.kind != FolderType::Bind)
        .map(|(bind, folder)| GuestMount {
            bind,
            owner: folder.owner.clone(),
            group: folder.group.clone(),
        })
        .collect()
}

/// The script, run as root, that mounts each folder where it is not mounted yet. A
/// VirtualBox share has no owners: its files show as `owner`'s and `group`'s (the
/// machine's user and that user's group unless given), as Vagrant mounts them; virtiofs
/// shows the host's owners as they are.
fn mount_script(mounts: &[GuestMount], user: &str) -> String {
    let mut script = String::from("set -e\n");
    for GuestMount { bind, owner, group } in mounts {
        let (guest, tag) = (shell_quote(&bind.guest), shell_quote(&bind.tag));
        let mount = match bind.kind {
            FolderType::Virtualbox => {
                let owner = shell_quote(owner.as_deref().unwrap_or(user));
                let gid = match group {
                    Some(group) => format!("$(getent group {} | cut -d: -f3)", shell_quote(group)),
                    None => format!("$(id -g {owner})"),
                };
                format!("mount -t vboxsf -o uid=\"$(id -u {owner})\",gid=\"{gid}\" {tag} {guest}")
            }
            _ => format!("mount -t virtiofs {tag} {guest}"),
        };
        script.push_str(&format!(
            "mkdir -p {guest}\nmountpoint -q {guest} || {mount} || {{ echo \"envctl-mount: \
             {tag} at {guest}\" >&2; exit 3; }}\n"
        ));
    }
    script
}

/// What went wrong, with what the box needs for the type that failed.
fn failure(binds: &[&FolderBind], stderr: &str) -> String {
    let failed = binds.iter().find(|bind| {
        stderr.contains(&format!(
            "envctl-mount: {} at {}",
            shell_quote(&bind.tag),
            shell_quote(&bind.guest)
        ))
    });
    let detail: Vec<&str> = stderr
        .lines()
        .filter(|line| !line.starts_with("envctl-mount:"))
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect();
    let detail = if detail.is_empty() {
        "no output".to_string()
    } else {
        detail.join("; ")
    };
    match failed {
        Some(bind) => format!(
            "mounting the {} folder {} → {} failed: {detail}; {}",
            bind.kind,
            bind.host.display(),
            bind.guest,
            needs(bind.kind)
        ),
        None => format!("mounting synced folders failed: {detail}"),
    }
}

fn needs(kind: FolderType) -> &'static str {
    match kind {
        FolderType::Virtualbox => {
            "the box needs VirtualBox's Guest Additions (mount.vboxsf and the vboxsf module), \
             or use `type: rsync`"
        }
        _ => {
            "the box's kernel needs virtiofs (Linux 5.4 or later, module `virtiofs`); a folder \
             added while the machine ran is exported after `envctl reload`; or use `type: rsync`"
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn bind(kind: FolderType, tag: &str, guest: &str) -> FolderBind {
        FolderBind {
            kind,
            tag: tag.to_string(),
            host: PathBuf::from("/home/me/src"),
            guest: guest.to_string(),
            hidden: Vec::new(),
        }
    }

    fn mount(bind: FolderBind, owner: Option<&str>, group: Option<&str>) -> GuestMount {
        GuestMount {
            bind,
            owner: owner.map(String::from),
            group: group.map(String::from),
        }
    }

    #[test]
    fn each_type_is_mounted_by_its_tag_once() {
        let mounts = [
            mount(
                bind(FolderType::Virtiofs, "envctl1", "/srv/app"),
                None,
                None,
            ),
            mount(
                bind(FolderType::Virtualbox, "envctl2", "/srv/my data"),
                None,
                None,
            ),
            mount(
                bind(FolderType::Virtualbox, "envctl3", "/var/www"),
                Some("www-data"),
                Some("web team"),
            ),
        ];
        assert_eq!(
            mount_script(&mounts, "vagrant"),
            "set -e\n\
             mkdir -p /srv/app\n\
             mountpoint -q /srv/app || mount -t virtiofs envctl1 /srv/app || \
             { echo \"envctl-mount: envctl1 at /srv/app\" >&2; exit 3; }\n\
             mkdir -p '/srv/my data'\n\
             mountpoint -q '/srv/my data' || mount -t vboxsf -o uid=\"$(id -u vagrant)\",\
             gid=\"$(id -g vagrant)\" envctl2 '/srv/my data' || \
             { echo \"envctl-mount: envctl2 at '/srv/my data'\" >&2; exit 3; }\n\
             mkdir -p /var/www\n\
             mountpoint -q /var/www || mount -t vboxsf -o uid=\"$(id -u www-data)\",\
             gid=\"$(getent group 'web team' | cut -d: -f3)\" envctl3 /var/www || \
             { echo \"envctl-mount: envctl3 at /var/www\" >&2; exit 3; }\n"
        );
    }

    #[test]
    fn a_failed_mount_names_the_folder_and_what_the_box_lacks() {
        let binds = [
            bind(FolderType::Virtiofs, "envctl1", "/srv/app"),
            bind(FolderType::Virtualbox, "envctl2", "/srv/data"),
        ];
        let cases = [
            (
                "mount: /srv/app: unknown filesystem type 'virtiofs'.\n\
                 envctl-mount: envctl1 at /srv/app\n",
                "mounting the virtiofs folder /home/me/src → /srv/app failed: mount: /srv/app: \
                 unknown filesystem type 'virtiofs'.; the box's kernel needs virtiofs",
            ),
            (
                "/sbin/mount.vboxsf: mounting failed\nenvctl-mount: envctl2 at /srv/data\n",
                "mounting the virtualbox folder /home/me/src → /srv/data failed: \
                 /sbin/mount.vboxsf: mounting failed; the box needs VirtualBox's Guest Additions",
            ),
            (
                "sudo: a password is required\n",
                "mounting synced folders failed: sudo: a password is required",
            ),
        ];
        let binds: Vec<&FolderBind> = binds.iter().collect();
        for (stderr, want) in cases {
            let got = failure(&binds, stderr);
            assert!(got.starts_with(want), "{got}\n  wanted: {want}");
        }
    }
}
