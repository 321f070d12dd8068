//! "These machines failed": one error for every verb that works on several machines at
//! once, printing each machine once with the whole cause chain (youki's `MultiError`).
//!
//! Formatting a provider error with `{err}` drops its source, and its own message names
//! the machine again: `web1: machine web1: stopping container …`, the reason gone. Here
//! the machine leads the line and the chain follows, as anyhow's `{:#}` prints it, with
//! the provider's own "machine NAME" step left out.

use std::fmt;

use envctl_provider::ProviderError;

/// The machines a verb could not bring to what it wanted, each with why.
#[derive(Debug)]
pub struct MachineFailures {
    /// What was being done to each machine, as in "could not halt".
    action: String,
    /// How many machines the verb worked on.
    attempted: usize,
    failures: Vec<(String, anyhow::Error)>,
    /// What the user can do about it, on a line of its own.
    hint: Option<String>,
}

impl MachineFailures {
    /// An empty list for a verb that does `action` (e.g. "halt") to `attempted` machines.
    pub fn new(action: &str, attempted: usize) -> MachineFailures {
        MachineFailures {
            action: action.to_string(),
            attempted,
            failures: Vec::new(),
            hint: None,
        }
    }

    pub fn with_hint(mut self, hint: &str) -> MachineFailures {
        self.hint = Some(hint.to_string());
        self
    }

    pub fn push(&mut self, machine: &str, err: impl Into<anyhow::Error>) {
        self.failures.push((machine.to_string(), err.into()));
    }

    pub fn is_empty(&self) -> bool {
        self.failures.is_empty()
    }

    /// Ok when no machine failed, else this list as the error.
    pub fn into_result(self) -> anyhow::Result<()> {
        if self.is_empty() {
            return Ok(());
        }
        Err(self.into())
    }
}

impl fmt::Display for MachineFailures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "could not {} {} of {} machines:",
            self.action,
            self.failures.len(),
            self.attempted
        )?;
        for (machine, err) in &self.failures {
            // A cause that spans lines stays under its machine.
            let cause = cause_chain(machine, err).replace('\n', "\n    ");
            write!(f, "\n  {machine}: {cause}")?;
        }
        if let Some(hint) = &self.hint {
            write!(f, "\n{hint}")?;
        }
        Ok(())
    }
}

impl std::error::Error for MachineFailures {}

/// Every step of `err`'s chain, joined by ": ", with the provider's "machine NAME" step
/// reduced to its action when it names `machine`, which already leads the line.
fn cause_chain(machine: &str, err: &anyhow::Error) -> String {
    let steps: Vec<String> = err
        .chain()
        .map(|step| match step.downcast_ref::<ProviderError>() {
            Some(ProviderError::Machine {
                machine: named,
                action,
                ..
            }) if named == machine => action.clone(),
            _ => step.to_string(),
        })
        .collect();
    steps.join(": ")
}

#[cfg(test)]
mod tests {
    use anyhow::Context;

    use super::*;

    fn machine_error(machine: &str, action: &str, reason: &str) -> ProviderError {
        ProviderError::machine(machine, action, std::io::Error::other(reason.to_string()))
    }

    #[test]
    fn each_machine_once_with_its_whole_cause() {
        let cases: Vec<(&str, anyhow::Error, &str)> = vec![
            (
                "web1",
                machine_error("web1", "stopping container demo-web1", "connection refused").into(),
                "web1: stopping container demo-web1: connection refused",
            ),
            (
                "web1",
                anyhow::Error::from(machine_error("web1", "starting", "no such image"))
                    .context("bringing it up"),
                "web1: bringing it up: starting: no such image",
            ),
            // Another machine's error keeps its name: it says something.
            (
                "web1",
                machine_error("db1", "reading its address", "gone").into(),
                "web1: machine db1: reading its address: gone",
            ),
            (
                "web1",
                ProviderError::backend(
                    "listing containers",
                    std::io::Error::other("daemon went away"),
                )
                .into(),
                "web1: listing containers: daemon went away",
            ),
            (
                "web1",
                Err::<(), _>(std::io::Error::other("timed out"))
                    .context("waiting for ssh")
                    .unwrap_err(),
                "web1: waiting for ssh: timed out",
            ),
            (
                "web1",
                anyhow::anyhow!("no ssh\nlast lines of its log:\n  sshd: ready"),
                "web1: no ssh\n    last lines of its log:\n      sshd: ready",
            ),
        ];
        for (machine, err, line) in cases {
            let mut failures = MachineFailures::new("halt", 3);
            failures.push(machine, err);
            assert_eq!(
                failures.to_string(),
                format!("could not halt 1 of 3 machines:\n  {line}")
            );
        }
    }

    #[test]
    fn several_machines_in_order_then_the_hint() {
        let mut failures =
            MachineFailures::new("destroy", 3).with_hint("run `envctl destroy` again to finish");
        failures.push("web1", machine_error("web1", "removing", "busy"));
        failures.push("db1", machine_error("db1", "removing", "gone away"));
        let err = failures.into_result().unwrap_err();
        assert_eq!(
            format!("{err:#}"),
            "could not destroy 2 of 3 machines:\n  \
             web1: removing: busy\n  \
             db1: removing: gone away\n\
             run `envctl destroy` again to finish"
        );
        assert!(err.is::<MachineFailures>());
    }

    #[test]
    fn no_failure_is_ok() {
        assert!(MachineFailures::new("halt", 2).into_result().is_ok());
    }
}
