//! Host keys by fingerprint, the form in which ssh names the key a machine presented.

use std::path::Path;

use ssh_key::{HashAlg, PublicKey};

/// The SHA256 fingerprint of an OpenSSH public key line (`ssh-ed25519 AAAA… comment`), as
/// ssh prints it (`SHA256:…`).
pub fn fingerprint(public_openssh: &str) -> Option<String> {
    let key = PublicKey::from_openssh(public_openssh.trim()).ok()?;
    Some(key.fingerprint(HashAlg::Sha256).to_string())
}

/// The fingerprints of the keys a `known_hosts` file holds; none when it is missing.
pub fn known_fingerprints(path: &Path) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.starts_with('@'))
        .filter_map(|line| line.split_once(char::is_whitespace))
        .filter_map(|(_hosts, key)| fingerprint(key))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const VAGRANT_PUB: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIN1YdxBpNlzxDqfJyw/QKow1F+wvG9hXGoqiysfJOn5Y vagrant insecure public key";

    #[test]
    fn fingerprints_match_ssh_keygen() {
        // `ssh-keygen -lf images/libvirt-box/vagrant-insecure-keys/vagrant.pub.ed25519`
        let want = "SHA256:WkvqjnyPAeC0cbPErYiGP9vqHdgL1MqqvPdIe3lvHgI";
        assert_eq!(fingerprint(VAGRANT_PUB).as_deref(), Some(want));
        let dir = std::env::temp_dir().join(format!("envctl-fp-{}", crate::keys::random_id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("known_hosts");
        std::fs::write(
            &file,
            format!("# comment\nweb1 {VAGRANT_PUB}\nbroken line\n"),
        )
        .unwrap();
        assert_eq!(known_fingerprints(&file), [want]);
        assert!(known_fingerprints(&dir.join("missing")).is_empty());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
