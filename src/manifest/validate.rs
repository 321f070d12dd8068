//! From [`RawManifest`] to [`Manifest`], collecting every problem on the way.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use envctl_provider::{Init, NetworkSpec, PortForward, ProviderKind};
use ipnetwork::Ipv4Network;

use super::ansible_vars::{reserved_var, template_in, unusable_project_dir};
use super::folders::{self, SyncedFolder};
use super::groups::groups as group_section;
use super::image_ref::{is_image_reference, IMAGE_RULE};
use super::inventory_path::check_inventory_path;
use super::libvirt_uri::check_libvirt_uri;
use super::lines::{LineIndex, MAX_DEPTH};
use super::ports;
use super::provisioners::provisioners;
use super::raw::{RawDefaults, RawDocker, RawMachine, RawManifest, RawProvision, KNOWN_FIELDS};
use super::reserved::{
    hostname_clash, reserved_group, reserved_machine_name, unusable_subnet, Known,
};
use super::{
    Accel, DockerImage, LibvirtOptions, Machine, Manifest, ManifestError, Problem, Provision,
};

const DEFAULT_CPUS: u32 = 1;
const DEFAULT_MEMORY_MIB: u32 = 512;
const DEFAULT_USER: &str = "vagrant";
const MAX_CPUS: i64 = 128;
const MIN_MEMORY_MIB: i64 = 64;
const MAX_MEMORY_MIB: i64 = 256 * 1024;

/// Parses and validates the text of the Machinefile at `path`.
pub fn parse(path: &Path, text: &str) -> Result<Manifest, ManifestError> {
    let lines = LineIndex::new(text);
    let mut problems = Problems {
        lines: &lines,
        list: Vec::new(),
    };
    if text.trim().is_empty() {
        problems.top(
            "",
            "the file is empty: see Machinefile.example for what goes in it",
        );
        return Err(problems.into_error(path));
    }
    if let Some(line) = lines.too_deep() {
        problems.list.push(Problem {
            line: Some(line),
            machine: None,
            field: String::new(),
            message: format!("lists and mappings nest more than {MAX_DEPTH} levels deep here"),
        });
        return Err(problems.into_error(path));
    }
    if !lines.lost().is_empty() {
        for lost in lines.lost() {
            problems.list.push(Problem {
                line: Some(lost.line),
                machine: None,
                field: lost.path.clone(),
                message: lost.message.clone(),
            });
        }
        return Err(problems.into_error(path));
    }
    let mut unknown = Vec::new();
    let deserializer = serde_yaml::Deserializer::from_str(text);
    let raw: RawManifest =
        match serde_ignored::deserialize(deserializer, |field| unknown.push(field.to_string())) {
            Ok(raw) => raw,
            Err(err) => {
                problems.list.push(serde_problem(&err));
                return Err(problems.into_error(path));
            }
        };
    for field in unknown {
        problems.unknown_field(&field, &raw);
    }
    let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
    if let Some(why) = unusable_project_dir(&dir) {
        problems.list.push(Problem {
            line: None,
            machine: None,
            field: String::new(),
            message: format!(
                "the project folder {} {why}: rename it or move the project",
                dir.display().to_string().escape_debug()
            ),
        });
    }
    let manifest = build(&raw, path, &dir, &mut problems);
    match manifest {
        Some(manifest) if problems.list.is_empty() => Ok(manifest),
        _ => Err(problems.into_error(path)),
    }
}

/// A syntax or type error from the deserializer, in the words of our other problems:
/// serde_yaml says `machines[0].cpus: invalid type: … at line 7 column 11`.
fn serde_problem(err: &serde_yaml::Error) -> Problem {
    let line = err.location().map(|location| location.line());
    let mut message = err.to_string();
    if let Some(at) = message.rfind(" at line ") {
        message.truncate(at);
    }
    let message = message
        .replace("i64", "a whole number")
        .replace("struct RawManifest", "a mapping of fields");
    let (path, message) = match message.split_once(": ") {
        Some((path, rest)) if !path.contains(' ') => (path.to_string(), rest.to_string()),
        _ => (String::new(), message),
    };
    let (machine, field) = match path
        .strip_prefix("machines[")
        .and_then(|rest| rest.split_once("]."))
    {
        Some((index, field)) => {
            let number = index.parse::<usize>().map_or(0, |index| index + 1);
            (Some(format!("#{number}")), field.to_string())
        }
        None => (None, path),
    };
    Problem {
        line,
        machine,
        field,
        message,
    }
}

/// Whether `name` can prefix or name a container, domain, VM and host name alike.
pub fn is_resource_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 32
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
}

const RESOURCE_NAME_RULE: &str = "use lowercase letters, digits and dashes, starting and ending \
                                  with a letter or digit, 32 characters at most";

pub(super) struct Problems<'a> {
    lines: &'a LineIndex,
    pub(super) list: Vec<Problem>,
}

impl Problems<'_> {
    pub(super) fn top(&mut self, field: &str, message: impl Into<String>) {
        self.list.push(Problem {
            line: self.lines.line_of(field),
            machine: None,
            field: field.to_string(),
            message: message.into(),
        });
    }

    fn machine(&mut self, index: usize, label: &str, field: &str, message: impl Into<String>) {
        // A value the machine inherits stands under `defaults`, not under the machine.
        let path = if field.starts_with("defaults.") {
            field.to_string()
        } else {
            format!("machines.{index}.{field}")
        };
        self.list.push(Problem {
            line: self.lines.line_of(&path),
            machine: Some(label.to_string()),
            field: field.to_string(),
            message: message.into(),
        });
    }

    pub(super) fn unknown_field(&mut self, path: &str, raw: &RawManifest) {
        // serde_ignored writes `?` for each Option it went through.
        let segments: Vec<&str> = path.split('.').filter(|s| *s != "?").collect();
        let Some((name, parents)) = segments.split_last() else {
            return;
        };
        // List indices, and the names under `groups`, stand for any.
        let pattern = parents
            .iter()
            .enumerate()
            .map(|(at, s)| {
                if s.parse::<usize>().is_ok() || (at == 1 && parents[0] == "groups") {
                    "*"
                } else {
                    s
                }
            })
            .collect::<Vec<_>>()
            .join(".");
        let known = KNOWN_FIELDS
            .iter()
            .find(|(at, _)| *at == pattern)
            .map(|(_, fields)| *fields)
            .unwrap_or(&[]);
        let mut message = format!("unknown field `{name}`");
        if let Some(suggestion) = closest(name, known) {
            message.push_str(&format!(", did you mean `{suggestion}`?"));
        } else if !known.is_empty() {
            message.push_str(&format!(", expected one of: {}", known.join(", ")));
        }
        let full = segments.join(".");
        if let ["machines", index, rest @ ..] = segments.as_slice() {
            if let Ok(index) = index.parse::<usize>() {
                let label = machine_label(raw, index);
                self.machine(index, &label, &rest.join("."), message);
                return;
            }
        }
        self.top(&full, message);
    }

    fn into_error(mut self, path: &Path) -> ManifestError {
        self.list
            .sort_by_key(|problem| problem.line.unwrap_or(usize::MAX));
        ManifestError {
            path: path.to_path_buf(),
            problems: self.list,
        }
    }
}

fn closest<'a>(name: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|candidate| (strsim::jaro_winkler(name, candidate), *candidate))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, candidate)| candidate)
}

fn machine_label(raw: &RawManifest, index: usize) -> String {
    raw.machines
        .as_ref()
        .and_then(|machines| machines.get(index))
        .and_then(|machine| machine.name.clone())
        .unwrap_or_else(|| format!("#{}", index + 1))
}

fn build(raw: &RawManifest, path: &Path, dir: &Path, problems: &mut Problems) -> Option<Manifest> {
    let name = match &raw.name {
        None => {
            problems.top("name", "missing: every environment needs a name");
            None
        }
        Some(name) if !is_resource_name(name) => {
            problems.top(
                "name",
                format!("`{name}` cannot prefix resource names: {RESOURCE_NAME_RULE}"),
            );
            None
        }
        Some(name) => Some(name.clone()),
    };
    let provider = raw.provider.as_deref().and_then(|text| {
        text.parse::<ProviderKind>()
            .map_err(|err| problems.top("provider", err))
            .ok()
    });
    let network = network(raw, problems);
    let defaults = defaults(&raw.defaults, problems);
    let libvirt = libvirt_options(&raw.defaults, problems);
    let machines = machines(raw, network.as_ref(), &defaults, dir, problems);
    let provisioners = provisioners(raw, path, dir, &machines, problems);
    let groups = group_section(raw, &machines, problems);
    Some(Manifest {
        path: path.to_path_buf(),
        dir: dir.to_path_buf(),
        name: name?,
        provider,
        network: network?,
        machines,
        provisioners,
        groups,
        libvirt,
    })
}

fn network(raw: &RawManifest, problems: &mut Problems) -> Option<NetworkSpec> {
    let Some(network) = &raw.network else {
        problems.top(
            "network",
            "missing: give the environment's `subnet`, e.g. 192.168.56.0/24",
        );
        return None;
    };
    let Some(text) = &network.subnet else {
        problems.top("network.subnet", "missing: e.g. 192.168.56.0/24");
        return None;
    };
    let subnet = match text.parse::<Ipv4Network>() {
        Ok(subnet) if text.contains('/') => subnet,
        _ => {
            problems.top(
                "network.subnet",
                format!("`{text}` is not an IPv4 subnet in CIDR form, e.g. 192.168.56.0/24"),
            );
            return None;
        }
    };
    if subnet.prefix() > 29 {
        problems.top(
            "network.subnet",
            format!("{subnet} is too small: use a /29 or larger"),
        );
        return None;
    }
    if subnet.ip() != subnet.network() {
        let fixed = Ipv4Network::new(subnet.network(), subnet.prefix()).ok()?;
        problems.top(
            "network.subnet",
            format!("{subnet} has host bits set, did you mean {fixed}?"),
        );
        return None;
    }
    if let Some(why) = unusable_subnet(subnet) {
        problems.top("network.subnet", why);
        return None;
    }
    let gateway = match &network.gateway {
        None => subnet.nth(1)?,
        Some(text) => match text.parse::<Ipv4Addr>() {
            Err(_) => {
                problems.top(
                    "network.gateway",
                    format!("`{text}` is not an IPv4 address"),
                );
                return None;
            }
            Ok(gateway) => {
                if let Some(why) = unusable_host(subnet, gateway) {
                    problems.top("network.gateway", format!("{gateway} {why}"));
                    return None;
                }
                gateway
            }
        },
    };
    Some(NetworkSpec { subnet, gateway })
}

/// Why `ip` cannot be a host of `subnet`, if it cannot.
fn unusable_host(subnet: Ipv4Network, ip: Ipv4Addr) -> Option<String> {
    if !subnet.contains(ip) {
        return Some(format!("is outside the subnet {subnet}"));
    }
    if ip == subnet.network() {
        return Some(format!("is the network address of {subnet}"));
    }
    if ip == subnet.broadcast() {
        return Some(format!("is the broadcast address of {subnet}"));
    }
    None
}

struct Defaults {
    cpus: u32,
    memory_mib: u32,
    user: String,
}

fn defaults(raw: &RawDefaults, problems: &mut Problems) -> Defaults {
    let cpus = raw
        .cpus
        .and_then(|cpus| {
            check_cpus(cpus)
                .map_err(|why| problems.top("defaults.cpus", why))
                .ok()
        })
        .unwrap_or(DEFAULT_CPUS);
    let memory_mib = raw
        .memory
        .and_then(|memory| {
            check_memory(memory)
                .map_err(|why| problems.top("defaults.memory", why))
                .ok()
        })
        .unwrap_or(DEFAULT_MEMORY_MIB);
    let user = match &raw.user {
        Some(user) if !is_user_name(user) => {
            problems.top(
                "defaults.user",
                format!("`{user}` is not a valid user name"),
            );
            DEFAULT_USER.to_string()
        }
        Some(user) => user.clone(),
        None => DEFAULT_USER.to_string(),
    };
    Defaults {
        cpus,
        memory_mib,
        user,
    }
}

fn libvirt_options(raw: &RawDefaults, problems: &mut Problems) -> LibvirtOptions {
    let Some(libvirt) = &raw.libvirt else {
        return LibvirtOptions::default();
    };
    let accel = match libvirt.accel.as_deref() {
        None | Some("auto") => Accel::Auto,
        Some("kvm") => Accel::Kvm,
        Some("tcg") => Accel::Tcg,
        Some(other) => {
            problems.top(
                "defaults.libvirt.accel",
                format!("`{other}` is not one of auto, kvm, tcg"),
            );
            Accel::Auto
        }
    };
    let uri = libvirt.uri.as_ref().and_then(|uri| {
        check_libvirt_uri(uri)
            .map_err(|why| problems.top("defaults.libvirt.uri", format!("`{uri}` {why}")))
            .ok()
            .map(|()| uri.clone())
    });
    LibvirtOptions { uri, accel }
}

fn check_cpus(cpus: i64) -> Result<u32, String> {
    if (1..=MAX_CPUS).contains(&cpus) {
        return Ok(cpus as u32);
    }
    Err(format!("{cpus} cpus: give between 1 and {MAX_CPUS}"))
}

fn check_memory(memory: i64) -> Result<u32, String> {
    if (MIN_MEMORY_MIB..=MAX_MEMORY_MIB).contains(&memory) {
        return Ok(memory as u32);
    }
    Err(format!(
        "{memory} MiB: give between {MIN_MEMORY_MIB} and {MAX_MEMORY_MIB} (memory is in MiB)"
    ))
}

fn machines(
    raw: &RawManifest,
    network: Option<&NetworkSpec>,
    defaults: &Defaults,
    dir: &Path,
    problems: &mut Problems,
) -> Vec<Machine> {
    let list = raw.machines.as_deref().unwrap_or_default();
    if list.is_empty() {
        problems.top(
            "machines",
            "the environment has no machines: list at least one",
        );
        return Vec::new();
    }
    let mut seen = Seen::default();
    let mut machines = Vec::new();
    for (index, raw_machine) in list.iter().enumerate() {
        let label = machine_label(raw, index);
        let mut check = MachineCheck {
            index,
            label: &label,
            problems,
        };
        if let Some(machine) = machine(raw_machine, raw, network, defaults, dir, &mut check) {
            seen.check(&machine, &mut check);
            machines.push(machine);
        }
    }
    port_claims(&machines, list, problems);
    let names: HashSet<&str> = machines.iter().map(|m| m.name.as_str()).collect();
    for (index, machine) in machines.iter().enumerate() {
        for group in &machine.groups {
            if names.contains(group.as_str()) {
                problems.machine(
                    index,
                    &machine.name,
                    "groups",
                    format!(
                        "group `{group}` has the name of a machine; Ansible cannot tell them apart"
                    ),
                );
            }
        }
        let others = machines.iter().map(|m| Known {
            name: &m.name,
            hostname: &m.hostname,
        });
        if let Some(why) = hostname_clash(&machine.name, &machine.hostname, others) {
            problems.machine(index, &machine.name, "hostname", why);
        }
    }
    machines
}

/// A host port can be published once: the second claim is the problem.
fn port_claims(machines: &[Machine], raw: &[RawMachine], problems: &mut Problems) {
    let claims: Vec<(String, Vec<PortForward>)> = machines
        .iter()
        .map(|m| (m.name.clone(), m.forwarded_ports.clone()))
        .collect();
    for (name, index, other, forward) in ports::claimed_twice(&claims) {
        // Where the machine stands in the file, invalid machines counted.
        let position = raw
            .iter()
            .position(|m| m.name.as_deref() == Some(name))
            .unwrap_or(0);
        let whose = if other == name {
            "earlier in this list".to_string()
        } else {
            format!("by machine `{other}`")
        };
        problems.machine(
            position,
            name,
            &format!("forwarded_ports.{index}.host"),
            format!(
                "host port {}:{}/{} is already claimed {whose}",
                forward.host_ip, forward.host, forward.protocol
            ),
        );
    }
}

struct MachineCheck<'a, 'b> {
    index: usize,
    label: &'a str,
    problems: &'a mut Problems<'b>,
}

impl MachineCheck<'_, '_> {
    fn fail(&mut self, field: &str, message: impl Into<String>) {
        self.problems
            .machine(self.index, self.label, field, message);
    }
}

/// First holders of each name, IP and hostname, to report duplicates.
#[derive(Default)]
struct Seen {
    names: HashMap<String, String>,
    ips: HashMap<Ipv4Addr, String>,
    hostnames: HashMap<String, String>,
}

impl Seen {
    fn check(&mut self, machine: &Machine, check: &mut MachineCheck) {
        let name = &machine.name;
        if let Some(first) = self.names.insert(name.clone(), name.clone()) {
            check.fail("name", format!("`{first}` names two machines"));
        }
        if let Some(first) = self.ips.insert(machine.ip, name.clone()) {
            check.fail(
                "ip",
                format!("{} is already the address of machine `{first}`", machine.ip),
            );
        }
        let hostname = machine.hostname.to_ascii_lowercase();
        if let Some(first) = self.hostnames.insert(hostname, name.clone()) {
            check.fail(
                "hostname",
                format!(
                    "`{}` is already the hostname of machine `{first}`",
                    machine.hostname
                ),
            );
        }
    }
}

fn machine(
    raw: &RawMachine,
    manifest: &RawManifest,
    network: Option<&NetworkSpec>,
    defaults: &Defaults,
    dir: &Path,
    check: &mut MachineCheck,
) -> Option<Machine> {
    let name = match &raw.name {
        None => {
            check.fail("name", "missing: every machine needs a name");
            None
        }
        Some(name) if !is_resource_name(name) => {
            check.fail(
                "name",
                format!("`{name}` cannot name a machine: {RESOURCE_NAME_RULE}"),
            );
            None
        }
        Some(name) => match reserved_machine_name(name) {
            Some(why) => {
                check.fail("name", why);
                None
            }
            None => Some(name.clone()),
        },
    };
    let ip = machine_ip(raw, network, check);
    let hostname = match (&raw.hostname, &name) {
        (Some(hostname), _) if !is_hostname(hostname) => {
            check.fail("hostname", format!("`{hostname}` is not a valid hostname (RFC 1123: labels of letters, digits and dashes, separated by dots)"));
            None
        }
        (Some(hostname), _) => Some(hostname.clone()),
        (None, name) => name.clone(),
    };
    let cpus = match raw.cpus {
        None => Some(defaults.cpus),
        Some(cpus) => check_cpus(cpus).map_err(|why| check.fail("cpus", why)).ok(),
    };
    let memory_mib = match raw.memory {
        None => Some(defaults.memory_mib),
        Some(memory) => check_memory(memory)
            .map_err(|why| check.fail("memory", why))
            .ok(),
    };
    let groups = groups(raw, check);
    let vars = vars(&raw.vars, check);
    let docker = docker_image(
        raw.docker.as_ref(),
        manifest.defaults.docker.as_ref(),
        dir,
        check,
    );
    let docker_init = docker.as_ref().and_then(|image| {
        docker_init(
            raw.docker.as_ref(),
            manifest.defaults.docker.as_ref(),
            image,
            check,
        )
    });
    let forwarded_ports = forwarded_ports(raw, manifest, check);
    let synced_folders = synced_folders(raw, manifest, dir, check);
    let libvirt_box = raw
        .libvirt
        .as_ref()
        .and_then(|libvirt| libvirt.box_name.clone())
        .or_else(|| {
            manifest
                .defaults
                .libvirt
                .as_ref()
                .and_then(|l| l.box_name.clone())
        });
    let virtualbox_box = raw
        .virtualbox
        .as_ref()
        .and_then(|virtualbox| virtualbox.box_name.clone())
        .or_else(|| {
            manifest
                .defaults
                .virtualbox
                .as_ref()
                .and_then(|v| v.box_name.clone())
        });
    Some(Machine {
        name: name?,
        hostname: hostname?,
        ip: ip?,
        cpus: cpus?,
        memory_mib: memory_mib?,
        user: defaults.user.clone(),
        groups: groups?,
        vars: vars?,
        docker: docker?,
        docker_init: docker_init?,
        forwarded_ports: forwarded_ports?,
        synced_folders: synced_folders?,
        libvirt_box,
        virtualbox_box,
    })
}

/// The machine's `forwarded_ports`, else the default list: a machine's list replaces
/// the default one, as `synced_folders` and Vagrant's own lists do.
fn forwarded_ports(
    raw: &RawMachine,
    manifest: &RawManifest,
    check: &mut MachineCheck,
) -> Option<Vec<PortForward>> {
    let (list, field) = match (&raw.forwarded_ports, &manifest.defaults.forwarded_ports) {
        (Some(list), _) => (list, "forwarded_ports"),
        (None, Some(list)) => (list, "defaults.forwarded_ports"),
        (None, None) => return Some(Vec::new()),
    };
    match ports::check(list) {
        Ok(forwards) => Some(forwards),
        Err(problems) => {
            for (index, name, why) in problems {
                check.fail(&format!("{field}.{index}.{name}"), why);
            }
            None
        }
    }
}

/// The machine's `synced_folders`, else the default list, else the project's folder at
/// `/vagrant`: a machine's list replaces the default one.
fn synced_folders(
    raw: &RawMachine,
    manifest: &RawManifest,
    dir: &Path,
    check: &mut MachineCheck,
) -> Option<Vec<SyncedFolder>> {
    let (list, field) = match (&raw.synced_folders, &manifest.defaults.synced_folders) {
        (Some(list), _) => (list, "synced_folders"),
        (None, Some(list)) => (list, "defaults.synced_folders"),
        (None, None) => return Some(folders::default_folders(dir)),
    };
    match folders::check(list, dir) {
        Ok(list) => Some(list),
        Err(problems) => {
            for (index, name, why) in problems {
                check.fail(&format!("{field}.{index}.{name}"), why);
            }
            None
        }
    }
}

fn machine_ip(
    raw: &RawMachine,
    network: Option<&NetworkSpec>,
    check: &mut MachineCheck,
) -> Option<Ipv4Addr> {
    let Some(text) = &raw.ip else {
        check.fail(
            "ip",
            "missing: every machine needs a static IP inside the subnet",
        );
        return None;
    };
    let Ok(ip) = text.parse::<Ipv4Addr>() else {
        check.fail("ip", format!("`{text}` is not an IPv4 address"));
        return None;
    };
    let network = network?;
    if let Some(why) = unusable_host(network.subnet, ip) {
        check.fail("ip", format!("{ip} {why}"));
        return None;
    }
    if ip == network.gateway {
        check.fail("ip", format!("{ip} is the network's gateway"));
        return None;
    }
    Some(ip)
}

fn groups(raw: &RawMachine, check: &mut MachineCheck) -> Option<Vec<String>> {
    let mut ok = true;
    for group in &raw.groups {
        if !is_identifier(group) {
            check.fail("groups", format!("`{group}` is not a valid Ansible group name: use letters, digits and underscores, not starting with a digit"));
            ok = false;
        } else if let Some(why) = reserved_group(group) {
            check.fail("groups", why);
            ok = false;
        }
    }
    let mut groups = raw.groups.clone();
    groups.sort();
    groups.dedup();
    ok.then_some(groups)
}

/// A machine's vars, which go into the inventory: none of envctl's connection vars, and
/// no template, which the line-format inventory could not mark as data.
fn vars(
    raw: &BTreeMap<String, serde_yaml::Value>,
    check: &mut MachineCheck,
) -> Option<BTreeMap<String, serde_json::Value>> {
    let vars = to_json_vars(raw)
        .map_err(|(field, why)| check.fail(&format!("vars.{field}"), why))
        .ok()?;
    let mut ok = true;
    for (name, value) in &vars {
        if let Some(why) = template_in(value) {
            check.fail(&format!("vars.{name}"), why);
            ok = false;
        }
    }
    ok.then_some(vars)
}

/// Ansible variables as JSON values, which both inventory formats can carry.
pub(super) fn to_json_vars(
    raw: &BTreeMap<String, serde_yaml::Value>,
) -> Result<BTreeMap<String, serde_json::Value>, (String, String)> {
    let mut vars = BTreeMap::new();
    for (name, value) in raw {
        if !is_identifier(name) {
            return Err((name.clone(), format!("`{name}` is not a valid variable name: use letters, digits and underscores, not starting with a digit")));
        }
        if let Some(why) = reserved_var(name) {
            return Err((name.clone(), why));
        }
        let value = serde_json::to_value(value)
            .map_err(|err| (name.clone(), format!("cannot be given to Ansible: {err}")))?;
        vars.insert(name.clone(), value);
    }
    Ok(vars)
}

/// The machine's image: what its own `docker` names, else what `defaults.docker` names,
/// else envctl's recipe. `init` is merged on its own (see [`docker_init`]), so a machine
/// can change its init and keep the default image, or the other way round.
fn docker_image(
    own: Option<&RawDocker>,
    defaults: Option<&RawDocker>,
    dir: &Path,
    check: &mut MachineCheck,
) -> Option<DockerImage> {
    let names_image = |raw: &&RawDocker| raw.image.is_some() || raw.build.is_some();
    let (raw, field) = match (own.filter(names_image), defaults.filter(names_image)) {
        (Some(raw), _) => (raw, "docker"),
        (None, Some(raw)) => (raw, "defaults.docker"),
        (None, None) => return Some(DockerImage::DefaultRecipe),
    };
    match (&raw.image, &raw.build) {
        (Some(_), Some(_)) => {
            check.fail(field, "give either `image` or `build`, not both");
            None
        }
        (Some(image), None) if image.trim().is_empty() => {
            check.fail(&format!("{field}.image"), "is empty");
            None
        }
        (Some(image), None) if !is_image_reference(image) => {
            check.fail(
                &format!("{field}.image"),
                format!("`{}` is not valid: {IMAGE_RULE}", image.escape_debug()),
            );
            None
        }
        (Some(image), None) => Some(DockerImage::Image(image.clone())),
        (None, Some(build)) => {
            let folder = dir.join(build);
            if !folder.join("Dockerfile").is_file() {
                check.fail(
                    &format!("{field}.build"),
                    format!("{} holds no Dockerfile", folder.display()),
                );
                return None;
            }
            Some(DockerImage::Build(folder))
        }
        (None, None) => Some(DockerImage::DefaultRecipe),
    }
}

/// What a container runs as PID 1: the machine's `docker.init`, else the default's, else
/// systemd for envctl's own recipe (which has it) and `sshd` for a user's image, which
/// may not. Whether a user's image really has systemd is the backend's check, made
/// before anything is created.
fn docker_init(
    own: Option<&RawDocker>,
    defaults: Option<&RawDocker>,
    image: &DockerImage,
    check: &mut MachineCheck,
) -> Option<Init> {
    let (text, field) = match (
        own.and_then(|raw| raw.init.as_ref()),
        defaults.and_then(|raw| raw.init.as_ref()),
    ) {
        (Some(text), _) => (text, "docker.init"),
        (None, Some(text)) => (text, "defaults.docker.init"),
        (None, None) if *image == DockerImage::DefaultRecipe => return Some(Init::Systemd),
        (None, None) => return Some(Init::Sshd),
    };
    match text.as_str() {
        "systemd" => Some(Init::Systemd),
        "sshd" => Some(Init::Sshd),
        other => {
            check.fail(
                field,
                format!("`{other}` is not an init envctl knows: use `systemd` (services, as in a VM) or `sshd` (sshd alone)"),
            );
            None
        }
    }
}

/// Ansible's options, from the mapping form of `provision` or an `ansible` entry; `at` is
/// where they stand (`provision`, `provision.2.ansible`).
pub(super) fn provision(
    raw: &RawProvision,
    path: &Path,
    dir: &Path,
    at: &str,
    problems: &mut Problems,
) -> Option<Provision> {
    let playbook = match &raw.playbook {
        None => {
            problems.top(
                &format!("{at}.playbook"),
                "missing: name the playbook to run",
            );
            None
        }
        Some(playbook) => {
            let path = dir.join(playbook);
            if path.is_file() {
                Some(path)
            } else if path.is_dir() {
                problems.top(
                    &format!("{at}.playbook"),
                    format!(
                        "{} is a folder: name the playbook file in it",
                        path.display()
                    ),
                );
                None
            } else {
                problems.top(
                    &format!("{at}.playbook"),
                    format!("{} does not exist", path.display()),
                );
                None
            }
        }
    };
    let extra_vars = to_json_vars(&raw.extra_vars)
        .map_err(|(field, why)| problems.top(&format!("{at}.extra_vars.{field}"), why))
        .ok();
    for (field, tags) in [("tags", &raw.tags), ("skip_tags", &raw.skip_tags)] {
        for (index, tag) in tags.iter().enumerate() {
            if tag.trim().is_empty() || tag.contains(',') {
                problems.top(
                    &format!("{at}.{field}.{index}"),
                    format!("`{tag}` is not a tag: give one tag per list item"),
                );
            }
        }
    }
    let mut file_field = |field: &str, value: &Option<String>| -> Option<Option<PathBuf>> {
        let Some(relative) = value else {
            return Some(None);
        };
        let path = dir.join(relative);
        if path.is_file() {
            return Some(Some(path));
        }
        let why = if path.is_dir() {
            "is a folder: name a file"
        } else {
            "does not exist"
        };
        problems.top(
            &format!("{at}.{field}"),
            format!("{} {why}", path.display()),
        );
        None
    };
    let vault_password_file = file_field("vault_password_file", &raw.vault_password_file);
    let config_file = file_field("config_file", &raw.config_file);
    let galaxy_role_file = file_field("galaxy_role_file", &raw.galaxy_role_file);
    let verbose = match &raw.verbose {
        None | Some(serde_yaml::Value::Bool(false)) => Some(None),
        Some(serde_yaml::Value::Bool(true)) => Some(Some("-v".to_string())),
        Some(serde_yaml::Value::String(text))
            if (1..=4).contains(&text.trim_start_matches('-').len())
                && text.trim_start_matches('-').chars().all(|c| c == 'v') =>
        {
            Some(Some(format!("-{}", text.trim_start_matches('-'))))
        }
        Some(_) => {
            problems.top(&format!("{at}.verbose"), "give true, or v, vv, vvv or vvvv");
            None
        }
    };
    let inventory_path = raw.inventory_path.as_ref().and_then(|wanted| {
        check_inventory_path(path, playbook.as_deref(), Path::new(wanted))
            .map_err(|why| problems.top(&format!("{at}.inventory_path"), why))
            .ok()
    });
    Some(Provision {
        playbook: playbook?,
        extra_vars: extra_vars?,
        limit: raw.limit.clone(),
        tags: raw.tags.clone(),
        ansible_args: raw.ansible_args.clone(),
        inventory_path: if raw.inventory_path.is_some() {
            Some(inventory_path?)
        } else {
            None
        },
        skip_tags: raw.skip_tags.clone(),
        vault_password_file: vault_password_file?,
        config_file: config_file?,
        verbose: verbose?,
        galaxy_role_file: galaxy_role_file?,
    })
}

pub(super) fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn is_user_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
        && name.len() <= 32
}

/// RFC 1123 host names: dot-separated labels of letters, digits and inner dashes.
fn is_hostname(name: &str) -> bool {
    name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}
