//! Vagrant's public insecure keys, and the shell step that takes them out of every
//! account of a machine: a box may trust them for `vagrant` (its convention) or for any
//! other user, whatever user the Machinefile logs in as. Bootstrap runs the step over SSH;
//! the libvirt seed has cloud-init run it at first boot.

/// The base64 bodies of Vagrant's insecure public keys (ed25519 and RSA): a line of an
/// `authorized_keys` file that holds one trusts a key the whole world has.
pub const INSECURE_PUBLIC_KEY_BODIES: [&str; 2] = [
    "AAAAC3NzaC1lZDI1NTE5AAAAIN1YdxBpNlzxDqfJyw/QKow1F+wvG9hXGoqiysfJOn5Y",
    "AAAAB3NzaC1yc2EAAAABIwAAAQEA6NF8iallvQVp22WDkTkyrtvp9eWW6A8YVr+kz4TjGYe7gHzIw+niNltGEFHzD8+v1I2YJ6oXevct1YeS0o9HZyN1Q9qgCgzUFtdOKLv6IedplqoPkcmF0aYet2PkEDo3MlTBckFXPITAMzF8dJSIFo9D8HfdOV0IAdx4O7PtixWKn5y2hMNG0zQPyUecp4pzC6kivAIhyfHilFR61RGL+GPXQ2MWZWFYbAGjyiYJnAmCP3NOTd0jMZEnDkbUvxhMmBYSdETk1rRgm+R4LOzFUGaHqHDLKLX+FIPKcF96hrucXzcWyLbIbEgE98OHlnVYCzRdK8jlqm8tehUc9c9WhQ==",
];

/// A POSIX shell step, run as root, that removes every line holding one of
/// [`INSECURE_PUBLIC_KEY_BODIES`] from `~/.ssh/authorized_keys` of every account in
/// `$ENVCTL_ROOT/etc/passwd` (ENVCTL_ROOT is empty on a machine; tests point it at a
/// folder). Other lines, and the files' owners and modes, stay as they were.
pub fn forget_insecure_keys_step() -> String {
    let patterns: String = INSECURE_PUBLIC_KEY_BODIES
        .iter()
        .map(|body| format!(" -e '{body}'"))
        .collect();
    format!(
        r#"root="${{ENVCTL_ROOT:-}}"
cut -d: -f6 "$root/etc/passwd" | sort -u | while read -r home; do
  keys="$root$home/.ssh/authorized_keys"
  [ -f "$keys" ] && [ ! -L "$keys" ] || continue
  grep -qF{patterns} "$keys" || continue
  grep -vF{patterns} "$keys" > "$keys.envctl-new" || true
  chown --reference="$keys" "$keys.envctl-new" 2>/dev/null || true
  chmod --reference="$keys" "$keys.envctl-new" 2>/dev/null || true
  mv -f "$keys.envctl-new" "$keys"
done
"#
    )
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::process::Command;

    use super::*;

    /// In a folder shaped like a machine: the insecure keys leave every account's file,
    /// the other keys stay, an account without a file is left alone.
    #[test]
    fn insecure_keys_leave_every_account() {
        let root = std::env::temp_dir().join(format!("envctl-keys-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(root.join("etc")).unwrap();
        fs::write(
            root.join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\nvagrant:x:1000:1000::/home/vagrant:/bin/bash\n\
             ops:x:1001:1001::/home/ops:/bin/bash\nnobody:x:65534:65534::/nonexistent:/bin/false\n",
        )
        .unwrap();
        let ours = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOURS envctl";
        let insecure = |i: usize| {
            format!(
                "ssh-x {} vagrant insecure public key",
                INSECURE_PUBLIC_KEY_BODIES[i]
            )
        };
        let files = [
            ("root", format!("{}\n", insecure(1))),
            (
                "home/vagrant",
                format!("{}\n{}\n", insecure(0), insecure(1)),
            ),
            ("home/ops", format!("{ours}\n{}\n", insecure(0))),
        ];
        for (home, text) in &files {
            let dir = root.join(home).join(".ssh");
            fs::create_dir_all(&dir).unwrap();
            fs::write(dir.join("authorized_keys"), text).unwrap();
        }
        let status = Command::new("sh")
            .arg("-c")
            .arg(forget_insecure_keys_step())
            .env("ENVCTL_ROOT", &root)
            .status()
            .unwrap();
        assert!(status.success());
        let read =
            |home: &str| fs::read_to_string(root.join(home).join(".ssh/authorized_keys")).unwrap();
        assert_eq!(read("root"), "");
        assert_eq!(read("home/vagrant"), "");
        assert_eq!(read("home/ops"), format!("{ours}\n"));
        fs::remove_dir_all(&root).unwrap();
    }
}
