//! Forwarded ports, checked before anything is made: the chosen provider must be able to
//! publish them, and each host port must be free, unless the machine already holds it.
//! A port taken by another program names that program where the host can tell.

use std::fs;
use std::net::{SocketAddrV4, TcpListener, UdpSocket};

use anyhow::Result;
use envctl_provider::{PortForward, Protocol, ProviderKind};

use crate::manifest::Machine;
use crate::state::State;

use super::Workspace;

/// Fails with a Machinefile problem (exit 2) per forwarded port that `kind` cannot publish
/// or that another program holds. Machines the state records hold their ports already.
pub fn check(
    ws: &Workspace,
    kind: ProviderKind,
    machines: &[&Machine],
    state: &State,
) -> Result<()> {
    let mut found = Vec::new();
    for machine in machines {
        for (index, forward) in machine.forwarded_ports.iter().enumerate() {
            let field = format!("forwarded_ports.{index}.host");
            if !kind.capabilities().forwarded_ports {
                found.push((
                    machine.name.as_str(),
                    format!("forwarded_ports.{index}"),
                    format!("the {kind} provider cannot forward ports yet; run this machine under docker or remove the entry"),
                ));
            } else if !state.machines.contains_key(&machine.name) {
                if let Some(why) = taken(forward) {
                    found.push((machine.name.as_str(), field, why));
                }
            }
        }
    }
    if found.is_empty() {
        return Ok(());
    }
    Err(ws.manifest.machine_problems(found).into())
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
