//! The shell script that turns a Vagrant box into a machine of the environment, as named
//! steps. Every step can run again with the same result, and a connection lost anywhere
//! leaves the machine reachable one way or the other: the environment's key is authorized
//! before the host key changes, files are replaced by rename (never left empty), and the
//! marker that says "done" is written last.

use envctl_provider::{GuestAddress, MachineSpec};

use crate::ssh;

/// Where the marker lives on the machine; readable by the login user, who checks it.
pub(super) const MARKER_PATH: &str = "/var/lib/envctl/bootstrap";

/// The last line the whole script prints.
pub(super) const DONE: &str = "envctl-bootstrap-done";

/// Printed before each step, so a failure names the step it happened in.
const STEP_PREFIX: &str = "envctl-step: ";

pub(super) struct Script {
    steps: Vec<(&'static str, String)>,
    marker: String,
}

impl Script {
    pub(super) fn new(spec: &MachineSpec, guest_address: Option<&GuestAddress>) -> Script {
        let mut steps = vec![
            ("authorize", authorize(spec)),
            ("host_key", host_key(spec)),
            ("sshd_config", SSHD_CONFIG.to_string()),
            ("hostname", hostname(spec)),
        ];
        if let Some(address) = guest_address {
            steps.push(("address", static_address(address)));
        }
        steps.push(("dhcp_domains", USE_DHCP_DOMAINS.to_string()));
        steps.push(("reload_sshd", RELOAD_SSHD.to_string()));
        let marker = marker(spec, guest_address);
        steps.push(("marker", write_marker(&marker)));
        Script { steps, marker }
    }

    /// What the machine holds in [`MARKER_PATH`] once the script has run to its end.
    pub(super) fn marker(&self) -> &str {
        &self.marker
    }

    /// The whole script.
    pub(super) fn full(&self) -> String {
        self.render(self.steps.len())
    }

    /// The script as a connection lost after its first `steps` steps leaves it.
    #[cfg(test)]
    pub(super) fn cut_after(&self, steps: usize) -> String {
        self.render(steps)
    }

    #[cfg(test)]
    pub(super) fn step_names(&self) -> Vec<&'static str> {
        self.steps.iter().map(|(name, _)| *name).collect()
    }

    fn render(&self, count: usize) -> String {
        // `:` keeps the function valid with no step at all.
        let mut body = String::from(":\n");
        for (name, step) in self.steps.iter().take(count) {
            body.push_str(&format!("echo '{STEP_PREFIX}{name}'\n{step}"));
        }
        if count == self.steps.len() {
            body.push_str(&format!("echo {DONE}\n"));
        }
        // Parsed whole before it runs, with standard input closed: read line by line from
        // `sh -s`, a command that reads its input (systemctl, resolvectl) would eat the
        // rest of the script.
        format!("set -eu\numask 077\n{PRELUDE}main() {{\n{body}}}\nmain </dev/null\n")
    }
}

/// The step a failed run stopped in, from its standard output.
pub(super) fn failed_step(stdout: &str) -> Option<&str> {
    stdout
        .lines()
        .filter_map(|line| line.strip_prefix(STEP_PREFIX))
        .next_back()
}

/// `put MODE OWNER FILE`: standard input into FILE, by rename so that no reader ever
/// finds it empty; files Docker bind-mounts (/etc/hosts, /etc/hostname) cannot be renamed
/// over and are rewritten in place.
const PRELUDE: &str = r#"put() {
  tmp="$3.envctl-new"
  cat > "$tmp"
  chmod "$1" "$tmp"
  chown "$2" "$tmp"
  mv -f "$tmp" "$3" 2>/dev/null || { cat "$tmp" > "$3"; rm -f "$tmp"; }
}
"#;

/// Only the environment's key, before anything else changes: from here on, the machine
/// answers either to first contact (box host key, offered this key too) or to the pinned
/// connection (generated host key).
fn authorize(spec: &MachineSpec) -> String {
    format!(
        r#"user={user}
home=$(getent passwd "$user" | cut -d: -f6)
[ -n "$home" ] || {{ echo "the box has no user $user" >&2; exit 1; }}
group=$(id -gn "$user")
install -d -m 700 -o "$user" -g "$group" "$home/.ssh"
printf '%s\n' {key} | put 600 "$user:$group" "$home/.ssh/authorized_keys"
"#,
        user = shell_word(&spec.user),
        key = shell_word(&spec.authorized_key),
    )
}

/// The generated key replaces the box's; sshd reads host keys for every new connection,
/// so it answers with it at once. The key travels in the script, on standard input.
fn host_key(spec: &MachineSpec) -> String {
    format!(
        r#"put 600 0:0 /etc/ssh/ssh_host_ed25519_key <<'ENVCTL_HOST_KEY'
{private}ENVCTL_HOST_KEY
printf '%s\n' {public} | put 644 0:0 /etc/ssh/ssh_host_ed25519_key.pub
for key in /etc/ssh/ssh_host_*_key; do
  [ "$key" = /etc/ssh/ssh_host_ed25519_key ] || rm -f "$key" "$key.pub"
done
"#,
        private = ensure_newline(&spec.host_key.private_openssh),
        public = shell_word(&spec.host_key.public_openssh),
    )
}

/// A Vagrant box's user has the password `vagrant`: the drop-in that turns passwords and
/// root logins off sorts before anything else in sshd_config.d (sshd keeps the first value
/// it reads). It takes effect when sshd is reloaded, at the end.
const SSHD_CONFIG: &str = r#"install -d -m 755 /etc/ssh/sshd_config.d
printf '%s\n' 'HostKey /etc/ssh/ssh_host_ed25519_key' 'PasswordAuthentication no' 'KbdInteractiveAuthentication no' 'PermitRootLogin no' | put 644 0:0 /etc/ssh/sshd_config.d/00-envctl.conf
"#;

fn hostname(spec: &MachineSpec) -> String {
    let fqdn = &spec.hostname;
    let short = fqdn.split('.').next().unwrap_or(fqdn);
    format!(
        r#"printf '%s\n' {short} | put 644 0:0 /etc/hostname
hostname {short}
{{ grep -v -E -e '[[:space:]]{fqdn_re}([[:space:]]|$)' -e '^127\.0\.1\.1[[:space:]]' /etc/hosts || true
  printf '%s\n' {line}; }} | put 644 0:0 /etc/hosts
"#,
        short = shell_word(short),
        fqdn_re = fqdn.replace('.', "\\."),
        line = shell_word(&format!("{} {fqdn} {short}", spec.ip)),
    )
}

/// The static address, for backends that cannot hand it out (VirtualBox's host-only NIC).
fn static_address(address: &GuestAddress) -> String {
    format!(
        r#"mac={mac}
iface=
for dev in /sys/class/net/*; do [ "$(cat "$dev/address")" = "$mac" ] && iface=$(basename "$dev"); done
[ -n "$iface" ] || {{ echo "no network interface has MAC $mac" >&2; exit 1; }}
ip link set "$iface" up
ip -4 addr replace {ip}/{prefix} dev "$iface"
if [ -d /etc/systemd/network ]; then
  printf '%s\n' '[Match]' "MACAddress=$mac" '[Network]' 'Address={ip}/{prefix}' | put 644 0:0 /etc/systemd/network/10-envctl.network
else
  printf '%s\n' "auto $iface" "iface $iface inet static" '  address {ip}/{prefix}' | put 644 0:0 "/etc/network/interfaces.d/envctl-$iface"
fi
"#,
        mac = address.mac,
        ip = address.ip,
        prefix = address.prefix,
    )
}

/// systemd-networkd ignores the search domain DHCP hands out (`UseDomains=no` by
/// default), so single-label names such as `web2` do not resolve in guests that use it.
/// A drop-in for each .network file fixes it from the next boot on; for this boot the
/// domain of the current lease goes straight to resolved, because reloading networkd
/// would restart DHCP under the very SSH connection running this script.
const USE_DHCP_DOMAINS: &str = r#"if [ -d /etc/systemd/network ] && systemctl is-active --quiet systemd-networkd; then
  for network in /etc/systemd/network/*.network; do
    [ -f "$network" ] || continue
    install -d -m 755 "$network.d"
    printf '%s\n' '[DHCPv4]' 'UseDomains=yes' | put 644 0:0 "$network.d/99-envctl-domains.conf"
  done
  for lease in /run/systemd/netif/leases/*; do
    [ -f "$lease" ] || continue
    domain=$(sed -n 's/^DOMAINNAME=//p' "$lease")
    [ -z "$domain" ] || resolvectl domain "$(basename "$lease")" "$domain" || true
  done
fi
"#;

/// A reload, not a restart: sshd re-executes itself with the new configuration and keeps
/// serving, where a restart leaves nothing listening for a while (and runs the unit's
/// start-up steps again, which on some boxes make new host keys). Without systemd (sshd
/// alone in a container) the signal goes to sshd itself, once the configuration is known
/// to be good: a bad one would stop it.
const RELOAD_SSHD: &str = r#"if [ -d /run/systemd/system ]; then
  systemctl reload-or-restart ssh 2>/dev/null || systemctl reload-or-restart sshd
elif [ -s /run/sshd.pid ]; then
  /usr/sbin/sshd -t && kill -HUP "$(cat /run/sshd.pid)"
else
  service ssh reload
fi
"#;

fn write_marker(marker: &str) -> String {
    format!(
        "install -d -m 755 /var/lib/envctl\nprintf '%s\\n' {} | put 644 0:0 {MARKER_PATH}\n",
        shell_word(marker)
    )
}

/// What the script established, in one line: a machine whose marker differs (another
/// hostname, key or address since) is bootstrapped again.
fn marker(spec: &MachineSpec, guest_address: Option<&GuestAddress>) -> String {
    let print = |key: &str| ssh::fingerprint(key).unwrap_or_else(|| "unknown".into());
    let mut marker = format!(
        "envctl-bootstrap 1 machine={} hostname={} ip={} host-key={} authorized={}",
        spec.name,
        spec.hostname,
        spec.ip,
        print(&spec.host_key.public_openssh),
        print(&spec.authorized_key),
    );
    if let Some(address) = guest_address {
        marker.push_str(&format!(
            " address={}/{}@{}",
            address.ip, address.prefix, address.mac
        ));
    }
    marker
}

fn shell_word(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

fn ensure_newline(text: &str) -> String {
    if text.ends_with('\n') {
        text.to_string()
    } else {
        format!("{text}\n")
    }
}
