//! Docker image recipes: the default one embedded in the binary, so an installed envctl
//! works anywhere, and a user's build folder read into memory.

use std::fs;
use std::path::Path;

use anyhow::{bail, Context, Result};
use envctl_provider::BuildRecipe;

/// `images/debian`, as it was when envctl was built.
pub fn default_recipe() -> BuildRecipe {
    let files: &[(&str, &[u8])] = &[
        (
            "Dockerfile",
            include_bytes!("../../images/debian/Dockerfile"),
        ),
        (
            "sshd-envctl.conf",
            include_bytes!("../../images/debian/sshd-envctl.conf"),
        ),
        (
            "ansible-python3",
            include_bytes!("../../images/debian/ansible-python3"),
        ),
    ];
    BuildRecipe {
        name: "debian".into(),
        files: files
            .iter()
            .map(|(path, bytes)| (path.to_string(), bytes.to_vec()))
            .collect(),
    }
}

/// The most of a build folder envctl packs: the context is held in memory and sent to
/// the engine whole.
pub const MAX_CONTEXT_BYTES: u64 = 256 * 1024 * 1024;

/// A build folder's files, in a stable order, named after the folder. A symbolic link is
/// packed as the file it names only when that file is inside the folder: a link out of it
/// (to `/etc/shadow`, to `/root`) would send a host file to the engine, and is refused,
/// as are links to folders, devices, FIFOs and sockets, and a folder over
/// [`MAX_CONTEXT_BYTES`].
pub fn read_recipe(dir: &Path) -> Result<BuildRecipe> {
    let root = fs::canonicalize(dir)
        .with_context(|| format!("reading the build folder {}", dir.display()))?;
    let mut packing = Packing {
        root: &root,
        left: MAX_CONTEXT_BYTES,
        files: Vec::new(),
    };
    packing.collect(&root)?;
    let mut files = packing.files;
    files.sort();
    let name = dir
        .file_name()
        .map(|name| name.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_else(|| "custom".into())
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    Ok(BuildRecipe { name, files })
}

struct Packing<'a> {
    /// The build folder, canonical.
    root: &'a Path,
    /// Bytes still allowed.
    left: u64,
    files: Vec<(String, Vec<u8>)>,
}

impl Packing<'_> {
    fn collect(&mut self, dir: &Path) -> Result<()> {
        let entries = fs::read_dir(dir)
            .with_context(|| format!("reading the build folder {}", dir.display()))?;
        for entry in entries {
            let entry =
                entry.with_context(|| format!("reading the build folder {}", dir.display()))?;
            let path = entry.path();
            let kind = entry
                .file_type()
                .with_context(|| format!("reading {}", path.display()))?;
            if kind.is_dir() {
                self.collect(&path)?;
                continue;
            }
            let source = if kind.is_symlink() {
                self.link_target(&path)?
            } else {
                path.clone()
            };
            let meta =
                fs::metadata(&source).with_context(|| format!("reading {}", path.display()))?;
            if !meta.is_file() {
                bail!(
                    "{} in the build folder is not a regular file (a device, FIFO or socket): \
                     envctl packs only files and folders",
                    path.display()
                );
            }
            if meta.len() > self.left {
                bail!(
                    "the build folder {} holds more than {} MiB, the most envctl sends to the \
                     engine: keep only what the Dockerfile needs there",
                    self.root.display(),
                    MAX_CONTEXT_BYTES / (1024 * 1024)
                );
            }
            let bytes = fs::read(&source).with_context(|| format!("reading {}", path.display()))?;
            self.left = self.left.saturating_sub(bytes.len() as u64);
            let relative = path
                .strip_prefix(self.root)
                .unwrap_or(&path)
                .to_string_lossy()
                .into_owned();
            self.files.push((relative, bytes));
        }
        Ok(())
    }

    /// The file a link in the build folder names, if it is a file inside the folder.
    fn link_target(&self, link: &Path) -> Result<std::path::PathBuf> {
        let target = fs::canonicalize(link).with_context(|| {
            format!(
                "{} in the build folder is a broken symbolic link",
                link.display()
            )
        })?;
        if !target.starts_with(self.root) {
            bail!(
                "{} in the build folder is a symbolic link to {}, outside the folder: envctl \
                 never sends files from outside the build folder to the engine; copy what the \
                 image needs into it",
                link.display(),
                target.display()
            );
        }
        if target.is_dir() {
            bail!(
                "{} in the build folder is a symbolic link to a folder: envctl packs links to \
                 files only",
                link.display()
            );
        }
        Ok(target)
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    fn scratch() -> std::path::PathBuf {
        let root = std::env::temp_dir().join(format!("envctl-recipe-{}", crate::keys::random_id()));
        fs::create_dir_all(root.join("build/sub")).unwrap();
        fs::write(root.join("build/Dockerfile"), "FROM debian\n").unwrap();
        fs::write(root.join("build/sub/inside"), "inside").unwrap();
        fs::write(root.join("secret"), "host secret").unwrap();
        root
    }

    #[test]
    fn links_inside_the_folder_are_packed_as_their_file() {
        let root = scratch();
        symlink("sub/inside", root.join("build/alias")).unwrap();
        let recipe = read_recipe(&root.join("build")).unwrap();
        let names: Vec<&str> = recipe.files.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(names, ["Dockerfile", "alias", "sub/inside"]);
        assert_eq!(recipe.files[1].1, b"inside");
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn a_link_out_of_the_folder_is_refused_naming_it() {
        for (name, target) in [("shadow", "../../secret"), ("rootdir", "/root")] {
            let root = scratch();
            symlink(target, root.join("build/sub").join(name)).unwrap();
            let err = format!("{:#}", read_recipe(&root.join("build")).unwrap_err());
            assert!(
                err.contains(&format!(
                    "sub/{name} in the build folder is a symbolic link"
                )) && err.contains("outside the folder"),
                "{err}"
            );
            fs::remove_dir_all(root).unwrap();
        }
    }

    #[test]
    fn a_folder_over_the_cap_is_refused() {
        let root = scratch();
        // Sparse: the cap is checked before anything is read.
        let big = fs::File::create(root.join("build/big")).unwrap();
        big.set_len(MAX_CONTEXT_BYTES + 1).unwrap();
        let err = format!("{:#}", read_recipe(&root.join("build")).unwrap_err());
        assert!(err.contains("holds more than 256 MiB"), "{err}");
        fs::remove_dir_all(root).unwrap();
    }
}
