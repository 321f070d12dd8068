//! Provisioning: the Machinefile's provisioners in order, each on the machines it is due
//! on. `shell` and `file` run on each machine over SSH, machines in parallel; `ansible`
//! runs `ansible-playbook` once over its machines (`ansible.rs`).

use std::fmt;
use std::path::PathBuf;

use anyhow::{bail, Result};
use envctl_provider::{MachineState, Provider};
use futures_util::future::join_all;

use super::access::{created_target, KeyFiles};
use super::{ansible, remote, MachineFailures, Session, Workspace};
use crate::interrupt;
use crate::manifest::{Action, Machine, Manifest, Provisioner, Run};
use crate::output;
use crate::state::State;

/// Which provisioners a command runs.
#[derive(Clone, Copy, Debug)]
pub enum Mode<'a> {
    /// `up` and `reload` without flags: `once` ones on machines never provisioned,
    /// `always` ones on every machine.
    Due,
    /// `provision`, `up --provision`: all but the `never` ones.
    All,
    /// `--provision-with a,b`: those, whatever their `run`.
    Named(&'a [String]),
}

/// One provisioner and the machines it runs on now.
#[derive(Debug)]
pub struct Step<'m> {
    pub provisioner: &'m Provisioner,
    pub machines: Vec<String>,
}

/// `envctl provision [NAMES]`: runs the provisioners again on running machines.
pub async fn provision(ws: &Workspace, names: &[String], with: &[String]) -> Result<()> {
    check_names(&ws.manifest, with)?;
    let mut session = Session::open(ws, "provision", ws.select(names)?)?;
    if ws.manifest.provisioners.is_empty() {
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
    let mode = if with.is_empty() {
        Mode::All
    } else {
        Mode::Named(with)
    };
    let steps = plan(&ws.manifest, &session.selected, &session.state, mode);
    run(&mut session, &steps).await
}

/// `--provision-with` names that the Machinefile gives no provisioner: bad input, exit 2.
#[derive(Debug)]
pub struct UnknownProvisioners {
    machinefile: PathBuf,
    unknown: Vec<String>,
    known: Vec<String>,
}

impl fmt::Display for UnknownProvisioners {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let known = if self.known.is_empty() {
            "none".to_string()
        } else {
            self.known.join(", ")
        };
        write!(
            f,
            "{} has no provisioner named {}; it has: {known}",
            self.machinefile.display(),
            self.unknown.join(", ")
        )
    }
}

impl std::error::Error for UnknownProvisioners {}

/// Refuses `--provision-with` names that the Machinefile does not give a provisioner.
pub fn check_names(manifest: &Manifest, with: &[String]) -> Result<(), UnknownProvisioners> {
    let unknown: Vec<String> = with
        .iter()
        .filter(|name| manifest.provisioner(name).is_none())
        .cloned()
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    Err(UnknownProvisioners {
        machinefile: manifest.path.clone(),
        unknown,
        known: manifest
            .provisioners
            .iter()
            .map(|p| p.name.clone())
            .collect(),
    })
}

/// The steps `mode` runs on `selected`, in the Machinefile's order; provisioners with no
/// machine to run on are left out. An `ansible` step due on any machine runs over all its
/// selected machines, as the one playbook always has: plays may need every host's facts.
pub fn plan<'m>(
    manifest: &'m Manifest,
    selected: &[&Machine],
    state: &State,
    mode: Mode,
) -> Vec<Step<'m>> {
    let provisioned = |name: &str| {
        state
            .machines
            .get(name)
            .is_some_and(|record| record.provisioned)
    };
    manifest
        .provisioners
        .iter()
        .filter_map(|provisioner| {
            let targets: Vec<&&Machine> = selected
                .iter()
                .filter(|machine| {
                    provisioner
                        .machines
                        .as_ref()
                        .is_none_or(|names| names.contains(&machine.name))
                })
                .collect();
            let due: Vec<String> = targets
                .iter()
                .filter(|machine| match (mode, provisioner.run) {
                    (Mode::Named(names), _) => names.contains(&provisioner.name),
                    (Mode::All, run) => run != Run::Never,
                    (Mode::Due, Run::Always) => true,
                    (Mode::Due, Run::Once) => !provisioned(&machine.name),
                    (Mode::Due, Run::Never) => false,
                })
                .map(|machine| machine.name.clone())
                .collect();
            if due.is_empty() {
                return None;
            }
            let machines = match provisioner.action {
                Action::Ansible(_) => targets.iter().map(|m| m.name.clone()).collect(),
                _ => due,
            };
            Some(Step {
                provisioner,
                machines,
            })
        })
        .collect()
}

/// Runs `steps` in order; the first that fails stops the rest, leaving the machines up.
/// Each machine records the provisioners that ran on it; when all steps succeeded, the
/// session's machines are provisioned.
pub(super) async fn run(session: &mut Session<'_>, steps: &[Step<'_>]) -> Result<()> {
    // The inventory file follows the Machinefile, which may have changed since `up`.
    super::access::write_generated(session.ws, &session.state)?;
    let mut not_played: Vec<String> = Vec::new();
    for step in steps {
        let name = &step.provisioner.name;
        output::status(
            "Provisioning",
            &format!("{name} on {}", step.machines.join(", ")),
        );
        let done = match &step.provisioner.action {
            Action::Ansible(options) => ansible::run(session, options, &step.machines).await?,
            action => {
                on_each_machine(session, name, action, &step.machines).await?;
                step.machines.clone()
            }
        };
        not_played.extend(step.machines.iter().filter(|m| !done.contains(m)).cloned());
        for machine in &done {
            if let Some(record) = session.state.machines.get_mut(machine) {
                record.provisioners.insert(name.clone());
            }
        }
        session.save()?;
    }
    for machine in session.selected_names() {
        if not_played.contains(&machine) {
            continue;
        }
        if let Some(record) = session.state.machines.get_mut(&machine) {
            record.provisioned = true;
        }
    }
    session.save()
}

/// A `shell` or `file` step on each machine at once; fails naming each machine that did.
async fn on_each_machine(
    session: &Session<'_>,
    provisioner: &str,
    action: &Action,
    machines: &[String],
) -> Result<()> {
    let ws = session.ws;
    let keys = KeyFiles::of(ws);
    let creds = keys.creds();
    let mut targets = Vec::new();
    for name in machines {
        let Some(machine) = ws.manifest.machine(name) else {
            bail!("machine `{name}` is not in the Machinefile");
        };
        targets.push(created_target(machine, &session.state)?);
    }
    let runs = targets.iter().map(|target| async move {
        match action {
            Action::Shell(shell) => remote::run_shell(target, creds, shell).await,
            Action::File(file) => remote::upload(target, creds, file).await,
            Action::Ansible(_) => Ok(()),
        }
    });
    let results = interrupt::cancellable(join_all(runs)).await?;
    let mut failures = MachineFailures::new(&format!("provision `{provisioner}`"), machines.len())
        .with_hint("the machines are still up: fix the step and run `envctl provision`");
    for (name, result) in machines.iter().zip(results) {
        if let Err(err) = result {
            failures.push(name, err);
        }
    }
    failures.into_result()
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::manifest::FileUpload;
    use crate::state::MachineRecord;

    fn provisioner(name: &str, run: Run, machines: Option<&[&str]>) -> Provisioner {
        Provisioner {
            name: name.into(),
            run,
            machines: machines.map(|names| names.iter().map(|n| n.to_string()).collect()),
            action: Action::File(FileUpload {
                source: PathBuf::from("/x"),
                destination: "x".into(),
            }),
        }
    }

    #[test]
    fn plan_follows_run_and_machines() {
        let text = "name: p\nnetwork: {subnet: 10.231.35.0/24}\nmachines:\n  - {name: web1, ip: 10.231.35.11}\n  - {name: web2, ip: 10.231.35.12}\n";
        let mut manifest =
            crate::manifest::parse(std::path::Path::new("/tmp/Machinefile"), text).unwrap();
        manifest.provisioners = vec![
            provisioner("base", Run::Once, None),
            provisioner("smoke", Run::Always, Some(&["web2"])),
            provisioner("rare", Run::Never, None),
            provisioner("site", Run::Once, None),
        ];
        let playbook = manifest.path.clone();
        manifest.provisioners[3].action = Action::Ansible(crate::manifest::Provision {
            playbook,
            extra_vars: Default::default(),
            limit: None,
            tags: vec![],
            ansible_args: vec![],
            inventory_path: None,
            skip_tags: vec![],
            vault_password_file: None,
            config_file: None,
            verbose: None,
            galaxy_role_file: None,
        });
        let mut state = State::default();
        state.machines.insert(
            "web1".into(),
            MachineRecord {
                provisioned: true,
                ..Default::default()
            },
        );
        let selected: Vec<&Machine> = manifest.machines.iter().collect();
        let show = |steps: Vec<Step>| -> Vec<String> {
            steps
                .iter()
                .map(|s| format!("{}:{}", s.provisioner.name, s.machines.join("+")))
                .collect()
        };
        assert_eq!(
            show(plan(&manifest, &selected, &state, Mode::Due)),
            ["base:web2", "smoke:web2", "site:web1+web2"],
            "a due playbook runs over every selected machine"
        );
        assert_eq!(
            show(plan(&manifest, &selected, &state, Mode::All)),
            ["base:web1+web2", "smoke:web2", "site:web1+web2"]
        );
        let with = ["rare".to_string()];
        assert_eq!(
            show(plan(&manifest, &selected, &state, Mode::Named(&with))),
            ["rare:web1+web2"]
        );
        assert!(check_names(&manifest, &with).is_ok());
        assert!(check_names(&manifest, &["nope".to_string()]).is_err());
    }

    #[test]
    fn states_from_before_provisioners_were_recorded_still_load() {
        let old = r#"{"env_id":"x","provider":"docker","machines":{"a":{"id":"i","ssh_host":"h","ssh_port":22,"provisioned":true}}}"#;
        let state: State = serde_json::from_str(old).unwrap();
        assert!(state.machines["a"].provisioned);
        assert!(state.machines["a"].provisioners.is_empty());
        // Nothing recorded, nothing written: the file keeps its old shape.
        assert!(!serde_json::to_string(&state)
            .unwrap()
            .contains("provisioners"));
    }
}
