//! The NoCloud seed every machine gets: a small vfat disk labelled `CIDATA` with
//! `meta-data`, `user-data` and `network-config`. A box with cloud-init reads it at first
//! boot and comes up as a machine of the environment before sshd starts: the login user
//! trusting only the environment's key, the host key envctl generated, the hostname, and
//! the search domain. A box without cloud-init (Vagrant's convention) never looks at it;
//! bootstrap then does the same over SSH with Vagrant's insecure key.
//!
//! The documents are JSON, which YAML parsers read as YAML: no quoting to get wrong.

use std::io::{Cursor, Write};

use envctl_provider::MachineSpec;

use crate::network::short_name;
use serde_json::json;

/// Big enough for FAT12 with room to spare; the files take a few KiB.
const SEED_BYTES: usize = 1 << 20;

/// The hardening bootstrap also writes: sshd keeps the first value it reads, so the file
/// sorts first in `sshd_config.d`.
pub(crate) const SSHD_DROPIN: &str = "PasswordAuthentication no\n\
KbdInteractiveAuthentication no\nPermitRootLogin no\nHostKey /etc/ssh/ssh_host_ed25519_key\n";

/// What goes on one machine's seed.
pub(crate) struct Seed<'a> {
    pub machine: &'a MachineSpec,
    /// Unique per environment and machine: cloud-init runs its once-per-instance steps
    /// again when it changes.
    pub instance_id: &'a str,
    pub mac: &'a str,
    /// The domain every hostname shares, looked up for single-label names.
    pub search_domain: Option<&'a str>,
    /// The network's DNS server (libvirt's dnsmasq on the gateway).
    pub dns_server: std::net::Ipv4Addr,
}

/// The seed's volume for a domain: `<resource name>-seed.img`.
pub(crate) fn volume_name(resource: &str) -> String {
    crate::storage::sanitise(&format!("{resource}-seed.img"))
}

impl Seed<'_> {
    /// The disk image, ready to upload as a raw volume.
    pub(crate) fn image(&self) -> std::io::Result<Vec<u8>> {
        vfat_image(&[
            ("meta-data", self.meta_data()),
            ("user-data", self.user_data()),
            ("network-config", self.network_config()),
        ])
    }

    fn meta_data(&self) -> String {
        json!({
            "instance-id": self.instance_id,
            "local-hostname": short_name(&self.machine.hostname),
        })
        .to_string()
    }

    fn user_data(&self) -> String {
        let machine = self.machine;
        let config = json!({
            // A box that already has the user (Vagrant's convention plus cloud-init) may
            // trust Vagrant's insecure key: drop every key it had before cloud-init adds
            // ours, once per instance so a reboot keeps ours.
            // Any other account the box made to trust Vagrant's insecure key loses it too.
            "bootcmd": [[
                "cloud-init-per", "instance", "envctl-forget-box-keys", "sh", "-c",
                "home=$(getent passwd \"$1\" | cut -d: -f6); [ -z \"$home\" ] || rm -f \"$home/.ssh/authorized_keys\"",
                "sh", machine.user,
            ], [
                "cloud-init-per", "instance", "envctl-forget-insecure-keys", "sh", "-c",
                envctl_provider::vagrant_keys::forget_insecure_keys_step(),
            ]],
            "users": [{
                "name": machine.user,
                "shell": "/bin/bash",
                "sudo": "ALL=(ALL) NOPASSWD:ALL",
                "lock_passwd": true,
                "ssh_authorized_keys": [machine.authorized_key],
            }],
            // No `ssh_pwauth`: setting it makes cloud-init restart sshd in a later stage,
            // under the connections of a machine already reported ready. The drop-in
            // below turns passwords off instead. Given `ssh_keys`, cloud-init generates
            // no other host key, and `ssh_deletekeys` removes the box's.
            "disable_root": true,
            "ssh_deletekeys": true,
            "ssh_keys": {
                "ed25519_private": machine.host_key.private_openssh,
                "ed25519_public": machine.host_key.public_openssh,
            },
            "write_files": [{
                "path": "/etc/ssh/sshd_config.d/00-envctl.conf",
                "permissions": "0644",
                "content": SSHD_DROPIN,
            }],
            "hostname": short_name(&machine.hostname),
            "fqdn": machine.hostname,
            "manage_etc_hosts": true,
        });
        format!("#cloud-config\n{config}\n")
    }

    fn network_config(&self) -> String {
        let mut nic = json!({
            "match": {"macaddress": self.mac},
            "dhcp4": true,
        });
        // cloud-init 22.4 drops a `nameservers` without `addresses`, search list and all.
        if let Some(domain) = self.search_domain {
            nic["nameservers"] = json!({
                "addresses": [self.dns_server.to_string()],
                "search": [domain],
            });
        }
        json!({"version": 2, "ethernets": {"envctl0": nic}}).to_string()
    }
}

/// A vfat file system labelled `CIDATA` holding `files` in its root folder.
fn vfat_image(files: &[(&str, String)]) -> std::io::Result<Vec<u8>> {
    let mut disk = Cursor::new(vec![0u8; SEED_BYTES]);
    fatfs::format_volume(
        &mut disk,
        fatfs::FormatVolumeOptions::new().volume_label(*b"CIDATA     "),
    )?;
    {
        let fs = fatfs::FileSystem::new(&mut disk, fatfs::FsOptions::new())?;
        for (name, text) in files {
            let mut file = fs.root_dir().create_file(name)?;
            file.truncate()?;
            file.write_all(text.as_bytes())?;
            file.flush()?;
        }
        fs.unmount()?;
    }
    Ok(disk.into_inner())
}

#[cfg(test)]
mod tests;
