//! Live synced folders under libvirt: virtiofs exports. libvirt starts a virtiofsd beside
//! each domain for each export; envctl names, as that binary, a small script of its own
//! (written into the environment's console folder) that runs the host's real virtiofsd in
//! a mount namespace where what the folder must not show (`.envctl/`, which holds the
//! environment's private key) is covered by an empty read-only tmpfs. The cover is a host
//! mount, so the guest's root cannot lift it, as it could one made in the guest.
//! The guest mounts each export by its tag once it answers SSH (envctl's `ops`).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use envctl_provider::{
    EnvironmentId, FolderBind, FolderType, MachineSpec, ProviderError, ProviderKind,
};

use crate::xml::Share;

/// Where libvirt (like QEMU) looks for vhost-user descriptors: a file in the second
/// overrides one of the same name in the first, and the first by name wins. A
/// `"type": "fs"` one names the virtiofsd libvirt would start.
const DESCRIPTOR_DIRS: [&str; 2] = ["/usr/share/qemu/vhost-user", "/etc/qemu/vhost-user"];

/// The virtiofs exports `machine` wants, sorted as `xml::parse_shares` returns them, each
/// served through its wrapper in `env`'s console folder.
pub(crate) fn wanted(env: &EnvironmentId, machine: &MachineSpec) -> Vec<Share> {
    let mut shares: Vec<Share> = exports(machine)
        .map(|bind| Share {
            host: bind.host.display().to_string(),
            tag: bind.tag.clone(),
            binary: wrapper_path(env, &machine.name, &bind.tag)
                .display()
                .to_string(),
        })
        .collect();
    shares.sort();
    shares
}

fn exports(machine: &MachineSpec) -> impl Iterator<Item = &FolderBind> {
    machine
        .binds
        .iter()
        .filter(|bind| bind.kind == FolderType::Virtiofs)
}

/// `<console folder>/virtiofsd-<machine>-<tag>`, absolute: libvirtd runs it from its own
/// working folder.
fn wrapper_path(env: &EnvironmentId, machine: &str, tag: &str) -> PathBuf {
    let dir = std::path::absolute(&env.console_dir).unwrap_or_else(|_| env.console_dir.clone());
    dir.join(format!("virtiofsd-{machine}-{tag}"))
}

/// Refuses virtiofs folders that cannot work, before anything is made: the folder must be
/// on the host libvirt runs on, that host needs a virtiofsd, and envctl a folder of its
/// own for the wrappers.
pub(crate) fn check(
    env: &EnvironmentId,
    machines: &[MachineSpec],
    local: bool,
) -> Result<(), ProviderError> {
    let Some(machine) = machines.iter().find(|m| exports(m).next().is_some()) else {
        return Ok(());
    };
    let unsupported = |why: &str| ProviderError::Unsupported {
        provider: ProviderKind::Libvirt,
        what: format!(
            "export machine `{}`'s virtiofs folders: {why}",
            machine.name
        ),
    };
    if !local {
        return Err(unsupported(
            "libvirt runs on another host, which cannot see this host's folders; use \
             `type: rsync`",
        ));
    }
    if !env.has_console_dir() {
        return Err(unsupported("the environment has no folder of its own here"));
    }
    if virtiofsd().is_none() {
        return Err(unsupported(&format!(
            "no virtiofsd is known to libvirt (no `\"type\": \"fs\"` descriptor naming a \
             binary that is there, in {}); install virtiofsd (Debian 12's QEMU packages \
             carry it; later releases have a `virtiofsd` package), or use `type: rsync`",
            DESCRIPTOR_DIRS.join(" or ")
        )));
    }
    Ok(())
}

/// Writes the wrapper of each of `machine`'s virtiofs exports (again on every start, so a
/// changed virtiofsd or cover list applies) and returns the exports.
pub(crate) fn write_wrappers(
    env: &EnvironmentId,
    machine: &MachineSpec,
) -> Result<Vec<Share>, ProviderError> {
    let Some(real) = exports(machine).next().and(virtiofsd()) else {
        return Ok(wanted(env, machine));
    };
    for bind in exports(machine) {
        let path = wrapper_path(env, &machine.name, &bind.tag);
        let write = || -> std::io::Result<()> {
            std::fs::create_dir_all(path.parent().unwrap_or(Path::new("/")))?;
            let partial = path.with_extension("partial");
            std::fs::write(&partial, wrapper_script(&real, &covered(bind)))?;
            std::fs::set_permissions(&partial, std::fs::Permissions::from_mode(0o700))?;
            std::fs::rename(&partial, &path)
        };
        write().map_err(|err| {
            ProviderError::machine(&machine.name, format!("writing {}", path.display()), err)
        })?;
    }
    Ok(wanted(env, machine))
}

/// The host paths `bind` must not show: its guest paths to hide, mapped back to the host.
fn covered(bind: &FolderBind) -> Vec<PathBuf> {
    bind.hidden
        .iter()
        .filter_map(|hidden| Path::new(hidden).strip_prefix(&bind.guest).ok())
        .map(|below| bind.host.join(below))
        .collect()
}

/// The script libvirt runs as virtiofsd: it enters a private mount namespace (running
/// itself again under `unshare`), covers each path that exists, failing rather than
/// serving a path it could not cover, then becomes the real virtiofsd, which inherits the
/// socket libvirt passed.
fn wrapper_script(real: &Path, covered: &[PathBuf]) -> String {
    let quote = |path: &Path| format!("'{}'", path.display().to_string().replace('\'', "'\\''"));
    let mut script = String::from(
        "#!/bin/sh\n\
         # Written by envctl: libvirt runs it as the virtiofsd of one virtiofs folder.\n\
         set -eu\n",
    );
    if !covered.is_empty() {
        let list: Vec<String> = covered.iter().map(|path| quote(path)).collect();
        script.push_str(&format!(
            "if [ \"${{ENVCTL_VIRTIOFSD_NS:-}}\" != 1 ]; then\n    \
             ENVCTL_VIRTIOFSD_NS=1 exec unshare --mount --propagation private \"$0\" \"$@\"\n\
             fi\n\
             unset ENVCTL_VIRTIOFSD_NS\n\
             for covered in {}; do\n    \
             if [ -d \"$covered\" ]; then\n        \
             mount -t tmpfs -o ro,nosuid,nodev,noexec,size=4k,mode=0500 envctl-hidden \"$covered\"\n    \
             fi\n\
             done\n",
            list.join(" ")
        ));
    }
    script.push_str(&format!("exec {} \"$@\"\n", quote(real)));
    script
}

/// The virtiofsd libvirt would start: the binary of the first `"type": "fs"` descriptor
/// (by file name, the administrator's overriding the system's) that is there. A
/// descriptor can outlive its binary: Debian's QEMU packages have shipped one without.
fn virtiofsd() -> Option<PathBuf> {
    virtiofsd_in(&DESCRIPTOR_DIRS.map(Path::new))
}

fn virtiofsd_in(dirs: &[&Path]) -> Option<PathBuf> {
    let mut by_name = std::collections::BTreeMap::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for entry in entries.flatten() {
            by_name.insert(entry.file_name(), entry.path());
        }
    }
    by_name.values().find_map(|path| {
        let text = std::fs::read_to_string(path).ok()?;
        let json: serde_json::Value = serde_json::from_str(&text).ok()?;
        let binary = PathBuf::from(json["binary"].as_str()?);
        (json["type"] == "fs" && binary.is_file()).then_some(binary)
    })
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use envctl_provider::{BoxImage, FolderBind, ImageSource};

    use super::*;

    fn machine(kinds: &[FolderType]) -> MachineSpec {
        let env = envctl_testkit::env("shares", "10.231.61.0/24");
        let image = ImageSource::Box(BoxImage {
            name: "envctl/test".to_string(),
            version: "1".to_string(),
            dir: PathBuf::from("/nowhere"),
        });
        let mut machine = envctl_testkit::machine(&env, "m1", 11, image);
        machine.binds = kinds
            .iter()
            .enumerate()
            .map(|(index, kind)| FolderBind {
                kind: *kind,
                tag: format!("envctl{index}"),
                host: PathBuf::from(format!("/p/f{index}")),
                guest: format!("/srv/f{index}"),
                hidden: Vec::new(),
            })
            .collect();
        machine
    }

    #[test]
    fn only_virtiofs_exports_are_wanted_and_remote_libvirt_refuses_them() {
        let mut env = envctl_testkit::env("shares", "10.231.61.0/24").who;
        env.console_dir = PathBuf::from("/p/.envctl/console");
        let with = machine(&[FolderType::Virtualbox, FolderType::Virtiofs]);
        assert_eq!(
            wanted(&env, &with),
            [Share {
                host: "/p/f1".to_string(),
                tag: "envctl1".to_string(),
                binary: "/p/.envctl/console/virtiofsd-m1-envctl1".to_string(),
            }]
        );
        let without = machine(&[]);
        assert!(check(&env, std::slice::from_ref(&without), false).is_ok());
        let refused = check(&env, &[without, with], false)
            .unwrap_err()
            .to_string();
        assert!(
            refused.contains("machine `m1`'s virtiofs folders: libvirt runs on another host"),
            "{refused}"
        );
    }

    #[test]
    fn the_virtiofsd_is_the_first_fs_descriptor_by_name_whose_binary_is_there() {
        let root = std::env::temp_dir().join(format!("envctl-descriptors-{}", std::process::id()));
        let (system, admin) = (root.join("share"), root.join("etc"));
        std::fs::create_dir_all(&system).unwrap();
        std::fs::create_dir_all(&admin).unwrap();
        let binary = |name: &str| {
            let path = root.join(name);
            std::fs::write(&path, "").unwrap();
            path
        };
        let descriptor = |dir: &Path, file: &str, kind: &str, binary: &Path| {
            let text = format!(r#"{{"type": "{kind}", "binary": "{}"}}"#, binary.display());
            std::fs::write(dir.join(file), text).unwrap();
        };
        let dirs = [system.as_path(), admin.as_path()];
        assert_eq!(virtiofsd_in(&[&root.join("absent")]), None);
        descriptor(&system, "10-gpu.json", "gpu", &binary("gpu"));
        std::fs::write(system.join("20-broken.json"), "{").unwrap();
        descriptor(&system, "30-gone.json", "fs", &root.join("gone"));
        assert_eq!(virtiofsd_in(&dirs), None, "no fs daemon that is there");
        descriptor(&system, "50-qemu.json", "fs", &binary("c-virtiofsd"));
        assert_eq!(virtiofsd_in(&dirs), Some(root.join("c-virtiofsd")));
        // The administrator's file of the same name overrides the system's.
        descriptor(&admin, "50-qemu.json", "fs", &binary("rust-virtiofsd"));
        assert_eq!(virtiofsd_in(&dirs), Some(root.join("rust-virtiofsd")));
        descriptor(&admin, "40-first.json", "fs", &binary("first"));
        assert_eq!(virtiofsd_in(&dirs), Some(root.join("first")));
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn the_wrapper_covers_what_the_folder_must_not_show_then_runs_virtiofsd() {
        let project = FolderBind {
            kind: FolderType::Virtiofs,
            tag: "envctl0".to_string(),
            host: PathBuf::from("/home/me/it's a project"),
            guest: "/vagrant".to_string(),
            hidden: vec!["/vagrant/.envctl".to_string()],
        };
        let covered = covered(&project);
        assert_eq!(covered, [PathBuf::from("/home/me/it's a project/.envctl")]);
        let real = Path::new("/usr/lib/qemu/virtiofsd");
        let script = wrapper_script(real, &covered);
        assert_eq!(
            script,
            "#!/bin/sh\n\
             # Written by envctl: libvirt runs it as the virtiofsd of one virtiofs folder.\n\
             set -eu\n\
             if [ \"${ENVCTL_VIRTIOFSD_NS:-}\" != 1 ]; then\n    \
             ENVCTL_VIRTIOFSD_NS=1 exec unshare --mount --propagation private \"$0\" \"$@\"\n\
             fi\n\
             unset ENVCTL_VIRTIOFSD_NS\n\
             for covered in '/home/me/it'\\''s a project/.envctl'; do\n    \
             if [ -d \"$covered\" ]; then\n        \
             mount -t tmpfs -o ro,nosuid,nodev,noexec,size=4k,mode=0500 envctl-hidden \"$covered\"\n    \
             fi\n\
             done\n\
             exec '/usr/lib/qemu/virtiofsd' \"$@\"\n"
        );
        assert_eq!(
            wrapper_script(real, &[]),
            "#!/bin/sh\n\
             # Written by envctl: libvirt runs it as the virtiofsd of one virtiofs folder.\n\
             set -eu\n\
             exec '/usr/lib/qemu/virtiofsd' \"$@\"\n"
        );
        // Both parse as shell.
        for text in [script, wrapper_script(real, &[])] {
            let checked = std::process::Command::new("sh")
                .args(["-n", "-c", &text])
                .status()
                .unwrap();
            assert!(checked.success(), "{text}");
        }
    }
}
