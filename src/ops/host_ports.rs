//! Forwarded ports, settled before anything is made: the chosen provider must be able to
//! publish them, and each host port must be free, unless the machine already holds it.
//! A port taken by another program names that program where the host can tell; with
//! `auto_correct` a free one from [`USABLE_PORTS`] takes its place instead, and the state
//! keeps that choice for every later `up`.

use std::collections::BTreeMap;
use std::fs;
use std::net::{SocketAddrV4, TcpListener, UdpSocket};
use std::ops::RangeInclusive;

use anyhow::Result;
use envctl_provider::{PortForward, Protocol, ProviderKind};

use crate::manifest::{ports::overlap, Machine};
use crate::state::{MachineRecord, State};

use super::Workspace;

/// Where `auto_correct` looks for a free host port: Vagrant's `usable_port_range`.
pub const USABLE_PORTS: RangeInclusive<u16> = 2200..=2250;

/// Fails with a Machinefile problem (exit 2) per forwarded port that `kind` cannot publish
/// or that another program holds. Machines the state records hold their ports already.
pub fn check(
    ws: &Workspace,
    kind: ProviderKind,
    machines: &[&Machine],
    state: &State,
) -> Result<()> {
    settle(ws, kind, machines, state).map(drop)
}

/// The forwards each of `machines` gets under `kind`, in their order: the Machinefile's,
/// with the host port of each `auto_correct` entry that the state records as moved, or
/// that is taken now, replaced by a free one. Fails as [`check`] does.
pub fn settle(
    ws: &Workspace,
    kind: ProviderKind,
    machines: &[&Machine],
    state: &State,
) -> Result<Vec<Vec<PortForward>>> {
    // What the environment's machines hold or will surely hold, each with its owner
    // (machine, entry): an auto-corrected port must land on none of them.
    let mut claimed: Vec<((&str, usize), PortForward)> = ws
        .manifest
        .machines
        .iter()
        .flat_map(|machine| {
            let record = state.machines.get(&machine.name);
            in_effect(machine, record)
                .into_iter()
                .enumerate()
                .filter(move |(_, forward)| record.is_some() || !forward.auto_correct)
                .map(|(index, forward)| ((machine.name.as_str(), index), forward))
        })
        .collect();
    let mut found = Vec::new();
    let mut settled = Vec::new();
    for machine in machines {
        let record = state.machines.get(&machine.name);
        let mut forwards = Vec::new();
        for (index, forward) in in_effect(machine, record).into_iter().enumerate() {
            let capabilities = kind.capabilities();
            let unsupported = if !capabilities.forwarded_ports {
                Some(format!(
                    "the {kind} provider cannot forward ports yet; run this machine under docker or remove the entry"
                ))
            } else if forward.protocol == Protocol::Udp && !capabilities.forwarded_udp {
                Some(format!(
                    "the {kind} provider forwards tcp ports only; use `protocol: tcp` or run this machine under docker"
                ))
            } else {
                None
            };
            if let Some(why) = unsupported {
                found.push((
                    machine.name.as_str(),
                    format!("forwarded_ports.{index}"),
                    why,
                ));
                continue;
            }
            // A machine the state records holds its ports (or had them while it ran), as
            // before auto_correct: its entries are not checked again.
            if record.is_some() {
                forwards.push(forward);
                continue;
            }
            let owner = (machine.name.as_str(), index);
            let clash = claimed
                .iter()
                .any(|(whose, other)| *whose != owner && overlap(other, &forward));
            let why = match (clash, taken(&forward)) {
                (false, None) => {
                    if forward.auto_correct {
                        claimed.push((owner, forward));
                    }
                    forwards.push(forward);
                    continue;
                }
                (_, Some(why)) => why,
                (true, None) => format!(
                    "host port {}:{}/{} is claimed by another machine",
                    forward.host_ip, forward.host, forward.protocol
                ),
            };
            if !forward.auto_correct {
                found.push((
                    machine.name.as_str(),
                    format!("forwarded_ports.{index}.host"),
                    why,
                ));
                continue;
            }
            match free_port(&forward, &claimed) {
                Some(moved) => {
                    claimed.push((owner, moved));
                    forwards.push(moved);
                }
                None => found.push((
                    machine.name.as_str(),
                    format!("forwarded_ports.{index}.host"),
                    format!(
                        "{why}, and auto_correct found no free port from {} to {}",
                        USABLE_PORTS.start(),
                        USABLE_PORTS.end()
                    ),
                )),
            }
        }
        settled.push(forwards);
    }
    if found.is_empty() {
        return Ok(settled);
    }
    Err(ws.manifest.machine_problems(found).into())
}

/// `machine`'s forwards as they stand: the Machinefile's, with the host ports `up` moved
/// (recorded in `record`) in place of the ones asked for.
pub fn in_effect(machine: &Machine, record: Option<&MachineRecord>) -> Vec<PortForward> {
    let moved = record.map(|record| &record.moved_ports);
    machine
        .forwarded_ports
        .iter()
        .map(|forward| {
            let host = moved
                .and_then(|moved| moved.get(&asked_key(forward)))
                .copied()
                .unwrap_or(forward.host);
            PortForward { host, ..*forward }
        })
        .collect()
}

/// The state's record of the host ports `up` moved: each asked-for forward's key, with
/// the port it got.
pub fn moved_ports(asked: &[PortForward], settled: &[PortForward]) -> BTreeMap<String, u16> {
    asked
        .iter()
        .zip(settled)
        .filter(|(asked, settled)| asked.host != settled.host)
        .map(|(asked, settled)| (asked_key(asked), settled.host))
        .collect()
}

/// How the state names a Machinefile entry: what it asked for on the host, and the guest
/// port, which an edit to the entry changes (and with it the choice made for it).
fn asked_key(forward: &PortForward) -> String {
    format!(
        "{}:{}/{}->{}",
        forward.host_ip, forward.host, forward.protocol, forward.guest
    )
}

/// The first port of [`USABLE_PORTS`] that nothing on the host holds and no other forward
/// of the environment claims.
fn free_port(
    forward: &PortForward,
    claimed: &[((&str, usize), PortForward)],
) -> Option<PortForward> {
    USABLE_PORTS
        .map(|host| PortForward { host, ..*forward })
        .find(|candidate| {
            !claimed.iter().any(|(_, other)| overlap(other, candidate))
                && taken(candidate).is_none()
        })
}

/// Why `forward`'s host port cannot be had, if it cannot.
fn taken(forward: &PortForward) -> Option<String> {
    let address = SocketAddrV4::new(forward.host_ip, forward.host);
    let bound = match forward.protocol {
        Protocol::Tcp => TcpListener::bind(address).map(drop),
        Protocol::Udp => UdpSocket::bind(address).map(drop),
    };
    let err = bound.err()?;
    let holder = holder(forward)
        .map(|holder| format!(" by {holder}"))
        .unwrap_or_default();
    Some(format!(
        "host port {address}/{} is in use{holder} ({err})",
        forward.protocol
    ))
}

/// The program listening on `forward`'s host port, from /proc: the socket's inode in
/// /proc/net/{tcp,udp}, then the process holding that inode. None where /proc cannot tell
/// (another user's process, another network namespace).
fn holder(forward: &PortForward) -> Option<String> {
    let table = match forward.protocol {
        Protocol::Tcp => "/proc/net/tcp",
        Protocol::Udp => "/proc/net/udp",
    };
    let inode = fs::read_to_string(table)
        .ok()?
        .lines()
        .skip(1)
        .find_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let port = fields.get(1)?.rsplit_once(':')?.1;
            let listening = forward.protocol == Protocol::Udp || fields.get(3) == Some(&"0A");
            (u16::from_str_radix(port, 16).ok()? == forward.host && listening)
                .then(|| fields.get(9).map(|inode| inode.to_string()))
                .flatten()
        })?;
    let socket = format!("socket:[{inode}]");
    for process in fs::read_dir("/proc").ok()?.flatten() {
        let pid = process.file_name().to_string_lossy().into_owned();
        // Processes only: not `self` and `thread-self`, which stand for one of them.
        if !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(fds) = fs::read_dir(process.path().join("fd")) else {
            continue;
        };
        let holds = fds.flatten().any(|fd| {
            fs::read_link(fd.path()).is_ok_and(|target| target.as_os_str() == socket.as_str())
        });
        if holds {
            let name = fs::read_to_string(process.path().join("comm")).unwrap_or_default();
            return Some(format!("{} (pid {pid})", name.trim()));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A workspace over `machines` (YAML list items) in a folder of its own.
    fn workspace(machines: &str) -> (Workspace, std::path::PathBuf) {
        let root = std::env::temp_dir().join(format!("envctl-ports-{}", crate::keys::random_id()));
        fs::create_dir_all(&root).unwrap();
        let machinefile = root.join("Machinefile");
        fs::write(
            &machinefile,
            format!("name: ports\nnetwork: {{subnet: 10.99.0.0/24}}\nmachines:\n{machines}"),
        )
        .unwrap();
        (Workspace::load(Some(&machinefile)).unwrap(), root)
    }

    fn settled_hosts(ws: &Workspace, kind: ProviderKind, state: &State) -> Result<Vec<Vec<u16>>> {
        let machines: Vec<&Machine> = ws.manifest.machines.iter().collect();
        let settled = settle(ws, kind, &machines, state)?;
        Ok(settled
            .iter()
            .map(|forwards| forwards.iter().map(|f| f.host).collect())
            .collect())
    }

    /// auto_correct moves a port another program holds, and the second of two entries
    /// that ask for one port, into 2200-2250; a recorded move is kept; a fixed entry on a
    /// taken port is refused; libvirt's tunnels refuse udp.
    #[test]
    fn auto_correct_moves_taken_ports_and_keeps_its_choice() {
        let held = TcpListener::bind("127.0.0.1:0").unwrap();
        let busy = held.local_addr().unwrap().port();
        let free = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let (ws, root) = workspace(&format!(
            "  - {{name: a, ip: 10.99.0.11, forwarded_ports: [{{guest: 80, host: {busy}, auto_correct: true}}, \
             {{guest: 81, host: {free}, auto_correct: true}}]}}\n  \
             - {{name: b, ip: 10.99.0.12, forwarded_ports: [{{guest: 80, host: {free}, auto_correct: true}}]}}\n"
        ));
        let hosts = settled_hosts(&ws, ProviderKind::Docker, &State::default()).unwrap();
        let (moved_a, moved_b) = (hosts[0][0], hosts[1][0]);
        assert!(USABLE_PORTS.contains(&moved_a), "{hosts:?}");
        assert_eq!(hosts[0][1], free, "the first claim keeps a free port");
        assert!(
            USABLE_PORTS.contains(&moved_b) && moved_b != moved_a,
            "{hosts:?}"
        );

        // Once recorded, the choice holds, even where the asked port is free again.
        let mut state = State::default();
        let asked = &ws.manifest.machines[0].forwarded_ports;
        let mut settled = asked.clone();
        settled[0].host = 2249;
        state.machines.insert(
            "a".into(),
            MachineRecord {
                moved_ports: moved_ports(asked, &settled),
                ..Default::default()
            },
        );
        drop(held);
        let hosts = settled_hosts(&ws, ProviderKind::Docker, &state).unwrap();
        assert_eq!(hosts[0], [2249, free]);
        assert!(USABLE_PORTS.contains(&hosts[1][0]), "{hosts:?}");

        // Without auto_correct: refused, naming the field.
        let held = TcpListener::bind(("127.0.0.1", busy)).unwrap();
        let (fixed, fixed_root) = workspace(&format!(
            "  - {{name: a, ip: 10.99.0.11, forwarded_ports: [{{guest: 80, host: {busy}}}, \
             {{guest: 53, host: {free}, protocol: udp}}]}}\n"
        ));
        let err = settled_hosts(&fixed, ProviderKind::Docker, &State::default()).unwrap_err();
        let text = format!("{err:#}");
        assert!(
            text.contains("field `forwarded_ports.0.host`") && text.contains("in use"),
            "{text}"
        );
        let err = settled_hosts(&fixed, ProviderKind::Libvirt, &State::default()).unwrap_err();
        let text = format!("{err:#}");
        assert!(
            text.contains("field `forwarded_ports.1`") && text.contains("tcp ports only"),
            "{text}"
        );
        drop(held);
        for dir in [root, fixed_root] {
            fs::remove_dir_all(dir).unwrap();
        }
    }

    /// A port this test holds is refused, naming this very process.
    #[test]
    fn a_port_in_use_is_named_with_its_holder() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let forward = PortForward {
            guest: 80,
            host: port,
            host_ip: "127.0.0.1".parse().unwrap(),
            protocol: Protocol::Tcp,
            auto_correct: false,
        };
        let why = taken(&forward).expect("in use");
        let pid = std::process::id().to_string();
        assert!(
            why.contains(&format!("127.0.0.1:{port}/tcp is in use by ")),
            "{why}"
        );
        assert!(why.contains(&format!("(pid {pid})")), "{why}");
        drop(listener);
        assert_eq!(taken(&forward), None);
    }
}
