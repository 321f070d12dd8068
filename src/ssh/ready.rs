//! The readiness barrier, one rule for every provider: a machine is ready when it answers
//! SSH with the environment's key and pinned host key, and its boot has finished. Where
//! systemd runs, boot has finished when `systemctl is-system-running` says `running` or
//! `degraded` (cloud-init's final stage, for one, is part of multi-user.target); without
//! systemd (a container running sshd alone) answering SSH is all there is.

use std::fmt;
use std::path::Path;
use std::time::{Duration, Instant};

use super::classify::{classify, HostKeyRule, Verdict};
use super::options::{self, Connection, Mode};
use super::run::run;
use super::{Credentials, SshTarget};

/// How a machine's boot ended, as far as SSH can tell.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Boot {
    Running,
    /// Booted, with these units failed.
    Degraded(Vec<String>),
    /// No systemd: SSH answering is all there is to wait for.
    NoSystemd,
}

/// Why a machine did not become ready.
#[derive(Debug)]
pub enum NotReady {
    /// It never will: the reason, for the user.
    Never(String),
    /// The deadline passed; what the last attempts saw.
    TimedOut {
        allowed: Duration,
        last_seen: String,
    },
}

/// When waiting for a machine stops, and how long that allowed in all (for messages).
#[derive(Clone, Copy, Debug)]
pub struct Deadline {
    pub at: Instant,
    pub allowed: Duration,
}

impl Deadline {
    pub fn after(allowed: Duration) -> Deadline {
        Deadline {
            at: Instant::now() + allowed,
            allowed,
        }
    }

    pub fn passed(&self) -> bool {
        Instant::now() >= self.at
    }

    /// What is left, within `[floor, cap]`: a call made at or past the deadline still gets
    /// `floor`, so that every wait makes at least one real attempt.
    pub fn budget(&self, floor: Duration, cap: Duration) -> Duration {
        self.at
            .saturating_duration_since(Instant::now())
            .clamp(floor, cap)
    }
}

/// Waits until `target` answers with the pinned key and has finished booting, or until
/// `deadline` (one attempt is made even past it). Fails at once on what will never work.
/// With `kept_open_in`, the login that found the machine ready stays open for Ansible.
pub async fn wait_ready(
    target: &SshTarget<'_>,
    creds: Credentials<'_>,
    kept_open_in: Option<&Path>,
    deadline: Deadline,
) -> Result<Boot, NotReady> {
    let conn = Connection {
        kept_open_in,
        ..Connection::pinned(target, creds)
    };
    let args =
        options::args(&conn, Mode::Batch).map_err(|err| NotReady::Never(format!("{err:#}")))?;
    let mut last_seen;
    let (mut knocks, mut logins) = (0, 0);
    loop {
        let wait = match knock(target.host, target.port).await {
            Err(seen) => {
                last_seen = seen;
                knocks += 1;
                knock_pace(knocks)
            }
            Ok(()) => {
                match check_boot(&args, deadline).await {
                    Check::Booted(boot) => return Ok(boot),
                    Check::NotYet(seen) => last_seen = seen,
                    Check::Never(reason) => return Err(NotReady::Never(reason)),
                }
                logins += 1;
                pace(logins - 1)
            }
        };
        if deadline.passed() {
            break;
        }
        tokio::time::sleep(wait).await;
    }
    Err(NotReady::TimedOut {
        allowed: deadline.allowed,
        last_seen,
    })
}

/// Quick retries while a machine is expected any moment (a container), then calmer ones.
pub fn pace(attempt: u32) -> Duration {
    if attempt < 20 {
        Duration::from_millis(250)
    } else {
        Duration::from_secs(1)
    }
}

/// Whether anything accepts a TCP connection on the machine's SSH port yet. Asked before
/// each login: a refused connect costs nothing, while an ssh run costs a process and a key
/// exchange, so knocking often lets the first login start within moments of sshd
/// listening without a crowd of ssh processes while machines boot.
async fn knock(host: &str, port: u16) -> Result<(), String> {
    match tokio::time::timeout(KNOCK_LIMIT, tokio::net::TcpStream::connect((host, port))).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(err)) => Err(format!("port {port} on {host}: {err}")),
        Err(_) => Err(format!(
            "port {port} on {host}: no answer within {}s",
            KNOCK_LIMIT.as_secs()
        )),
    }
}

const KNOCK_LIMIT: Duration = Duration::from_secs(2);

/// Knocks every 50 ms for the first seconds (a container's sshd listens within a second of
/// starting), then every half second (a VM's boot takes minutes).
fn knock_pace(knocks: u32) -> Duration {
    if knocks < 200 {
        Duration::from_millis(50)
    } else {
        Duration::from_millis(500)
    }
}

impl fmt::Display for NotReady {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotReady::Never(reason) => f.write_str(reason),
            NotReady::TimedOut { allowed, last_seen } => write!(
                f,
                "no SSH with the environment's key and a finished boot after {}s; last seen: \
                 {last_seen}",
                allowed.as_secs()
            ),
        }
    }
}

impl std::error::Error for NotReady {}

/// What one login found.
enum Check {
    Booted(Boot),
    NotYet(String),
    Never(String),
}

/// One login that reports the boot state.
async fn check_boot(args: &[String], deadline: Deadline) -> Check {
    // systemctl waits on the machine up to what is left; the call gets that plus time to
    // connect and log in, so one call outlives the deadline by 15 s at most.
    let wait = deadline.budget(Duration::from_secs(1), Duration::from_secs(20));
    let limit = wait + Duration::from_secs(15);
    let outcome = match run(args, "sh -s", boot_script(wait).as_bytes(), limit).await {
        Ok(outcome) => outcome,
        Err(seen) => return Check::NotYet(seen),
    };
    if !outcome.success() {
        return match classify(&outcome.stderr, HostKeyRule::GeneratedOnly) {
            Verdict::NotYet(seen) => Check::NotYet(seen),
            Verdict::Never(reason) => Check::Never(reason),
        };
    }
    match boot_state(&outcome.stdout) {
        Ok(Some(boot)) => Check::Booted(boot),
        Ok(None) => Check::NotYet(format!(
            "boot not finished (systemd: {})",
            state_word(&outcome.stdout).unwrap_or("no answer")
        )),
        Err(reason) => Check::Never(reason),
    }
}

/// Prints `envctl-boot: STATE`, then `envctl-failed: UNIT …` lines when degraded.
fn boot_script(wait: Duration) -> String {
    format!(
        r#"if [ -d /run/systemd/system ]; then
  # Without D-Bus (a lean image) systemctl answers only root, over systemd's own socket.
  for as in "" "sudo -n"; do
    if command -v timeout >/dev/null; then
      state=$(timeout {secs} $as systemctl is-system-running --wait 2>/dev/null)
    else
      state=$($as systemctl is-system-running 2>/dev/null)
    fi
    [ -z "$state" ] || break
  done
  echo "envctl-boot: ${{state:-starting}}"
  if [ "$state" = degraded ]; then
    $as systemctl list-units --state=failed --plain --no-legend --no-pager 2>/dev/null | sed 's/^/envctl-failed: /'
  fi
else
  echo 'envctl-boot: no-systemd'
fi
exit 0
"#,
        secs = wait.as_secs().max(1)
    )
}

fn state_word(stdout: &str) -> Option<&str> {
    stdout
        .lines()
        .find_map(|line| line.strip_prefix("envctl-boot:"))
        .map(str::trim)
}

/// Finished (and how), not yet (`None`), or never (maintenance mode: systemd gave up on
/// its target and waits for a person at the console).
fn boot_state(stdout: &str) -> Result<Option<Boot>, String> {
    match state_word(stdout) {
        Some("running") => Ok(Some(Boot::Running)),
        Some("degraded") => Ok(Some(Boot::Degraded(failed_units(stdout)))),
        // `offline`: systemd is not the init system after all.
        Some("no-systemd" | "offline") => Ok(Some(Boot::NoSystemd)),
        Some("maintenance") => Err(
            "the machine booted into maintenance mode (rescue or emergency target): systemd \
             could not reach its target; see its log"
                .to_string(),
        ),
        _ => Ok(None),
    }
}

fn failed_units(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .filter_map(|line| line.strip_prefix("envctl-failed:"))
        // Some systemd versions mark failed units with a bullet even with --plain.
        .filter_map(|line| {
            line.split_whitespace()
                .find(|word| *word != "●" && *word != "*")
        })
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boot_states() {
        let cases: [(&str, Result<Option<Boot>, ()>); 9] = [
            ("envctl-boot: running\n", Ok(Some(Boot::Running))),
            ("envctl-boot: no-systemd\n", Ok(Some(Boot::NoSystemd))),
            ("envctl-boot: offline\n", Ok(Some(Boot::NoSystemd))),
            (
                "envctl-boot: degraded\nenvctl-failed: foo.service loaded failed failed Foo\n\
                 envctl-failed: ● bar.service loaded failed failed Bar\n",
                Ok(Some(Boot::Degraded(vec![
                    "foo.service".into(),
                    "bar.service".into(),
                ]))),
            ),
            ("envctl-boot: starting\n", Ok(None)),
            ("envctl-boot: initializing\n", Ok(None)),
            ("envctl-boot: stopping\n", Ok(None)),
            ("", Ok(None)),
            ("envctl-boot: maintenance\n", Err(())),
        ];
        for (stdout, want) in cases {
            assert_eq!(boot_state(stdout).map_err(|_| ()), want, "{stdout:?}");
        }
    }

    /// A port something listens on lets the login go ahead; a closed one is "not yet",
    /// said with the port, and costs no ssh run.
    #[tokio::test]
    async fn knocking_tells_a_listening_port_from_a_closed_one() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let open = listener.local_addr().unwrap().port();
        let closed = {
            let spare = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            spare.local_addr().unwrap().port()
        };
        assert_eq!(knock("127.0.0.1", open).await, Ok(()));
        let seen = knock("127.0.0.1", closed).await.unwrap_err();
        assert!(
            seen.starts_with(&format!("port {closed} on 127.0.0.1: ")),
            "{seen}"
        );
    }

    /// The script is valid shell and, without systemd, says so.
    #[test]
    fn the_boot_script_runs_without_systemd() {
        let output = std::process::Command::new("sh")
            .arg("-c")
            .arg(boot_script(Duration::from_secs(3)))
            .output()
            .unwrap();
        assert!(output.status.success());
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !std::path::Path::new("/run/systemd/system").exists() {
            assert_eq!(stdout, "envctl-boot: no-systemd\n");
        }
    }
}
