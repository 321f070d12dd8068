//! `galaxy_role_file`: roles and collections installed with `ansible-galaxy` into
//! `.envctl/galaxy/` before the playbook, again only when the requirements file changed.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{bail, Context, Result};
use ssh_key::sha2::{Digest, Sha256};
use tokio::process::Command;

use crate::output;
use crate::state::{create_private_dir, write_private};

/// Where one environment's Galaxy content lives.
pub struct GalaxyDirs {
    pub roles: PathBuf,
    pub collections: PathBuf,
    /// The hash of the requirements file last installed.
    stamp: PathBuf,
}

impl GalaxyDirs {
    pub fn new(state_root: &Path) -> GalaxyDirs {
        let root = state_root.join("galaxy");
        GalaxyDirs {
            roles: root.join("roles"),
            collections: root.join("collections"),
            stamp: root.join("requirements.sha256"),
        }
    }

    /// The roles path for Ansible: ours first, then Ansible's default places.
    pub fn roles_path(&self) -> String {
        format!(
            "{}:~/.ansible/roles:/usr/share/ansible/roles:/etc/ansible/roles",
            self.roles.display()
        )
    }

    /// The collections path for Ansible: ours first, then Ansible's default places.
    pub fn collections_path(&self) -> String {
        format!(
            "{}:~/.ansible/collections:/usr/share/ansible/collections",
            self.collections.display()
        )
    }
}

/// Installs what `requirements` lists, unless the same file was installed last time.
/// Returns whether it installed.
pub async fn install(requirements: &Path, dirs: &GalaxyDirs, project: &Path) -> Result<bool> {
    let text = std::fs::read(requirements)
        .with_context(|| format!("reading {}", requirements.display()))?;
    let hash = format!("{:x}", Sha256::digest(&text));
    if std::fs::read_to_string(&dirs.stamp).is_ok_and(|old| old.trim() == hash) {
        output::verbose(&format!(
            "{} unchanged since it was installed",
            requirements.display()
        ));
        return Ok(false);
    }
    let parsed: serde_yaml::Value = serde_yaml::from_slice(&text)
        .with_context(|| format!("reading {} as YAML", requirements.display()))?;
    // A list is roles only (the old form); a mapping may have `roles` and `collections`.
    let (roles, collections) = match &parsed {
        serde_yaml::Value::Sequence(_) => (true, false),
        serde_yaml::Value::Mapping(map) => {
            (map.contains_key("roles"), map.contains_key("collections"))
        }
        _ => bail!(
            "{} lists no roles or collections: give a list of roles, or `roles` and `collections`",
            requirements.display()
        ),
    };
    let program = which::which("ansible-galaxy").context(
        "ansible-galaxy is not on PATH: install Ansible (`apt-get install ansible`, or `pip install ansible-core`)",
    )?;
    for dir in [&dirs.roles, &dirs.collections] {
        create_private_dir(dir.parent().unwrap_or(dir))?;
        create_private_dir(dir)?;
    }
    output::status(
        "Installing",
        &format!("Galaxy requirements from {}", requirements.display()),
    );
    if roles {
        galaxy(&program, project, "role", requirements, &dirs.roles).await?;
    }
    if collections {
        galaxy(
            &program,
            project,
            "collection",
            requirements,
            &dirs.collections,
        )
        .await?;
    }
    write_private(&dirs.stamp, hash.as_bytes())?;
    Ok(true)
}

async fn galaxy(
    program: &Path,
    project: &Path,
    kind: &str,
    requirements: &Path,
    into: &Path,
) -> Result<()> {
    let status = Command::new(program)
        .current_dir(project)
        .args([kind, "install", "--force", "-r"])
        .arg(requirements)
        .arg("-p")
        .arg(into)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .status()
        .await
        .with_context(|| format!("running ansible-galaxy {kind} install"))?;
    if !status.success() {
        bail!(
            "ansible-galaxy {kind} install -r {} failed ({status})",
            requirements.display()
        );
    }
    Ok(())
}
