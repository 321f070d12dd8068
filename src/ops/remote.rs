//! `shell` and `file` provisioners on one machine: one `ssh` with the environment's pinned
//! key (`ssh::args`), the script or file on its stdin, its output streamed line by line under the
//! machine's name.

use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;

use anyhow::{bail, Context, Result};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader};
use tokio::process::Command;

use crate::manifest::{FileUpload, Script, Shell};
use crate::output;
use crate::ssh::{self, Connection, Credentials, Mode, SshTarget};

/// Runs `shell` on the machine; fails with its exit status.
pub async fn run_shell(
    target: &SshTarget<'_>,
    creds: Credentials<'_>,
    shell: &Shell,
) -> Result<()> {
    let script = match &shell.script {
        Script::Inline(text) => text.clone().into_bytes(),
        Script::Path(path) => {
            std::fs::read(path).with_context(|| format!("reading the script {}", path.display()))?
        }
    };
    run_remote(target, creds, &shell_command(shell, &script), script).await
}

/// Copies the file to the machine as its user, keeping the file's mode.
pub async fn upload(
    target: &SshTarget<'_>,
    creds: Credentials<'_>,
    file: &FileUpload,
) -> Result<()> {
    let bytes = std::fs::read(&file.source)
        .with_context(|| format!("reading {}", file.source.display()))?;
    let mode = std::fs::metadata(&file.source)
        .with_context(|| format!("reading {}", file.source.display()))?
        .permissions()
        .mode()
        & 0o7777;
    run_remote(
        target,
        creds,
        &upload_command(&file.destination, mode),
        bytes,
    )
    .await
}

/// The remote command for a shell step: the script (on stdin) goes to a temporary file
/// that is removed after it ran; a script without `#!` runs under bash, as Vagrant's.
fn shell_command(shell: &Shell, script: &[u8]) -> String {
    let mut run = String::new();
    if shell.privileged {
        run.push_str("sudo -n ");
    }
    run.push_str("env");
    for (name, value) in &shell.env {
        run.push_str(&format!(" {name}={}", quote(value)));
    }
    if !script.starts_with(b"#!") {
        run.push_str(" /bin/bash");
    }
    run.push_str(" \"$t\"");
    for arg in &shell.args {
        run.push(' ');
        run.push_str(&quote(arg));
    }
    format!(
        "set -e; t=$(mktemp); trap 'rm -f \"$t\"' EXIT; cat > \"$t\"; chmod 0755 \"$t\"; set +e; {run}"
    )
}

/// The remote command for a file step: written beside the destination, then renamed.
fn upload_command(destination: &str, mode: u32) -> String {
    let dest = match destination.strip_prefix("~/") {
        Some(rest) => format!("\"$HOME\"/{}", quote(rest)),
        None => quote(destination),
    };
    format!(
        "set -e; d={dest}; mkdir -p -- \"$(dirname -- \"$d\")\"; cat > \"$d.envctl-new\"; \
         chmod {mode:o} \"$d.envctl-new\"; mv -f -- \"$d.envctl-new\" \"$d\""
    )
}

/// `text` as one word for a POSIX shell.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

async fn run_remote(
    target: &SshTarget<'_>,
    creds: Credentials<'_>,
    remote: &str,
    input: Vec<u8>,
) -> Result<()> {
    // envctl's one option set for connections; `ssh::run` buffers what it reads, and a
    // provisioner's output is streamed as it comes.
    let args = ssh::args(&Connection::pinned(target, creds), Mode::Batch)?;
    let mut child = Command::new("ssh")
        .args(args)
        .arg("--")
        .arg(remote)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("running ssh")?;
    let mut stdin = child.stdin.take().context("ssh's stdin")?;
    let stdout = child.stdout.take().context("ssh's stdout")?;
    let stderr = child.stderr.take().context("ssh's stderr")?;
    let feed = async move {
        // A script that exits early stops reading: a broken pipe is its exit status's news.
        stdin.write_all(&input).await.ok();
        drop(stdin);
    };
    let name = target.name;
    let ((), (), (), status) = tokio::join!(
        feed,
        stream(name, stdout),
        stream(name, stderr),
        child.wait()
    );
    let status = status.context("waiting for ssh")?;
    if !status.success() {
        match status.code() {
            Some(255) => bail!("ssh failed (exit status 255)"),
            Some(code) => bail!("exit status {code}"),
            None => bail!("{status}"),
        }
    }
    Ok(())
}

async fn stream(machine: &str, pipe: impl AsyncRead + Unpin) {
    let mut lines = BufReader::new(pipe).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        output::machine_line(machine, &line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn commands_quote_what_the_user_wrote() {
        let shell = Shell {
            script: Script::Inline("echo hi".into()),
            args: vec!["it's".into(), "$HOME".into()],
            env: BTreeMap::from([("GREETING".to_string(), "a b".to_string())]),
            privileged: true,
        };
        let command = shell_command(&shell, b"echo hi");
        assert!(
            command.ends_with("sudo -n env GREETING='a b' /bin/bash \"$t\" 'it'\\''s' '$HOME'"),
            "{command}"
        );
        let unprivileged = Shell {
            privileged: false,
            ..shell
        };
        let command = shell_command(&unprivileged, b"#!/bin/sh\n");
        assert!(
            command.ends_with("; env GREETING='a b' \"$t\" 'it'\\''s' '$HOME'"),
            "{command}"
        );
        assert!(upload_command("~/a b", 0o640).contains("d=\"$HOME\"/'a b';"));
        assert!(upload_command("/etc/x", 0o644).contains("chmod 644 "));
    }
}
