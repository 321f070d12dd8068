//! The host's IPv4 routes: a new network's subnet must not overlap one, whatever the
//! backend. Plain data and parsing, shared so every backend checks alike.

use std::fmt;
use std::io;
use std::net::Ipv4Addr;

use ipnetwork::Ipv4Network;

/// One IPv4 route of the host, from `/proc/net/route`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostRoute {
    pub iface: String,
    pub dest: Ipv4Network,
}

impl fmt::Display for HostRoute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the host route to {} on {}", self.dest, self.iface)
    }
}

/// The host's IPv4 routes; none where there is no `/proc/net/route`.
pub fn host_routes() -> io::Result<Vec<HostRoute>> {
    match std::fs::read_to_string("/proc/net/route") {
        Ok(text) => Ok(parse_routes(&text)),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(err) => Err(err),
    }
}

/// Parses `/proc/net/route`: the kernel prints each address as the hex of its in-memory
/// (network-order) bytes read as a native integer. Routes that are not up are skipped.
pub fn parse_routes(text: &str) -> Vec<HostRoute> {
    const RTF_UP: u32 = 0x1;
    let hex = |field: &str| u32::from_str_radix(field, 16).ok();
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (iface, dest, flags, mask) = (
                fields.first()?,
                fields.get(1)?,
                fields.get(3)?,
                fields.get(7)?,
            );
            if hex(flags)? & RTF_UP == 0 {
                return None;
            }
            let dest = Ipv4Addr::from(hex(dest)?.to_ne_bytes());
            let mask = Ipv4Addr::from(hex(mask)?.to_ne_bytes());
            Some(HostRoute {
                iface: iface.to_string(),
                dest: Ipv4Network::with_netmask(dest, mask).ok()?,
            })
        })
        .collect()
}

/// The first route `subnet` overlaps. The default route is no conflict, nor are the routes
/// of `own_iface`, the environment's own bridge when its network exists already.
pub fn conflicting_route<'a>(
    routes: &'a [HostRoute],
    subnet: Ipv4Network,
    own_iface: Option<&str>,
) -> Option<&'a HostRoute> {
    routes
        .iter()
        .filter(|route| route.dest.prefix() != 0)
        .filter(|route| Some(route.iface.as_str()) != own_iface)
        .find(|route| route.dest.overlaps(subnet))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(iface: &str, dest: &str) -> HostRoute {
        HostRoute {
            iface: iface.into(),
            dest: dest.parse().unwrap(),
        }
    }

    #[test]
    #[cfg(target_endian = "little")]
    fn proc_net_route_parses() {
        let text = "\
Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0
docker0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0
eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
tun0\t4D00010A\t00000000\t0005\t0\t0\t0\tFFFFFFFF\t0\t0\t0
down0\t0000A8C0\t00000000\t0000\t0\t0\t0\t0000FFFF\t0\t0\t0
garbage
";
        assert_eq!(
            parse_routes(text),
            vec![
                route("eth0", "0.0.0.0/0"),
                route("docker0", "172.17.0.0/16"),
                route("eth0", "192.0.2.0/24"),
                route("tun0", "10.1.0.77/32"),
            ]
        );
    }

    #[test]
    fn conflicts_skip_the_default_route_and_the_own_bridge() {
        let routes = [
            route("eth0", "0.0.0.0/0"),
            route("br-own", "10.1.0.0/24"),
            route("docker0", "172.17.0.0/16"),
        ];
        // (subnet, own bridge, the route it conflicts with)
        let cases = [
            ("10.1.0.0/24", Some("br-own"), None),
            ("10.1.0.0/24", None, Some("br-own")),
            ("172.17.5.0/24", Some("br-own"), Some("docker0")),
            ("172.16.0.0/12", None, Some("docker0")),
            ("192.168.56.0/24", None, None),
        ];
        for (subnet, own, want) in cases {
            let got = conflicting_route(&routes, subnet.parse().unwrap(), own);
            assert_eq!(got.map(|r| r.iface.as_str()), want, "{subnet} {own:?}");
        }
        assert_eq!(
            routes[2].to_string(),
            "the host route to 172.17.0.0/16 on docker0"
        );
    }
}
