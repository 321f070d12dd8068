//! Whether the environment that made something is still alive: the one rule that both
//! `envctl gc` (which removes what it finds orphaned) and `global-status --prune` (which
//! forgets it) follow.
//!
//! An environment lives in its project folder's `.envctl/state.json`, which records its
//! id. Only what proves it gone orphans what it made: the folder or the state file
//! missing, or the state recording another id. A state file that cannot be read or
//! parsed proves nothing (a half-finished edit, a permission problem, a disk error): it
//! is the user's to repair, so the answer is unknown and destructive callers keep
//! everything.

use std::fmt;
use std::fs;
use std::io::ErrorKind;
use std::path::Path;

use serde::Deserialize;

use crate::state::StateDir;

/// Whether an environment still exists, as far as its project folder can prove.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Liveness {
    /// Its state records the same environment id.
    Alive,
    /// Nothing on this host claims it any more.
    Orphaned(Orphaned),
    /// Its folder or state could not be read; the reason, naming the path.
    Unknown(String),
}

/// Why an environment is known to be gone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Orphaned {
    /// Its resources record no folder: only a shared resource left after every machine
    /// was removed lacks it (a VirtualBox host-only network).
    NoFolderRecorded,
    FolderGone,
    NoState,
    /// `.envctl/state.json` now holds this other environment id.
    OtherEnvironment(String),
}

impl fmt::Display for Orphaned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Orphaned::NoFolderRecorded => {
                f.write_str("its resources do not say which folder they belong to")
            }
            Orphaned::FolderGone => f.write_str("its folder is gone"),
            Orphaned::NoState => f.write_str("its folder has no envctl state"),
            Orphaned::OtherEnvironment(id) => {
                write!(f, "its folder now holds another environment (id {id})")
            }
        }
    }
}

/// Whether the environment `env_id`, made in `project_dir`, still exists.
pub fn liveness(project_dir: Option<&Path>, env_id: &str) -> Liveness {
    let Some(project) = project_dir else {
        return Liveness::Orphaned(Orphaned::NoFolderRecorded);
    };
    match fs::metadata(project) {
        Ok(meta) if meta.is_dir() => {}
        // A file where the folder was: no state can be under it.
        Ok(_) => return Liveness::Orphaned(Orphaned::FolderGone),
        Err(err) if err.kind() == ErrorKind::NotFound => {
            return Liveness::Orphaned(Orphaned::FolderGone)
        }
        Err(err) => return Liveness::Unknown(format!("reading {}: {err}", project.display())),
    }
    let path = StateDir::new(project).state_file();
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == ErrorKind::NotFound => {
            return Liveness::Orphaned(Orphaned::NoState)
        }
        Err(err) => return Liveness::Unknown(format!("reading {}: {err}", path.display())),
    };
    match recorded_id(&bytes) {
        Ok(id) if id == env_id => Liveness::Alive,
        Ok(id) => Liveness::Orphaned(Orphaned::OtherEnvironment(id)),
        Err(why) => Liveness::Unknown(format!("{} is damaged: {why}", path.display())),
    }
}

/// The environment id a state file records. Only the id is read, so a state whose other
/// fields this envctl does not understand still answers.
fn recorded_id(bytes: &[u8]) -> Result<String, String> {
    #[derive(Deserialize)]
    struct Recorded {
        env_id: String,
    }
    let recorded: Recorded = serde_json::from_slice(bytes).map_err(|err| err.to_string())?;
    if recorded.env_id.is_empty() {
        return Err("its env_id is empty".into());
    }
    Ok(recorded.env_id)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::path::PathBuf;

    use super::*;

    /// A project folder of its own, removed at the end.
    struct Project(PathBuf);

    impl Project {
        fn new() -> Project {
            let dir =
                std::env::temp_dir().join(format!("envctl-liveness-{}", crate::keys::random_id()));
            fs::create_dir_all(dir.join(".envctl")).unwrap();
            Project(dir)
        }

        fn state(&self, text: &str) -> &Path {
            fs::write(self.0.join(".envctl/state.json"), text).unwrap();
            &self.0
        }
    }

    impl Drop for Project {
        fn drop(&mut self) {
            let private = fs::Permissions::from_mode(0o700);
            let _ = fs::set_permissions(self.0.join(".envctl"), private);
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn unknown_saying(liveness: Liveness, words: &str) {
        match liveness {
            Liveness::Unknown(why) => assert!(why.contains(words), "{why}"),
            other => panic!("{other:?} is not unknown ({words})"),
        }
    }

    #[test]
    fn only_proof_orphans_an_environment() {
        let project = Project::new();
        let cases = [
            (r#"{"env_id": "id-1"}"#, Liveness::Alive),
            (
                r#"{"env_id": "id-1", "provider": "docker", "machines": {}, "new": 1}"#,
                Liveness::Alive,
            ),
            (
                r#"{"env_id": "id-2"}"#,
                Liveness::Orphaned(Orphaned::OtherEnvironment("id-2".into())),
            ),
        ];
        for (state, want) in cases {
            assert_eq!(
                liveness(Some(project.state(state)), "id-1"),
                want,
                "{state}"
            );
        }
        for damaged in [
            "",
            "{",
            "not json",
            r#"{"env_id": ""}"#,
            r#"{"env_id": 7}"#,
            "{}",
        ] {
            unknown_saying(liveness(Some(project.state(damaged)), "id-1"), "is damaged");
        }
    }

    #[test]
    fn missing_folders_and_state_are_proof() {
        let project = Project::new();
        assert_eq!(
            liveness(Some(&project.0), "id-1"),
            Liveness::Orphaned(Orphaned::NoState)
        );
        assert_eq!(
            liveness(Some(&project.0.join("nowhere")), "id-1"),
            Liveness::Orphaned(Orphaned::FolderGone)
        );
        assert_eq!(
            liveness(None, "id-1"),
            Liveness::Orphaned(Orphaned::NoFolderRecorded)
        );
    }

    #[test]
    fn an_unreadable_state_is_not_proof() {
        let project = Project::new();
        let dir = project.state(r#"{"env_id": "id-1"}"#);
        fs::set_permissions(dir.join(".envctl"), fs::Permissions::from_mode(0o000)).unwrap();
        // root reads through any mode: then the state is simply read.
        if fs::read(dir.join(".envctl/state.json")).is_ok() {
            return;
        }
        unknown_saying(liveness(Some(dir), "id-1"), "reading");
    }

    #[test]
    fn a_state_folder_that_is_a_file_is_not_proof() {
        let project = Project::new();
        fs::remove_dir_all(project.0.join(".envctl")).unwrap();
        fs::write(project.0.join(".envctl"), "").unwrap();
        unknown_saying(liveness(Some(&project.0), "id-1"), "reading");
    }
}
