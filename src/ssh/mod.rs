//! envctl's own SSH connections, through the OpenSSH client that Ansible uses too: the
//! readiness barrier and `envctl ssh`. Host keys are always checked, never learned.

mod config;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::net::TcpStream;
use tokio::process::Command;

pub use config::{render_config, render_known_hosts, KnownHost, SshTarget};

/// The private key and `known_hosts` every connection uses.
#[derive(Clone, Copy)]
pub struct Credentials<'a> {
    pub private_key: &'a Path,
    pub known_hosts: &'a Path,
}

/// The arguments that pin the environment's key and host keys, for any `ssh` command line.
pub fn pinned_args(target: &SshTarget, creds: Credentials) -> Vec<String> {
    let mut args: Vec<String> = [
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "GlobalKnownHostsFile=/dev/null",
        "-o",
        "UpdateHostKeys=no",
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "PasswordAuthentication=no",
    ]
    .map(String::from)
    .to_vec();
    args.push("-o".into());
    args.push(format!(
        "UserKnownHostsFile={}",
        creds.known_hosts.display()
    ));
    args.push("-o".into());
    args.push(format!("HostKeyAlias={}", target.name));
    args.push("-i".into());
    args.push(creds.private_key.display().to_string());
    args.push("-p".into());
    args.push(target.port.to_string());
    args.push(format!("{}@{}", target.user, target.host));
    args
}

/// Waits until the machine accepts SSH with the environment's key and pinned host key.
/// On time-out, says the last thing it saw.
pub async fn wait_ready(
    target: &SshTarget<'_>,
    creds: Credentials<'_>,
    timeout: Duration,
) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    let address = format!("{}:{}", target.host, target.port);
    let mut last_seen = String::from("nothing yet");
    while Instant::now() < deadline {
        // A TCP probe is cheap; start ssh only once something listens.
        match tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(&address)).await {
            Ok(Ok(_)) => {}
            Ok(Err(err)) => {
                last_seen = format!("tcp {address}: {err}");
                tokio::time::sleep(Duration::from_millis(150)).await;
                continue;
            }
            Err(_) => {
                last_seen = format!("tcp {address}: no answer");
                continue;
            }
        }
        match try_login(target, creds).await {
            Ok(()) => return Ok(()),
            Err(seen) => last_seen = seen,
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    Err(last_seen)
}

async fn try_login(target: &SshTarget<'_>, creds: Credentials<'_>) -> Result<(), String> {
    let output = Command::new("ssh")
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
        .args(pinned_args(target, creds))
        .arg("true")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|err| format!("running ssh: {err}"))?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    Err(stderr
        .lines()
        .rfind(|line| !line.trim().is_empty())
        .map(|line| format!("ssh: {}", line.trim()))
        .unwrap_or_else(|| format!("ssh exited with {}", output.status)))
}
