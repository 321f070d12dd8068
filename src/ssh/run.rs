//! Running one non-interactive `ssh` command, bounded in time.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

/// How one `ssh` run ended.
#[derive(Debug)]
pub struct Outcome {
    /// The remote command's exit code; 255 is ssh's own failure; None when killed.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Outcome {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// ssh itself failed (connection, host key, authentication), not the remote command.
    pub fn ssh_failed(&self) -> bool {
        self.code == Some(255)
    }
}

/// Runs `ssh ARGS COMMAND`, with `input` on its standard input (secrets go there, never
/// on a command line). Gives up after `limit`, killing ssh: one call never hangs a loop.
pub async fn run(
    args: &[String],
    command: &str,
    input: &[u8],
    limit: Duration,
) -> Result<Outcome, String> {
    let mut child = Command::new("ssh")
        .args(args)
        .arg(command)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|err| format!("running ssh: {err}"))?;
    let stdin = child.stdin.take();
    // Written while the output is read, so neither side waits on a full pipe. A remote
    // command that ends without reading it all is not an error here: its output says why.
    let write = async move {
        if let Some(mut stdin) = stdin {
            let _ = stdin.write_all(input).await;
        }
    };
    let finished = async { tokio::join!(write, child.wait_with_output()).1 };
    match tokio::time::timeout(limit, finished).await {
        Ok(Ok(output)) => Ok(Outcome {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }),
        Ok(Err(err)) => Err(format!("running ssh: {err}")),
        Err(_) => Err(format!("no answer within {}s", limit.as_secs())),
    }
}
