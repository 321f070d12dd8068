//! The files that let people and Ansible reach the machines (`known_hosts`, inventory,
//! `ssh_config`), and `envctl ssh`.

use std::os::unix::process::CommandExt;

use anyhow::{bail, Context, Result};

use super::{extra_inventory_path, Workspace};
use crate::inventory::Inventory;
use crate::keys;
use crate::ssh::{self, Credentials, KnownHost, SshTarget};
use crate::state::{write_private, State};

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
    let name = machine.name.as_str();
    let Some(record) = state.machines.get(name) else {
        bail!("machine `{name}` is not created: run `envctl up {name}` first");
    };
    let private_key = ws.state_dir.private_key();
    let known_hosts = ws.state_dir.known_hosts();
    let target = SshTarget {
        name,
        user: &machine.user,
        host: &record.ssh_host,
        port: record.ssh_port,
    };
    let creds = Credentials {
        private_key: &private_key,
        known_hosts: &known_hosts,
    };
    let mut ssh = ssh::interactive_command(&target, creds)
        .with_context(|| format!("machine `{name}`: building the ssh command"))?;
    if !command.is_empty() {
        ssh.arg("--").args(command);
    }
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
        write_if_changed(&path, &ini)?;
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

/// A second `up` with nothing to do leaves every file as it was.
fn write_if_changed(path: &std::path::Path, contents: &str) -> Result<()> {
    if std::fs::read_to_string(path).is_ok_and(|old| old == contents) {
        return Ok(());
    }
    write_private(path, contents.as_bytes())
}
