//! First contact with a box that follows Vagrant's convention (user `vagrant` trusting
//! Vagrant's public insecure key): install the environment's key and the host key envctl
//! generated, set the hostname (and the static address, when the backend cannot hand it
//! out), and leave the insecure key no longer authorized.
//!
//! A box with cloud-init needs none of it: the provider's NoCloud seed made it a machine
//! of the environment before sshd started, so the first check with the environment's key
//! and pinned host key already succeeds.

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use envctl_provider::{GuestAddress, MachineSpec};
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use crate::ssh::{self, Credentials, SshTarget};
use crate::state::{create_private_dir, write_private, StateDir};

/// Vagrant's insecure private keys: public knowledge, shipped by Vagrant itself.
const INSECURE_KEYS: [(&str, &str); 2] = [
    (
        "ed25519",
        include_str!("../../images/libvirt-box/vagrant-insecure-keys/vagrant.key.ed25519"),
    ),
    (
        "rsa",
        include_str!("../../images/libvirt-box/vagrant-insecure-keys/vagrant.key.rsa"),
    ),
];

/// Makes `spec`'s machine answer with the environment's key and pinned host key.
/// Already done (a machine restarted by `up`), it only checks that.
pub async fn bootstrap(
    state_dir: &StateDir,
    spec: &MachineSpec,
    target: &SshTarget<'_>,
    guest_address: Option<&GuestAddress>,
    creds: Credentials<'_>,
    timeout: Duration,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    let (insecure, first_contact) = prepare_state(state_dir, &spec.name)?;
    let script = script(spec, guest_address);
    let mut last_seen = String::from("nothing yet");
    while Instant::now() < deadline {
        if ssh::wait_ready(target, creds, Duration::from_secs(3))
            .await
            .is_ok()
        {
            return Ok(());
        }
        match run_with_insecure_key(target, &insecure, &first_contact, &script).await {
            Ok(()) => {
                let left = deadline.saturating_duration_since(Instant::now());
                return ssh::wait_ready(target, creds, left.max(Duration::from_secs(30)))
                    .await
                    .map_err(|seen| anyhow::anyhow!("the environment's key is not accepted after bootstrap; last seen: {seen}"));
            }
            Err(seen) => last_seen = seen,
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    bail!(
        "no SSH with the environment's key (cloud-init boxes) nor with Vagrant's insecure key \
         before the time-out; last seen: {last_seen}"
    )
}

/// What bootstrap keeps in `.envctl/`: Vagrant's insecure keys, and the file where ssh
/// records the box's own host key at first contact. That file is made here, empty and
/// private, because ssh would create it with the umask's mode. It is emptied on every
/// bootstrap: a machine made anew (removed behind envctl's back, or after a failed `up`)
/// boots a fresh copy of the box with a host key of its own; the key only has to hold
/// across the retries of one bootstrap.
pub(super) fn prepare_state(
    state_dir: &StateDir,
    machine: &str,
) -> Result<(Vec<PathBuf>, PathBuf)> {
    let insecure = write_insecure_keys(state_dir)?;
    let dir = state_dir.root.join("first_contact");
    create_private_dir(&dir)?;
    let first_contact = dir.join(machine);
    OpenOptions::new()
        .write(true)
        .truncate(true)
        .create(true)
        .mode(0o600)
        .open(&first_contact)
        .with_context(|| format!("creating {}", first_contact.display()))?;
    Ok((insecure, first_contact))
}

fn write_insecure_keys(state_dir: &StateDir) -> Result<Vec<PathBuf>> {
    INSECURE_KEYS
        .iter()
        .map(|(kind, key)| {
            let path = state_dir.root.join(format!("vagrant_insecure_key.{kind}"));
            write_private(&path, key.as_bytes())?;
            Ok(path)
        })
        .collect()
}

/// Runs the bootstrap script as root over SSH, the script (and the host key in it) on
/// standard input, never on a command line. The box's own host key is recorded at first
/// contact and checked on every retry.
async fn run_with_insecure_key(
    target: &SshTarget<'_>,
    keys: &[PathBuf],
    first_contact: &std::path::Path,
    script: &str,
) -> Result<(), String> {
    let mut command = Command::new("ssh");
    command
        .args([
            "-F",
            "/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=5",
            "-o",
            "LogLevel=ERROR",
        ])
        .args([
            "-o",
            "StrictHostKeyChecking=accept-new",
            "-o",
            "IdentitiesOnly=yes",
        ])
        .args(["-o", "GlobalKnownHostsFile=/dev/null"])
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", first_contact.display()));
    for key in keys {
        command.arg("-i").arg(key);
    }
    let mut child = command
        .arg("-p")
        .arg(target.port.to_string())
        .arg(format!("{}@{}", target.user, target.host))
        .arg("sudo -n sh -s")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|err| format!("running ssh: {err}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(script.as_bytes())
            .await
            .map_err(|err| format!("ssh: {err}"))?;
    }
    let output = child
        .wait_with_output()
        .await
        .map_err(|err| format!("ssh: {err}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if output.status.success() && stdout.contains("envctl-bootstrap-done") {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    Err(stderr
        .lines()
        .rfind(|line| !line.trim().is_empty())
        .map(|line| format!("ssh (insecure key): {}", line.trim()))
        .unwrap_or_else(|| format!("ssh (insecure key) exited with {}", output.status)))
}

/// The shell script that turns a Vagrant box into a machine of this environment.
fn script(spec: &MachineSpec, guest_address: Option<&GuestAddress>) -> String {
    let fqdn = &spec.hostname;
    let short = fqdn.split('.').next().unwrap_or(fqdn);
    let mut script = format!(
        r#"set -eu
umask 077
user={user}
home=$(getent passwd "$user" | cut -d: -f6)
group=$(id -gn "$user")
install -d -m 700 -o "$user" -g "$group" "$home/.ssh"
printf '%s\n' {authorized} > "$home/.ssh/authorized_keys.envctl"
chown "$user:$group" "$home/.ssh/authorized_keys.envctl"
mv -f "$home/.ssh/authorized_keys.envctl" "$home/.ssh/authorized_keys"
rm -f /etc/ssh/ssh_host_*
cat > /etc/ssh/ssh_host_ed25519_key <<'ENVCTL_HOST_KEY'
{host_private}ENVCTL_HOST_KEY
printf '%s\n' {host_public} > /etc/ssh/ssh_host_ed25519_key.pub
chmod 600 /etc/ssh/ssh_host_ed25519_key
chmod 644 /etc/ssh/ssh_host_ed25519_key.pub
mkdir -p /etc/ssh/sshd_config.d
printf '%s\n' 'HostKey /etc/ssh/ssh_host_ed25519_key' 'PasswordAuthentication no' 'KbdInteractiveAuthentication no' 'PermitRootLogin no' > /etc/ssh/sshd_config.d/00-envctl.conf
chmod 644 /etc/ssh/sshd_config.d/00-envctl.conf
printf '%s\n' {short} > /etc/hostname
hostname {short}
sed -i '/[[:space:]]{fqdn_re}\([[:space:]]\|$\)/d; /^127\.0\.1\.1[[:space:]]/d' /etc/hosts
printf '%s\n' '{ip} {fqdn} {short_raw}' >> /etc/hosts
{domains}"#,
        user = shell_word(&spec.user),
        authorized = shell_word(&spec.authorized_key),
        host_private = ensure_newline(&spec.host_key.private_openssh),
        host_public = shell_word(&spec.host_key.public_openssh),
        short = shell_word(short),
        short_raw = short,
        fqdn = fqdn,
        fqdn_re = fqdn.replace('.', "\\."),
        ip = spec.ip,
        domains = USE_DHCP_DOMAINS,
    );
    if let Some(address) = guest_address {
        script.push_str(&format!(
            r#"mac={mac}
iface=
for dev in /sys/class/net/*; do [ "$(cat "$dev/address")" = "$mac" ] && iface=$(basename "$dev"); done
[ -n "$iface" ] || {{ echo "no network interface has MAC $mac" >&2; exit 1; }}
ip link set "$iface" up
ip -4 addr replace {ip}/{prefix} dev "$iface"
if [ -d /etc/systemd/network ]; then
  printf '%s\n' '[Match]' "MACAddress=$mac" '[Network]' 'Address={ip}/{prefix}' > /etc/systemd/network/10-envctl.network
  chmod 644 /etc/systemd/network/10-envctl.network
else
  printf '%s\n' "auto $iface" "iface $iface inet static" '  address {ip}/{prefix}' > "/etc/network/interfaces.d/envctl-$iface"
fi
"#,
            mac = address.mac,
            ip = address.ip,
            prefix = address.prefix,
        ));
    }
    script.push_str(
        "systemctl restart ssh 2>/dev/null || systemctl restart sshd 2>/dev/null || service ssh restart\n\
         echo envctl-bootstrap-done\n",
    );
    script
}

/// systemd-networkd ignores the search domain DHCP hands out (`UseDomains=no` by
/// default), so single-label names such as `web2` do not resolve in guests that use it.
/// A drop-in for each .network file fixes it from the next boot on; for this boot the
/// domain of the current lease goes straight to resolved, because reloading networkd
/// would restart DHCP under the very SSH connection running this script. The files must
/// be readable by networkd, which does not run as root (the script runs under umask 077).
const USE_DHCP_DOMAINS: &str = r#"if [ -d /etc/systemd/network ] && systemctl is-active --quiet systemd-networkd; then
  for network in /etc/systemd/network/*.network; do
    [ -f "$network" ] || continue
    install -d -m 755 "$network.d"
    printf '%s\n' '[DHCPv4]' 'UseDomains=yes' > "$network.d/99-envctl-domains.conf"
    chmod 644 "$network.d/99-envctl-domains.conf"
  done
  for lease in /run/systemd/netif/leases/*; do
    [ -f "$lease" ] || continue
    domain=$(sed -n 's/^DOMAINNAME=//p' "$lease")
    [ -z "$domain" ] || resolvectl domain "$(basename "$lease")" "$domain" || true
  done
fi
"#;

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

#[cfg(test)]
mod tests {
    use super::*;
    use envctl_provider::{HostKey, ImageSource};

    fn spec() -> MachineSpec {
        MachineSpec {
            name: "web1".into(),
            hostname: "web1.example.test".into(),
            ip: "192.168.56.11".parse().unwrap(),
            cpus: 1,
            memory_mib: 512,
            user: "vagrant".into(),
            aliases: vec![],
            image: ImageSource::DockerImage("x".into()),
            authorized_key: "ssh-ed25519 AAAAenv envctl example".into(),
            host_key: HostKey {
                private_openssh: "-----BEGIN OPENSSH PRIVATE KEY-----\nSECRET\n-----END OPENSSH PRIVATE KEY-----\n".into(),
                public_openssh: "ssh-ed25519 AAAAhost".into(),
            },
            init: envctl_provider::Init::default(),
        }
    }

    /// The script carries the keys, hostname and address, and is valid shell; the
    /// libvirt end-to-end test runs it on a real box.
    #[test]
    fn the_script_replaces_keys_and_sets_the_hostname() {
        let script = script(&spec(), None);
        assert!(script.contains("printf '%s\\n' 'ssh-ed25519 AAAAenv envctl example' > \"$home/.ssh/authorized_keys.envctl\""));
        assert!(script.contains("SECRET\n-----END OPENSSH PRIVATE KEY-----\nENVCTL_HOST_KEY\n"));
        assert!(
            script.contains("printf '%s\\n' '192.168.56.11 web1.example.test web1' >> /etc/hosts")
        );
        assert!(script.contains("rm -f /etc/ssh/ssh_host_*"));
        assert!(!script.contains("MACAddress"));
        let with_address = super::script(
            &spec(),
            Some(&GuestAddress {
                mac: "08:00:27:aa:bb:cc".into(),
                ip: "192.168.56.11".parse().unwrap(),
                prefix: 24,
            }),
        );
        assert!(with_address.contains("ip -4 addr replace 192.168.56.11/24 dev \"$iface\""));
        assert!(with_address.contains("MACAddress=$mac"));
        // The script is valid shell.
        let check = std::process::Command::new("sh")
            .arg("-n")
            .arg("-c")
            .arg(&with_address)
            .status()
            .unwrap();
        assert!(check.success());
    }

    /// A Vagrant box's user has the password `vagrant`: the drop-in that turns passwords
    /// and root logins off must sort before anything else in sshd_config.d (sshd keeps the
    /// first value it reads), and networkd must take the DHCP search domain.
    #[test]
    fn the_script_hardens_sshd_and_takes_the_dhcp_domain() {
        let script = script(&spec(), None);
        let dropin = script
            .lines()
            .find(|line| line.ends_with("> /etc/ssh/sshd_config.d/00-envctl.conf"))
            .expect("no sshd drop-in");
        for setting in [
            "'PasswordAuthentication no'",
            "'KbdInteractiveAuthentication no'",
            "'PermitRootLogin no'",
        ] {
            assert!(dropin.contains(setting), "{setting} missing from {dropin}");
        }
        assert!(script.contains("'[DHCPv4]' 'UseDomains=yes'"));
        assert!(script.contains("resolvectl domain"));
        let restart = script.find("systemctl restart ssh").unwrap();
        assert!(script.find("00-envctl.conf").unwrap() < restart);
    }
}
