//! Docker image recipes: the default one embedded in the binary, so an installed envctl
//! works anywhere, and a user's build folder read into memory.

use std::fs;
use std::path::Path;

use anyhow::{Context, Result};
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
    ];
    BuildRecipe {
        name: "debian".into(),
        files: files
            .iter()
            .map(|(path, bytes)| (path.to_string(), bytes.to_vec()))
            .collect(),
    }
}

/// A build folder's files, in a stable order, named after the folder.
pub fn read_recipe(dir: &Path) -> Result<BuildRecipe> {
    let mut files = Vec::new();
    collect(dir, dir, &mut files)?;
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

fn collect(root: &Path, dir: &Path, files: &mut Vec<(String, Vec<u8>)>) -> Result<()> {
    let entries =
        fs::read_dir(dir).with_context(|| format!("reading the build folder {}", dir.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("reading the build folder {}", dir.display()))?;
        let path = entry.path();
        if path.is_dir() {
            collect(root, &path, files)?;
        } else {
            let bytes = fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            let relative = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .to_string_lossy()
                .into_owned();
            files.push((relative, bytes));
        }
    }
    Ok(())
}
