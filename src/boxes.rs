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
    if name.is_empty() || name.contains("..") || name.starts_with('/') {
        bail!("`{name}` cannot name a box");
    }
    let store = own_store();
    fs::create_dir_all(&store).with_context(|| format!("creating {}", store.display()))?;
    let temp = store.join(format!(".adding-{}", std::process::id()));
    let _ = fs::remove_dir_all(&temp);
    let result = unpack(file, &temp).and_then(|()| {
        let provider = read_provider(&temp)
            .with_context(|| format!("{} is not a Vagrant box", file.display()))?;
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
    // `unpack` refuses entries that would land outside `into`.
    tar::Archive::new(stream)
        .unpack(into)
        .with_context(|| format!("unpacking {}", file.display()))
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

    #[test]
    fn versions_compare_numerically() {
        assert!(version_key("12.10") > version_key("12.9"));
        assert!(version_key("1.0.0") > version_key("0"));
    }
}
