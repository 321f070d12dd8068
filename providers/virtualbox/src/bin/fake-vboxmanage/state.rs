//! What the stand-in remembers between calls: one JSON file in the state directory. Tests
//! may write it before the first call to start from an existing setup (every field has a
//! default).

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::Fail;

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct State {
    /// Calls so far, this one included.
    pub calls: u64,
    /// Calls so far per subcommand, this one included.
    pub calls_of: BTreeMap<String, u64>,
    /// Makes UUIDs and MACs unique and repeatable.
    pub serial: u64,
    pub vms: Vec<Vm>,
    pub hostonlyifs: Vec<HostOnlyIf>,
    pub hostonlynets: Vec<HostOnlyNet>,
    pub dhcpservers: Vec<DhcpServer>,
    pub global_extradata: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Vm {
    pub name: String,
    pub uuid: String,
    pub registered: bool,
    /// `poweroff`, `running`, `paused`, `saved`, `aborted`.
    pub state: String,
    pub cpus: u32,
    pub memory: u32,
    /// NICs 1 to 8; index 0 is NIC 1.
    pub nics: Vec<Nic>,
    pub uart1: Option<String>,
    pub uartmode1: Option<String>,
    pub description: String,
    pub snapshots: Vec<String>,
    /// A linked clone: the VM (uuid) and snapshot its disk is a child of.
    pub linked_to: Option<(String, String)>,
    pub extradata: BTreeMap<String, String>,
    pub ovf: Option<String>,
    /// Permanent shared folders, in the order they were added (a list in VirtualBox).
    pub shared_folders: Vec<SharedFolder>,
    /// Transient shared folders of the running VM, by name (a map in VirtualBox's console);
    /// gone when it powers off, kept in a saved state.
    pub transient_folders: Vec<SharedFolder>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SharedFolder {
    pub name: String,
    /// Absolute, without a trailing slash.
    pub host_path: String,
    pub writable: bool,
    pub automount: bool,
    pub auto_mount_point: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Nic {
    /// `none`, `nat`, `hostonly`, `hostonlynet`, `intnet`, `bridged`, `generic`, `natnetwork`.
    pub kind: String,
    pub mac: String,
    pub cable: bool,
    pub hostonly_adapter: String,
    pub hostonly_net: String,
    /// NAT rules as `name,proto,hostip,hostport,guestip,guestport`.
    pub rules: Vec<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct HostOnlyIf {
    pub name: String,
    pub ip: String,
    pub mask: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct HostOnlyNet {
    pub name: String,
    pub id: String,
    pub mask: String,
    pub lower: String,
    pub upper: String,
    pub enabled: bool,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct DhcpServer {
    /// `HostInterfaceNetworking-<interface>` for a host-only interface.
    pub network: String,
    pub server_ip: String,
    pub mask: String,
    pub lower: String,
    pub upper: String,
    pub enabled: bool,
    /// Fixed addresses by MAC (lowercase, colons).
    pub fixed: BTreeMap<String, String>,
}

impl State {
    pub fn load(path: &Path) -> Result<State, String> {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                serde_json::from_str(&text).map_err(|err| format!("{}: {err}", path.display()))
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
            Err(err) => Err(format!("{}: {err}", path.display())),
        }
    }

    pub fn save(&self, path: &Path) -> Result<(), String> {
        let text = serde_json::to_string_pretty(self).map_err(|err| err.to_string())?;
        std::fs::write(path, text).map_err(|err| format!("{}: {err}", path.display()))
    }

    /// A new UUID, unique within this state.
    pub fn uuid(&mut self) -> String {
        self.serial += 1;
        format!("00000000-0000-4000-8000-{:012x}", self.serial)
    }

    /// A new MAC in VirtualBox's range, as `modifyvm` spells it.
    pub fn mac(&mut self) -> String {
        self.serial += 1;
        format!("080027{:06X}", self.serial & 0xff_ffff)
    }

    /// The registered VM named `name` (or with that UUID).
    pub fn vm(&self, name: &str) -> Result<usize, Fail> {
        self.vms
            .iter()
            .position(|vm| vm.registered && (vm.name == name || vm.uuid == name))
            .ok_or_else(|| {
                Fail::api(
                    format!("Could not find a registered machine named '{name}'"),
                    "VBOX_E_OBJECT_NOT_FOUND",
                )
            })
    }

    pub fn hostonlyif(&self, name: &str) -> Result<usize, Fail> {
        self.hostonlyifs
            .iter()
            .position(|i| i.name == name)
            .ok_or_else(|| {
                Fail::api(
                    format!("The host network interface named '{name}' could not be found"),
                    "E_INVALIDARG",
                )
            })
    }
}

impl Vm {
    pub fn new(name: &str, state: &mut State) -> Vm {
        let mut nics = vec![Nic::default(); 8];
        for nic in &mut nics {
            nic.kind = "none".to_string();
            nic.cable = true;
        }
        nics[0].kind = "nat".to_string();
        nics[0].mac = state.mac();
        Vm {
            name: name.to_string(),
            uuid: state.uuid(),
            registered: true,
            state: "poweroff".to_string(),
            cpus: 1,
            memory: 512,
            nics,
            ..Vm::default()
        }
    }

    pub fn is_running(&self) -> bool {
        matches!(self.state.as_str(), "running" | "paused")
    }
}
