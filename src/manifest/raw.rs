//! The Machinefile exactly as written: serde types with no guarantees beyond syntax.
//!
//! Fields stay loosely typed (strings for addresses, paths and names) so that validation
//! can report every problem at once, each with its own words, instead of serde stopping at
//! the first. Unknown fields are collected by `serde_ignored`, not rejected here.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_yaml::Value;

pub use super::folders::RawFolder;
pub use super::ports::RawForward;

#[derive(Debug, Default, Deserialize)]
pub struct RawManifest {
    pub name: Option<String>,
    pub provider: Option<String>,
    pub network: Option<RawNetwork>,
    #[serde(default)]
    pub defaults: RawDefaults,
    pub machines: Option<Vec<RawMachine>>,
    /// A mapping (one Ansible run, the first form) or a list of named provisioners:
    /// which one is known only from the YAML, so it is read in `provisioners.rs`.
    pub provision: Option<Value>,
    #[serde(default)]
    pub groups: BTreeMap<String, RawGroup>,
}

/// An Ansible group's own variables and child groups.
#[derive(Debug, Default, Deserialize)]
pub struct RawGroup {
    #[serde(default)]
    pub vars: BTreeMap<String, Value>,
    #[serde(default)]
    pub children: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawNetwork {
    pub subnet: Option<String>,
    pub gateway: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawDefaults {
    pub cpus: Option<i64>,
    pub memory: Option<i64>,
    pub user: Option<String>,
    pub docker: Option<RawDocker>,
    pub libvirt: Option<RawLibvirtDefaults>,
    pub virtualbox: Option<RawBoxChoice>,
    pub forwarded_ports: Option<Vec<RawForward>>,
    pub synced_folders: Option<Vec<RawFolder>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawMachine {
    pub name: Option<String>,
    pub ip: Option<String>,
    pub hostname: Option<String>,
    pub cpus: Option<i64>,
    pub memory: Option<i64>,
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub vars: BTreeMap<String, Value>,
    pub docker: Option<RawDocker>,
    pub libvirt: Option<RawBoxChoice>,
    pub virtualbox: Option<RawBoxChoice>,
    pub forwarded_ports: Option<Vec<RawForward>>,
    pub synced_folders: Option<Vec<RawFolder>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawDocker {
    pub image: Option<String>,
    pub build: Option<String>,
    pub init: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawBoxChoice {
    #[serde(rename = "box")]
    pub box_name: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawLibvirtDefaults {
    #[serde(rename = "box")]
    pub box_name: Option<String>,
    pub uri: Option<String>,
    pub accel: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawProvision {
    pub playbook: Option<String>,
    #[serde(default)]
    pub extra_vars: BTreeMap<String, Value>,
    pub limit: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub ansible_args: Vec<String>,
    pub inventory_path: Option<String>,
    #[serde(default)]
    pub skip_tags: Vec<String>,
    pub vault_password_file: Option<String>,
    pub config_file: Option<String>,
    /// `true`, or `v` to `vvvv`.
    pub verbose: Option<Value>,
    pub galaxy_role_file: Option<String>,
}

/// One entry of the list form of `provision`.
#[derive(Debug, Default, Deserialize)]
pub struct RawProvisioner {
    pub name: Option<String>,
    pub shell: Option<RawShell>,
    pub file: Option<RawFile>,
    pub ansible: Option<RawProvision>,
    pub run: Option<String>,
    pub machines: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawShell {
    pub inline: Option<String>,
    pub path: Option<String>,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, Value>,
    pub privileged: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawFile {
    pub source: Option<String>,
    pub destination: Option<String>,
}

/// The fields each mapping accepts, by path pattern (`*` stands for a list index), for
/// "did you mean" on unknown fields. Kept beside the types it describes.
pub const KNOWN_FIELDS: &[(&str, &[&str])] = &[
    (
        "",
        &[
            "name",
            "provider",
            "network",
            "defaults",
            "machines",
            "provision",
            "groups",
        ],
    ),
    ("groups.*", &["vars", "children"]),
    ("network", &["subnet", "gateway"]),
    (
        "defaults",
        &[
            "cpus",
            "memory",
            "user",
            "docker",
            "libvirt",
            "virtualbox",
            "forwarded_ports",
            "synced_folders",
        ],
    ),
    ("defaults.forwarded_ports.*", super::ports::FIELDS),
    ("defaults.synced_folders.*", super::folders::FIELDS),
    ("defaults.docker", &["image", "build", "init"]),
    ("defaults.libvirt", &["box", "uri", "accel"]),
    ("defaults.virtualbox", &["box"]),
    (
        "machines.*",
        &[
            "name",
            "ip",
            "hostname",
            "cpus",
            "memory",
            "groups",
            "vars",
            "docker",
            "libvirt",
            "virtualbox",
            "forwarded_ports",
            "synced_folders",
        ],
    ),
    ("machines.*.forwarded_ports.*", super::ports::FIELDS),
    ("machines.*.synced_folders.*", super::folders::FIELDS),
    ("machines.*.docker", &["image", "build", "init"]),
    ("machines.*.libvirt", &["box"]),
    ("machines.*.virtualbox", &["box"]),
    (
        "provision",
        &[
            "playbook",
            "extra_vars",
            "limit",
            "tags",
            "ansible_args",
            "inventory_path",
            "skip_tags",
            "vault_password_file",
            "config_file",
            "verbose",
            "galaxy_role_file",
        ],
    ),
    (
        "provision.*",
        &["name", "shell", "file", "ansible", "run", "machines"],
    ),
    (
        "provision.*.shell",
        &["inline", "path", "args", "env", "privileged"],
    ),
    ("provision.*.file", &["source", "destination"]),
    (
        "provision.*.ansible",
        &[
            "playbook",
            "extra_vars",
            "limit",
            "tags",
            "ansible_args",
            "inventory_path",
            "skip_tags",
            "vault_password_file",
            "config_file",
            "verbose",
            "galaxy_role_file",
        ],
    ),
];
