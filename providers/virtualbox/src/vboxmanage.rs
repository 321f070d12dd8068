//! Running VBoxManage: every call is one process, run on tokio's blocking pool so no async
//! worker waits on it; and the VirtualBox version it reports.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A VirtualBox release as `VBoxManage --version` reports it, e.g. `7.0.14r161095`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl Version {
    /// Reads the output of `VBoxManage --version`: `7.0.14r161095`, `6.1.50_Ubuntur161033`,
    /// possibly after warning lines (a missing kernel module is reported before the version).
    pub fn parse(output: &str) -> Option<Version> {
        output
            .lines()
            .rev()
            .find_map(|line| parse_version_line(line.trim()))
    }

    /// Whether VBoxManage has 7.0's option names (`--nat-pf1`, `--mac-address2`). 6.x knows
    /// only the older spellings, which 7.x still accepts as deprecated aliases.
    pub(crate) fn has_new_option_names(self) -> bool {
        self.major >= 7
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

fn parse_version_line(line: &str) -> Option<Version> {
    let end = line
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(line.len());
    let mut parts = line[..end].split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    let patch = parts.next()?.parse().ok()?;
    if parts.next().is_some() {
        return None;
    }
    Some(Version {
        major,
        minor,
        patch,
    })
}

/// One VBoxManage executable.
#[derive(Clone, Debug)]
pub(crate) struct VBoxManage {
    path: PathBuf,
    env: Vec<(String, String)>,
}

/// A VBoxManage call that did not succeed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CallError {
    #[error("cannot run {path}: {source}")]
    Spawn { path: String, source: io::Error },
    /// Something envctl does on the host around a call failed.
    #[error("{what}: {source}")]
    Local { what: String, source: io::Error },
    #[error("`VBoxManage {command}` failed ({status}): {message}")]
    Failed {
        command: String,
        status: String,
        message: String,
        /// VirtualBox answered VBOX_E_OBJECT_NOT_FOUND: the VM, interface or config named
        /// does not exist.
        not_found: bool,
    },
}

impl CallError {
    pub(crate) fn is_not_found(&self) -> bool {
        matches!(
            self,
            CallError::Failed {
                not_found: true,
                ..
            }
        )
    }
}

impl VBoxManage {
    pub(crate) fn new(path: PathBuf, env: Vec<(String, String)>) -> VBoxManage {
        VBoxManage { path, env }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `VBoxManage args…` and returns what it printed on stdout.
    pub(crate) async fn run<I, S>(&self, args: I) -> Result<String, CallError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let args: Vec<String> = args.into_iter().map(Into::into).collect();
        let path = self.path.clone();
        let env = self.env.clone();
        let display = path.display().to_string();
        tokio::task::spawn_blocking(move || run_blocking(&path, &env, &args))
            .await
            .unwrap_or_else(|join| {
                Err(CallError::Spawn {
                    path: display,
                    source: io::Error::other(join),
                })
            })
    }
}

fn run_blocking(
    path: &Path,
    env: &[(String, String)],
    args: &[String],
) -> Result<String, CallError> {
    // VBoxManage 7 translates its messages; the parsers read the C locale's.
    let output = Command::new(path)
        .args(args)
        .envs(env.iter().map(|(key, value)| (key, value)))
        .env("LC_ALL", "C")
        .env("LANG", "C")
        .stdin(Stdio::null())
        .output()
        .map_err(|source| CallError::Spawn {
            path: path.display().to_string(),
            source,
        })?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if output.status.success() {
        return Ok(stdout);
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    Err(CallError::Failed {
        command: args.join(" "),
        status: match output.status.code() {
            Some(code) => format!("exit code {code}"),
            None => "killed by a signal".to_string(),
        },
        message: error_message(&stderr, &stdout),
        not_found: stderr.contains("VBOX_E_OBJECT_NOT_FOUND"),
    })
}

/// What VBoxManage said was wrong: its `error:` lines without the prefix and without the
/// `Context:` line that names its own source code (a syntax error also prints the usage,
/// which is left out), or else whatever it printed last.
fn error_message(stderr: &str, stdout: &str) -> String {
    let errors: Vec<&str> = stderr
        .lines()
        .filter_map(|line| line.trim().strip_prefix("VBoxManage: error: "))
        .filter(|line| !line.starts_with("Context:"))
        .collect();
    if !errors.is_empty() {
        return errors.join("; ");
    }
    if let Some(line) = stderr.lines().map(str::trim).find(|line| !line.is_empty()) {
        return line.to_string();
    }
    match stdout.lines().rev().find(|line| !line.trim().is_empty()) {
        Some(line) => line.trim().to_string(),
        None => "it printed nothing".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(major: u32, minor: u32, patch: u32) -> Option<Version> {
        Some(Version {
            major,
            minor,
            patch,
        })
    }

    #[test]
    fn version_parses_release_strings() {
        assert_eq!(Version::parse("7.0.14r161095\n"), v(7, 0, 14));
        assert_eq!(Version::parse("6.1.50r161033"), v(6, 1, 50));
        assert_eq!(Version::parse("6.1.38_Ubuntur153438\n"), v(6, 1, 38));
        assert_eq!(Version::parse("7.1.4_BETA2r165100"), v(7, 1, 4));
    }

    #[test]
    fn version_skips_warnings_before_it() {
        let output = "WARNING: The vboxdrv kernel module is not loaded.\n\
                      \n7.0.14r161095\n";
        assert_eq!(Version::parse(output), v(7, 0, 14));
    }

    #[test]
    fn version_rejects_what_is_not_one() {
        assert_eq!(Version::parse(""), None);
        assert_eq!(
            Version::parse("Oracle VM VirtualBox Command Line Management"),
            None
        );
        assert_eq!(Version::parse("7.0"), None);
        assert_eq!(Version::parse("7.0.1.2"), None);
    }

    #[test]
    fn version_orders_and_picks_option_names() {
        let six = Version::parse("6.1.50r1").unwrap();
        let seven = Version::parse("7.0.0r1").unwrap();
        assert!(six < seven);
        assert!(!six.has_new_option_names());
        assert!(seven.has_new_option_names());
        assert_eq!(seven.to_string(), "7.0.0");
    }

    #[test]
    fn error_message_keeps_the_error_lines() {
        let stderr = "VBoxManage: error: Could not find a registered machine named 'x'\n\
                      VBoxManage: error: Details: code VBOX_E_OBJECT_NOT_FOUND (0x80bb0001)\n\
                      VBoxManage: error: Context: \"FindMachine\" at line 1 of file x.cpp\n";
        assert_eq!(
            error_message(stderr, ""),
            "Could not find a registered machine named 'x'; Details: code \
             VBOX_E_OBJECT_NOT_FOUND (0x80bb0001)"
        );
        assert_eq!(error_message("", "0%...\nfailed here\n"), "failed here");
        let syntax = "VBoxManage: error: Unknown option: --nope\nUsage:\n\nVBoxManage modifyvm <uuid|vmname>\n";
        assert_eq!(error_message(syntax, ""), "Unknown option: --nope");
        assert_eq!(
            error_message("cannot open session\n", ""),
            "cannot open session"
        );
    }
}
