//! Synced folders under a chosen provider: which type each folder gets (`auto` resolved
//! against [`ProviderKind::capabilities`]), checked before anything is made as forwarded
//! ports are; the live mounts a backend is handed; and the host folders `create: true`
//! asks `up` to make.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

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
/// `project` is the Machinefile's folder, whose `.envctl/` no VM export may hold.
pub fn used_type(
    kind: ProviderKind,
    project: &Path,
    folder: &SyncedFolder,
) -> Result<FolderType, (&'static str, String)> {
    let capabilities = kind.capabilities();
    let used = match folder.kind {
        FolderType::Rsync => FolderType::Rsync,
        // The provider's pick, unless it would show `.envctl/`: then rsync, which leaves
        // it out (VirtualBox's default for the project folder, /vagrant).
        FolderType::Auto => match capabilities.auto_folder {
            Some(FolderType::Virtualbox) if holds_state_dir(project, folder) => FolderType::Rsync,
            Some(live) => live,
            None => FolderType::Rsync,
        },
        asked if capabilities.live_folders.contains(&asked) => asked,
        asked => return Err(("type", cannot(kind, asked))),
    };
    // A bind and a virtiofs export cover `.envctl/` on the host (an empty tmpfs in the
    // engine's or virtiofsd's mount namespace), out of the guest's reach. VirtualBox
    // serves a share whole, and a cover made in the guest its root could lift.
    if used == FolderType::Virtualbox && holds_state_dir(project, folder) {
        return Err((
            "type",
            format!(
                "a VirtualBox shared folder of {} would show `.envctl/`, which holds the \
                 environment's private key, and VirtualBox cannot leave part of a folder \
                 out: share a folder that does not hold `.envctl/`, or use `type: rsync`, \
                 which leaves it out",
                folder.host.display()
            ),
        ));
    }
    // `owner` and `group` say whose a copy (rsync) or a vboxsf mount (which has no owners
    // of its own) shows its files as; a bind or virtiofs shows the host's owners as they are.
    let takes_owner = matches!(used, FolderType::Rsync | FolderType::Virtualbox);
    let unfit = [
        (
            "exclude",
            used != FolderType::Rsync && !folder.exclude.is_empty(),
        ),
        ("owner", !takes_owner && folder.owner.is_some()),
        ("group", !takes_owner && folder.group.is_some()),
    ];
    if let Some((field, _)) = unfit.iter().find(|(_, set)| *set) {
        let (applies, shows) = if *field == "exclude" {
            ("rsync folders only", "the host's files")
        } else {
            ("rsync and virtualbox folders only", "the host's owners")
        };
        return Err((
            field,
            format!(
                "applies to {applies}, and under {kind} this folder is a live `{used}` \
                 mount, which shows {shows} as they are: set `type: rsync` or remove \
                 `{field}`"
            ),
        ));
    }
    Ok(used)
}

/// Whether `folder` shows this project's `.envctl/`, or another project's at its top.
fn holds_state_dir(project: &Path, folder: &SyncedFolder) -> bool {
    folder.state_dir_in_guest(project).is_some() || folder.host.join(STATE_DIR_NAME).is_dir()
}

fn cannot(kind: ProviderKind, asked: FolderType) -> String {
    match (kind, asked) {
        (ProviderKind::Libvirt, FolderType::NineP) => "envctl does not mount `9p` folders: \
             QEMU serves them as libvirt's unprivileged user, so the guest could write none \
             of your files; use `type: virtiofs` (live, both ways) or `type: rsync`"
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
pub fn uses<'a>(kind: ProviderKind, project: &Path, machine: &'a Machine) -> Vec<FolderUse<'a>> {
    machine
        .synced_folders
        .iter()
        .filter_map(|folder| {
            let used = used_type(kind, project, folder).ok()?;
            Some(FolderUse { folder, used })
        })
        .collect()
}

/// Fails with a Machinefile problem (exit 2) per folder that `kind` cannot show.
pub fn check(ws: &Workspace, kind: ProviderKind, machines: &[&Machine]) -> Result<()> {
    let mut found = Vec::new();
    for machine in machines {
        for folder in &machine.synced_folders {
            if let Err((field, why)) = used_type(kind, &ws.manifest.dir, folder) {
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

/// The live folders the backend exports for `machine`, and the ids a container's user
/// takes so the files are its own.
pub fn binds(
    ws: &Workspace,
    kind: ProviderKind,
    machine: &Machine,
) -> (Vec<FolderBind>, Option<UserIds>) {
    let binds: Vec<FolderBind> = live(ws, kind, machine)
        .into_iter()
        .map(|(bind, _)| bind)
        .collect();
    let ids = binds
        .iter()
        .find(|bind| bind.kind == FolderType::Bind)
        .and_then(|bind| owner_ids(&bind.host));
    (binds, ids)
}

/// Each live folder of `machine` as the backend exports it, with what it must not show
/// (`.envctl/`) to cover, beside the folder as the Machinefile gives it.
pub fn live<'a>(
    ws: &Workspace,
    kind: ProviderKind,
    machine: &'a Machine,
) -> Vec<(FolderBind, &'a SyncedFolder)> {
    uses(kind, &ws.manifest.dir, machine)
        .into_iter()
        .filter(|u| u.used != FolderType::Rsync)
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
            let bind = FolderBind {
                kind: u.used,
                tag: format!("envctl{}", u.folder.index),
                host: u.folder.host.clone(),
                guest: u.folder.guest.clone(),
                hidden,
            };
            (bind, u.folder)
        })
        .collect()
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
        // The project is /p; the folder is /p unless a case says /p/src or /elsewhere.
        let cases: [(ProviderKind, FolderType, &str, Option<&str>, Want); 18] = [
            (Docker, Auto, "/p", None, Ok(Bind)),
            (Docker, Bind, "/p", None, Ok(Bind)),
            (Docker, Rsync, "/p", Some("www-data"), Ok(Rsync)),
            (
                Docker,
                Auto,
                "/p",
                Some("www-data"),
                Err(("owner", "applies to rsync and virtualbox folders only")),
            ),
            (
                Docker,
                NineP,
                "/p",
                None,
                Err(("type", "cannot do `9p` folders: it does bind, rsync")),
            ),
            // A VM's live type needs the box's driver: `auto` does not guess it is there.
            (Libvirt, Auto, "/p/src", None, Ok(Rsync)),
            (Libvirt, Virtiofs, "/p/src", None, Ok(Virtiofs)),
            (Libvirt, Virtiofs, "/elsewhere", None, Ok(Virtiofs)),
            // The project's own folder holds `.envctl/`: virtiofsd's wrapper covers it.
            (Libvirt, Virtiofs, "/p", None, Ok(Virtiofs)),
            (
                Libvirt,
                NineP,
                "/p/src",
                None,
                Err(("type", "use `type: virtiofs`")),
            ),
            (
                Libvirt,
                Bind,
                "/p/src",
                None,
                Err(("type", "cannot do `bind` folders: it does virtiofs, rsync")),
            ),
            (
                Libvirt,
                Virtiofs,
                "/p/src",
                Some("www-data"),
                Err(("owner", "applies to rsync and virtualbox folders only")),
            ),
            // Vagrant's default under VirtualBox, but for a folder holding `.envctl/`.
            (Virtualbox, Auto, "/p", Some("1000"), Ok(Rsync)),
            (Virtualbox, Auto, "/p/src", None, Ok(FolderType::Virtualbox)),
            (
                Virtualbox,
                FolderType::Virtualbox,
                "/p/src",
                Some("www-data"),
                Ok(FolderType::Virtualbox),
            ),
            (
                Virtualbox,
                FolderType::Virtualbox,
                "/p/src",
                None,
                Ok(FolderType::Virtualbox),
            ),
            (
                Virtualbox,
                FolderType::Virtualbox,
                "/p",
                None,
                Err(("type", "would show `.envctl/`")),
            ),
            (
                Virtualbox,
                Virtiofs,
                "/p/src",
                None,
                Err((
                    "type",
                    "cannot do `virtiofs` folders: it does virtualbox, rsync",
                )),
            ),
        ];
        for (kind, asked, host, owner, want) in cases {
            let mut folder = folder(asked, owner);
            folder.host = PathBuf::from(host);
            match (used_type(kind, Path::new("/p"), &folder), want) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{kind} {asked} {host}"),
                (Err((field, why)), Err((want_field, want_why))) => {
                    assert_eq!(field, want_field, "{why}");
                    assert!(why.contains(want_why), "{kind} {asked} {host}: {why}");
                }
                (got, want) => panic!("{kind} {asked} {host}: {got:?} but wanted {want:?}"),
            }
        }
    }

    #[test]
    fn another_projects_envctl_at_the_top_keeps_a_virtualbox_share_away() {
        let other = std::env::temp_dir().join(format!("envctl-other-{}", std::process::id()));
        std::fs::create_dir_all(other.join(STATE_DIR_NAME)).unwrap();
        let mut shared = folder(FolderType::Virtualbox, None);
        shared.host = other.clone();
        let got = used_type(ProviderKind::Virtualbox, Path::new("/p"), &shared);
        std::fs::remove_dir_all(&other).unwrap();
        assert!(matches!(got, Err(("type", why)) if why.contains("would show `.envctl/`")));
    }
}
