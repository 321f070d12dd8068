//! Forwarded ports of libvirt machines: one `ssh -N -L host_ip:host:127.0.0.1:guest`
//! per port, as vagrant-libvirt keeps them, over the environment's pinned connection.
//! libvirt cannot forward a port of a NAT network itself, and a DNAT rule set would need
//! `route_localnet` for 127.0.0.1, a host-wide weakening; a tunnel needs nothing of the
//! host but the port it listens on.
//!
//! A tunnel runs detached from envctl, in a process group of its own (Ctrl-C at the
//! terminal does not reach it), in the project's folder, and is found again by a marker
//! on its command line, `SetEnv=ENVCTL_TUNNEL=<env id>/<machine>`: no pid file to go
//! stale. `up` makes the missing ones (so it restores one that died), `halt`, `destroy`,
//! `up --switch` and `gc --remove` end them (the last two through
//! `ownership::remove_all`). A machine stopped behind envctl's back ends its tunnels
//! itself within 15 s (ServerAliveInterval).

use std::fs::{self, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use envctl_provider::{PortForward, ProviderKind};

use crate::output;
use crate::ssh::{self, Connection, Credentials, Mode, SshTarget};
use crate::state::MachineRecord;

/// The marker's variable. `SetEnv` is only sent for a session, and `-N` opens none: it is
/// a mark on the command line and nothing more.
const MARKER: &str = "ENVCTL_TUNNEL";

/// How long a new tunnel has to log in and listen.
const LISTEN_WITHIN: Duration = Duration::from_secs(30);

/// Whether `kind` forwards ports through envctl's tunnels.
pub fn used_by(kind: ProviderKind) -> bool {
    kind == ProviderKind::Libvirt
}

/// One machine's tunnels to keep: who logs in where, and the forwards in effect.
pub struct Wanted<'a> {
    pub name: &'a str,
    pub user: &'a str,
    pub record: &'a MachineRecord,
    pub forwards: &'a [PortForward],
}

/// A tunnel process found by its marker.
#[derive(Debug, PartialEq, Eq)]
struct Found {
    pid: u32,
    machine: String,
    /// Its `-L` argument.
    forward: String,
}

/// Makes every tunnel `wanted` lacks, and ends those of its machines that forward what
/// the Machinefile no longer lists. Idempotent: a live tunnel with the same forward stays.
pub fn ensure(
    env_id: &str,
    project_dir: &Path,
    log: &Path,
    creds: Credentials<'_>,
    wanted: &[Wanted<'_>],
) -> Result<()> {
    let found = find(env_id);
    for machine in wanted {
        let forwards: Vec<String> = machine.forwards.iter().map(local_forward).collect();
        for stale in found
            .iter()
            .filter(|t| t.machine == machine.name && !forwards.contains(&t.forward))
        {
            end(stale.pid);
        }
        for (forward, port) in forwards.iter().zip(machine.forwards) {
            let live = found
                .iter()
                .any(|t| t.machine == machine.name && t.forward == *forward);
            if live {
                continue;
            }
            start(env_id, project_dir, log, creds, machine, port)
                .with_context(|| format!("machine `{}`: forwarding {forward}", machine.name))?;
        }
    }
    Ok(())
}

/// Ends the tunnels of environment `env_id`: of `machines` alone, or all when None. Waits
/// until they are gone, so their ports are free when this returns.
pub fn stop(env_id: &str, machines: Option<&[String]>) {
    let ending: Vec<u32> = find(env_id)
        .into_iter()
        .filter(|t| machines.is_none_or(|names| names.contains(&t.machine)))
        .map(|t| t.pid)
        .collect();
    for pid in &ending {
        end(*pid);
    }
}

/// ssh's `-L` argument for `forward`: the guest side is the machine's own loopback, which
/// a service listening on all addresses or on localhost both answer.
fn local_forward(forward: &PortForward) -> String {
    format!(
        "{}:{}:127.0.0.1:{}",
        forward.host_ip, forward.host, forward.guest
    )
}

fn marker(env_id: &str, machine: &str) -> String {
    format!("SetEnv={MARKER}={env_id}/{machine}")
}

/// The command of one tunnel: envctl's pinned option set, never a prompt, the forward
/// bound or the process gone (ExitOnForwardFailure), no session (`-N`).
fn command(
    env_id: &str,
    creds: Credentials<'_>,
    machine: &Wanted<'_>,
    forward: &PortForward,
) -> Result<Vec<String>> {
    let target = SshTarget {
        name: machine.name,
        user: machine.user,
        host: &machine.record.ssh_host,
        port: machine.record.ssh_port,
    };
    // ssh takes the first value of an option: these come before the shared set.
    let mut args = vec![
        "-N".to_string(),
        "-o".into(),
        marker(env_id, machine.name),
        "-o".into(),
        "ExitOnForwardFailure=yes".into(),
        "-L".into(),
        local_forward(forward),
    ];
    args.extend(ssh::args(&Connection::pinned(&target, creds), Mode::Batch)?);
    Ok(args)
}

fn start(
    env_id: &str,
    project_dir: &Path,
    log: &Path,
    creds: Credentials<'_>,
    machine: &Wanted<'_>,
    forward: &PortForward,
) -> Result<()> {
    let args = command(env_id, creds, machine, forward)?;
    let log_file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(log)
        .with_context(|| format!("opening {}", log.display()))?;
    let start_of_log = log_file.metadata().map_or(0, |m| m.len());
    let mut child = Command::new("ssh")
        .args(&args)
        .current_dir(project_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log_file)
        // Its own group: the terminal's Ctrl-C is for envctl, not for the tunnels it leaves.
        .process_group(0)
        .spawn()
        .context("running ssh")?;
    let deadline = Instant::now() + LISTEN_WITHIN;
    loop {
        if let Some(status) = child.try_wait().context("waiting for ssh")? {
            bail!(
                "ssh ended ({status}) before listening: {}",
                log_since(log, start_of_log)
            );
        }
        if listening(child.id(), forward) {
            output::verbose(&format!(
                "tunnel for {}: {} (pid {})",
                machine.name,
                local_forward(forward),
                child.id()
            ));
            return Ok(());
        }
        if Instant::now() > deadline {
            end(child.id());
            let _ = child.wait();
            bail!(
                "ssh did not listen within {} s: {}",
                LISTEN_WITHIN.as_secs(),
                log_since(log, start_of_log)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// What ssh logged from `offset` on, trimmed, for an error.
fn log_since(log: &Path, offset: u64) -> String {
    let mut text = String::new();
    if let Ok(mut file) = fs::File::open(log) {
        use std::io::Seek;
        let _ = file.seek(std::io::SeekFrom::Start(offset));
        let _ = file.read_to_string(&mut text);
    }
    let text = text.trim();
    if text.is_empty() {
        "it said nothing".to_string()
    } else {
        text.to_string()
    }
}

/// Whether process `pid` holds a listening socket on `forward`'s host port.
fn listening(pid: u32, forward: &PortForward) -> bool {
    let Ok(table) = fs::read_to_string("/proc/net/tcp") else {
        return false;
    };
    let inodes: Vec<String> = table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let port = fields.get(1)?.rsplit_once(':')?.1;
            let inode = fields.get(9)?;
            (u16::from_str_radix(port, 16).ok()? == forward.host && fields.get(3) == Some(&"0A"))
                .then(|| format!("socket:[{inode}]"))
        })
        .collect();
    let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        fs::read_link(fd.path()).is_ok_and(|target| {
            inodes
                .iter()
                .any(|inode| target.as_os_str() == inode.as_str())
        })
    })
}

/// This user's tunnels of environment `env_id`, from /proc.
fn find(env_id: &str) -> Vec<Found> {
    let me = fs::metadata("/proc/self").map(|m| m.uid()).ok();
    let Ok(processes) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    processes
        .flatten()
        .filter(|process| {
            let name = process.file_name();
            name.to_string_lossy().bytes().all(|b| b.is_ascii_digit())
                && process.metadata().ok().map(|m| m.uid()) == me
        })
        .filter_map(|process| {
            let pid: u32 = process.file_name().to_string_lossy().parse().ok()?;
            let cmdline = fs::read(process.path().join("cmdline")).ok()?;
            let args: Vec<String> = cmdline
                .split(|b| *b == 0)
                .map(|arg| String::from_utf8_lossy(arg).into_owned())
                .collect();
            parse(pid, &args, env_id)
        })
        .collect()
}

/// A tunnel of `env_id`'s, if `args` is one's command line.
fn parse(pid: u32, args: &[String], env_id: &str) -> Option<Found> {
    let program = Path::new(args.first()?).file_name()?;
    if program != "ssh" {
        return None;
    }
    let prefix = format!("SetEnv={MARKER}={env_id}/");
    let machine = args.iter().find_map(|arg| arg.strip_prefix(&prefix))?;
    let forward = args
        .windows(2)
        .find_map(|pair| (pair[0] == "-L").then(|| pair[1].clone()))?;
    Some(Found {
        pid,
        machine: machine.to_string(),
        forward,
    })
}

/// Ends process `pid` and waits (up to 5 s) until it is gone or a zombie of envctl's own.
fn end(pid: u32) {
    let Ok(raw) = libc::pid_t::try_from(pid) else {
        return;
    };
    // SAFETY: kill(2) with a pid found by its marker, owned by this user.
    unsafe {
        libc::kill(raw, libc::SIGTERM);
    }
    let stat = PathBuf::from(format!("/proc/{pid}/stat"));
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        match fs::read_to_string(&stat) {
            Ok(text)
                if !text
                    .rsplit_once(") ")
                    .is_some_and(|(_, rest)| rest.starts_with('Z')) =>
            {
                std::thread::sleep(Duration::from_millis(50));
            }
            _ => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tunnel_is_known_by_its_marker_and_forward() {
        let line = |args: &[&str]| args.iter().map(|a| a.to_string()).collect::<Vec<_>>();
        let cases = [
            (
                line(&[
                    "ssh",
                    "-N",
                    "-o",
                    "SetEnv=ENVCTL_TUNNEL=abc/web1",
                    "-L",
                    "127.0.0.1:8080:127.0.0.1:80",
                ]),
                Some(("web1", "127.0.0.1:8080:127.0.0.1:80")),
            ),
            (
                line(&[
                    "/usr/bin/ssh",
                    "-o",
                    "SetEnv=ENVCTL_TUNNEL=abc/db1",
                    "-L",
                    "0.0.0.0:5432:127.0.0.1:5432",
                ]),
                Some(("db1", "0.0.0.0:5432:127.0.0.1:5432")),
            ),
            // Another environment's, or not ssh at all.
            (
                line(&["ssh", "-o", "SetEnv=ENVCTL_TUNNEL=other/web1", "-L", "x"]),
                None,
            ),
            (
                line(&["sleep", "SetEnv=ENVCTL_TUNNEL=abc/web1", "-L", "x"]),
                None,
            ),
        ];
        for (args, want) in cases {
            let got = parse(7, &args, "abc");
            let got = got
                .as_ref()
                .map(|f| (f.machine.as_str(), f.forward.as_str()));
            assert_eq!(got, want, "{args:?}");
        }
    }

    /// The marker and forward come before the shared options, whose first value ssh
    /// keeps; host keys stay pinned.
    #[test]
    fn a_tunnel_is_pinned_and_marked() {
        let record = MachineRecord {
            ssh_host: "10.231.55.11".into(),
            ssh_port: 22,
            ..Default::default()
        };
        let forward = PortForward {
            guest: 80,
            host: 18080,
            host_ip: "127.0.0.1".parse().unwrap(),
            protocol: envctl_provider::Protocol::Tcp,
            auto_correct: false,
        };
        let creds = Credentials {
            private_key: Path::new("/p/.envctl/id_ed25519"),
            known_hosts: Path::new("/p/.envctl/known_hosts"),
        };
        let args = command(
            "abc",
            creds,
            &Wanted {
                name: "web1",
                user: "vagrant",
                record: &record,
                forwards: &[],
            },
            &forward,
        )
        .unwrap();
        assert_eq!(
            args[..7],
            [
                "-N",
                "-o",
                "SetEnv=ENVCTL_TUNNEL=abc/web1",
                "-o",
                "ExitOnForwardFailure=yes",
                "-L",
                "127.0.0.1:18080:127.0.0.1:80"
            ]
        );
        assert!(
            args.contains(&"StrictHostKeyChecking=yes".to_string()),
            "{args:?}"
        );
        assert_eq!(args.last().map(String::as_str), Some("10.231.55.11"));
    }
}
