//! The XML libvirt speaks: builders for what envctl defines (domain, network, volumes,
//! pool) and readers for what it needs back (network addresses and hosts, ownership).
//!
//! Builders are plain functions of plain data, so they are tested without libvirt.

use std::net::Ipv4Addr;

use ipnetwork::Ipv4Network;

/// The namespace of envctl's `<metadata>` element on domains and networks.
pub(crate) const NAMESPACE: &str = "https://envctl.dev/xmlns/libvirt/1";
const PREFIX: &str = "envctl";

/// Whose a domain or network is, as recorded in its `<metadata>`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Owner {
    pub env: String,
    pub env_id: String,
    pub project: String,
    /// The machine a domain backs; none on a network.
    pub machine: Option<String>,
}

pub(crate) struct DomainXml<'a> {
    pub name: &'a str,
    /// `kvm` or `qemu` (TCG).
    pub virt_type: &'a str,
    pub vcpus: u32,
    pub memory_mib: u32,
    pub pool: &'a str,
    pub volume: &'a str,
    /// The cloud-init seed, read-only as the second disk.
    pub seed: &'a str,
    pub network: &'a str,
    pub mac: &'a str,
    /// Where the serial console is logged; none when libvirt runs on another host.
    pub console_log: Option<&'a str>,
    pub owner: &'a Owner,
    /// virtiofs exports.
    pub shares: &'a [Share],
    /// The domain's UUID when it is defined again over itself; libvirt makes one otherwise.
    pub uuid: Option<&'a str>,
}

/// A host folder exported to the guest over virtiofs, mounted there by `tag`, served by
/// `binary` (envctl's wrapper of virtiofsd).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Share {
    pub host: String,
    pub tag: String,
    pub binary: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct NetworkXml {
    pub name: String,
    pub bridge: String,
    pub gateway: Ipv4Addr,
    pub prefix: u8,
    /// The DNS domain the machines' hostnames share, if they share one.
    pub domain: Option<String>,
    pub dhcp_hosts: Vec<DhcpHost>,
    pub dns_hosts: Vec<DnsHost>,
    pub owner: Owner,
}

/// A fixed lease: `<host mac name ip/>` under `<dhcp>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct DhcpHost {
    pub mac: String,
    pub name: String,
    pub ip: Ipv4Addr,
}

/// Names the network's dnsmasq answers for one address: `<host ip>` under `<dns>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct DnsHost {
    pub ip: Ipv4Addr,
    pub hostnames: Vec<String>,
}

/// A network as read back from libvirt.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct NetInfo {
    pub name: String,
    pub bridge: Option<String>,
    pub owner: Option<Owner>,
    /// Each IPv4 `<ip>`: the address (the gateway) with its prefix.
    pub ips: Vec<Ipv4Network>,
    pub dhcp_hosts: Vec<DhcpHost>,
    pub dns_hosts: Vec<DnsHost>,
}

pub(crate) fn domain(d: &DomainXml) -> String {
    let console = match d.console_log {
        Some(path) => format!(
            "    <serial type='pty'>\n      <log file='{}' append='off'/>\n      \
             <target port='0'/>\n    </serial>\n",
            esc(path)
        ),
        None => "    <serial type='pty'>\n      <target port='0'/>\n    </serial>\n".to_string(),
    };
    // virtiofsd maps the guest's memory: it must be shared, which a memfd backing gives
    // without hugepages. Only when there is a share, so other machines keep plain memory.
    let memory_backing = if d.shares.is_empty() {
        String::new()
    } else {
        "  <memoryBacking>\n    <source type='memfd'/>\n    <access mode='shared'/>\n  \
         </memoryBacking>\n"
            .to_string()
    };
    let shares: String = d
        .shares
        .iter()
        .map(|share| {
            format!(
                "    <filesystem type='mount' accessmode='passthrough'>\n      \
                 <driver type='virtiofs'/>\n      <binary path='{}'/>\n      \
                 <source dir='{}'/>\n      <target dir='{}'/>\n    </filesystem>\n",
                esc(&share.binary),
                esc(&share.host),
                esc(&share.tag)
            )
        })
        .collect();
    let uuid = d
        .uuid
        .map(|uuid| format!("  <uuid>{}</uuid>\n", esc(uuid)))
        .unwrap_or_default();
    // TCG has no host CPU to pass through; QEMU's default model boots any x86-64 guest.
    let cpu = if d.virt_type == "kvm" {
        "  <cpu mode='host-passthrough'/>\n"
    } else {
        ""
    };
    format!(
        "<domain type='{virt_type}'>
  <name>{name}</name>
{uuid}  <metadata>
    {owner}
  </metadata>
  <memory unit='MiB'>{memory}</memory>
  <vcpu>{vcpus}</vcpu>
{memory_backing}  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <boot dev='hd'/>
  </os>
  <features>
    <acpi/>
    <apic/>
  </features>
{cpu}  <clock offset='utc'/>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <disk type='volume' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source pool='{pool}' volume='{volume}'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='volume' device='disk'>
      <driver name='qemu' type='raw'/>
      <source pool='{pool}' volume='{seed}'/>
      <target dev='vdb' bus='virtio'/>
      <readonly/>
    </disk>
    <interface type='network'>
      <source network='{network}'/>
      <mac address='{mac}'/>
      <model type='virtio'/>
    </interface>
{shares}{console}    <console type='pty'>
      <target type='serial' port='0'/>
    </console>
    <rng model='virtio'>
      <backend model='random'>/dev/urandom</backend>
    </rng>
  </devices>
</domain>
",
        virt_type = esc(d.virt_type),
        name = esc(d.name),
        owner = owner(d.owner),
        memory = d.memory_mib,
        vcpus = d.vcpus,
        pool = esc(d.pool),
        volume = esc(d.volume),
        seed = esc(d.seed),
        network = esc(d.network),
        mac = esc(d.mac),
    )
}

pub(crate) fn network(n: &NetworkXml) -> String {
    let domain = n
        .domain
        .as_deref()
        .map(|domain| format!("  <domain name='{}' localOnly='yes'/>\n", esc(domain)))
        .unwrap_or_default();
    let dns: String = n
        .dns_hosts
        .iter()
        .map(|host| format!("    {}\n", dns_host(host)))
        .collect();
    let dhcp: String = n
        .dhcp_hosts
        .iter()
        .map(|host| format!("      {}\n", dhcp_host(host)))
        .collect();
    format!(
        "<network>
  <name>{name}</name>
  <metadata>
    {owner}
  </metadata>
  <forward mode='nat'/>
  <bridge name='{bridge}' stp='on' delay='0'/>
{domain}  <dns>
{dns}  </dns>
  <ip address='{gateway}' prefix='{prefix}'>
    <dhcp>
{dhcp}    </dhcp>
  </ip>
</network>
",
        name = esc(&n.name),
        owner = owner(&n.owner),
        bridge = esc(&n.bridge),
        gateway = n.gateway,
        prefix = n.prefix,
    )
}

pub(crate) fn dhcp_host(host: &DhcpHost) -> String {
    format!(
        "<host mac='{}' name='{}' ip='{}'/>",
        esc(&host.mac),
        esc(&host.name),
        host.ip
    )
}

pub(crate) fn dns_host(host: &DnsHost) -> String {
    let names: String = host
        .hostnames
        .iter()
        .map(|name| format!("<hostname>{}</hostname>", esc(name)))
        .collect();
    format!("<host ip='{}'>{names}</host>", host.ip)
}

/// An empty raw volume that a stream upload fills; libvirt probes the format afterwards.
pub(crate) fn upload_volume(name: &str) -> String {
    format!(
        "<volume>
  <name>{}</name>
  <capacity unit='bytes'>0</capacity>
  <target>
    <format type='raw'/>
    <permissions>
      <mode>0644</mode>
    </permissions>
  </target>
</volume>
",
        esc(name)
    )
}

/// A raw volume of `size` bytes for a cloud-init seed, private to its owner (libvirt
/// hands it to QEMU's user while the domain runs).
pub(crate) fn seed_volume(name: &str, size: u64) -> String {
    format!(
        "<volume>
  <name>{}</name>
  <capacity unit='bytes'>{size}</capacity>
  <allocation unit='bytes'>{size}</allocation>
  <target>
    <format type='raw'/>
    <permissions>
      <mode>0600</mode>
    </permissions>
  </target>
</volume>
",
        esc(name)
    )
}

/// A qcow2 volume whose reads fall through to `backing` until written.
pub(crate) fn overlay_volume(name: &str, capacity: u64, backing: &str) -> String {
    format!(
        "<volume>
  <name>{}</name>
  <capacity unit='bytes'>{capacity}</capacity>
  <target>
    <format type='qcow2'/>
  </target>
  <backingStore>
    <path>{}</path>
    <format type='qcow2'/>
  </backingStore>
</volume>
",
        esc(name),
        esc(backing)
    )
}

pub(crate) fn dir_pool(name: &str, path: &str) -> String {
    format!(
        "<pool type='dir'>
  <name>{}</name>
  <target>
    <path>{}</path>
  </target>
</pool>
",
        esc(name),
        esc(path)
    )
}

/// Reads a network's XML; `None` when it does not parse.
pub(crate) fn parse_network(xml: &str) -> Option<NetInfo> {
    let doc = roxmltree::Document::parse(xml).ok()?;
    let root = doc.root_element();
    let child = |name: &str| root.children().find(|node| node.has_tag_name(name));
    let ips = root
        .children()
        .filter(|node| node.has_tag_name("ip"))
        .filter(|node| {
            node.attribute("family")
                .is_none_or(|family| family == "ipv4")
        })
        .filter_map(|node| {
            let address: Ipv4Addr = node.attribute("address")?.parse().ok()?;
            match (node.attribute("prefix"), node.attribute("netmask")) {
                (Some(prefix), _) => Ipv4Network::new(address, prefix.parse().ok()?).ok(),
                (None, Some(mask)) => Ipv4Network::with_netmask(address, mask.parse().ok()?).ok(),
                // libvirt's default for an IPv4 address without a mask: its class.
                (None, None) => Ipv4Network::new(address, class_prefix(address)).ok(),
            }
        })
        .collect();
    let dhcp_hosts = root
        .descendants()
        .filter(|node| {
            node.has_tag_name("host") && node.parent().is_some_and(|p| p.has_tag_name("dhcp"))
        })
        .filter_map(|node| {
            Some(DhcpHost {
                mac: node.attribute("mac")?.to_ascii_lowercase(),
                name: node.attribute("name").unwrap_or_default().to_string(),
                ip: node.attribute("ip")?.parse().ok()?,
            })
        })
        .collect();
    let dns_hosts = child("dns")
        .into_iter()
        .flat_map(|dns| dns.children().filter(|node| node.has_tag_name("host")))
        .filter_map(|node| {
            let hostnames = node
                .children()
                .filter(|name| name.has_tag_name("hostname"))
                .filter_map(|name| name.text().map(str::to_string))
                .collect();
            Some(DnsHost {
                ip: node.attribute("ip")?.parse().ok()?,
                hostnames,
            })
        })
        .collect();
    Some(NetInfo {
        name: child("name")
            .and_then(|node| node.text())
            .unwrap_or_default()
            .to_string(),
        bridge: child("bridge")
            .and_then(|node| node.attribute("name"))
            .map(str::to_string),
        owner: child("metadata").and_then(|node| find_owner(node)),
        ips,
        dhcp_hosts,
        dns_hosts,
    })
}

/// Reads envctl's metadata element as `virDomainGetMetadata` returns it (without its
/// namespace, which the call was given), or from anywhere inside a whole document.
/// The virtiofs exports of a domain's XML, sorted.
pub(crate) fn parse_shares(xml: &str) -> Vec<Share> {
    let Ok(doc) = roxmltree::Document::parse(xml) else {
        return Vec::new();
    };
    let mut shares: Vec<Share> = doc
        .descendants()
        .filter(|node| node.has_tag_name("filesystem"))
        .filter(|fs| {
            fs.children()
                .any(|c| c.has_tag_name("driver") && c.attribute("type") == Some("virtiofs"))
        })
        .filter_map(|fs| {
            let child = |tag: &str, attribute: &str| {
                fs.children()
                    .find(|c| c.has_tag_name(tag))
                    .and_then(|c| c.attribute(attribute))
                    .map(String::from)
            };
            Some(Share {
                host: child("source", "dir")?,
                tag: child("target", "dir")?,
                binary: child("binary", "path").unwrap_or_default(),
            })
        })
        .collect();
    shares.sort();
    shares
}

pub(crate) fn parse_owner(xml: &str) -> Option<Owner> {
    let doc = roxmltree::Document::parse(xml).ok()?;
    let root = doc.root_element();
    if root.tag_name().name() == "owner" && root.tag_name().namespace().is_none() {
        return Some(owner_from(root));
    }
    find_owner(root)
}

/// The `<format type>` of a volume's target.
pub(crate) fn volume_format(xml: &str) -> Option<String> {
    let doc = roxmltree::Document::parse(xml).ok()?;
    let target = doc
        .root_element()
        .children()
        .find(|node| node.has_tag_name("target"))?;
    let format = target.children().find(|node| node.has_tag_name("format"))?;
    format.attribute("type").map(str::to_string)
}

/// Says whose a domain or network is, for an error message: "belongs to …".
pub(crate) fn describe_owner(owner: Option<&Owner>) -> String {
    match owner {
        Some(owner) if !owner.env.is_empty() => format!(
            "belongs to envctl environment `{}` (id {}) of {}",
            owner.env, owner.env_id, owner.project
        ),
        Some(owner) => format!(
            "belongs to another envctl environment (id {})",
            owner.env_id
        ),
        None => "was not made by envctl".to_string(),
    }
}

fn find_owner(node: roxmltree::Node) -> Option<Owner> {
    let element = node.descendants().find(|node| {
        node.tag_name().namespace() == Some(NAMESPACE) && node.tag_name().name() == "owner"
    })?;
    Some(owner_from(element))
}

fn owner_from(element: roxmltree::Node) -> Owner {
    let attr = |name: &str| element.attribute(name).unwrap_or_default().to_string();
    Owner {
        env: attr("env"),
        env_id: attr("env-id"),
        project: attr("project"),
        machine: element.attribute("machine").map(str::to_string),
    }
}

fn owner(owner: &Owner) -> String {
    let machine = owner
        .machine
        .as_deref()
        .map(|machine| format!(" machine='{}'", esc(machine)))
        .unwrap_or_default();
    format!(
        "<{PREFIX}:owner xmlns:{PREFIX}='{NAMESPACE}' env='{}' env-id='{}' project='{}'{machine}/>",
        esc(&owner.env),
        esc(&owner.env_id),
        esc(&owner.project),
    )
}

fn class_prefix(address: Ipv4Addr) -> u8 {
    match address.octets()[0] {
        0..=127 => 8,
        128..=191 => 16,
        _ => 24,
    }
}

/// Escapes text for an attribute (quoted with either quote) or element content.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\'' => out.push_str("&apos;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests;
