//! Running `ansible-playbook` once against the machines, with the generated inventory.

use std::process::Stdio;

use anyhow::{bail, Context, Result};
use envctl_provider::{MachineState, Provider};
use tokio::process::Command;

use super::{Session, Workspace};
use crate::interrupt;
use crate::output;
use crate::state::write_private;

/// `envctl provision [NAMES]`: re-runs the playbook on running machines.
pub async fn provision(ws: &Workspace, names: &[String]) -> Result<()> {
    let mut session = Session::open(ws, "provision", ws.select(names)?)?;
    if ws.manifest.provision.is_none() {
        bail!(
            "{} has no `provision` section: name a playbook there first",
            ws.manifest.path.display()
        );
    }
    let Some(provider) = session.connect_running().await? else {
        bail!(
            "environment `{}` has no machines yet: run `envctl up` first",
            ws.manifest.name
        );
    };
    let statuses = provider.status(&session.env()).await?;
    let stopped: Vec<&str> = session
        .selected
        .iter()
        .filter(|machine| {
            !statuses
                .iter()
                .any(|status| status.name == machine.name && status.state == MachineState::Running)
        })
        .map(|machine| machine.name.as_str())
        .collect();
    if !stopped.is_empty() {
        bail!("not running: {}; run `envctl up` first", stopped.join(", "));
    }
    run(&mut session).await
}

/// Runs the playbook once on the session's machines (no `--limit` when they are all of
/// them), streaming its output. Marks the machines provisioned only when it succeeds.
pub(super) async fn run(session: &mut Session<'_>) -> Result<()> {
    let ws = session.ws;
    let Some(provision) = &ws.manifest.provision else {
        return Ok(());
    };
    let every_machine = session.selected.len() == ws.manifest.machines.len();
    let selected: Vec<String> = session.selected_names();
    let names: &[String] = if every_machine { &[] } else { &selected };
    // The inventory file follows the Machinefile, which may have changed since `up`.
    super::access::write_generated(ws, &session.state)?;
    let program = which::which("ansible-playbook").context(
        "ansible-playbook is not on PATH: install Ansible (`apt-get install ansible`, or `pip install ansible-core`)",
    )?;
    let mut command = Command::new(program);
    command
        .current_dir(&ws.manifest.dir)
        // The JSON form: its values are marked so that Ansible never renders them.
        .arg("--inventory")
        .arg(ws.state_dir.inventory_json())
        .env("ANSIBLE_HOST_KEY_CHECKING", "True")
        .env("ANSIBLE_RETRY_FILES_ENABLED", "False")
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null());
    if let Some(limit) = limit(names, provision.limit.as_deref()) {
        command.arg("--limit").arg(limit);
    }
    if !provision.tags.is_empty() {
        command.arg("--tags").arg(provision.tags.join(","));
    }
    if !provision.extra_vars.is_empty() {
        // Through a private file, not the command line, where `ps` would show it.
        let json = serde_json::to_vec(&provision.extra_vars).context("encoding extra_vars")?;
        write_private(&ws.state_dir.extra_vars(), &json)?;
        command
            .arg("--extra-vars")
            .arg(format!("@{}", ws.state_dir.extra_vars().display()));
    }
    command
        .args(&provision.ansible_args)
        .arg(&provision.playbook);
    output::status(
        "Provisioning",
        &format!("with {}", provision.playbook.display()),
    );
    output::verbose(&format!("running {:?}", command.as_std()));
    let mut child = command.spawn().context("running ansible-playbook")?;
    let status = match interrupt::cancellable(child.wait()).await {
        Ok(status) => status.context("running ansible-playbook")?,
        Err(interrupted) => {
            // Ansible stops cleanly on SIGINT (it was not sent one if envctl got its Ctrl-C
            // from `kill` rather than a terminal); it is waited for, never left running.
            if let Some(pid) = child.id().and_then(|pid| i32::try_from(pid).ok()) {
                // SAFETY: kill(2) with a pid from our own child, which we have not reaped.
                unsafe { libc::kill(pid, libc::SIGINT) };
            }
            child.wait().await.ok();
            return Err(interrupted.into());
        }
    };
    if !status.success() {
        bail!(
            "ansible-playbook failed ({status}); the machines are still up: fix the playbook and \
             run `envctl provision`"
        );
    }
    for name in &selected {
        if let Some(record) = session.state.machines.get_mut(name) {
            record.provisioned = true;
        }
    }
    session.save()
}

/// Ansible's `--limit`: the machines named, narrowed by the Machinefile's own limit.
fn limit(names: &[String], manifest_limit: Option<&str>) -> Option<String> {
    match (names.is_empty(), manifest_limit) {
        (true, None) => None,
        (true, Some(limit)) => Some(limit.to_string()),
        (false, None) => Some(names.join(",")),
        (false, Some(limit)) => Some(format!("{},&{limit}", names.join(","))),
    }
}

#[cfg(test)]
mod tests {
    use super::limit;

    #[test]
    fn limit_combines_names_and_the_machinefiles_limit() {
        let names = ["web1".to_string(), "db1".to_string()];
        let cases: [(&[String], Option<&str>, Option<&str>); 4] = [
            (&[], None, None),
            (&[], Some("web"), Some("web")),
            (&names, None, Some("web1,db1")),
            (&names, Some("web"), Some("web1,db1,&web")),
        ];
        for (names, manifest, want) in cases {
            assert_eq!(
                limit(names, manifest).as_deref(),
                want,
                "{names:?} {manifest:?}"
            );
        }
    }
}
