//! The Machinefile exactly as written: serde types with no guarantees beyond syntax.
//!
//! Fields stay loosely typed (strings for addresses, paths and names) so that validation
//! can report every problem at once, each with its own words, instead of serde stopping at
//! the first. Unknown fields are collected by `serde_ignored`, not rejected here.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_yaml::Value;

#[derive(Debug, Default, Deserialize)]
pub struct RawManifest {
    pub name: Option<String>,
    pub provider: Option<String>,
    pub network: Option<RawNetwork>,
    #[serde(default)]
    pub defaults: RawDefaults,
    pub machines: Option<Vec<RawMachine>>,
    pub provision: Option<RawProvision>,
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
        ],
    ),
    ("network", &["subnet", "gateway"]),
    (
        "defaults",
        &["cpus", "memory", "user", "docker", "libvirt", "virtualbox"],
    ),
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
        ],
    ),
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
        ],
    ),
];
