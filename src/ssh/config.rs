//! `ssh_config` in the shape of `vagrant ssh-config`, for OpenSSH's `Include`, and the
//! environment's `known_hosts`.

use std::path::Path;

use anyhow::{bail, Result};

/// One machine as OpenSSH reaches it.
pub struct SshTarget<'a> {
    pub name: &'a str,
    pub user: &'a str,
    pub host: &'a str,
    pub port: u16,
}

/// `Host NAME` blocks. Host keys are checked against the environment's `known_hosts`
/// under the machine's name (`HostKeyAlias`), whatever address reaches it. Names and
/// users come validated from the Machinefile; the address comes from `state.json` and
/// the paths from the project's folder, so those are checked or quoted here: a line
/// break in either would start a directive of its own (`Host *`, `ProxyCommand …`).
pub fn render_config(
    targets: &[SshTarget],
    private_key: &Path,
    known_hosts: &Path,
) -> Result<String> {
    let known_hosts = path_argument(known_hosts)?;
    let key = path_argument(private_key)?;
    let mut out = String::new();
    for target in targets {
        out.push_str(&format!(
            "Host {name}\n  HostName {host}\n  User {user}\n  Port {port}\n  \
             UserKnownHostsFile {known_hosts}\n  StrictHostKeyChecking yes\n  \
             HostKeyAlias {name}\n  PasswordAuthentication no\n  IdentityFile {key}\n  \
             IdentitiesOnly yes\n  LogLevel FATAL\n\n",
            name = target.name,
            host = host_argument(target)?,
            user = target.user,
            port = target.port,
        ));
    }
    Ok(out)
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

/// The address as one ssh_config argument: a host name, IPv4 or IPv6 address, and
/// nothing else (no space, quote, `%` token or line break).
fn host_argument<'a>(target: &SshTarget<'a>) -> Result<&'a str> {
    let host = target.host;
    let plain = !host.is_empty()
        && !host.starts_with('-')
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'));
    if !plain {
        bail!(
            "machine `{}`: .envctl/state.json records the ssh host `{}`, which is not a host \
             name or address (was the file edited?): `envctl up {}` records it again",
            target.name,
            host.escape_debug(),
            target.name
        );
    }
    Ok(host)
}

/// A path as one ssh_config argument. ssh splits arguments on white space outside double
/// quotes and expands `%` tokens and `${VAR}` in `IdentityFile` and `UserKnownHostsFile`:
/// `%` is doubled, and what cannot be written at all (a line break or other control
/// character, `"`, `\`, `${`) is refused.
fn path_argument(path: &Path) -> Result<String> {
    let Some(text) = path.to_str() else {
        bail!(
            "{} is not UTF-8, which ssh_config cannot carry",
            path.display()
        );
    };
    let unwritable = text
        .chars()
        .find(|c| c.is_control() || matches!(c, '"' | '\\'))
        .map(|c| format!("{c:?}"))
        .or_else(|| text.contains("${").then(|| "`${`".to_string()));
    if let Some(what) = unwritable {
        bail!(
            "the path {} holds {what}, which ssh_config cannot carry: move the project to a \
             folder without it",
            text.escape_debug()
        );
    }
    let escaped = text.replace('%', "%%");
    let plain = escaped.chars().all(|c| {
        c.is_ascii_alphanumeric()
            || matches!(c, '/' | '.' | '_' | '-' | '+' | '%' | ',' | ':' | '@')
    });
    Ok(if plain {
        escaped
    } else {
        format!("\"{escaped}\"")
    })
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
        )
        .unwrap();
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

    fn target(host: &str) -> SshTarget<'_> {
        SshTarget {
            name: "web1",
            user: "vagrant",
            host,
            port: 22,
        }
    }

    #[test]
    fn a_state_file_cannot_add_directives() {
        let key = Path::new("/p/.envctl/id_ed25519");
        let known = Path::new("/p/.envctl/known_hosts");
        for host in ["10.0.0.1", "127.0.0.1", "web1.demo.test", "fd00::5"] {
            let text = render_config(&[target(host)], key, known).unwrap();
            assert!(text.contains(&format!("  HostName {host}\n")), "{text}");
        }
        for host in [
            "10.0.0.1\nHost *\n  ProxyCommand touch /tmp/x",
            "10.0.0.1 -oProxyCommand=x",
            "\"10.0.0.1\"",
            "-oProxyCommand=x",
            "%d",
            "",
        ] {
            let err = render_config(&[target(host)], key, known).unwrap_err();
            assert!(
                err.to_string().contains("records the ssh host"),
                "{host:?}: {err}"
            );
        }
    }

    #[test]
    fn paths_are_quoted_escaped_or_refused() {
        let cases = [
            ("/p/known_hosts", Ok("/p/known_hosts")),
            ("/my p/known_hosts", Ok("\"/my p/known_hosts\"")),
            ("/p#1/known_hosts", Ok("\"/p#1/known_hosts\"")),
            ("/100%/known_hosts", Ok("/100%%/known_hosts")),
            ("/p\n  ProxyCommand x/known_hosts", Err("'\\n'")),
            ("/p\"q/known_hosts", Err("'\"'")),
            ("/p\\q/known_hosts", Err("'\\\\'")),
            ("/${HOME}/known_hosts", Err("`${`")),
        ];
        for (path, want) in cases {
            let got = path_argument(Path::new(path)).map_err(|err| err.to_string());
            match (got, want) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{path:?}"),
                (Err(err), Err(words)) => assert!(err.contains(words), "{path:?}: {err}"),
                (got, _) => panic!("{path:?}: {got:?}"),
            }
        }
    }
}
