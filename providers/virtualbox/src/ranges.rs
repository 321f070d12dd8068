//! The host-only ranges VirtualBox allows: 192.168.56.0/21 unless `/etc/vbox/networks.conf`
//! says otherwise (VirtualBox 6.1.28 and later, on Linux, macOS and Solaris hosts).
//!
//! The rules are VBoxNetAdpCtl's (`GlobalNetworkPermissionsConfig`): when the file exists,
//! only its `*` lines count and the default no longer applies; each line lists networks as
//! `address/prefix` (or `address/netmask`, or a bare address meaning /32); IPv6 networks and
//! unreadable words are skipped. An address with a netmask is allowed when a listed network
//! contains it and is no narrower than its netmask.

use std::io;
use std::net::Ipv4Addr;
use std::path::Path;

use ipnetwork::Ipv4Network;

/// Where VirtualBox reads its allowed ranges.
pub const NETWORKS_CONF: &str = "/etc/vbox/networks.conf";

/// The range allowed when networks.conf does not exist.
pub(crate) const DEFAULT_RANGE: Ipv4Network =
    match Ipv4Network::new_checked(Ipv4Addr::new(192, 168, 56, 0), 21) {
        Some(range) => range,
        None => panic!("a /21 is a valid prefix"),
    };

/// The ranges in force and where they came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct AllowedRanges {
    pub(crate) ranges: Vec<Ipv4Network>,
    /// False when networks.conf does not exist and VirtualBox's default applies.
    pub(crate) from_file: bool,
}

impl AllowedRanges {
    /// Reads `path`; a missing file means VirtualBox's default.
    pub(crate) fn read(path: &Path) -> io::Result<AllowedRanges> {
        match std::fs::read_to_string(path) {
            Ok(text) => Ok(AllowedRanges {
                ranges: parse(&text),
                from_file: true,
            }),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(AllowedRanges {
                ranges: vec![DEFAULT_RANGE],
                from_file: false,
            }),
            Err(err) => Err(err),
        }
    }

    /// Whether VirtualBox lets a host-only interface take an address of `subnet`.
    pub(crate) fn allows(&self, subnet: Ipv4Network) -> bool {
        self.ranges
            .iter()
            .any(|range| subnet.prefix() >= range.prefix() && range.contains(subnet.network()))
    }

    /// What to tell a user whose `subnet` is refused, naming the file at `path`.
    pub(crate) fn refusal(&self, subnet: Ipv4Network, path: &Path) -> String {
        let path = path.display();
        let subnet = Ipv4Network::new(subnet.network(), subnet.prefix()).unwrap_or(subnet);
        let listed = self
            .ranges
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        if self.from_file {
            let listed = if listed.is_empty() {
                "no IPv4 range".to_string()
            } else {
                listed
            };
            format!(
                "use subnet {subnet}: VirtualBox allows host-only networks only in the ranges \
                 {path} lists ({listed}); to allow it, add the line `* {subnet}` to {path} \
                 (as root), or pick a subnet inside those ranges"
            )
        } else {
            format!(
                "use subnet {subnet}: VirtualBox allows host-only networks only in {DEFAULT_RANGE} \
                 unless {path} says otherwise, and it does not exist; to allow it, create \
                 {path} (as root) with the line `* {DEFAULT_RANGE} {subnet}` (listing \
                 {DEFAULT_RANGE} keeps the default allowed), or pick a subnet inside \
                 {DEFAULT_RANGE}"
            )
        }
    }
}

/// The IPv4 networks of the `*` lines of a networks.conf.
pub(crate) fn parse(text: &str) -> Vec<Ipv4Network> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            (words.next() == Some("*")).then_some(words)
        })
        .flatten()
        .filter_map(|word| word.parse::<Ipv4Network>().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Network {
        s.parse().unwrap()
    }

    #[test]
    fn parse_reads_star_lines_only() {
        let text = "# allow more\n\
                    * 10.0.0.0/8 192.168.0.0/16\n\
                    * 2001::/64\n\
                    *\t172.16.0.0/255.240.0.0 fe80::/10 not-a-network 10.9.9.9\n\
                    10.1.0.0/16\n\
                    #* 10.2.0.0/16\n\
                    ** 10.3.0.0/16\n";
        assert_eq!(
            parse(text),
            vec![
                net("10.0.0.0/8"),
                net("192.168.0.0/16"),
                net("172.16.0.0/12"),
                net("10.9.9.9/32"),
            ]
        );
        assert!(parse("").is_empty());
    }

    #[test]
    fn default_allows_only_its_slash_21() {
        let default = AllowedRanges {
            ranges: vec![DEFAULT_RANGE],
            from_file: false,
        };
        assert!(default.allows(net("192.168.56.0/24")));
        assert!(default.allows(net("192.168.63.0/24")));
        assert!(default.allows(net("192.168.56.0/21")));
        assert!(!default.allows(net("192.168.64.0/24")));
        assert!(!default.allows(net("192.168.48.0/20")));
        assert!(!default.allows(net("10.0.0.0/24")));
    }

    #[test]
    fn file_replaces_the_default() {
        let from_file = AllowedRanges {
            ranges: parse("* 10.0.0.0/8\n"),
            from_file: true,
        };
        assert!(from_file.allows(net("10.0.0.0/24")));
        assert!(from_file.allows(net("10.200.0.0/16")));
        assert!(!from_file.allows(net("192.168.56.0/24")));
        assert!(!from_file.allows(net("0.0.0.0/0")));
        let everything = AllowedRanges {
            ranges: parse("* 0.0.0.0/0 ::/0\n"),
            from_file: true,
        };
        assert!(everything.allows(net("203.0.113.0/24")));
    }

    #[test]
    fn read_falls_back_to_the_default_when_missing() {
        let missing = Path::new("/nonexistent/envctl/networks.conf");
        assert_eq!(
            AllowedRanges::read(missing).unwrap(),
            AllowedRanges {
                ranges: vec![DEFAULT_RANGE],
                from_file: false
            }
        );
    }

    #[test]
    fn refusal_says_which_line_to_add() {
        let path = Path::new("/etc/vbox/networks.conf");
        let default = AllowedRanges {
            ranges: vec![DEFAULT_RANGE],
            from_file: false,
        };
        let text = default.refusal(net("10.0.0.0/24"), path);
        assert!(text.contains("`* 192.168.56.0/21 10.0.0.0/24`"), "{text}");
        assert!(text.contains("create /etc/vbox/networks.conf"), "{text}");
        let file = AllowedRanges {
            ranges: vec![net("172.16.0.0/12")],
            from_file: true,
        };
        let text = file.refusal(net("10.0.0.5/24"), path);
        assert!(
            text.contains("add the line `* 10.0.0.0/24` to /etc/vbox/networks.conf"),
            "{text}"
        );
        assert!(text.contains("(172.16.0.0/12)"), "{text}");
    }
}
