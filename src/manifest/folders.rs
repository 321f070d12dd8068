//! `synced_folders`: project folders shown in the guest, as Vagrant's
//! `config.vm.synced_folder`. A machine's list replaces the default one; with neither,
//! the project's folder is at `/vagrant`. Each entry is checked alone here, and two on one
//! guest path within a list; which type a provider can do is checked against the chosen
//! provider in `ops/folders.rs`, as forwarded ports are.

use std::path::{Component, Path, PathBuf};

use envctl_provider::FolderType;
use serde::Deserialize;

use super::STATE_DIR_NAME;

/// One entry as written.
#[derive(Debug, Default, Deserialize)]
pub struct RawFolder {
    pub host: Option<String>,
    pub guest: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub exclude: Option<Vec<String>>,
    pub owner: Option<String>,
    pub group: Option<String>,
    pub create: Option<bool>,
    pub disabled: Option<bool>,
}

pub const FIELDS: &[&str] = &[
    "host", "guest", "type", "exclude", "owner", "group", "create", "disabled",
];

/// Where the project's folder appears when the Machinefile says nothing: Vagrant's place.
pub const DEFAULT_GUEST: &str = "/vagrant";

/// A folder of the host shown in a machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncedFolder {
    /// Its place in the list it came from, to name it in a problem (disabled entries
    /// counted).
    pub index: usize,
    /// Absolute and normalized; an existing folder unless `create`; not inside `.envctl/`.
    pub host: PathBuf,
    /// Absolute and normalized (no `.`, `..`, doubled or trailing `/`), not `/`.
    pub guest: String,
    /// As asked; the provider's choice for `auto` is made in `ops/folders.rs`.
    pub kind: FolderType,
    /// rsync patterns, beside `.envctl/`, which is always left out.
    pub exclude: Vec<String>,
    pub owner: Option<String>,
    pub group: Option<String>,
    /// Make the host folder at `up` when it is missing.
    pub create: bool,
}

impl SyncedFolder {
    /// Whether the folder holds the project's `.envctl/` (it is the project's folder or
    /// one above it): the guest path where `.envctl/` would appear, if so.
    pub fn state_dir_in_guest(&self, project_dir: &Path) -> Option<String> {
        let below = project_dir.strip_prefix(&self.host).ok()?;
        let mut guest = self.guest.clone();
        for part in below.components() {
            guest.push('/');
            guest.push_str(&part.as_os_str().to_string_lossy());
        }
        guest.push('/');
        guest.push_str(STATE_DIR_NAME);
        Some(guest)
    }
}

/// The default list: the project's folder at `/vagrant`, type `auto`.
pub fn default_folders(dir: &Path) -> Vec<SyncedFolder> {
    vec![SyncedFolder {
        index: 0,
        host: dir.to_path_buf(),
        guest: DEFAULT_GUEST.to_string(),
        kind: FolderType::Auto,
        exclude: Vec::new(),
        owner: None,
        group: None,
        create: false,
    }]
}

/// The entries of one list that are not disabled, or the problems of each: (index in the
/// list, field, why). Two entries on one guest path are a problem of the second.
pub fn check(
    raw: &[RawFolder],
    dir: &Path,
) -> Result<Vec<SyncedFolder>, Vec<(usize, &'static str, String)>> {
    let mut folders: Vec<(usize, SyncedFolder)> = Vec::new();
    let mut problems = Vec::new();
    for (index, entry) in raw.iter().enumerate() {
        match check_one(entry, dir) {
            Ok(None) => {}
            Ok(Some(mut folder)) => {
                folder.index = index;
                if let Some((first, _)) = folders.iter().find(|(_, f)| f.guest == folder.guest) {
                    problems.push((
                        index,
                        "guest",
                        format!(
                            "`{}` is already the guest path of entry {first} of this list",
                            folder.guest
                        ),
                    ));
                } else {
                    folders.push((index, folder));
                }
            }
            Err((field, why)) => problems.push((index, field, why)),
        }
    }
    if problems.is_empty() {
        Ok(folders.into_iter().map(|(_, folder)| folder).collect())
    } else {
        Err(problems)
    }
}

fn check_one(raw: &RawFolder, dir: &Path) -> Result<Option<SyncedFolder>, (&'static str, String)> {
    if raw.disabled == Some(true) {
        return Ok(None);
    }
    let Some(host_text) = &raw.host else {
        return Err((
            "host",
            "missing: a folder, relative to the Machinefile's".into(),
        ));
    };
    let Some(guest_text) = &raw.guest else {
        return Err((
            "guest",
            "missing: an absolute path in the guest, e.g. /vagrant".into(),
        ));
    };
    let guest = guest_path(guest_text).map_err(|why| ("guest", why))?;
    let kind = match &raw.kind {
        None => FolderType::Auto,
        Some(text) => text.parse::<FolderType>().map_err(|why| ("type", why))?,
    };
    let create = raw.create.unwrap_or(false);
    let host = host_path(host_text, dir, create).map_err(|why| ("host", why))?;
    let exclude = raw.exclude.clone().unwrap_or_default();
    if let Some(bad) = exclude
        .iter()
        .find(|pattern| pattern.trim().is_empty() || pattern.contains(char::is_control))
    {
        return Err((
            "exclude",
            format!("`{}` is not an rsync pattern", bad.escape_debug()),
        ));
    }
    for (field, value) in [("owner", &raw.owner), ("group", &raw.group)] {
        if let Some(name) = value {
            if !is_owner_name(name) {
                return Err((
                    field,
                    format!(
                        "`{}` is not a user or group name or id",
                        name.escape_debug()
                    ),
                ));
            }
        }
    }
    Ok(Some(SyncedFolder {
        index: 0,
        host,
        guest,
        kind,
        exclude,
        owner: raw.owner.clone(),
        group: raw.group.clone(),
        create,
    }))
}

/// The guest path normalized, or why it cannot be one.
fn guest_path(text: &str) -> Result<String, String> {
    if !text.starts_with('/') {
        return Err(format!(
            "`{}` is relative: give an absolute path in the guest, e.g. /vagrant",
            text.escape_debug()
        ));
    }
    if text.contains(char::is_control) || text.contains(',') || text.contains(':') {
        return Err(format!(
            "`{}` holds a control character, `,` or `:`, which mounts cannot carry",
            text.escape_debug()
        ));
    }
    let mut parts = Vec::new();
    for part in text.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(format!("`{text}` holds `..`: give the path plainly")),
            part => parts.push(part),
        }
    }
    if parts.is_empty() {
        return Err("`/` is the guest's root: give a folder under it, e.g. /vagrant".into());
    }
    Ok(format!("/{}", parts.join("/")))
}

/// The host folder, absolute: an existing folder (canonical, links resolved) or, with
/// `create`, one that may be made. Never `.envctl/` or inside it.
fn host_path(text: &str, dir: &Path, create: bool) -> Result<PathBuf, String> {
    if text.contains(char::is_control) {
        return Err(format!(
            "`{}` holds a control character",
            text.escape_debug()
        ));
    }
    let joined = normalize(&dir.join(text));
    let state_dir = dir.join(STATE_DIR_NAME);
    let is_state = |path: &Path| {
        path.starts_with(&state_dir)
            || std::fs::canonicalize(&state_dir).is_ok_and(|real| path.starts_with(real))
    };
    let refused = || {
        format!(
            "{} is envctl's state folder, which holds the environment's private key: it never goes to a guest",
            joined.display()
        )
    };
    if is_state(&joined) {
        return Err(refused());
    }
    let real = match std::fs::canonicalize(&joined) {
        Ok(real) if real.is_dir() => real,
        Ok(_) => return Err(format!("{} is not a folder", joined.display())),
        Err(_) if create => joined.clone(),
        Err(_) => {
            return Err(format!(
                "{} does not exist: make it, or add `create: true`",
                joined.display()
            ))
        }
    };
    // A link into `.envctl/` is `.envctl/`.
    if is_state(&real) {
        return Err(refused());
    }
    // Only the project's own folders: a live folder is written by the guest's root as
    // the engine's user, and `create` makes folders, which envctl does only in the project.
    // Where the folder is still to be made, its nearest existing parent is what counts.
    let project = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let existing = real
        .ancestors()
        .find_map(|at| std::fs::canonicalize(at).ok())
        .unwrap_or_else(|| real.clone());
    if !real.starts_with(dir) && !real.starts_with(&project) || !existing.starts_with(&project) {
        return Err(format!(
            "{} is outside the project's folder {}: only the project's own folders are shown \
             in guests, whose root could write to them",
            joined.display(),
            project.display()
        ));
    }
    Ok(real)
}

/// `..` and `.` taken out of an absolute path without asking the file system.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// A user or group name (as `useradd` takes them) or a numeric id.
fn is_owner_name(name: &str) -> bool {
    let mut chars = name.chars();
    !name.is_empty()
        && name.len() <= 32
        && (name.bytes().all(|b| b.is_ascii_digit())
            || (matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c == '_')
                && chars
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(host: &str, guest: &str) -> RawFolder {
        RawFolder {
            host: Some(host.into()),
            guest: Some(guest.into()),
            ..Default::default()
        }
    }

    #[test]
    fn entries_are_checked_one_by_one() {
        let dir = tempdir();
        std::fs::create_dir_all(dir.join("src")).unwrap();
        std::fs::create_dir_all(dir.join(".envctl")).unwrap();
        std::fs::write(dir.join("file"), "").unwrap();
        let created = RawFolder {
            create: Some(true),
            ..raw("./new", "/new")
        };
        let typed = RawFolder {
            kind: Some("nfs".into()),
            ..raw(".", "/x")
        };
        let owned = RawFolder {
            owner: Some("Bad Name".into()),
            ..raw(".", "/x")
        };
        type Want = Result<(&'static str, &'static str), (&'static str, &'static str)>;
        let cases: Vec<(RawFolder, Want)> = vec![
            (raw(".", "/vagrant/"), Ok(("", "/vagrant"))),
            (raw("./src/", "//srv/./app"), Ok(("src", "/srv/app"))),
            (created, Ok(("new", "/new"))),
            (
                raw("./missing", "/m"),
                Err(("host", "does not exist: make it, or add `create: true`")),
            ),
            (raw("file", "/f"), Err(("host", "is not a folder"))),
            (raw(".envctl", "/s"), Err(("host", "envctl's state folder"))),
            (
                raw("src/../.envctl", "/s"),
                Err(("host", "envctl's state folder")),
            ),
            (
                raw("..", "/up"),
                Err(("host", "is outside the project's folder")),
            ),
            (
                raw("/etc", "/etc"),
                Err(("host", "is outside the project's folder")),
            ),
            (raw(".", "vagrant"), Err(("guest", "is relative"))),
            (raw(".", "/"), Err(("guest", "the guest's root"))),
            (raw(".", "/a/../b"), Err(("guest", "holds `..`"))),
            (raw(".", "/a:b"), Err(("guest", "`:`"))),
            (typed, Err(("type", "is not a folder type"))),
            (owned, Err(("owner", "is not a user or group name"))),
        ];
        for (entry, want) in cases {
            match (check_one(&entry, &dir), want) {
                (Ok(Some(got)), Ok((host, guest))) => {
                    assert_eq!(got.host, dir.join(host).components().collect::<PathBuf>());
                    assert_eq!(got.guest, guest);
                }
                (Err((field, why)), Err((want_field, want_why))) => {
                    assert_eq!(field, want_field, "{why}");
                    assert!(why.contains(want_why), "{why}");
                }
                (got, want) => panic!("{got:?} but wanted {want:?}"),
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn disabled_entries_go_and_a_guest_path_is_taken_once() {
        let dir = tempdir();
        let off = RawFolder {
            disabled: Some(true),
            ..raw("./gone", "/vagrant")
        };
        let list = [
            off,
            raw(".", "/vagrant"),
            raw(".", "/srv"),
            raw(".", "/vagrant/"),
        ];
        let problems = check(&list, &dir).unwrap_err();
        assert_eq!(problems.len(), 1);
        assert_eq!((problems[0].0, problems[0].1), (3, "guest"));
        assert!(
            problems[0].2.contains("entry 1 of this list"),
            "{}",
            problems[0].2
        );
        assert_eq!(check(&list[..3], &dir).unwrap().len(), 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_state_folder_is_found_in_the_guest() {
        let folder = |host: &str| SyncedFolder {
            host: PathBuf::from(host),
            ..default_folders(Path::new("/p/proj")).remove(0)
        };
        let project = Path::new("/p/proj");
        assert_eq!(
            folder("/p/proj").state_dir_in_guest(project).as_deref(),
            Some("/vagrant/.envctl")
        );
        assert_eq!(
            folder("/p").state_dir_in_guest(project).as_deref(),
            Some("/vagrant/proj/.envctl")
        );
        assert_eq!(folder("/p/proj/src").state_dir_in_guest(project), None);
    }

    fn tempdir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "envctl-folders-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::canonicalize(&dir).unwrap()
    }
}
