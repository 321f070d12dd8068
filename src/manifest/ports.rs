//! `forwarded_ports`: a guest's port published on the host, as Vagrant's
//! `config.vm.network "forwarded_port"`. A machine's list replaces the default one.
//! Each entry is checked alone here; two machines claiming one host port is
//! [`claimed_twice`]'s to find, once every machine is known.

use std::net::Ipv4Addr;

use envctl_provider::{PortForward, Protocol};
use serde::Deserialize;

/// One entry as written.
#[derive(Debug, Default, Deserialize)]
pub struct RawForward {
    pub guest: Option<i64>,
    pub host: Option<i64>,
    pub host_ip: Option<String>,
    pub protocol: Option<String>,
    pub auto_correct: Option<bool>,
}

pub const FIELDS: &[&str] = &["guest", "host", "host_ip", "protocol", "auto_correct"];

/// Where a guest's port is published when the Machinefile names no address: this host
/// alone, as Vagrant does.
const DEFAULT_HOST_IP: Ipv4Addr = Ipv4Addr::LOCALHOST;

/// The entries of one list, or the problems of each: (index in the list, field, why).
pub fn check(raw: &[RawForward]) -> Result<Vec<PortForward>, Vec<(usize, &'static str, String)>> {
    let mut forwards = Vec::new();
    let mut problems = Vec::new();
    for (index, entry) in raw.iter().enumerate() {
        match check_one(entry) {
            Ok(forward) => forwards.push(forward),
            Err((field, why)) => problems.push((index, field, why)),
        }
    }
    if problems.is_empty() {
        Ok(forwards)
    } else {
        Err(problems)
    }
}

fn check_one(raw: &RawForward) -> Result<PortForward, (&'static str, String)> {
    let guest = port(raw.guest).map_err(|why| ("guest", why))?;
    let host = port(raw.host).map_err(|why| ("host", why))?;
    let host_ip = match &raw.host_ip {
        None => DEFAULT_HOST_IP,
        Some(text) => text.parse::<Ipv4Addr>().map_err(|_| {
            (
                "host_ip",
                format!("`{text}` is not an IPv4 address of this host"),
            )
        })?,
    };
    let protocol = match raw.protocol.as_deref() {
        None | Some("tcp") => Protocol::Tcp,
        Some("udp") => Protocol::Udp,
        Some(other) => return Err(("protocol", format!("`{other}` is not tcp or udp"))),
    };
    Ok(PortForward {
        guest,
        host,
        host_ip,
        protocol,
        auto_correct: raw.auto_correct.unwrap_or(false),
    })
}

fn port(value: Option<i64>) -> Result<u16, String> {
    match value {
        None => Err("missing: give a port from 1 to 65535".to_string()),
        Some(port) => u16::try_from(port)
            .ok()
            .filter(|port| *port > 0)
            .ok_or_else(|| format!("{port} is not a port: give one from 1 to 65535")),
    }
}

/// Whether `a` and `b` would take the same port of the host: the same port and protocol
/// on the same address, or on any address where one of them listens on all (0.0.0.0).
pub fn overlap(a: &PortForward, b: &PortForward) -> bool {
    a.host == b.host
        && a.protocol == b.protocol
        && (a.host_ip == b.host_ip || a.host_ip.is_unspecified() || b.host_ip.is_unspecified())
}

/// A host port claimed again: the machine, its entry's index, the machine that claimed
/// it first (maybe itself), and the entry.
pub type SecondClaim<'a> = (&'a str, usize, &'a str, PortForward);

/// Every host port claimed a second time. A machine's own list is checked the same way,
/// against itself. Entries with `auto_correct` claim nothing: `up` moves them off any port
/// taken, by the Machinefile or by another program.
pub fn claimed_twice(machines: &[(String, Vec<PortForward>)]) -> Vec<SecondClaim<'_>> {
    let mut clashes = Vec::new();
    for (i, (name, forwards)) in machines.iter().enumerate() {
        for (index, forward) in forwards.iter().enumerate() {
            if forward.auto_correct {
                continue;
            }
            let earlier = machines[..=i].iter().find_map(|(other, theirs)| {
                let upto = if other == name { index } else { theirs.len() };
                theirs[..upto]
                    .iter()
                    .any(|claimed| !claimed.auto_correct && overlap(claimed, forward))
                    .then_some(other.as_str())
            });
            if let Some(other) = earlier {
                clashes.push((name.as_str(), index, other, *forward));
            }
        }
    }
    clashes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(guest: i64, host: i64, host_ip: Option<&str>, protocol: Option<&str>) -> RawForward {
        RawForward {
            guest: Some(guest),
            host: Some(host),
            host_ip: host_ip.map(String::from),
            protocol: protocol.map(String::from),
            auto_correct: None,
        }
    }

    #[test]
    fn entries_are_checked_one_by_one() {
        type Want = Result<(u16, u16, &'static str, Protocol), (&'static str, &'static str)>;
        let cases: [(RawForward, Want); 6] = [
            (
                raw(80, 8080, None, None),
                Ok((80, 8080, "127.0.0.1", Protocol::Tcp)),
            ),
            (
                raw(53, 5353, Some("0.0.0.0"), Some("udp")),
                Ok((53, 5353, "0.0.0.0", Protocol::Udp)),
            ),
            (raw(0, 8080, None, None), Err(("guest", "0 is not a port"))),
            (
                raw(80, 70000, None, None),
                Err(("host", "70000 is not a port")),
            ),
            (
                raw(80, 8080, Some("localhost"), None),
                Err(("host_ip", "not an IPv4")),
            ),
            (
                raw(80, 8080, None, Some("sctp")),
                Err(("protocol", "not tcp or udp")),
            ),
        ];
        for (entry, want) in cases {
            match (check_one(&entry), want) {
                (Ok(got), Ok((guest, host, ip, protocol))) => {
                    assert_eq!(got.guest, guest);
                    assert_eq!(got.host, host);
                    assert_eq!(got.host_ip.to_string(), ip);
                    assert_eq!(got.protocol, protocol);
                }
                (Err((field, why)), Err((want_field, want_why))) => {
                    assert_eq!(field, want_field);
                    assert!(why.contains(want_why), "{why}");
                }
                (got, want) => panic!("{got:?} but wanted {want:?}"),
            }
        }
    }

    #[test]
    fn one_host_port_is_claimed_once() {
        let forward = |host, ip: &str| PortForward {
            guest: 80,
            host,
            host_ip: ip.parse().unwrap(),
            protocol: Protocol::Tcp,
            auto_correct: false,
        };
        let movable = |host, ip: &str| PortForward {
            auto_correct: true,
            ..forward(host, ip)
        };
        let machines = vec![
            ("web1".to_string(), vec![forward(8080, "127.0.0.1")]),
            (
                "web2".to_string(),
                vec![forward(8081, "127.0.0.1"), forward(8080, "0.0.0.0")],
            ),
            (
                "db1".to_string(),
                vec![forward(9000, "127.0.0.1"), forward(9000, "127.0.0.1")],
            ),
            ("ok".to_string(), vec![forward(8081, "127.0.0.2")]),
            // Moved by `up` if need be: neither claims nor clashes.
            (
                "auto".to_string(),
                vec![movable(8080, "127.0.0.1"), movable(8080, "127.0.0.1")],
            ),
        ];
        let clashes: Vec<(&str, usize, &str)> = claimed_twice(&machines)
            .into_iter()
            .map(|(name, index, other, _)| (name, index, other))
            .collect();
        assert_eq!(clashes, [("web2", 1, "web1"), ("db1", 1, "db1")]);
    }
}
