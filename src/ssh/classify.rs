//! Whether a failed ssh attempt may still succeed ("not yet": the machine is booting,
//! sshd is restarting) or never will (a host key nobody expects, sudo that wants a
//! password), read from what ssh and the remote command wrote on standard error.

/// What to do after a failed attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Try again until the deadline; the text says what was seen.
    NotYet(String),
    /// Stop now; the text says why it cannot work.
    Never(String),
}

/// Which host keys may answer besides the one the attempt trusts, so that a mismatch can
/// be told from a machine half way through bootstrap.
#[derive(Clone, Copy, Debug)]
pub enum HostKeyRule<'a> {
    /// Only the key envctl generated will ever do: it was in place before the machine
    /// first started, or bootstrap finished.
    GeneratedOnly,
    /// Bootstrap's pinned attempt: the box may still present its own key, whose SHA256
    /// fingerprints first contact recorded (none yet: any key may still be the box's).
    GeneratedOrBox { first_seen: &'a [String] },
    /// Bootstrap's first contact: the machine may present the generated key instead of
    /// the one first seen, when a cut-off bootstrap already put it in place.
    FirstSeenOrGenerated { generated: &'a str },
}

/// Decides from ssh's standard error (and the remote command's, which shares it).
pub fn classify(stderr: &str, rule: HostKeyRule) -> Verdict {
    if is_host_key_failure(stderr) {
        return host_key_verdict(presented_fingerprint(stderr).as_deref(), rule);
    }
    let lower = stderr.to_ascii_lowercase();
    for (table, never) in [(NEVER, true), (NOT_YET, false)] {
        for (pattern, says) in table {
            if let Some(line) = line_with(stderr, &lower, pattern) {
                let reason = format!("{says} ({line})");
                return if never {
                    Verdict::Never(reason)
                } else {
                    Verdict::NotYet(reason)
                };
            }
        }
    }
    Verdict::NotYet(
        last_line(stderr)
            .unwrap_or("ssh failed without a message")
            .to_string(),
    )
}

/// Messages that no retry can change, lowercase, with what they mean.
const NEVER: &[(&str, &str)] = &[
    ("a password is required", "the user cannot run sudo without a password, which bootstrap needs (Vagrant boxes allow it)"),
    ("a terminal is required", "the user cannot run sudo without a password, which bootstrap needs (Vagrant boxes allow it)"),
    ("is not in the sudoers file", "the user may not run sudo, which bootstrap needs"),
    ("is not allowed to run sudo", "the user may not run sudo, which bootstrap needs"),
    ("unprotected private key file", "ssh refuses envctl's private key, which is open to others"),
    ("bad owner or permissions", "ssh refuses a file envctl gave it"),
    ("bad configuration option", "ssh rejects envctl's options"),
    ("command-line line", "ssh rejects envctl's options"),
    ("percent_expand", "ssh rejects envctl's options"),
    ("unable to negotiate", "ssh and the machine's sshd have no algorithm in common"),
    ("too many authentication failures", "sshd refuses the keys envctl offers"),
];

/// Messages of a machine that is still starting, lowercase, with what they mean. Earlier
/// entries win: the reason a login was refused before the "connection closed" after it.
const NOT_YET: &[(&str, &str)] = &[
    (
        "system is booting up",
        "the machine is still booting and refuses logins",
    ),
    ("nologin", "the machine is still booting and refuses logins"),
    ("connection refused", "sshd is not listening yet"),
    (
        "connection reset",
        "sshd reset the connection (still starting?)",
    ),
    ("banner exchange", "sshd does not answer yet"),
    ("timed out", "no answer yet"),
    ("no route to host", "no route to the machine yet"),
    ("network is unreachable", "no route to the machine yet"),
    ("host is down", "no route to the machine yet"),
    (
        "kex_exchange_identification",
        "sshd closed the connection before answering",
    ),
    // A machine still booting may not have the user or the key yet (cloud-init).
    ("permission denied", "the key is not accepted yet"),
    ("connection closed", "the connection was closed"),
    ("closed by remote host", "the connection was closed"),
    ("broken pipe", "the connection broke"),
];

fn is_host_key_failure(stderr: &str) -> bool {
    stderr.contains("Host key verification failed")
        || stderr.contains("REMOTE HOST IDENTIFICATION HAS CHANGED")
}

fn host_key_verdict(presented: Option<&str>, rule: HostKeyRule) -> Verdict {
    let shown = presented.map_or_else(String::new, |fp| format!(" {fp}"));
    match (rule, presented) {
        (HostKeyRule::GeneratedOnly, _) => Verdict::Never(format!(
            "the machine presents a host key{shown} other than the one envctl generated for \
             it: another machine answers at its address, or its host keys were replaced"
        )),
        (HostKeyRule::GeneratedOrBox { first_seen }, Some(fp))
            if !first_seen.is_empty() && !first_seen.iter().any(|seen| seen == fp) =>
        {
            Verdict::Never(format!(
                "the machine presents host key {fp}, which is neither the one envctl generated \
                 nor the box's own seen first ({})",
                first_seen.join(", ")
            ))
        }
        (HostKeyRule::GeneratedOrBox { .. }, _) => Verdict::NotYet(format!(
            "the machine still presents the box's own host key{shown}"
        )),
        (HostKeyRule::FirstSeenOrGenerated { generated }, Some(fp)) if fp != generated => {
            Verdict::Never(format!(
                "the machine presents host key {fp}, which is neither the box's own seen first \
                 nor the one envctl generated ({generated})"
            ))
        }
        (HostKeyRule::FirstSeenOrGenerated { .. }, _) => Verdict::NotYet(
            "the machine already presents the host key envctl generated".to_string(),
        ),
    }
}

/// ssh names the key it was shown when it differs from the one on file:
/// "The fingerprint for the ED25519 key sent by the remote host is\nSHA256:….".
fn presented_fingerprint(stderr: &str) -> Option<String> {
    let mut lines = stderr.lines();
    lines.find(|line| line.contains("key sent by the remote host is"))?;
    let next = lines.next()?.trim().trim_end_matches('.');
    next.starts_with("SHA256:").then(|| next.to_string())
}

fn line_with<'a>(stderr: &'a str, lower: &str, pattern: &'static str) -> Option<&'a str> {
    // Lowercasing ASCII keeps byte offsets, so the line can be cut from the original.
    let at = lower.find(pattern)?;
    let start = stderr[..at].rfind('\n').map_or(0, |i| i + 1);
    let end = stderr[at..].find('\n').map_or(stderr.len(), |i| at + i);
    Some(stderr.get(start..end).unwrap_or(pattern).trim())
}

fn last_line(stderr: &str) -> Option<&str> {
    stderr.lines().map(str::trim).rfind(|line| !line.is_empty())
}

#[cfg(test)]
mod tests;
