//! The one set of OpenSSH options every envctl connection uses: readiness, bootstrap and
//! `envctl ssh`. Connections differ only in which host keys they accept, which keys they
//! offer, and whether a person is at the other end.

use std::path::Path;

use anyhow::{bail, Context, Result};

use super::SshTarget;

/// Which host keys a connection accepts.
#[derive(Clone, Copy, Debug)]
pub enum HostKeys<'a> {
    /// Only the key envctl generated, read from this `known_hosts` under the machine's name.
    Pinned(&'a Path),
    /// Bootstrap's first contact with a box: its own key, learned into this file the first
    /// time it is seen (trust on first use), then held for the rest of the bootstrap.
    FirstContact(&'a Path),
}

/// Who runs the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// envctl itself: never prompts, and says at INFO level why a connection ended (with
    /// `ERROR` ssh says nothing about a login refused by pam_nologin, for one).
    Batch,
    /// A person at a terminal (`envctl ssh`): only errors, no "Connection closed" on exit.
    Interactive,
}

/// One connection: where to, which host keys to accept, which private keys to offer.
pub struct Connection<'a> {
    pub target: &'a SshTarget<'a>,
    pub host_keys: HostKeys<'a>,
    pub identities: Vec<&'a Path>,
    /// The folder of the control sockets Ansible's connections use (`.envctl/cp`): a login
    /// made with it stays open 60 s as a master that Ansible's first task then reuses,
    /// instead of logging in afresh to every machine. Only pinned logins get one, so the
    /// master has checked the pinned host key.
    pub kept_open_in: Option<&'a Path>,
}

/// The longest path a unix socket may have (`sun_path`, with its final NUL).
const MAX_SOCKET_PATH: usize = 107;
/// What `%C` expands to: a SHA-1 in hex.
const CONTROL_HASH_LEN: usize = 40;
/// What ssh appends to the socket's name while it makes it (`.` and 16 random letters),
/// before renaming it to the name asked for.
const CONTROL_TEMP_SUFFIX_LEN: usize = 17;

/// Whether sockets named `%C` in `dir` fit the socket path limit. A master whose socket
/// does not fit is not made at all: ssh fails the login ("too long for Unix domain
/// socket"), so such a folder gets no master.
pub fn control_sockets_fit(dir: &Path) -> bool {
    dir.as_os_str().len() + 1 + CONTROL_HASH_LEN + CONTROL_TEMP_SUFFIX_LEN <= MAX_SOCKET_PATH
}

/// The `ssh` arguments up to and including the destination; a remote command may follow.
pub fn args(conn: &Connection, mode: Mode) -> Result<Vec<String>> {
    // No ssh_config: the user's own (ProxyJump, ControlMaster, other keys) must not change
    // how envctl's connections are checked.
    let mut args = vec!["-F".to_string(), "/dev/null".to_string()];
    let (checking, known_hosts) = match conn.host_keys {
        HostKeys::Pinned(path) => ("yes", path),
        HostKeys::FirstContact(path) => ("accept-new", path),
    };
    let mut options = vec![
        format!("StrictHostKeyChecking={checking}"),
        format!("UserKnownHostsFile={}", config_path(known_hosts)?),
        "GlobalKnownHostsFile=/dev/null".to_string(),
        // Host keys are filed under the machine's name, whatever address reaches it.
        format!("HostKeyAlias={}", conn.target.name),
        "UpdateHostKeys=no".to_string(),
        "CheckHostIP=no".to_string(),
        "IdentitiesOnly=yes".to_string(),
        "PreferredAuthentications=publickey".to_string(),
        "PasswordAuthentication=no".to_string(),
        "KbdInteractiveAuthentication=no".to_string(),
        "ConnectTimeout=10".to_string(),
        // A machine that stops under a connection ends it in 15 s rather than never.
        "ServerAliveInterval=5".to_string(),
        "ServerAliveCountMax=3".to_string(),
    ];
    if super::locality::stays_on_this_host(conn.target.host) {
        options.push(super::locality::HOST_LOCAL_KEX.to_string());
    }
    for identity in &conn.identities {
        options.push(format!("IdentityFile={}", config_path(identity)?));
    }
    if let Some(dir) = conn.kept_open_in.filter(|dir| control_sockets_fit(dir)) {
        // Ansible's own settings (`ops::ansible`), so that its ssh finds this master.
        let quoted = config_path(dir)?;
        let dir = quoted.strip_suffix('"').unwrap_or(&quoted);
        options.extend([
            "ControlMaster=auto".into(),
            "ControlPersist=60s".into(),
            format!("ControlPath={dir}/%C\""),
        ]);
    }
    match mode {
        Mode::Batch => options.extend(["BatchMode=yes".into(), "LogLevel=INFO".into()]),
        Mode::Interactive => options.push("LogLevel=ERROR".into()),
    }
    for option in options {
        args.push("-o".into());
        args.push(option);
    }
    args.extend([
        "-p".into(),
        conn.target.port.to_string(),
        "-l".into(),
        conn.target.user.to_string(),
        conn.target.host.to_string(),
    ]);
    Ok(args)
}

/// A path as the value of an ssh `-o` option. ssh splits values on white space unless they
/// are in double quotes (inside which `\` escapes `"` and `\`), and expands `%` tokens in
/// `IdentityFile` and `UserKnownHostsFile` (`%%` is a literal `%`). It also expands
/// `${NAME}` there, with no way to escape it: such a path is refused, as is one with a
/// line break or other control character.
pub fn config_path(path: &Path) -> Result<String> {
    let text = path
        .to_str()
        .with_context(|| format!("{} is not UTF-8, which ssh options need", path.display()))?;
    if text.contains("${") || text.contains(char::is_control) {
        bail!(
            "the path {} holds `${{` (which ssh reads as an environment variable) or a control \
             character, which ssh options cannot carry: move the project to a folder without it",
            text.escape_debug()
        );
    }
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('"');
    for c in text.chars() {
        match c {
            '"' | '\\' => {
                quoted.push('\\');
                quoted.push(c);
            }
            '%' => quoted.push_str("%%"),
            _ => quoted.push(c),
        }
    }
    quoted.push('"');
    Ok(quoted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> SshTarget<'static> {
        SshTarget {
            name: "web1",
            user: "vagrant",
            host: "10.0.0.11",
            port: 2222,
        }
    }

    #[test]
    fn paths_are_quoted_for_sshs_own_parser() {
        let cases = [
            ("/p/.envctl/known_hosts", r#""/p/.envctl/known_hosts""#),
            ("/my p/known_hosts", r#""/my p/known_hosts""#),
            ("/100%/k", r#""/100%%/k""#),
            (r#"/a"b\c"#, r#""/a\"b\\c""#),
            ("/$HOME/k", r#""/$HOME/k""#),
        ];
        for (path, want) in cases {
            assert_eq!(config_path(Path::new(path)).unwrap(), want, "{path}");
        }
        for refused in ["/a${HOME}/k", "/a\nProxyCommand x/k"] {
            let err = config_path(Path::new(refused)).unwrap_err();
            assert!(format!("{err}").contains("cannot carry"), "{err}");
        }
    }

    /// ssh reads the values back as the paths they were (`ssh -G` prints what it parsed,
    /// `%` tokens of UserKnownHostsFile expanded).
    #[test]
    fn ssh_reads_a_quoted_path_back_whole() {
        let dir = Path::new("/tmp/envctl ready 100%/a\"b");
        let known_hosts = dir.join("known_hosts");
        let target = target();
        let conn = Connection {
            target: &target,
            host_keys: HostKeys::Pinned(&known_hosts),
            identities: vec![],
            kept_open_in: None,
        };
        let output = std::process::Command::new("ssh")
            .arg("-G")
            .args(args(&conn, Mode::Batch).unwrap())
            .output()
            .unwrap();
        let printed = String::from_utf8_lossy(&output.stdout);
        let line = printed
            .lines()
            .find(|line| line.starts_with("userknownhostsfile "))
            .unwrap();
        assert_eq!(
            line,
            "userknownhostsfile /tmp/envctl ready 100%/a\"b/known_hosts"
        );
    }

    /// A login kept open for Ansible names the socket Ansible's own settings name, and a
    /// folder too deep for a socket path gets no master at all (ssh would fail to make it).
    #[test]
    fn a_kept_open_login_uses_ansibles_control_socket() {
        let target = target();
        let known_hosts = Path::new("/p/known_hosts");
        let printed = |dir: &Path| {
            let conn = Connection {
                target: &target,
                host_keys: HostKeys::Pinned(known_hosts),
                identities: vec![],
                kept_open_in: Some(dir),
            };
            let output = std::process::Command::new("ssh")
                .arg("-G")
                .args(args(&conn, Mode::Batch).unwrap())
                .output()
                .unwrap();
            String::from_utf8_lossy(&output.stdout).into_owned()
        };
        let shallow = printed(Path::new("/p 100%/.envctl/cp"));
        assert!(shallow.contains("\ncontrolmaster auto\n"), "{shallow}");
        assert!(shallow.contains("\ncontrolpersist 60\n"), "{shallow}");
        let path = shallow
            .lines()
            .find_map(|line| line.strip_prefix("controlpath "))
            .unwrap();
        let hash = path.strip_prefix("/p 100%/.envctl/cp/").unwrap();
        assert!(
            hash.len() == 40 && hash.chars().all(|c| c.is_ascii_hexdigit()),
            "{path}"
        );

        // 49 characters is the deepest folder whose socket ssh can make.
        assert!(control_sockets_fit(Path::new(&format!(
            "/{}",
            "d".repeat(48)
        ))));
        assert!(!control_sockets_fit(Path::new(&format!(
            "/{}",
            "d".repeat(49)
        ))));
        let deep = printed(&Path::new("/p").join("d".repeat(80)));
        assert!(deep.contains("\ncontrolmaster false\n"), "{deep}");
        assert!(!deep.contains("\ncontrolpath "), "{deep}");
    }

    #[test]
    fn pinned_and_first_contact_differ_only_in_host_key_checking() {
        let target = target();
        let key = Path::new("/p/id_ed25519");
        let known = Path::new("/p/known_hosts");
        let pinned = args(
            &Connection {
                target: &target,
                host_keys: HostKeys::Pinned(known),
                identities: vec![key],
                kept_open_in: None,
            },
            Mode::Batch,
        )
        .unwrap();
        let first = args(
            &Connection {
                target: &target,
                host_keys: HostKeys::FirstContact(known),
                identities: vec![key],
                kept_open_in: None,
            },
            Mode::Batch,
        )
        .unwrap();
        let differing: Vec<(&String, &String)> =
            pinned.iter().zip(&first).filter(|(a, b)| a != b).collect();
        assert_eq!(
            differing,
            [(
                &"StrictHostKeyChecking=yes".to_string(),
                &"StrictHostKeyChecking=accept-new".to_string()
            )]
        );
        for option in [
            "HostKeyAlias=web1",
            "GlobalKnownHostsFile=/dev/null",
            "IdentitiesOnly=yes",
            "PasswordAuthentication=no",
            "BatchMode=yes",
            "IdentityFile=\"/p/id_ed25519\"",
        ] {
            assert!(pinned.iter().any(|arg| arg == option), "{option} missing");
        }
        assert_eq!(pinned[..2], ["-F", "/dev/null"]);
        assert_eq!(
            pinned[pinned.len() - 5..],
            ["-p", "2222", "-l", "vagrant", "10.0.0.11"]
        );
    }

    /// Only a connection that stays on this host puts curve25519 first; ssh still offers
    /// its whole default list after it.
    #[test]
    fn only_host_local_connections_prefer_the_cheaper_key_exchange() {
        let known = Path::new("/p/known_hosts");
        for (host, local) in [("127.0.0.1", true), ("web1.example.test", false)] {
            let target = SshTarget { host, ..target() };
            let conn = Connection {
                target: &target,
                host_keys: HostKeys::Pinned(known),
                identities: vec![],
                kept_open_in: None,
            };
            let args = args(&conn, Mode::Batch).unwrap();
            let kex = args
                .iter()
                .any(|arg| arg == super::super::locality::HOST_LOCAL_KEX);
            assert_eq!(kex, local, "{host}: {args:?}");
        }
    }
}
