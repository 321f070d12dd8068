//! Reading what VBoxManage prints: `showvminfo --machinereadable`, `list vms`, the
//! `Key:   value` records of `list hostonlyifs` and friends, and `getextradata`.

use std::collections::BTreeMap;

/// The `key="value"` lines of `showvminfo <vm> --machinereadable`.
#[derive(Clone, Debug, Default)]
pub(crate) struct VmInfo {
    values: BTreeMap<String, String>,
}

/// One NAT port-forwarding rule, as `Forwarding(n)="name,proto,hostip,hostport,guestip,guestport"`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Forwarding {
    pub(crate) name: String,
    pub(crate) host_port: u16,
    /// The whole rule as printed, to compare with the one wanted.
    pub(crate) rule: String,
}

/// One shared folder: its share name and host folder, as `showvminfo` prints them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Share {
    pub(crate) name: String,
    pub(crate) host_path: String,
}

impl VmInfo {
    pub(crate) fn parse(text: &str) -> VmInfo {
        let values = text.lines().filter_map(machine_readable_line).collect();
        VmInfo { values }
    }

    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }

    /// `VMState`: `running`, `poweroff`, `saved`, `aborted`, `paused`…
    pub(crate) fn state(&self) -> &str {
        self.get("VMState").unwrap_or("unknown")
    }

    pub(crate) fn uuid(&self) -> Option<&str> {
        self.get("UUID")
    }

    /// The NAT rules of the VM (VirtualBox lists them under the NIC they belong to; only
    /// NIC 1 is NAT here).
    pub(crate) fn forwardings(&self) -> Vec<Forwarding> {
        self.values
            .iter()
            .filter(|(key, _)| key.starts_with("Forwarding("))
            .filter_map(|(_, rule)| {
                let fields: Vec<&str> = rule.split(',').collect();
                let [name, _proto, _host_ip, host_port, _guest_ip, _guest_port] = fields[..] else {
                    return None;
                };
                Some(Forwarding {
                    name: name.to_string(),
                    host_port: host_port.parse().ok()?,
                    rule: rule.to_string(),
                })
            })
            .collect()
    }

    /// The VM's permanent shared folders (`SharedFolderNameMachineMapping1`, …), in the
    /// order VirtualBox keeps them.
    pub(crate) fn machine_shares(&self) -> Vec<Share> {
        self.shares("Machine")
    }

    /// The shared folders a running VM was given for this run only
    /// (`SharedFolderNameTransientMapping1`, …); none while it is off.
    pub(crate) fn transient_shares(&self) -> Vec<Share> {
        self.shares("Transient")
    }

    /// `SharedFolderName<scope>MappingN` beside `SharedFolderPath<scope>MappingN`, N counted
    /// from 1 without gaps (`VBoxManageInfo.cpp`).
    fn shares(&self, scope: &str) -> Vec<Share> {
        (1..)
            .map_while(|n| {
                let name = self.get(&format!("SharedFolderName{scope}Mapping{n}"))?;
                let host_path = self
                    .get(&format!("SharedFolderPath{scope}Mapping{n}"))
                    .unwrap_or_default();
                Some(Share {
                    name: name.to_string(),
                    host_path: host_path.to_string(),
                })
            })
            .collect()
    }

    /// Whether the VM has a snapshot called `name` (`SnapshotName`, `SnapshotName-1`, …).
    pub(crate) fn has_snapshot(&self, name: &str) -> bool {
        self.values
            .iter()
            .any(|(key, value)| key.starts_with("SnapshotName") && value == name)
    }
}

/// One `key=value` line: the key may be quoted, a string value is quoted with `\"` and `\\`
/// escaped, a number is bare.
fn machine_readable_line(line: &str) -> Option<(String, String)> {
    let line = line.trim_end_matches('\r');
    let (key, rest) = if let Some(quoted) = line.strip_prefix('"') {
        let (key, rest) = take_quoted(quoted)?;
        (key, rest.strip_prefix('=')?)
    } else {
        let (key, rest) = line.split_once('=')?;
        (key.to_string(), rest)
    };
    let value = match rest.strip_prefix('"') {
        Some(quoted) => take_quoted(quoted)?.0,
        None => rest.to_string(),
    };
    Some((key, value))
}

/// The text up to the closing quote, unescaped, and what follows the quote.
fn take_quoted(text: &str) -> Option<(String, &str)> {
    let mut value = String::new();
    let mut chars = text.char_indices();
    while let Some((at, c)) = chars.next() {
        match c {
            '"' => return Some((value, &text[at + 1..])),
            '\\' => value.push(chars.next()?.1),
            c => value.push(c),
        }
    }
    None
}

/// `list vms` and `list runningvms`: one `"name" {uuid}` a line, as (name, uuid).
pub(crate) fn vm_list(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|line| {
            let line = line.trim();
            let (name, uuid) = line.rsplit_once(" {")?;
            let name = name.strip_prefix('"')?.strip_suffix('"')?;
            Some((name.to_string(), uuid.strip_suffix('}')?.to_string()))
        })
        .collect()
}

/// The records of `list hostonlyifs`, `list hostonlynets` and `list dhcpservers`: `Key:   value`
/// lines, each record starting at its `first` key (blank lines are not reliable separators:
/// `list hostonlynets` prints one inside a record).
pub(crate) fn records(text: &str, first: &str) -> Vec<BTreeMap<String, String>> {
    let mut records: Vec<BTreeMap<String, String>> = Vec::new();
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let key = key.trim();
        if key == first {
            records.push(BTreeMap::new());
        }
        if let Some(record) = records.last_mut() {
            record.insert(key.to_string(), value.trim().to_string());
        }
    }
    records
}

/// `getextradata <vm|global> <key>`: `Value: …`, or `No value set!`.
pub(crate) fn extradata_value(text: &str) -> Option<String> {
    text.lines()
        .find_map(|line| line.strip_prefix("Value: "))
        .map(|value| value.trim_end_matches('\r').to_string())
        .filter(|value| !value.is_empty())
}

/// `getextradata <vm|global> enumerate`: one `Key: k, Value: v` a line.
pub(crate) fn extradata_all(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|line| {
            let rest = line.trim_end_matches('\r').strip_prefix("Key: ")?;
            let (key, value) = rest.split_once(", Value: ")?;
            Some((key.to_string(), value.to_string()))
        })
        .collect()
}

/// The interface `hostonlyif create` made, from `Interface 'vboxnet1' was successfully created`.
pub(crate) fn created_interface(text: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let rest = line.trim().strip_prefix("Interface '")?;
        let (name, _) = rest.split_once("' was successfully created")?;
        Some(name.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHOWVMINFO: &str = r#"name="example-web1"
groups="/"
ostype="Debian (64-bit)"
UUID="2c1a1e6e-8a3f-4f43-9a0b-3f7c2a0d9e11"
CfgFile="/home/u/VirtualBox VMs/example-web1/example-web1.vbox"
memory=512
cpus=1
VMState="running"
VMStateChangeTime="2024-05-03T10:11:12.000000000"
"SATA Controller-0-0"="/home/u/VirtualBox VMs/example-web1/Snapshots/{x}.vmdk"
natnet1="nat"
macaddress1="0800271A2B3C"
cableconnected1="on"
nic1="nat"
nictype1="82540EM"
nicspeed1="0"
mtu="0"
Forwarding(0)="envctl-ssh,tcp,127.0.0.1,2222,,22"
Forwarding(1)="other,udp,,5353,,53"
hostonlyadapter2="vboxnet0"
macaddress2="080027A8380B"
nic2="hostonly"
nic3="none"
description="say \"hi\" \\ bye"
SnapshotName="envctl-base"
SnapshotName-1="later"
"#;

    #[test]
    fn machinereadable_reads_keys_and_values() {
        let info = VmInfo::parse(SHOWVMINFO);
        assert_eq!(info.state(), "running");
        assert_eq!(info.uuid(), Some("2c1a1e6e-8a3f-4f43-9a0b-3f7c2a0d9e11"));
        assert_eq!(info.get("cpus"), Some("1"));
        assert_eq!(info.get("hostonlyadapter2"), Some("vboxnet0"));
        assert_eq!(info.get("macaddress2"), Some("080027A8380B"));
        assert_eq!(
            info.get("SATA Controller-0-0"),
            Some("/home/u/VirtualBox VMs/example-web1/Snapshots/{x}.vmdk")
        );
        assert_eq!(info.get("description"), Some(r#"say "hi" \ bye"#));
        assert_eq!(info.get("absent"), None);
    }

    #[test]
    fn machinereadable_reads_rules_and_snapshots() {
        let info = VmInfo::parse(SHOWVMINFO);
        assert_eq!(
            info.forwardings(),
            vec![
                Forwarding {
                    name: "envctl-ssh".to_string(),
                    host_port: 2222,
                    rule: "envctl-ssh,tcp,127.0.0.1,2222,,22".to_string(),
                },
                Forwarding {
                    name: "other".to_string(),
                    host_port: 5353,
                    rule: "other,udp,,5353,,53".to_string(),
                },
            ]
        );
        assert!(info.has_snapshot("envctl-base"));
        assert!(info.has_snapshot("later"));
        assert!(!info.has_snapshot("envctl"));
        assert_eq!(VmInfo::parse("").state(), "unknown");
    }

    fn share(name: &str, host_path: &str) -> Share {
        Share {
            name: name.to_string(),
            host_path: host_path.to_string(),
        }
    }

    /// (showvminfo lines, permanent shares, transient shares): numbered from 1 in the
    /// order printed, not the order of the keys' text (10 after 9), and escaped like every
    /// string value.
    #[test]
    fn machinereadable_reads_shared_folders() {
        let ten: String = (1..=10)
            .map(|n| {
                format!(
                    "SharedFolderNameMachineMapping{n}=\"s{n}\"\n\
                     SharedFolderPathMachineMapping{n}=\"/h/{n}\"\n"
                )
            })
            .collect();
        let ten_shares: Vec<Share> = (1..=10)
            .map(|n| share(&format!("s{n}"), &format!("/h/{n}")))
            .collect();
        let cases: Vec<(&str, Vec<Share>, Vec<Share>)> = vec![
            (SHOWVMINFO, vec![], vec![]),
            (
                "SharedFolderNameMachineMapping1=\"envctl0\"\n\
                 SharedFolderPathMachineMapping1=\"/home/u/project\"\n\
                 SharedFolderNameMachineMapping2=\"mine\"\n\
                 SharedFolderPathMachineMapping2=\"/home/u/My \\\"Files\\\"\"\n\
                 SharedFolderNameTransientMapping1=\"envctl3\"\n\
                 SharedFolderPathTransientMapping1=\"/srv/data\"\n",
                vec![
                    share("envctl0", "/home/u/project"),
                    share("mine", r#"/home/u/My "Files""#),
                ],
                vec![share("envctl3", "/srv/data")],
            ),
            (&ten, ten_shares, vec![]),
            // A gap ends the list, as VirtualBox never prints one.
            (
                "SharedFolderNameMachineMapping1=\"a\"\n\
                 SharedFolderPathMachineMapping1=\"/a\"\n\
                 SharedFolderNameMachineMapping3=\"c\"\n\
                 SharedFolderPathMachineMapping3=\"/c\"\n",
                vec![share("a", "/a")],
                vec![],
            ),
        ];
        for (text, machine, transient) in cases {
            let info = VmInfo::parse(text);
            assert_eq!(info.machine_shares(), machine, "{text}");
            assert_eq!(info.transient_shares(), transient, "{text}");
        }
    }

    #[test]
    fn vm_list_reads_names_and_uuids() {
        let text = "\"example-web1\" {2c1a1e6e-8a3f-4f43-9a0b-3f7c2a0d9e11}\n\
                    \"a VM \"with\" quotes\" {00000000-0000-0000-0000-000000000001}\n\
                    garbage\n";
        assert_eq!(
            vm_list(text),
            vec![
                (
                    "example-web1".to_string(),
                    "2c1a1e6e-8a3f-4f43-9a0b-3f7c2a0d9e11".to_string()
                ),
                (
                    "a VM \"with\" quotes".to_string(),
                    "00000000-0000-0000-0000-000000000001".to_string()
                ),
            ]
        );
    }

    #[test]
    fn records_split_at_their_first_key() {
        let text = "Name:            example-net\nGUID:            1234\n\n\
                    State:           Enabled\nNetworkMask:     255.255.255.0\n\
                    LowerIP:         192.168.56.1\n\n\
                    Name:            other\nNetworkMask:     255.255.0.0\n";
        let records = records(text, "Name");
        assert_eq!(records.len(), 2);
        assert_eq!(records[0]["LowerIP"], "192.168.56.1");
        assert_eq!(records[0]["State"], "Enabled");
        assert_eq!(records[1]["NetworkMask"], "255.255.0.0");
        assert!(!records[1].contains_key("LowerIP"));
    }

    #[test]
    fn extradata_reads_one_value_or_all() {
        assert_eq!(extradata_value("Value: abc\n"), Some("abc".to_string()));
        assert_eq!(extradata_value("No value set!\n"), None);
        let all =
            extradata_all("Key: envctl/env, Value: example\nKey: envctl/env-id, Value: a b\n");
        assert_eq!(all["envctl/env"], "example");
        assert_eq!(all["envctl/env-id"], "a b");
        assert!(extradata_all("").is_empty());
    }

    #[test]
    fn created_interface_is_read() {
        let text = "0%...10%...20%...100%\nInterface 'vboxnet1' was successfully created\n";
        assert_eq!(created_interface(text), Some("vboxnet1".to_string()));
        assert_eq!(created_interface("nothing\n"), None);
    }
}
