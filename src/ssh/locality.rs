//! Whether a connection to a machine stays inside this host's kernel, which decides its key
//! exchange (`options`).
//!
//! OpenSSH 9 prefers a post-quantum hybrid key exchange (sntrup761x25519), which keeps
//! recorded traffic safe from a future quantum computer. It costs about 90 ms of CPU per
//! login here, a third of a login to a container, paid by every readiness check and every
//! fresh Ansible connection. Traffic to a container on a local engine's bridge, a VM on a
//! local libvirt network, or a port forwarded on 127.0.0.1 never reaches a wire: recording
//! it takes root on this host, which reads `.envctl/`'s private key anyway. Only such
//! connections put curve25519 first (with every default algorithm still offered after it).

use std::net::Ipv4Addr;
use std::path::Path;

/// The key exchanges a host-local connection prefers, put ahead of ssh's default list.
pub const HOST_LOCAL_KEX: &str = "KexAlgorithms=^curve25519-sha256,curve25519-sha256@libssh.org";

/// Whether traffic to `host` stays on this host: a loopback address, or one on a bridge of
/// this host whose every port is a virtual device (a container's veth, a VM's tap). A name,
/// an IPv6 address, a routed address or a bridge with a physical port all say no.
pub fn stays_on_this_host(host: &str) -> bool {
    let Ok(ip) = host.parse::<Ipv4Addr>() else {
        return false;
    };
    if ip.is_loopback() {
        return true;
    }
    let Ok(routes) = std::fs::read_to_string("/proc/net/route") else {
        return false;
    };
    on_link_interface(&routes, ip)
        .is_some_and(|iface| bridge_has_only_virtual_ports(Path::new("/sys/class/net"), &iface))
}

/// The interface of the most specific on-link route (no gateway) to `ip`, from the text
/// of `/proc/net/route` (addresses in hex, in the kernel's byte order, little-endian here).
fn on_link_interface(routes: &str, ip: Ipv4Addr) -> Option<String> {
    let ip = u32::from_ne_bytes(ip.octets());
    routes
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let hex = |i: usize| u32::from_str_radix(fields.get(i)?, 16).ok();
            let (destination, gateway, flags, mask) = (hex(1)?, hex(2)?, hex(3)?, hex(7)?);
            const RTF_UP: u32 = 0x1;
            let on_link = gateway == 0 && flags & RTF_UP != 0 && mask != 0;
            (on_link && ip & mask == destination).then(|| (mask.count_ones(), fields[0]))
        })
        .max_by_key(|(prefix, _)| *prefix)
        .map(|(_, iface)| iface.to_string())
}

/// Whether `iface` (under `sys`, i.e. `/sys/class/net`) is a bridge none of whose ports is
/// backed by a device: a physical NIC has a `device` link, a veth or tap has none.
fn bridge_has_only_virtual_ports(sys: &Path, iface: &str) -> bool {
    let bridge = sys.join(iface);
    if !bridge.join("bridge").is_dir() {
        return false;
    }
    let Ok(ports) = std::fs::read_dir(bridge.join("brif")) else {
        return false;
    };
    ports
        .map(|port| {
            let device = port.map(|port| sys.join(port.file_name()).join("device"));
            device.map(|device| device.symlink_metadata().is_err())
        })
        .all(|virtual_port| virtual_port.unwrap_or(false))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROUTES: &str = "\
Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0
br-env\t0042A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
br-wide\t0000A8C0\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0
eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
down0\t0043A8C0\t00000000\t0000\t0\t0\t0\t00FFFFFF\t0\t0\t0
";

    #[test]
    fn the_most_specific_on_link_route_names_the_interface() {
        let cases = [
            ("192.168.66.11", Some("br-env")),
            ("192.168.9.1", Some("br-wide")),
            ("192.0.2.7", Some("eth0")),
            // Only through the default route's gateway: routed, not on a link of ours.
            ("10.1.2.3", None),
            // A route that is not up.
            ("192.168.67.5", Some("br-wide")),
        ];
        for (ip, want) in cases {
            let ip: Ipv4Addr = ip.parse().unwrap();
            if cfg!(target_endian = "little") {
                assert_eq!(on_link_interface(ROUTES, ip).as_deref(), want, "{ip}");
            }
        }
    }

    #[test]
    fn only_a_bridge_of_virtual_ports_keeps_traffic_on_the_host() {
        let sys = std::env::temp_dir().join(format!("envctl-locality-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&sys);
        let link = |from: &str, to: &str| {
            std::fs::create_dir_all(sys.join(from).parent().unwrap()).unwrap();
            std::os::unix::fs::symlink(to, sys.join(from)).unwrap();
        };
        let dir = |path: &str| std::fs::create_dir_all(sys.join(path)).unwrap();
        // A docker bridge with two veths; a libvirt one with a tap and no port yet.
        dir("br-env/bridge");
        dir("br-env/brif");
        link("br-env/brif/veth1", "../../veth1/brport");
        link("br-env/brif/veth2", "../../veth2/brport");
        dir("veth1");
        dir("veth2");
        dir("virbr1/bridge");
        dir("virbr1/brif");
        // A user's bridge onto the LAN: a port with a device behind it.
        dir("br0/bridge");
        dir("br0/brif");
        link("br0/brif/eth1", "../../eth1/brport");
        link("br0/brif/vnet0", "../../vnet0/brport");
        dir("eth1/pci-device");
        link("eth1/device", "pci-device");
        dir("vnet0");
        // Not a bridge at all.
        dir("eth0");
        link("eth0/device", "../../eth0/fake");
        dir("eth0/fake");
        let cases = [
            ("br-env", true),
            ("virbr1", true),
            ("br0", false),
            ("eth0", false),
            ("gone0", false),
        ];
        for (iface, want) in cases {
            assert_eq!(bridge_has_only_virtual_ports(&sys, iface), want, "{iface}");
        }
        std::fs::remove_dir_all(&sys).unwrap();
    }

    #[test]
    fn names_and_loopback_are_decided_without_the_routes() {
        assert!(stays_on_this_host("127.0.0.1"));
        assert!(stays_on_this_host("127.0.0.2"));
        assert!(!stays_on_this_host("localhost"));
        assert!(!stays_on_this_host("::1"));
        assert!(!stays_on_this_host("web1.example.test"));
    }
}
