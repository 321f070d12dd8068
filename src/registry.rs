//! Every envctl environment on this machine, for `envctl global-status`: Vagrant's
//! machine index, as one JSON file beside the box store in the user's data folder
//! (`environments/index.json`).
//!
//! `up` records an environment once its provider is chosen, commands that see machine
//! states update them, and destroying the whole environment forgets it. Several envctl
//! may run at once in different projects, so every change holds `index.lock` around its
//! read-modify-write, and the file is replaced atomically: a reader never sees half of
//! one. Nothing secret is kept here, only paths, names, ids and states.

use std::fs::{self, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::boxes;
use crate::liveness::{liveness, Liveness, Orphaned};
use crate::state::{create_private_dir, write_private};

/// One environment as envctl last saw it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The Machinefile's folder, where `.envctl/` is: one environment per folder.
    pub project_dir: PathBuf,
    pub machinefile: PathBuf,
    pub name: String,
    /// The id in `.envctl/state.json`; another id there means another environment.
    pub env_id: String,
    pub provider: String,
    pub machines: Vec<MachineEntry>,
    /// When the entry last changed, in seconds since the Unix epoch.
    pub updated: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MachineEntry {
    pub name: String,
    /// The last state envctl saw, in `envctl status`'s words; None until it saw one.
    pub state: Option<String>,
}

/// The registry in one data folder.
pub struct Registry {
    dir: PathBuf,
}

#[derive(Default, Serialize, Deserialize)]
struct Index {
    #[serde(default)]
    environments: Vec<Entry>,
}

impl Registry {
    /// The user's registry, in the data folder the box store is in.
    pub fn user() -> Registry {
        Registry::in_data_dir(&boxes::data_dir())
    }

    pub fn in_data_dir(data_dir: &Path) -> Registry {
        Registry {
            dir: data_dir.join("environments"),
        }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join("index.json")
    }

    /// Every entry, by folder; none when nothing was ever recorded.
    pub fn entries(&self) -> Result<Vec<Entry>> {
        Ok(self.read()?.environments)
    }

    /// Records `entry`, replacing the one for its folder. A machine whose state is None
    /// keeps the state recorded before, when the entry is of the same environment under
    /// the same provider.
    pub fn record(&self, mut entry: Entry) -> Result<()> {
        self.update(|entries| {
            let same = entries.iter().find(|old| {
                old.project_dir == entry.project_dir
                    && old.env_id == entry.env_id
                    && old.provider == entry.provider
            });
            if let Some(old) = same {
                for machine in entry.machines.iter_mut().filter(|m| m.state.is_none()) {
                    machine.state = old
                        .machines
                        .iter()
                        .find(|known| known.name == machine.name)
                        .and_then(|known| known.state.clone());
                }
            }
            entries.retain(|old| old.project_dir != entry.project_dir);
            entry.updated = now();
            entries.push(entry);
        })
    }

    /// Forgets the environment of `project_dir`; says whether one was recorded.
    pub fn forget(&self, project_dir: &Path) -> Result<bool> {
        // Nothing recorded: nothing to lock, and no data folder made for nothing.
        if !self.path().exists() {
            return Ok(false);
        }
        self.update(|entries| {
            let before = entries.len();
            entries.retain(|entry| entry.project_dir != project_dir);
            entries.len() != before
        })
    }

    /// Drops the entries whose environment is proven gone, and returns each with why; an
    /// entry whose state cannot be read stays.
    pub fn prune(&self) -> Result<Vec<(Entry, Orphaned)>> {
        if !self.path().exists() {
            return Ok(Vec::new());
        }
        self.update(|entries| {
            let mut dropped = Vec::new();
            entries.retain(
                |entry| match liveness(Some(&entry.project_dir), &entry.env_id) {
                    Liveness::Orphaned(why) => {
                        dropped.push((entry.clone(), why));
                        false
                    }
                    Liveness::Alive | Liveness::Unknown(_) => true,
                },
            );
            dropped
        })
    }

    fn read(&self) -> Result<Index> {
        let path = self.path();
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).with_context(|| {
                format!(
                    "reading {}: the file is damaged; remove it, and `envctl status` in each \
                     project records its environment again",
                    path.display()
                )
            }),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(Index::default()),
            Err(err) => Err(err).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// Reads, changes and writes the index while holding its lock, so that envctl
    /// commands running at once in several projects all keep their change.
    fn update<T>(&self, change: impl FnOnce(&mut Vec<Entry>) -> T) -> Result<T> {
        create_private_dir(&self.dir)?;
        let lock_path = self.dir.join("index.lock");
        let lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&lock_path)
            .with_context(|| format!("opening {}", lock_path.display()))?;
        lock.lock()
            .with_context(|| format!("locking {}", lock_path.display()))?;
        let mut index = self.read()?;
        let result = change(&mut index.environments);
        index
            .environments
            .sort_by(|a, b| a.project_dir.cmp(&b.project_dir));
        let json =
            serde_json::to_vec_pretty(&index).context("encoding the registry of environments")?;
        write_private(&self.path(), &json)?;
        Ok(result)
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{State, StateDir};

    /// A data folder and a project folder of their own, removed at the end.
    struct Scratch {
        root: PathBuf,
    }

    impl Scratch {
        fn new() -> Scratch {
            let root =
                std::env::temp_dir().join(format!("envctl-registry-{}", crate::keys::random_id()));
            fs::create_dir_all(&root).unwrap();
            Scratch { root }
        }

        fn registry(&self) -> Registry {
            Registry::in_data_dir(&self.root.join("data"))
        }

        /// A project folder with `.envctl/state.json` holding `env_id`.
        fn project(&self, name: &str, env_id: &str) -> PathBuf {
            let dir = self.root.join(name);
            let state = State {
                env_id: env_id.to_string(),
                provider: Some(envctl_provider::ProviderKind::Docker),
                ..State::default()
            };
            StateDir::new(&dir).save(&state).unwrap();
            dir
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.root);
        }
    }

    fn entry(project_dir: &Path, env_id: &str, states: &[(&str, Option<&str>)]) -> Entry {
        Entry {
            project_dir: project_dir.to_path_buf(),
            machinefile: project_dir.join("Machinefile"),
            name: "habits".into(),
            env_id: env_id.into(),
            provider: "docker".into(),
            machines: states
                .iter()
                .map(|(name, state)| MachineEntry {
                    name: name.to_string(),
                    state: state.map(str::to_string),
                })
                .collect(),
            updated: 0,
        }
    }

    fn states(entry: &Entry) -> Vec<(String, Option<String>)> {
        entry
            .machines
            .iter()
            .map(|m| (m.name.clone(), m.state.clone()))
            .collect()
    }

    #[test]
    fn record_replaces_the_folders_entry_and_keeps_states_not_seen_again() {
        let scratch = Scratch::new();
        let registry = scratch.registry();
        assert_eq!(registry.entries().unwrap(), []);
        let dir = scratch.project("a", "id1");
        registry
            .record(entry(
                &dir,
                "id1",
                &[("web1", Some("running")), ("web2", None)],
            ))
            .unwrap();
        // A later sighting of web2 only: web1 keeps what was seen before.
        registry
            .record(entry(
                &dir,
                "id1",
                &[("web1", None), ("web2", Some("stopped"))],
            ))
            .unwrap();
        let entries = registry.entries().unwrap();
        assert_eq!(entries.len(), 1, "{entries:?}");
        assert!(entries[0].updated > 0);
        assert_eq!(
            states(&entries[0]),
            [
                ("web1".to_string(), Some("running".to_string())),
                ("web2".to_string(), Some("stopped".to_string()))
            ]
        );
        // Another environment in the same folder starts from nothing seen.
        registry
            .record(entry(&dir, "id2", &[("web1", None)]))
            .unwrap();
        let entries = registry.entries().unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].env_id, "id2");
        assert_eq!(states(&entries[0]), [("web1".to_string(), None)]);
        // Private, like everything envctl writes for the user.
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(registry.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn forget_removes_only_that_folders_entry() {
        let scratch = Scratch::new();
        let registry = scratch.registry();
        assert!(!registry.forget(&scratch.root.join("a")).unwrap());
        assert!(
            !scratch.root.join("data").exists(),
            "forgetting nothing made the data folder"
        );
        let a = scratch.project("a", "ida");
        let b = scratch.project("b", "idb");
        registry.record(entry(&a, "ida", &[])).unwrap();
        registry.record(entry(&b, "idb", &[])).unwrap();
        assert!(registry.forget(&a).unwrap());
        assert!(!registry.forget(&a).unwrap());
        let left: Vec<PathBuf> = registry
            .entries()
            .unwrap()
            .into_iter()
            .map(|e| e.project_dir)
            .collect();
        assert_eq!(left, [b]);
    }

    #[test]
    fn prune_drops_what_is_gone_and_says_why() {
        let scratch = Scratch::new();
        let registry = scratch.registry();
        let live = scratch.project("live", "id-live");
        let moved = scratch.project("moved", "id-moved");
        let no_state = scratch.project("no-state", "id-no-state");
        let replaced = scratch.project("replaced", "id-new");
        let damaged = scratch.project("damaged", "id-damaged");
        for (dir, id) in [
            (&live, "id-live"),
            (&moved, "id-moved"),
            (&no_state, "id-no-state"),
            (&replaced, "id-old"),
            (&damaged, "id-damaged"),
        ] {
            registry.record(entry(dir, id, &[("web1", None)])).unwrap();
        }
        fs::rename(&moved, scratch.root.join("elsewhere")).unwrap();
        fs::remove_dir_all(no_state.join(".envctl")).unwrap();
        // A damaged state file proves nothing: that entry stays.
        fs::write(damaged.join(".envctl/state.json"), "{").unwrap();

        let mut dropped = registry.prune().unwrap();
        dropped.sort_by(|a, b| a.0.project_dir.cmp(&b.0.project_dir));
        let got: Vec<(PathBuf, Orphaned)> = dropped
            .into_iter()
            .map(|(entry, why)| (entry.project_dir, why))
            .collect();
        assert_eq!(
            got,
            [
                (moved, Orphaned::FolderGone),
                (no_state, Orphaned::NoState),
                (replaced, Orphaned::OtherEnvironment("id-new".into())),
            ]
        );
        let kept: Vec<PathBuf> = registry
            .entries()
            .unwrap()
            .into_iter()
            .map(|e| e.project_dir)
            .collect();
        assert_eq!(kept, [damaged, live]);
        assert_eq!(registry.prune().unwrap(), []);
    }

    #[test]
    fn records_made_at_once_are_all_kept() {
        let scratch = Scratch::new();
        let threads: Vec<_> = (0..8)
            .map(|n| {
                let dir = scratch.root.join(format!("p{n}"));
                let data = scratch.root.join("data");
                std::thread::spawn(move || {
                    Registry::in_data_dir(&data)
                        .record(entry(&dir, "id", &[]))
                        .unwrap()
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(scratch.registry().entries().unwrap().len(), 8);
    }

    #[test]
    fn a_damaged_index_is_an_error_that_says_what_to_do() {
        let scratch = Scratch::new();
        let registry = scratch.registry();
        fs::create_dir_all(registry.path().parent().unwrap()).unwrap();
        fs::write(registry.path(), "not json").unwrap();
        let err = format!("{:#}", registry.entries().unwrap_err());
        assert!(err.contains("the file is damaged; remove it"), "{err}");
    }
}
