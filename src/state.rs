//! `.envctl/` beside the Machinefile, like Vagrant's `.vagrant/`: what envctl made and the
//! secrets it made it with.
//!
//! Invariants: the folder is 0700 and every file in it 0600; every write goes to a
//! temporary file that is renamed into place, so an interrupted command leaves the old
//! file or the new one, never half of one; commands that change anything hold `lock`.
//! Nothing here follows a symbolic link: a linked `.envctl`, `lock` or `state.json` is
//! refused, and temporary files are made anew (`O_EXCL | O_NOFOLLOW`, a random name).

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use envctl_provider::ProviderKind;
use serde::{Deserialize, Serialize};

use crate::output;

pub const DIR_NAME: &str = crate::manifest::STATE_DIR_NAME;

/// What envctl remembers of an environment between commands.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct State {
    /// Random, made once; recorded on every resource so envctl knows its own.
    pub env_id: String,
    /// The provider the environment runs under, once `up` has started. Written as its
    /// name; a name this envctl does not know fails [`StateDir::load`].
    #[serde(default, with = "provider_name")]
    pub provider: Option<ProviderKind>,
    #[serde(default)]
    pub machines: BTreeMap<String, MachineRecord>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct MachineRecord {
    /// The provider's id for the machine.
    pub id: String,
    /// Where envctl's own SSH connections go.
    pub ssh_host: String,
    pub ssh_port: u16,
    /// Whether the playbook has run on this machine since it was created.
    #[serde(default)]
    pub provisioned: bool,
    /// The provisioners that have run on it, by name (absent in older states).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub provisioners: BTreeSet<String>,
    /// Host ports `auto_correct` moved, kept for every later `up`: the Machinefile entry
    /// (`host_ip:host/protocol->guest`) and the port it got.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub moved_ports: BTreeMap<String, u16>,
}

/// `provider` in `state.json`: a [`ProviderKind`]'s name.
mod provider_name {
    use envctl_provider::ProviderKind;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(
        kind: &Option<ProviderKind>,
        out: S,
    ) -> Result<S::Ok, S::Error> {
        match kind {
            Some(kind) => out.serialize_some(kind.as_str()),
            None => out.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        input: D,
    ) -> Result<Option<ProviderKind>, D::Error> {
        Option::<String>::deserialize(input)?
            .map(|name| name.parse().map_err(serde::de::Error::custom))
            .transpose()
    }
}

/// The paths of one environment's state folder.
#[derive(Clone, Debug)]
pub struct StateDir {
    pub root: PathBuf,
}

impl StateDir {
    pub fn new(project_dir: &Path) -> StateDir {
        StateDir {
            root: project_dir.join(DIR_NAME),
        }
    }

    pub fn state_file(&self) -> PathBuf {
        self.root.join("state.json")
    }
    pub fn private_key(&self) -> PathBuf {
        self.root.join("id_ed25519")
    }
    pub fn host_key(&self, machine: &str) -> PathBuf {
        self.root.join("host_keys").join(machine)
    }
    pub fn known_hosts(&self) -> PathBuf {
        self.root.join("known_hosts")
    }
    pub fn inventory(&self) -> PathBuf {
        self.root.join("inventory")
    }
    /// The inventory envctl runs `ansible-playbook` with: JSON, values marked unsafe.
    pub fn inventory_json(&self) -> PathBuf {
        self.root.join("inventory.json")
    }
    pub fn ssh_config(&self) -> PathBuf {
        self.root.join("ssh_config")
    }
    pub fn extra_vars(&self) -> PathBuf {
        self.root.join("extra_vars.json")
    }
    /// Where `ansible-playbook` logs its run, for the PLAY RECAP.
    pub fn ansible_log(&self) -> PathBuf {
        self.root.join("ansible.log")
    }
    /// What the SSH tunnels of libvirt's forwarded ports say (`ops/tunnels.rs`).
    /// Where the SSH control sockets that readiness leaves open and Ansible reuses live.
    pub fn control_dir(&self) -> PathBuf {
        self.root.join("cp")
    }

    pub fn tunnels_log(&self) -> PathBuf {
        self.root.join("tunnels.log")
    }
    pub fn console_dir(&self) -> PathBuf {
        self.root.join("console")
    }

    /// Makes the folder (0700) if it is missing, and tightens it if it is not.
    pub fn create(&self) -> Result<()> {
        create_private_dir(&self.root)
    }

    /// A `.envctl` that is a symbolic link would put the state, keys and lock wherever
    /// it points (and `create` would change that folder's mode): refused.
    fn refuse_linked_root(&self) -> Result<()> {
        refuse_symlink(&self.root)
    }

    /// Makes the console log folder private before a backend writes in it: backends would
    /// make it with the umask's mode.
    pub fn create_console_dir(&self) -> Result<PathBuf> {
        let dir = self.console_dir();
        create_private_dir(&dir)?;
        Ok(dir)
    }

    /// Takes the group and other bits off everything in the folder. Programs envctl runs
    /// write some files here with their umask's mode (VirtualBox's console logs), and a
    /// file written by an older envctl may be left as it was.
    pub fn restrict(&self) -> Result<()> {
        restrict_tree(&self.root)
    }

    /// The saved state, or a fresh one with a new environment id. A state naming a
    /// provider this envctl does not know is an error, never "no provider": that would
    /// leave its machines unmanaged and let `up` make them again elsewhere.
    pub fn load(&self) -> Result<State> {
        self.refuse_linked_root()?;
        let path = self.state_file();
        let bytes = match read_no_follow(&path) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                return Ok(State {
                    env_id: crate::keys::random_id(),
                    ..State::default()
                })
            }
            Err(err) => return Err(linked_or(err, &path, "reading")),
        };
        let value: serde_json::Value = serde_json::from_slice(&bytes).with_context(|| {
            format!(
                "reading {}: the file is damaged; remove it and run `envctl up` to rebuild it",
                path.display()
            )
        })?;
        // An unknown provider is not damage to repair by starting afresh: its machines
        // exist under a provider this envctl cannot manage.
        if let Some(name) = value.get("provider").and_then(|name| name.as_str()) {
            if let Err(why) = name.parse::<ProviderKind>() {
                bail!("{}: the recorded provider: {why}", path.display());
            }
        }
        serde_json::from_value(value).with_context(|| {
            format!(
                "reading {}: the file is damaged; remove it and run `envctl up` to rebuild it",
                path.display()
            )
        })
    }

    pub fn save(&self, state: &State) -> Result<()> {
        let json = serde_json::to_vec_pretty(state).context("encoding the state")?;
        write_private(&self.state_file(), &json)
    }

    /// Takes the environment's lock, waiting for another envctl that holds it.
    pub fn lock(&self, command: &str) -> Result<Lock> {
        self.create()?;
        let path = self.root.join("lock");
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .map_err(|err| linked_or(err, &path, "opening"))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let holder = fs::read_to_string(&path).unwrap_or_default();
                let holder = holder.trim();
                let holder = if holder.is_empty() {
                    "another envctl"
                } else {
                    holder
                };
                output::status(
                    "Waiting",
                    &format!("for {holder}, which holds {}", path.display()),
                );
                file.lock()
                    .with_context(|| format!("locking {}", path.display()))?;
            }
            Err(TryLockError::Error(err)) => {
                return Err(err).with_context(|| format!("locking {}", path.display()));
            }
        }
        file.set_len(0).ok();
        writeln!(file, "envctl {command} (pid {})", std::process::id()).ok();
        Ok(Lock { _file: file })
    }

    /// Removes the whole folder: keys, state, everything.
    pub fn remove(&self) -> Result<()> {
        match fs::remove_dir_all(&self.root) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
                Err(err).with_context(|| format!("removing {}", self.root.display()))
            }
            _ => Ok(()),
        }
    }
}

/// Held while a command changes the environment; dropping it releases the lock.
pub struct Lock {
    _file: File,
}

/// Makes `path` (0700) if it is missing and tightens it if it is not; a symbolic link
/// there is refused, as chmod would change the folder it points to.
pub fn create_private_dir(path: &Path) -> Result<()> {
    refuse_symlink(path)?;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .with_context(|| format!("creating {}", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o700))
        .with_context(|| format!("restricting {}", path.display()))
}

/// Clears the group and other bits of `path` and everything under it; symbolic links are
/// left alone, as chmod would follow them.
fn restrict_tree(path: &Path) -> Result<()> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(err) => return Err(err).with_context(|| format!("reading {}", path.display())),
    };
    if meta.file_type().is_symlink() {
        return Ok(());
    }
    let mode = meta.permissions().mode();
    if mode & 0o077 != 0 {
        fs::set_permissions(path, fs::Permissions::from_mode(mode & 0o7700))
            .with_context(|| format!("restricting {}", path.display()))?;
    }
    if meta.is_dir() {
        let entries = fs::read_dir(path).with_context(|| format!("reading {}", path.display()))?;
        for entry in entries {
            let entry = entry.with_context(|| format!("reading {}", path.display()))?;
            restrict_tree(&entry.path())?;
        }
    }
    Ok(())
}

/// Writes `contents` to `path` atomically, readable by its owner only.
pub fn write_private(path: &Path, contents: &[u8]) -> Result<()> {
    let dir = path.parent().context("a state file has no folder")?;
    create_private_dir(dir)?;
    write_atomic(path, contents)
}

/// Writes `contents` (mode 0600) to a new temporary file beside `path`, then renames it
/// over `path`. The temporary file has a random name and is created with `O_EXCL |
/// O_NOFOLLOW`, so a file or link placed there beforehand is never written through;
/// renaming replaces a link at `path` rather than following it. The folder's mode is
/// left as it is.
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    let dir = path.parent().context("a file to write has no folder")?;
    let name = path.file_name().context("a file to write has no name")?;
    let temp = dir.join(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        crate::keys::random_id()
    ));
    let mut created = false;
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&temp)?;
        created = true;
        file.write_all(contents)?;
        file.sync_all()?;
        fs::rename(&temp, path)
    })();
    if result.is_err() && created {
        fs::remove_file(&temp).ok();
    }
    result.with_context(|| format!("writing {}", path.display()))
}

/// Refuses `path` if it is a symbolic link; a missing path is fine.
pub fn refuse_symlink(path: &Path) -> Result<()> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => {
            let target = fs::read_link(path)
                .map(|target| target.display().to_string())
                .unwrap_or_else(|_| "?".into());
            bail!(
                "{} is a symbolic link (to {target}): envctl does not follow links in its state; remove the link and run the command again",
                path.display()
            )
        }
        _ => Ok(()),
    }
}

fn read_no_follow(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// `O_NOFOLLOW` answers a link with ELOOP: say so plainly.
fn linked_or(err: std::io::Error, path: &Path, doing: &str) -> anyhow::Error {
    if err.raw_os_error() == Some(libc::ELOOP) {
        if let Err(refused) = refuse_symlink(path) {
            return refused;
        }
    }
    anyhow::Error::new(err).context(format!("{doing} {}", path.display()))
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_second_lock_waits_for_the_first() {
        let root = std::env::temp_dir().join(format!("envctl-lock-{}", crate::keys::random_id()));
        let dir = StateDir {
            root: root.join(DIR_NAME),
        };
        let first = dir.lock("up").unwrap();
        assert!(fs::read_to_string(dir.root.join("lock"))
            .unwrap()
            .starts_with("envctl up (pid "));
        let (sender, receiver) = mpsc::channel();
        let waiter = {
            let dir = dir.clone();
            std::thread::spawn(move || {
                let _second = dir.lock("halt").unwrap();
                sender.send(()).unwrap();
            })
        };
        assert!(
            receiver.recv_timeout(Duration::from_millis(300)).is_err(),
            "the second lock did not wait"
        );
        drop(first);
        receiver
            .recv_timeout(Duration::from_secs(5))
            .expect("the second lock never came");
        waiter.join().unwrap();
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn state_files_are_private_and_round_trip() {
        use std::os::unix::fs::PermissionsExt;
        let root = std::env::temp_dir().join(format!("envctl-state-{}", crate::keys::random_id()));
        let dir = StateDir {
            root: root.join(DIR_NAME),
        };
        let mut state = dir.load().unwrap();
        assert_eq!(state.env_id.len(), 16);
        state.provider = Some(ProviderKind::Docker);
        dir.save(&state).unwrap();
        assert_eq!(dir.load().unwrap(), state);
        let mode = fs::metadata(dir.state_file()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn an_unknown_provider_is_an_error_naming_the_file() {
        let root = std::env::temp_dir().join(format!("envctl-state-{}", crate::keys::random_id()));
        let dir = StateDir {
            root: root.join(DIR_NAME),
        };
        dir.create().unwrap();
        fs::write(
            dir.state_file(),
            r#"{"env_id": "id", "provider": "vmware"}"#,
        )
        .unwrap();
        let err = format!("{:#}", dir.load().unwrap_err());
        assert!(
            err.contains(&dir.state_file().display().to_string())
                && err.contains("unknown provider `vmware`"),
            "{err}"
        );
        fs::write(
            dir.state_file(),
            r#"{"env_id": "id", "provider": "libvirt"}"#,
        )
        .unwrap();
        assert_eq!(dir.load().unwrap().provider, Some(ProviderKind::Libvirt));
        fs::remove_dir_all(root).unwrap();
    }

    fn scratch(what: &str) -> PathBuf {
        let root = std::env::temp_dir().join(format!("envctl-{what}-{}", crate::keys::random_id()));
        fs::create_dir_all(&root).unwrap();
        root
    }

    #[test]
    fn a_linked_state_folder_is_refused_and_its_target_untouched() {
        use std::os::unix::fs::symlink;
        let root = scratch("linked-root");
        let elsewhere = root.join("elsewhere");
        fs::create_dir(&elsewhere).unwrap();
        fs::set_permissions(&elsewhere, fs::Permissions::from_mode(0o755)).unwrap();
        fs::write(elsewhere.join("state.json"), r#"{"env_id": "theirs"}"#).unwrap();
        symlink(&elsewhere, root.join(DIR_NAME)).unwrap();
        let dir = StateDir::new(&root);
        for err in [
            dir.load().map(|_| ()).unwrap_err(),
            dir.lock("up").map(|_| ()).unwrap_err(),
            dir.save(&State::default()).unwrap_err(),
        ] {
            let err = format!("{err:#}");
            assert!(err.contains("is a symbolic link"), "{err}");
        }
        let mode = fs::metadata(&elsewhere).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o755);
        assert!(!elsewhere.join("lock").exists());
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn a_linked_state_file_or_lock_is_refused() {
        use std::os::unix::fs::symlink;
        let root = scratch("linked-files");
        let victim = root.join("victim");
        fs::write(&victim, r#"{"env_id": "victim"}"#).unwrap();
        let dir = StateDir::new(&root);
        dir.create().unwrap();
        symlink(&victim, dir.state_file()).unwrap();
        let err = format!("{:#}", dir.load().unwrap_err());
        assert!(err.contains("state.json is a symbolic link"), "{err}");
        symlink(&victim, dir.root.join("lock")).unwrap();
        let err = format!("{:#}", dir.lock("up").map(|_| ()).unwrap_err());
        assert!(err.contains("lock is a symbolic link"), "{err}");
        assert_eq!(
            fs::read_to_string(&victim).unwrap(),
            r#"{"env_id": "victim"}"#
        );
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn atomic_writes_never_write_through_a_placed_link() {
        use std::os::unix::fs::symlink;
        let root = scratch("placed-link");
        let victim = root.join("victim");
        fs::write(&victim, "keep").unwrap();
        let dir = StateDir::new(&root);
        dir.create().unwrap();
        // Where a temporary file named after the process id would go.
        symlink(
            &victim,
            dir.root
                .join(format!(".state.json.{}.tmp", std::process::id())),
        )
        .unwrap();
        dir.save(&State::default()).unwrap();
        assert_eq!(fs::read_to_string(&victim).unwrap(), "keep");
        assert!(fs::symlink_metadata(dir.state_file()).unwrap().is_file());
        fs::remove_dir_all(root).unwrap();
    }
}
