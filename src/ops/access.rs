//! The files that let people and Ansible reach the machines (`known_hosts`, inventory,
//! `ssh_config`), and `envctl ssh`.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};

use super::{extra_inventory_path, Workspace};
use crate::inventory::Inventory;
use crate::keys;
use crate::manifest::{self, Machine};
use crate::ssh::{self, Credentials, KnownHost, SshTarget};
use crate::state::{write_atomic, write_private, State};

/// The environment's private key and `known_hosts`, owned, for [`Credentials`] to borrow:
/// what every pinned connection envctl makes logs in with.
pub(super) struct KeyFiles {
    private_key: PathBuf,
    known_hosts: PathBuf,
}

impl KeyFiles {
    pub(super) fn of(ws: &Workspace) -> KeyFiles {
        KeyFiles {
            private_key: ws.state_dir.private_key(),
            known_hosts: ws.state_dir.known_hosts(),
        }
    }

    pub(super) fn creds(&self) -> Credentials<'_> {
        Credentials {
            private_key: &self.private_key,
            known_hosts: &self.known_hosts,
        }
    }
}

/// Where `machine` answers SSH, as `state` recorded it; fails, saying what to run, for a
/// machine not created.
pub(super) fn created_target<'a>(machine: &'a Machine, state: &'a State) -> Result<SshTarget<'a>> {
    let name = machine.name.as_str();
    let Some(record) = state.machines.get(name) else {
        bail!("machine `{name}` is not created: run `envctl up {name}` first");
    };
    Ok(SshTarget {
        name,
        user: &machine.user,
        host: &record.ssh_host,
        port: record.ssh_port,
    })
}

pub enum InventoryFormat {
    Ini,
    /// The file envctl runs `ansible-playbook` with.
    File,
    /// Ansible's dynamic-inventory `--list`.
    List,
    /// Ansible's dynamic-inventory `--host NAME`.
    Host(String),
}

/// The inventory, as `envctl inventory` prints it.
pub fn inventory(ws: &Workspace, format: InventoryFormat) -> Result<String> {
    let private_key = ws.state_dir.private_key();
    let known_hosts = ws.state_dir.known_hosts();
    let inventory = Inventory {
        env_name: &ws.manifest.name,
        machines: &ws.manifest.machines,
        groups: &ws.manifest.groups,
        private_key: &private_key,
        known_hosts: &known_hosts,
    };
    match format {
        InventoryFormat::File => Ok(format!("{:#}\n", inventory.to_file_json())),
        InventoryFormat::Ini => Ok(inventory.to_ini()),
        InventoryFormat::List => Ok(format!("{:#}\n", inventory.to_list_json())),
        InventoryFormat::Host(name) => match inventory.host_json(&name) {
            Some(vars) => Ok(format!("{vars:#}\n")),
            None => bail!("{} has no machine `{name}`", ws.manifest.path.display()),
        },
    }
}

/// `Host` blocks for the machines that exist (one, when `name` is given).
pub fn ssh_config(ws: &Workspace, name: Option<&str>) -> Result<String> {
    let state = ws.state_dir.load()?;
    // A `/regex/` is taken when it selects exactly one machine.
    let name = match name {
        Some(name) => Some(ws.select_one(name)?.name.as_str()),
        None => None,
    };
    if let Some(name) = name {
        if !state.machines.contains_key(name) {
            bail!("machine `{name}` is not created: run `envctl up {name}` first");
        }
    }
    let text = render_ssh_config(ws, &state, name)?;
    if text.is_empty() {
        bail!(
            "environment `{}` has no machines yet: run `envctl up` first",
            ws.manifest.name
        );
    }
    Ok(text)
}

/// Replaces this process with `ssh` to `name`, running `command` if given.
pub fn ssh(ws: &Workspace, name: &str, command: &[String]) -> Result<()> {
    let state = ws.state_dir.load()?;
    // A `/regex/` is taken when it selects exactly one machine.
    let machine = ws.select_one(name)?;
    let target = created_target(machine, &state)?;
    let keys = KeyFiles::of(ws);
    let mut ssh = ssh::interactive_command(&target, keys.creds())
        .with_context(|| format!("machine `{}`: building the ssh command", machine.name))?;
    if !command.is_empty() {
        ssh.arg("--").args(command);
    }
    crate::output::verbose(&format!("running {ssh:?}"));
    let err = ssh.exec();
    Err(err).context("running ssh")
}

/// Writes `known_hosts` for every machine of the Machinefile, from the host keys envctl
/// made, before any machine is contacted.
pub(super) fn write_known_hosts(ws: &Workspace) -> Result<()> {
    let mut keys_by_machine = Vec::new();
    for machine in &ws.manifest.machines {
        let key = keys::ensure_host_key(&ws.state_dir, &ws.manifest.name, &machine.name)?;
        keys_by_machine.push((machine, key.public_openssh));
    }
    let hosts: Vec<KnownHost> = keys_by_machine
        .iter()
        .map(|(machine, public_key)| KnownHost {
            name: &machine.name,
            hostname: &machine.hostname,
            ip: machine.ip,
            public_key,
        })
        .collect();
    write_if_changed(
        &ws.state_dir.known_hosts(),
        &ssh::render_known_hosts(&hosts),
    )
}

/// Writes the inventory (also where the Machinefile asks) and `ssh_config`.
pub(super) fn write_generated(ws: &Workspace, state: &State) -> Result<()> {
    let ini = inventory(ws, InventoryFormat::Ini)?;
    write_if_changed(&ws.state_dir.inventory(), &ini)?;
    write_if_changed(
        &ws.state_dir.inventory_json(),
        &inventory(ws, InventoryFormat::File)?,
    )?;
    if let Some(path) = extra_inventory_path(ws) {
        write_inventory_copy(ws, &path, &ini)?;
    }
    write_if_changed(
        &ws.state_dir.ssh_config(),
        &render_ssh_config(ws, state, None)?,
    )
}

fn render_ssh_config(ws: &Workspace, state: &State, only: Option<&str>) -> Result<String> {
    let targets: Vec<SshTarget> = ws
        .manifest
        .machines
        .iter()
        .filter(|machine| only.is_none_or(|name| name == machine.name))
        .filter_map(|machine| {
            let record = state.machines.get(&machine.name)?;
            Some(SshTarget {
                name: &machine.name,
                user: &machine.user,
                host: &record.ssh_host,
                port: record.ssh_port,
            })
        })
        .collect();
    ssh::render_config(
        &targets,
        &ws.state_dir.private_key(),
        &ws.state_dir.known_hosts(),
    )
}

/// The copy `inventory_path` asks for, checked again as it is written (files change
/// after `validate`), written beside itself without changing its folder's mode.
fn write_inventory_copy(ws: &Workspace, path: &std::path::Path, ini: &str) -> Result<()> {
    let playbook = ws.manifest.first_ansible().map(|p| p.playbook.as_path());
    let path =
        manifest::check_inventory_path(&ws.manifest.path, playbook, path).map_err(|why| {
            anyhow::anyhow!(
                "{}: provision.inventory_path: {why}",
                ws.manifest.path.display()
            )
        })?;
    if std::fs::read_to_string(&path).is_ok_and(|old| old == ini) {
        return Ok(());
    }
    write_atomic(&path, ini.as_bytes())
}

/// A second `up` with nothing to do leaves every file as it was.
fn write_if_changed(path: &std::path::Path, contents: &str) -> Result<()> {
    if std::fs::read_to_string(path).is_ok_and(|old| old == contents) {
        return Ok(());
    }
    write_private(path, contents.as_bytes())
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::PermissionsExt;
    use std::path::PathBuf;
    use std::sync::Arc;

    use super::*;
    use crate::providers::fake::FakeProvider;

    /// A project whose Machinefile asks for a copy of the inventory in `inv/hosts`, the
    /// folder `inv/` made by the user with mode 0755.
    fn project() -> (PathBuf, Workspace) {
        let root = std::env::temp_dir().join(format!("envctl-copy-{}", crate::keys::random_id()));
        fs::create_dir_all(root.join("inv")).unwrap();
        fs::set_permissions(root.join("inv"), fs::Permissions::from_mode(0o755)).unwrap();
        fs::write(root.join("site.yml"), "- hosts: all\n").unwrap();
        let machinefile = root.join("Machinefile");
        fs::write(
            &machinefile,
            "name: copy\nnetwork: {subnet: 10.99.0.0/24}\nmachines:\n  - {name: a, ip: 10.99.0.11}\n\
             provision: {playbook: site.yml, inventory_path: inv/hosts}\n",
        )
        .unwrap();
        let mut ws = Workspace::load(Some(&machinefile)).unwrap();
        ws.data_dir = root.join("data");
        (root, ws)
    }

    #[test]
    fn the_inventory_copy_leaves_its_folder_mode_alone() {
        let (root, ws) = project();
        write_generated(&ws, &State::default()).unwrap();
        let mode = fs::metadata(root.join("inv")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o755);
        assert!(crate::manifest::is_generated(&root.join("inv/hosts")));
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn a_file_put_there_after_validation_is_not_overwritten() {
        let (root, ws) = project();
        fs::write(root.join("inv/hosts"), "[mine]\nhost1\n").unwrap();
        let err = format!("{:#}", write_generated(&ws, &State::default()).unwrap_err());
        assert!(
            err.contains("envctl did not write it") && err.contains("not your own inventory"),
            "{err}"
        );
        assert_eq!(
            fs::read_to_string(root.join("inv/hosts")).unwrap(),
            "[mine]\nhost1\n"
        );
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn destroy_removes_only_envctls_copy() {
        let (root, mut ws) = project();
        fs::write(root.join("inv/hosts"), "[mine]\nhost1\n").unwrap();
        ws.fake = Some(Arc::new(FakeProvider::default()));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(super::super::destroy(&ws, &[])).unwrap();
        assert_eq!(
            fs::read_to_string(root.join("inv/hosts")).unwrap(),
            "[mine]\nhost1\n"
        );
        fs::remove_dir_all(root).unwrap();
    }
}
