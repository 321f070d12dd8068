//! `ssh_config` in the shape of `vagrant ssh-config`, for OpenSSH's `Include`, and the
//! environment's `known_hosts`.

use std::path::Path;

/// One machine as OpenSSH reaches it.
pub struct SshTarget<'a> {
    pub name: &'a str,
    pub user: &'a str,
    pub host: &'a str,
    pub port: u16,
}

/// `Host NAME` blocks. Host keys are checked against the environment's `known_hosts`
/// under the machine's name (`HostKeyAlias`), whatever address reaches it.
pub fn render_config(targets: &[SshTarget], private_key: &Path, known_hosts: &Path) -> String {
    let mut out = String::new();
    for target in targets {
        out.push_str(&format!(
            "Host {name}\n  HostName {host}\n  User {user}\n  Port {port}\n  \
             UserKnownHostsFile {known_hosts}\n  StrictHostKeyChecking yes\n  \
             HostKeyAlias {name}\n  PasswordAuthentication no\n  IdentityFile {key}\n  \
             IdentitiesOnly yes\n  LogLevel FATAL\n\n",
            name = target.name,
            host = target.host,
            user = target.user,
            port = target.port,
            known_hosts = config_quote(&known_hosts.display().to_string()),
            key = config_quote(&private_key.display().to_string()),
        ));
    }
    out
}

/// One entry per machine: its name (the alias envctl and `ssh-config` use), hostname and
/// IP (what Ansible connects to), and the host key envctl generated for it.
pub struct KnownHost<'a> {
    pub name: &'a str,
    pub hostname: &'a str,
    pub ip: std::net::Ipv4Addr,
    pub public_key: &'a str,
}

pub fn render_known_hosts(hosts: &[KnownHost]) -> String {
    hosts
        .iter()
        .map(|host| {
            let key = host
                .public_key
                .split_whitespace()
                .take(2)
                .collect::<Vec<_>>()
                .join(" ");
            format!("{},{},{} {key}\n", host.name, host.hostname, host.ip)
        })
        .collect()
}

/// ssh_config splits arguments on white space unless they are in double quotes.
fn config_quote(text: &str) -> String {
    if text.contains(char::is_whitespace) {
        format!("\"{text}\"")
    } else {
        text.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_blocks_pin_known_hosts() {
        let targets = [
            SshTarget {
                name: "web1",
                user: "vagrant",
                host: "192.168.56.11",
                port: 22,
            },
            SshTarget {
                name: "db1",
                user: "ops",
                host: "127.0.0.1",
                port: 2201,
            },
        ];
        let got = render_config(
            &targets,
            Path::new("/p/.envctl/id_ed25519"),
            Path::new("/my p/known_hosts"),
        );
        let expected = "\
Host web1
  HostName 192.168.56.11
  User vagrant
  Port 22
  UserKnownHostsFile \"/my p/known_hosts\"
  StrictHostKeyChecking yes
  HostKeyAlias web1
  PasswordAuthentication no
  IdentityFile /p/.envctl/id_ed25519
  IdentitiesOnly yes
  LogLevel FATAL

Host db1
  HostName 127.0.0.1
  User ops
  Port 2201
  UserKnownHostsFile \"/my p/known_hosts\"
  StrictHostKeyChecking yes
  HostKeyAlias db1
  PasswordAuthentication no
  IdentityFile /p/.envctl/id_ed25519
  IdentitiesOnly yes
  LogLevel FATAL

";
        assert_eq!(got, expected);
    }

    #[test]
    fn known_hosts_names_every_way_to_a_machine() {
        let hosts = [KnownHost {
            name: "web1",
            hostname: "web1.demo.test",
            ip: "192.168.56.11".parse().unwrap(),
            public_key: "ssh-ed25519 AAAAC3Nz web1.demo host key",
        }];
        assert_eq!(
            render_known_hosts(&hosts),
            "web1,web1.demo.test,192.168.56.11 ssh-ed25519 AAAAC3Nz\n"
        );
    }
}
