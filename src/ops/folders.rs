//! Synced folders under a chosen provider: which type each folder gets (`auto` resolved
//! against [`ProviderKind::capabilities`]), checked before anything is made as forwarded
//! ports are; the live mounts a backend is handed; and the host folders `create: true`
//! asks `up` to make.

use std::os::unix::fs::MetadataExt;

use anyhow::{Context, Result};
use envctl_provider::{FolderBind, FolderType, ProviderKind, UserIds};

use crate::manifest::{Machine, SyncedFolder, STATE_DIR_NAME};

use super::Workspace;

/// One folder of a machine and the type it gets under a provider.
#[derive(Clone, Debug)]
pub struct FolderUse<'a> {
    pub folder: &'a SyncedFolder,
    /// Never `Auto`.
    pub used: FolderType,
}

/// The type `folder` gets under `kind`, or why `kind` cannot show it (field, why).
pub fn used_type(
    kind: ProviderKind,
    folder: &SyncedFolder,
) -> Result<FolderType, (&'static str, String)> {
    let live = kind.capabilities().live_folders;
    let used = match folder.kind {
        FolderType::Rsync => FolderType::Rsync,
        // Every live type envctl has hides `.envctl/` (docker: an empty tmpfs over it);
        // where none exists, rsync, which leaves it out.
        FolderType::Auto => live.first().copied().unwrap_or(FolderType::Rsync),
        asked if live.contains(&asked) => asked,
        asked => return Err(("type", cannot(kind, asked))),
    };
    if used != FolderType::Rsync {
        let rsync_only = [
            ("exclude", !folder.exclude.is_empty()),
            ("owner", folder.owner.is_some()),
            ("group", folder.group.is_some()),
        ];
        if let Some((field, _)) = rsync_only.iter().find(|(_, set)| *set) {
            return Err((
                field,
                format!(
                    "applies to rsync folders only, and under {kind} this folder is a live \
                     `{used}` mount, which shows the host's files as they are: set \
                     `type: rsync` or remove `{field}`"
                ),
            ));
        }
    }
    Ok(used)
}

fn cannot(kind: ProviderKind, asked: FolderType) -> String {
    match (kind, asked) {
        (ProviderKind::Libvirt, FolderType::NineP | FolderType::Virtiofs) => format!(
            "envctl does not mount `{asked}` folders: a live export of a folder that holds \
             `.envctl/` cannot hide it from the guest's root, and it is not tested under \
             emulation here; use `type: rsync` (what `auto` picks under libvirt)"
        ),
        (ProviderKind::Virtualbox, FolderType::Virtualbox) => "envctl's VirtualBox backend has \
             no shared folders yet, and one of a folder holding `.envctl/` could not hide it: \
             use `type: rsync` (what `auto` picks under virtualbox)"
            .to_string(),
        _ => format!(
            "the {kind} provider cannot do `{asked}` folders: it does {}rsync, and `auto` picks \
             the best",
            kind.capabilities()
                .live_folders
                .iter()
                .map(|t| format!("{t}, "))
                .collect::<String>()
        ),
    }
}

/// Each folder of `machine` with its type under `kind`; a folder `kind` cannot show is
/// left out (`check` refuses it before anything is made).
pub fn uses(kind: ProviderKind, machine: &Machine) -> Vec<FolderUse<'_>> {
    machine
        .synced_folders
        .iter()
        .filter_map(|folder| {
            let used = used_type(kind, folder).ok()?;
            Some(FolderUse { folder, used })
        })
        .collect()
}

/// Fails with a Machinefile problem (exit 2) per folder that `kind` cannot show.
pub fn check(ws: &Workspace, kind: ProviderKind, machines: &[&Machine]) -> Result<()> {
    let mut found = Vec::new();
    for machine in machines {
        for folder in &machine.synced_folders {
            if let Err((field, why)) = used_type(kind, folder) {
                found.push((
                    machine.name.as_str(),
                    format!("synced_folders.{}.{field}", folder.index),
                    why,
                ));
            }
        }
    }
    if found.is_empty() {
        return Ok(());
    }
    Err(ws.manifest.machine_problems(found).into())
}

/// Makes the missing host folders that say `create: true`; `up` calls it under the lock.
pub fn create_missing(machines: &[&Machine]) -> Result<()> {
    for folder in machines.iter().flat_map(|m| &m.synced_folders) {
        if folder.create && !folder.host.exists() {
            std::fs::create_dir_all(&folder.host)
                .with_context(|| format!("making the synced folder {}", folder.host.display()))?;
        }
    }
    Ok(())
}

/// The live mounts the backend makes for `machine`, with `.envctl/` hidden wherever it
/// would show, and the ids the guest user takes so the files are its own.
pub fn binds(
    ws: &Workspace,
    kind: ProviderKind,
    machine: &Machine,
) -> (Vec<FolderBind>, Option<UserIds>) {
    let binds: Vec<FolderBind> = uses(kind, machine)
        .into_iter()
        .filter(|u| u.used == FolderType::Bind)
        .map(|u| {
            let mut hidden: Vec<String> = u
                .folder
                .state_dir_in_guest(&ws.manifest.dir)
                .into_iter()
                .collect();
            // A folder that is another envctl project's: its `.envctl/` too.
            let own = format!("{}/{STATE_DIR_NAME}", u.folder.guest);
            if u.folder.host.join(STATE_DIR_NAME).is_dir() && !hidden.contains(&own) {
                hidden.push(own);
            }
            FolderBind {
                host: u.folder.host.clone(),
                guest: u.folder.guest.clone(),
                hidden,
            }
        })
        .collect();
    let ids = binds.first().and_then(|bind| owner_ids(&bind.host));
    (binds, ids)
}

/// Who owns `host`, the "host user" of a live folder: the guest user takes these ids, so
/// what one edits the other can build, and what the guest writes is the host user's. A
/// folder owned by root (envctl run as root on root's files) keeps the guest user as it
/// is: making it uid 0 would make it root.
fn owner_ids(host: &std::path::Path) -> Option<UserIds> {
    let meta = std::fs::metadata(host).ok()?;
    (meta.uid() != 0).then(|| UserIds {
        uid: meta.uid(),
        gid: meta.gid(),
    })
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn folder(kind: FolderType, owner: Option<&str>) -> SyncedFolder {
        SyncedFolder {
            index: 2,
            host: PathBuf::from("/p"),
            guest: "/vagrant".into(),
            kind,
            exclude: Vec::new(),
            owner: owner.map(String::from),
            group: None,
            create: false,
        }
    }

    #[test]
    fn each_provider_gets_a_type_it_can_do() {
        use FolderType::{Auto, Bind, NineP, Rsync, Virtiofs};
        use ProviderKind::{Docker, Libvirt, Virtualbox};
        type Want = Result<FolderType, (&'static str, &'static str)>;
        let cases: [(ProviderKind, FolderType, Option<&str>, Want); 10] = [
            (Docker, Auto, None, Ok(Bind)),
            (Docker, Bind, None, Ok(Bind)),
            (Docker, Rsync, Some("www-data"), Ok(Rsync)),
            (
                Docker,
                Auto,
                Some("www-data"),
                Err(("owner", "applies to rsync folders only")),
            ),
            (
                Docker,
                NineP,
                None,
                Err(("type", "cannot do `9p` folders: it does bind, rsync")),
            ),
            (Libvirt, Auto, None, Ok(Rsync)),
            (Libvirt, Virtiofs, None, Err(("type", "cannot hide it"))),
            (
                Libvirt,
                Bind,
                None,
                Err(("type", "cannot do `bind` folders: it does rsync")),
            ),
            (Virtualbox, Auto, Some("1000"), Ok(Rsync)),
            (
                Virtualbox,
                FolderType::Virtualbox,
                None,
                Err(("type", "no shared folders yet")),
            ),
        ];
        for (kind, asked, owner, want) in cases {
            match (used_type(kind, &folder(asked, owner)), want) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{kind} {asked}"),
                (Err((field, why)), Err((want_field, want_why))) => {
                    assert_eq!(field, want_field, "{why}");
                    assert!(why.contains(want_why), "{kind} {asked}: {why}");
                }
                (got, want) => panic!("{kind} {asked}: {got:?} but wanted {want:?}"),
            }
        }
    }
}
