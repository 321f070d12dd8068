//! The environment's provisioning keypair and each machine's host key, made with
//! `ssh-key` and kept in the state folder, so that a recreated machine keeps its host key
//! and `known_hosts` stays true.

use std::fs;
use std::path::Path;

use anyhow::{Context, Result};
use envctl_provider::HostKey;
use ssh_key::rand_core::{OsRng, RngCore};
use ssh_key::{Algorithm, LineEnding, PrivateKey};

use crate::state::{write_private, StateDir};

/// The environment's provisioning key: its private half stays in `.envctl/`.
#[derive(Clone, Debug)]
pub struct Keypair {
    pub private_key_path: std::path::PathBuf,
    /// One OpenSSH line, the key every machine trusts.
    pub public_openssh: String,
}

/// Loads the environment's keypair, making it the first time.
pub fn ensure_keypair(dir: &StateDir, env_name: &str) -> Result<Keypair> {
    let path = dir.private_key();
    let key = load_or_make(&path, &format!("envctl {env_name}"))?;
    let public_openssh = key
        .public_key()
        .to_openssh()
        .context("encoding the public key")?;
    write_private(
        &path.with_extension("pub"),
        format!("{public_openssh}\n").as_bytes(),
    )?;
    Ok(Keypair {
        private_key_path: path,
        public_openssh,
    })
}

/// Loads a machine's host key, making it the first time.
pub fn ensure_host_key(dir: &StateDir, env_name: &str, machine: &str) -> Result<HostKey> {
    let path = dir.host_key(machine);
    let key = load_or_make(&path, &format!("{machine}.{env_name} host key"))?;
    Ok(HostKey {
        private_openssh: key
            .to_openssh(LineEnding::LF)
            .context("encoding a host key")?
            .to_string(),
        public_openssh: key
            .public_key()
            .to_openssh()
            .context("encoding a host key")?,
    })
}

/// Sixteen random hex digits, to tell this environment's resources from any other's.
pub fn random_id() -> String {
    let mut bytes = [0u8; 8];
    OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn load_or_make(path: &Path, comment: &str) -> Result<PrivateKey> {
    match fs::read_to_string(path) {
        Ok(text) => PrivateKey::from_openssh(&text).with_context(|| {
            format!(
                "reading the key {}: it is damaged; `envctl destroy` starts over",
                path.display()
            )
        }),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            let mut key = PrivateKey::random(&mut OsRng, Algorithm::Ed25519)
                .context("generating an ed25519 key")?;
            key.set_comment(comment);
            let text = key.to_openssh(LineEnding::LF).context("encoding a key")?;
            write_private(path, text.as_bytes())?;
            Ok(key)
        }
        Err(err) => Err(err).with_context(|| format!("reading {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_made_once_and_private() {
        use std::os::unix::fs::PermissionsExt;
        let temp = std::env::temp_dir().join(format!("envctl-keys-{}", random_id()));
        let dir = StateDir {
            root: temp.join(".envctl"),
        };
        let first = ensure_keypair(&dir, "demo").unwrap();
        let again = ensure_keypair(&dir, "demo").unwrap();
        assert_eq!(first.public_openssh, again.public_openssh);
        assert!(first.public_openssh.starts_with("ssh-ed25519 "));
        let host = ensure_host_key(&dir, "demo", "web1").unwrap();
        assert_eq!(host, ensure_host_key(&dir, "demo", "web1").unwrap());
        assert_ne!(
            host.public_openssh,
            ensure_host_key(&dir, "demo", "web2")
                .unwrap()
                .public_openssh
        );
        for path in [dir.root.clone(), dir.private_key(), dir.host_key("web1")] {
            let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o077;
            assert_eq!(mode, 0, "{} is readable by others", path.display());
        }
        fs::remove_dir_all(temp).unwrap();
    }
}
