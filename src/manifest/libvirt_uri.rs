//! The libvirt URIs envctl connects to, from a Machinefile or `LIBVIRT_DEFAULT_URI`.
//!
//! A libvirt URI is more than an address: its transport and query parameters can make
//! the client run programs (`qemu+ext:///system?command=./x` runs `./x`, `command=` picks
//! the ssh binary), run commands on the remote host (`netcat=`, `socket=`, spliced into
//! the remote shell command), read other key files (`keyfile=`, `pkipath=`) or switch off
//! verification of the remote host (`no_verify=`, `known_hosts_verify=`,
//! `tls_priority=`); unknown parameters are passed through to the daemon. A Machinefile
//! comes from a checkout that may not have been read, so only what libvirt users of
//! envctl need is accepted: the local `qemu:///system` and `qemu:///session`, and
//! `qemu+ssh`, `qemu+tls` or `qemu+tcp` to `HOST/system` or `HOST/session`, with only
//! the parameters that choose among fixed behaviours (`mode`, `proxy`, `no_tty`).
//! Everything else is refused, not filtered: a denylist would miss the next parameter
//! libvirt adds. Settings that name files belong in the user's own ssh or libvirt
//! client configuration.

/// The transports accepted after `qemu+`.
const REMOTE_TRANSPORTS: [&str; 3] = ["ssh", "tls", "tcp"];

/// Parameters that choose among fixed behaviours, with the values each may take.
const SAFE_PARAMETERS: [(&str, &[&str]); 3] = [
    ("mode", &["auto", "direct", "legacy"]),
    ("proxy", &["auto", "netcat", "native"]),
    ("no_tty", &["0", "1"]),
];

const ACCEPTED: &str = "envctl accepts qemu:///system, qemu:///session, and \
                        qemu+ssh://, qemu+tls:// or qemu+tcp://[USER@]HOST[:PORT]/system";

/// Why envctl will not connect to `uri`, if it will not.
pub fn check_libvirt_uri(uri: &str) -> Result<(), String> {
    if uri.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("holds spaces or control characters".into());
    }
    if uri.contains('#') {
        return Err("has a fragment (`#…`), which libvirt URIs do not use".into());
    }
    let Some((scheme, rest)) = uri.split_once("://") else {
        return Err(format!("is not a libvirt URI: {ACCEPTED}"));
    };
    let (place, query) = match rest.split_once('?') {
        Some((place, query)) => (place, Some(query)),
        None => (rest, None),
    };
    let (authority, path) = match place.find('/') {
        Some(at) => place.split_at(at),
        None => (place, ""),
    };
    if path != "/system" && path != "/session" {
        return Err(format!(
            "names the driver path `{path}`: use /system or /session"
        ));
    }
    match scheme.strip_prefix("qemu+") {
        None if scheme == "qemu" => check_local(authority, query),
        Some(transport) if REMOTE_TRANSPORTS.contains(&transport) => {
            check_authority(authority)?;
            query.map_or(Ok(()), check_query)
        }
        Some("ext") => Err(format!(
            "uses the `ext` transport, which runs a program the URI names: {ACCEPTED}"
        )),
        _ => Err(format!("uses the transport `{scheme}`: {ACCEPTED}")),
    }
}

/// `qemu:///system` and `qemu:///session`: no host, and nothing to tune.
fn check_local(authority: &str, query: Option<&str>) -> Result<(), String> {
    if !authority.is_empty() {
        return Err(format!(
            "names the host `{authority}` without a transport: use qemu+ssh://{authority}/system \
             or qemu+tls://{authority}/system"
        ));
    }
    if query.is_some() {
        return Err("has query parameters, which a local connection does not need".into());
    }
    Ok(())
}

/// `[USER@]HOST[:PORT]`, each part plain: the ssh transport passes them to ssh as
/// arguments, where a leading `-` would be an option.
fn check_authority(authority: &str) -> Result<(), String> {
    let (user, host_port) = match authority.rsplit_once('@') {
        Some((user, host_port)) => (Some(user), host_port),
        None => (None, authority),
    };
    if let Some(user) = user {
        if !is_plain_word(user) {
            return Err(format!("names the user `{user}`: use letters, digits, `.`, `_` and `-`, not starting with `-`"));
        }
    }
    let (host, port) = split_port(host_port);
    if host.is_empty() {
        return Err("names no host: a remote transport needs one".into());
    }
    let bracketed = host.starts_with('[') && host.ends_with(']') && host.len() > 2;
    let plain_ipv6 = bracketed
        && host[1..host.len() - 1]
            .chars()
            .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.');
    if !plain_ipv6 && !is_plain_word(host) {
        return Err(format!(
            "names the host `{host}`: use a host name or address"
        ));
    }
    match port {
        Some(port) if port.parse::<u16>().map_or(true, |port| port == 0) => Err(format!(
            "names the port `{port}`: use a number from 1 to 65535"
        )),
        _ => Ok(()),
    }
}

/// `host:port` → (`host`, Some(`port`)), minding `[v6]:port`.
fn split_port(host_port: &str) -> (&str, Option<&str>) {
    let after_brackets = host_port.rfind(']').map_or(0, |at| at + 1);
    match host_port[after_brackets..].find(':') {
        Some(at) => {
            let at = after_brackets + at;
            (&host_port[..at], Some(&host_port[at + 1..]))
        }
        None => (host_port, None),
    }
}

fn is_plain_word(word: &str) -> bool {
    !word.is_empty()
        && !word.starts_with('-')
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

fn check_query(query: &str) -> Result<(), String> {
    for pair in query.split('&') {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let Some((_, values)) = SAFE_PARAMETERS.iter().find(|(safe, _)| *safe == name) else {
            return Err(format!(
                "has the query parameter `{name}`, which {}",
                refusal(name)
            ));
        };
        if !values.contains(&value) {
            return Err(format!(
                "has `{name}={value}`: give one of {}",
                values.join(", ")
            ));
        }
    }
    Ok(())
}

/// Why a parameter is refused, in words the user can act on.
fn refusal(name: &str) -> &'static str {
    match name {
        "command" | "netcat" => "names a program to run, here or on the remote host",
        "socket" => "names a socket path that goes into a command on the remote host",
        "keyfile" | "pkipath" | "known_hosts" => {
            "names key or certificate files: set them in your ssh or libvirt client \
             configuration, not in a Machinefile"
        }
        "no_verify" | "known_hosts_verify" | "tls_priority" | "sshauth" => {
            "weakens the check of the remote host"
        }
        "name" => "names another URI for the remote daemon to open",
        _ => "envctl does not pass to libvirt (only mode, proxy and no_tty)",
    }
}

#[cfg(test)]
mod tests {
    use super::check_libvirt_uri;

    #[test]
    fn what_libvirt_users_need_is_accepted() {
        for uri in [
            "qemu:///system",
            "qemu:///session",
            "qemu+ssh://host/system",
            "qemu+ssh://root@kvm1.example.com:2222/system?no_tty=1",
            "qemu+ssh://ops@10.0.0.5/session?mode=direct&proxy=native",
            "qemu+tls://kvm1.example.com/system",
            "qemu+tcp://[fd00::5]:16509/system",
        ] {
            assert_eq!(check_libvirt_uri(uri), Ok(()), "{uri}");
        }
    }

    #[test]
    fn everything_else_is_refused_with_why() {
        let cases = [
            ("qemu+ext:///system?command=./script", "runs a program"),
            (
                "qemu+ssh://h/system?command=./ssh",
                "`command`, which names a program",
            ),
            (
                "qemu+ssh://h/system?netcat=touch%20x",
                "`netcat`, which names a program",
            ),
            ("qemu+ssh://h/system?socket=/x;id", "`socket`"),
            (
                "qemu+ssh://h/system?no_tty=1&keyfile=/k",
                "`keyfile`, which names key",
            ),
            ("qemu+tls://h/system?no_verify=1", "weakens"),
            ("qemu+tls://h/system?pkipath=/tmp", "`pkipath`"),
            ("qemu+ssh://h/system?name=qemu+ext:///", "another URI"),
            ("qemu+ssh://h/system?%63ommand=x", "`%63ommand`"),
            ("qemu+ssh://h/system?mode=direct;command=x", "give one of"),
            ("qemu+ssh://h/system?proxy", "give one of auto"),
            ("qemu+unix:///system?socket=/tmp/s", "transport `qemu+unix`"),
            ("qemu+libssh2://h/system", "transport"),
            ("xen:///system", "transport `xen`"),
            ("qemu:///system?socket=/tmp/s", "local connection"),
            ("qemu://host/system", "without a transport"),
            ("qemu:///embed?root=/tmp", "driver path `/embed`"),
            ("qemu+ssh:///system", "names no host"),
            (
                "qemu+ssh://-oProxyCommand=x/system",
                "host `-oProxyCommand=x`",
            ),
            ("qemu+ssh://-oProxyCommand=x@h/system", "user"),
            ("qemu+ssh://h:0/system", "port `0`"),
            ("qemu+ssh://h:22x/system", "port `22x`"),
            ("qemu+ssh://h/system#x", "fragment"),
            ("qemu+ssh://h/sys tem", "spaces"),
            ("qemu:///system\n", "control"),
            ("system", "is not a libvirt URI"),
            ("", "is not a libvirt URI"),
        ];
        for (uri, words) in cases {
            match check_libvirt_uri(uri) {
                Ok(()) => panic!("{uri:?} was accepted"),
                Err(why) => assert!(why.contains(words), "{uri:?}: {why}"),
            }
        }
    }
}
