//! Vagrant boxes: envctl's own store and Vagrant's, laid out and read alike.
//!
//! Both stores hold `<name with / as -VAGRANTSLASH->/<version>/[<arch>/]<provider>/`, the
//! provider folder holding `metadata.json` and the disk files. Boxes already in
//! `~/.vagrant.d/boxes` are used where they are, never copied.

use std::fs::{self, File};
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

const SLASH: &str = "-VAGRANTSLASH-";

/// One box for one provider, unpacked on disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstalledBox {
    pub name: String,
    pub version: String,
    pub provider: String,
    pub dir: PathBuf,
    /// True for a box found in Vagrant's own store.
    pub from_vagrant: bool,
}

#[derive(Deserialize)]
struct Metadata {
    provider: Option<String>,
}

/// envctl's own store: `boxes/` in the data folder.
pub fn own_store() -> PathBuf {
    data_dir().join("boxes")
}

/// The user's envctl data folder (box store, environment registry): `$ENVCTL_DATA_DIR`,
/// else `$XDG_DATA_HOME/envctl`, else `~/.local/share/envctl`.
pub fn data_dir() -> PathBuf {
    std::env::var_os("ENVCTL_DATA_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("XDG_DATA_HOME").map(|dir| PathBuf::from(dir).join("envctl")))
        .unwrap_or_else(|| home().join(".local/share/envctl"))
}

/// Vagrant's store: `$VAGRANT_HOME/boxes`, else `~/.vagrant.d/boxes`.
pub fn vagrant_store() -> PathBuf {
    std::env::var_os("VAGRANT_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| home().join(".vagrant.d"))
        .join("boxes")
}

fn home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/root"))
}

/// Every box of both stores, own store first, sorted by name then version.
pub fn list() -> Result<Vec<InstalledBox>> {
    let mut boxes = scan(&own_store(), false)?;
    boxes.extend(scan(&vagrant_store(), true)?);
    boxes.sort_by(|a, b| {
        (&a.name, version_key(&a.version), &a.provider).cmp(&(
            &b.name,
            version_key(&b.version),
            &b.provider,
        ))
    });
    Ok(boxes)
}

/// The newest version of box `name` for `provider`, from envctl's store if it has one.
pub fn find(name: &str, provider: &str) -> Result<Option<InstalledBox>> {
    let mut candidates: Vec<InstalledBox> = list()?
        .into_iter()
        .filter(|b| b.name == name && b.provider == provider)
        .collect();
    candidates.sort_by_key(|b| (!b.from_vagrant, version_key(&b.version)));
    Ok(candidates.pop())
}

/// Unpacks the `.box` file `file` (tar, gzipped or not) into envctl's store as `name`.
pub fn add(name: &str, file: &Path, version: &str, force: bool) -> Result<InstalledBox> {
    add_to(&own_store(), name, file, version, force)
}

fn add_to(
    store: &Path,
    name: &str,
    file: &Path,
    version: &str,
    force: bool,
) -> Result<InstalledBox> {
    check_box_name(name)?;
    check_folder_name("version", version)?;
    let store = store.to_path_buf();
    fs::create_dir_all(&store).with_context(|| format!("creating {}", store.display()))?;
    let temp = store.join(format!(".adding-{}", std::process::id()));
    let _ = fs::remove_dir_all(&temp);
    let result = unpack(file, &temp).and_then(|()| {
        let provider = read_provider(&temp)
            .with_context(|| format!("{} is not a Vagrant box", file.display()))?;
        check_folder_name("provider (from its metadata.json)", &provider)
            .with_context(|| format!("{} cannot be added", file.display()))?;
        let dir = store.join(name.replace('/', SLASH)).join(version).join(&provider);
        if dir.exists() {
            if !force {
                bail!("box `{name}` ({provider}, {version}) is already added: `envctl box remove {name}` first, or pass --force");
            }
            fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
        }
        fs::create_dir_all(dir.parent().unwrap_or(&store)).with_context(|| format!("creating {}", dir.display()))?;
        fs::rename(&temp, &dir).with_context(|| format!("moving the box into {}", dir.display()))?;
        Ok(InstalledBox { name: name.to_string(), version: version.to_string(), provider, dir, from_vagrant: false })
    });
    let _ = fs::remove_dir_all(&temp);
    result
}

/// Removes box `name` from envctl's store (every version and provider unless narrowed).
/// Boxes in Vagrant's store are Vagrant's to remove.
pub fn remove(
    name: &str,
    provider: Option<&str>,
    version: Option<&str>,
) -> Result<Vec<InstalledBox>> {
    let removed: Vec<InstalledBox> = scan(&own_store(), false)?
        .into_iter()
        .filter(|b| {
            b.name == name
                && provider.is_none_or(|p| p == b.provider)
                && version.is_none_or(|v| v == b.version)
        })
        .collect();
    if removed.is_empty() {
        bail!("no box `{name}` in {} to remove (boxes in Vagrant's store are removed with `vagrant box remove`)", own_store().display());
    }
    for installed in &removed {
        fs::remove_dir_all(&installed.dir)
            .with_context(|| format!("removing {}", installed.dir.display()))?;
        // Drop the version and name folders once empty.
        for parent in installed.dir.ancestors().skip(1).take(2) {
            if fs::remove_dir(parent).is_err() {
                break;
            }
        }
    }
    Ok(removed)
}

/// Why `name` cannot name a box in the store, if it cannot: `org/name` or `name`, each
/// part a plain folder name, since the name becomes folders (`/` as `-VAGRANTSLASH-`).
fn check_box_name(name: &str) -> Result<()> {
    if name.contains(SLASH) {
        bail!("the box name `{name}` holds `{SLASH}`, which the store uses for `/`");
    }
    for part in name.split('/') {
        check_folder_name("box name", part).with_context(|| format!("box `{name}`"))?;
    }
    Ok(())
}

/// Why `part` cannot be one folder of the store, if it cannot. The box's name, version
/// and provider become folders under the store; `..`, `/`, a leading `.` (hidden, and
/// skipped when listing) or a control character would put the box elsewhere, or where
/// `--force` removes something else.
fn check_folder_name(what: &str, part: &str) -> Result<()> {
    let plain = !part.is_empty()
        && part.len() <= 128
        && !part.starts_with('.')
        && part
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !plain {
        bail!(
            "the {what} `{}` cannot be a folder of the box store: use letters, digits, `.`, \
             `_` and `-`, not starting with `.`",
            part.escape_debug()
        );
    }
    Ok(())
}

/// Unpacks the box entry by entry, refusing (not skipping) what could write outside
/// `into` or make a file there stand for one outside it.
fn unpack(file: &Path, into: &Path) -> Result<()> {
    let mut reader =
        BufReader::new(File::open(file).with_context(|| format!("opening {}", file.display()))?);
    let mut magic = [0u8; 2];
    reader
        .read_exact(&mut magic)
        .with_context(|| format!("reading {}", file.display()))?;
    let reader =
        BufReader::new(File::open(file).with_context(|| format!("opening {}", file.display()))?);
    let stream: Box<dyn Read> = if magic == [0x1f, 0x8b] {
        Box::new(flate2::read::GzDecoder::new(reader))
    } else {
        Box::new(reader)
    };
    fs::create_dir_all(into).with_context(|| format!("creating {}", into.display()))?;
    let mut archive = tar::Archive::new(stream);
    let entries = archive
        .entries()
        .with_context(|| format!("reading {}", file.display()))?;
    for entry in entries {
        let mut entry = entry.with_context(|| format!("reading {}", file.display()))?;
        let path = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&path).into_owned();
        check_entry(&entry).with_context(|| format!("{}: entry `{shown}`", file.display()))?;
        entry
            .unpack_in(into)
            .with_context(|| format!("unpacking `{shown}` from {}", file.display()))?;
    }
    Ok(())
}

/// Files, folders, and links to a place below the link, only: a box has no use for
/// devices or FIFOs, and a link upwards or absolute could make `box.img` stand for any
/// file of the host that envctl would then upload.
fn check_entry<R: Read>(entry: &tar::Entry<R>) -> Result<()> {
    let path = entry.path().context("its path cannot be read")?;
    if !is_downward(&path) {
        bail!("is absolute or climbs out with `..`");
    }
    let kind = entry.header().entry_type();
    // A pax global header (`git archive` writes one) carries settings, not a file.
    if kind.is_file() || kind.is_dir() || kind.is_pax_global_extensions() {
        return Ok(());
    }
    if kind.is_symlink() || kind.is_hard_link() {
        let target = entry
            .link_name()
            .context("its link target cannot be read")?
            .context("is a link to nothing")?;
        if !is_downward(&target) || target.as_os_str().is_empty() {
            bail!(
                "links to `{}`: only links to a place below the link are unpacked",
                target.display()
            );
        }
        return Ok(());
    }
    bail!("is a {kind:?} entry, which a box has no use for")
}

/// Relative, and made only of names and `.`: it cannot leave the folder it starts in.
fn is_downward(path: &Path) -> bool {
    use std::path::Component;
    path.components()
        .all(|part| matches!(part, Component::Normal(_) | Component::CurDir))
}

fn read_provider(dir: &Path) -> Result<String> {
    let path = dir.join("metadata.json");
    let text = fs::read_to_string(&path).context("it has no metadata.json")?;
    let metadata: Metadata =
        serde_json::from_str(&text).context("its metadata.json is not valid")?;
    metadata
        .provider
        .context("its metadata.json names no provider")
}

/// `<root>/<name>/<version>/[<arch>/]<provider>/metadata.json`.
fn scan(root: &Path, from_vagrant: bool) -> Result<Vec<InstalledBox>> {
    let mut found = Vec::new();
    for name_dir in subdirs(root)? {
        let name = file_name(&name_dir).replace(SLASH, "/");
        for version_dir in subdirs(&name_dir)? {
            let version = file_name(&version_dir);
            for dir in subdirs(&version_dir)? {
                let mut provider_dirs = vec![dir.clone()];
                if !dir.join("metadata.json").is_file() {
                    provider_dirs = subdirs(&dir)?; // an architecture folder
                }
                for provider_dir in provider_dirs {
                    if let Ok(provider) = read_provider(&provider_dir) {
                        found.push(InstalledBox {
                            name: name.clone(),
                            version: version.clone(),
                            provider,
                            dir: provider_dir,
                            from_vagrant,
                        });
                    }
                }
            }
        }
    }
    Ok(found)
}

fn subdirs(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(err).with_context(|| format!("reading {}", dir.display())),
    };
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.is_dir() && !file_name(path).starts_with('.'))
        .collect();
    dirs.sort();
    Ok(dirs)
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Versions compare by their numeric parts, so 12.10 is newer than 12.9.
fn version_key(version: &str) -> Vec<u64> {
    version
        .split(['.', '-'])
        .map(|part| part.parse().unwrap_or(0))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn make_box(provider: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("envctl-boxsrc-{provider}-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let file = dir.join("test.box");
        let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
            File::create(&file).unwrap(),
            flate2::Compression::fast(),
        ));
        for (path, body) in [
            (
                "metadata.json",
                format!("{{\"provider\":\"{provider}\",\"format\":\"qcow2\"}}"),
            ),
            ("box.img", "disk".to_string()),
        ] {
            let mut header = tar::Header::new_gnu();
            header.set_size(body.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder
                .append_data(&mut header, path, body.as_bytes())
                .unwrap();
        }
        builder.into_inner().unwrap().finish().unwrap();
        file
    }

    /// Both stores in one test: they are found through environment variables.
    #[test]
    fn boxes_are_added_found_listed_and_removed_across_both_stores() {
        let root = std::env::temp_dir().join(format!("envctl-boxes-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        std::env::set_var("ENVCTL_DATA_DIR", root.join("data"));
        std::env::set_var("VAGRANT_HOME", root.join("vagrant"));
        // A box Vagrant downloaded, in its store with an architecture folder.
        let vagrant_box =
            root.join("vagrant/boxes/debian-VAGRANTSLASH-bookworm64/12.20240503.1/amd64/libvirt");
        fs::create_dir_all(&vagrant_box).unwrap();
        fs::write(
            vagrant_box.join("metadata.json"),
            r#"{"provider":"libvirt"}"#,
        )
        .unwrap();

        let added = add("debian/bookworm64", &make_box("libvirt"), "0", false).unwrap();
        assert_eq!(added.provider, "libvirt");
        assert_eq!(
            fs::read_to_string(added.dir.join("box.img")).unwrap(),
            "disk"
        );
        assert!(add("debian/bookworm64", &make_box("libvirt"), "0", false)
            .unwrap_err()
            .to_string()
            .contains("already added"));
        add("debian/bookworm64", &make_box("virtualbox"), "0", false).unwrap();

        let listed: Vec<(String, String, bool)> = list()
            .unwrap()
            .into_iter()
            .map(|b| (b.provider, b.version, b.from_vagrant))
            .collect();
        assert_eq!(
            listed,
            [
                ("libvirt".into(), "0".into(), false),
                ("virtualbox".into(), "0".into(), false),
                ("libvirt".into(), "12.20240503.1".into(), true),
            ]
        );
        // envctl's own box wins over Vagrant's.
        assert!(
            !find("debian/bookworm64", "libvirt")
                .unwrap()
                .unwrap()
                .from_vagrant
        );
        assert_eq!(
            remove("debian/bookworm64", Some("libvirt"), None)
                .unwrap()
                .len(),
            1
        );
        let found = find("debian/bookworm64", "libvirt").unwrap().unwrap();
        assert!(found.from_vagrant && found.dir == vagrant_box, "{found:?}");
        assert!(find("debian/bookworm64", "docker").unwrap().is_none());
        assert!(remove("nope", None, None).is_err());
        assert!(add("x", Path::new("/no/such.box"), "0", false).is_err());
        fs::remove_dir_all(&root).unwrap();
    }

    /// A scratch folder holding a `store/` and a `victim/` beside it that nothing may touch.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(label: &str) -> Scratch {
            let root = std::env::temp_dir().join(format!(
                "envctl-hostile-box-{label}-{}",
                crate::keys::random_id()
            ));
            fs::create_dir_all(root.join("victim")).unwrap();
            fs::write(root.join("victim/keep"), "keep").unwrap();
            Scratch(root)
        }

        fn store(&self) -> PathBuf {
            self.0.join("store")
        }

        /// Fails unless `victim/` is as it was and nothing new sits beside the store.
        fn assert_untouched(&self) {
            assert_eq!(
                fs::read_to_string(self.0.join("victim/keep")).unwrap(),
                "keep"
            );
            let mut names: Vec<String> = fs::read_dir(&self.0)
                .unwrap()
                .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|name| !name.ends_with(".box"))
                .collect();
            names.sort();
            assert!(
                names == ["store", "victim"] || names == ["victim"],
                "{names:?}"
            );
            let victim: Vec<_> = fs::read_dir(self.0.join("victim")).unwrap().collect();
            assert_eq!(victim.len(), 1);
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    /// One raw tar entry: path, kind, link target, body. Names are written into the
    /// header as they are, as a hostile archive would, past the builder's own checks.
    type RawEntry<'a> = (&'a str, tar::EntryType, &'a str, &'a str);

    fn raw_box(scratch: &Scratch, entries: &[RawEntry]) -> PathBuf {
        let file = scratch.0.join(format!("{}.box", crate::keys::random_id()));
        let mut builder = tar::Builder::new(File::create(&file).unwrap());
        for (path, kind, link, body) in entries {
            let mut header = tar::Header::new_old();
            header.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
            header.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
            header.set_entry_type(*kind);
            header.set_size(body.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder.append(&header, body.as_bytes()).unwrap();
        }
        builder.into_inner().unwrap();
        file
    }

    const METADATA: RawEntry = (
        "metadata.json",
        tar::EntryType::Regular,
        "",
        r#"{"provider":"libvirt"}"#,
    );

    #[test]
    fn names_versions_and_providers_cannot_leave_the_store() {
        let scratch = Scratch::new("names");
        let good = raw_box(&scratch, &[METADATA]);
        for name in [
            "",
            "..",
            "../victim",
            "a/../../victim",
            "/abs",
            "a//b",
            ".hidden",
            "a\0b",
            "a\nb",
            "x-VAGRANTSLASH-y",
        ] {
            let err = add_to(&scratch.store(), name, &good, "0", true).unwrap_err();
            assert!(format!("{err:#}").contains("box"), "{name:?}: {err:#}");
        }
        for version in ["", "..", "../../victim", "1/2", ".1"] {
            let err = add_to(&scratch.store(), "ok", &good, version, true).unwrap_err();
            assert!(
                format!("{err:#}").contains("the version"),
                "{version:?}: {err:#}"
            );
        }
        for provider in ["../../../victim", "..", "a/b", ""] {
            let metadata = format!(r#"{{"provider":"{provider}"}}"#);
            let hostile = raw_box(
                &scratch,
                &[("metadata.json", tar::EntryType::Regular, "", &metadata)],
            );
            let err = add_to(&scratch.store(), "ok", &hostile, "0", true).unwrap_err();
            assert!(
                format!("{err:#}").contains("the provider"),
                "{provider:?}: {err:#}"
            );
        }
        scratch.assert_untouched();
        let added = add_to(&scratch.store(), "org/ok", &good, "1.2.3", false).unwrap();
        assert!(added.dir.starts_with(scratch.store()), "{added:?}");
    }

    #[test]
    fn archives_cannot_write_or_link_outside_the_box() {
        use tar::EntryType::{Block, Fifo, Link, Regular, Symlink};
        let scratch = Scratch::new("entries");
        let cases: [(RawEntry, &str); 8] = [
            (("../../victim/new", Regular, "", "x"), "climbs out"),
            (("/tmp/abs", Regular, "", "x"), "is absolute"),
            (("a/../../x", Regular, "", "x"), "climbs out"),
            (
                ("box.img", Symlink, "/etc/passwd", ""),
                "links to `/etc/passwd`",
            ),
            (
                ("box.img", Symlink, "../victim/keep", ""),
                "links to `../victim/keep`",
            ),
            (
                ("sub/img", Symlink, "../box.img", ""),
                "links to `../box.img`",
            ),
            (("box.img", Link, "../victim/keep", ""), "links to"),
            (("box.img", Fifo, "", ""), "Fifo"),
        ];
        for (entry, words) in cases {
            let file = raw_box(&scratch, &[METADATA, entry]);
            let err = add_to(&scratch.store(), "ok", &file, "0", true).unwrap_err();
            assert!(format!("{err:#}").contains(words), "{entry:?}: {err:#}");
        }
        let device = raw_box(&scratch, &[METADATA, ("dev", Block, "", "")]);
        assert!(add_to(&scratch.store(), "ok", &device, "0", true).is_err());
        scratch.assert_untouched();
        // Links below themselves are a box's own business.
        let linked = raw_box(
            &scratch,
            &[
                METADATA,
                ("disk/box.img", Regular, "", "disk"),
                ("box.img", Symlink, "disk/box.img", ""),
                ("copy.img", Link, "disk/box.img", ""),
            ],
        );
        let added = add_to(&scratch.store(), "ok", &linked, "0", true).unwrap();
        assert_eq!(
            fs::read_to_string(added.dir.join("box.img")).unwrap(),
            "disk"
        );
        assert_eq!(
            fs::read_to_string(added.dir.join("copy.img")).unwrap(),
            "disk"
        );
    }

    #[test]
    fn versions_compare_numerically() {
        assert!(version_key("12.10") > version_key("12.9"));
        assert!(version_key("1.0.0") > version_key("0"));
    }
}
