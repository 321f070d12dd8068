//! Which machines `ansible-playbook` really ran tasks on. It exits 0 when no play matched
//! a host (a broken inventory, a `hosts:` or `--limit` that selects nothing), so its exit
//! status alone must never mark a machine provisioned: the PLAY RECAP of the run, which
//! Ansible also writes to the log file envctl gives it, says which hosts it played.

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};
use regex::Regex;
use tokio::process::Command;

use crate::output;
use crate::state::{write_private, StateDir};

/// Has Ansible log this run to `.envctl/ansible.log`, emptied first and private (Ansible
/// appends to it, keeping its mode).
pub fn log_to(command: &mut Command, state_dir: &StateDir) -> Result<()> {
    let log = state_dir.ansible_log();
    write_private(&log, b"")?;
    command.env("ANSIBLE_LOG_PATH", &log);
    Ok(())
}

/// The machines of `selected` that the run's PLAY RECAP shows played without failing.
/// None of them is an error naming them all; some of them is a warning naming the rest.
pub fn played(state_dir: &StateDir, selected: &[String]) -> Result<Vec<String>> {
    let path = state_dir.ansible_log();
    let log =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let recap = parse_recap(&log);
    let (played, missed): (Vec<String>, Vec<String>) = selected
        .iter()
        .cloned()
        .partition(|name| recap.get(name).is_some_and(Counts::ran_a_task));
    if played.is_empty() {
        bail!(
            "ansible-playbook ran no task on {}: no play matched them (check the playbook's \
             `hosts:` and `provision.limit`); they are not recorded as provisioned",
            missed.join(", ")
        );
    }
    if !missed.is_empty() {
        output::status(
            "Unprovisioned",
            &format!("no play ran a task on {}", missed.join(", ")),
        );
    }
    Ok(played)
}

/// One host's line of the PLAY RECAP.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Counts {
    ok: u64,
    changed: u64,
    unreachable: u64,
    failed: u64,
    skipped: u64,
    rescued: u64,
    ignored: u64,
}

impl Counts {
    fn ran_a_task(&self) -> bool {
        self.unreachable == 0
            && self.failed == 0
            && self.ok + self.changed + self.skipped + self.rescued + self.ignored > 0
    }
}

/// The host lines after the last `PLAY RECAP` of a log (or of plain output): what comes
/// before it is task output, which a playbook could make look like a recap.
fn parse_recap(log: &str) -> BTreeMap<String, Counts> {
    let Some(start) = log.rfind("PLAY RECAP") else {
        return BTreeMap::new();
    };
    let line = Regex::new(r"(?m)^(?:.* \| )?(\S+)\s+:\s+((?:[a-z]+=\d+\s*)+)$").expect("regex");
    let mut hosts = BTreeMap::new();
    for found in line.captures_iter(&log[start..]) {
        let mut counts = Counts::default();
        for pair in found[2].split_whitespace() {
            let Some((key, value)) = pair.split_once('=') else {
                continue;
            };
            let value: u64 = value.parse().unwrap_or(0);
            match key {
                "ok" => counts.ok = value,
                "changed" => counts.changed = value,
                "unreachable" => counts.unreachable = value,
                "failed" => counts.failed = value,
                "skipped" => counts.skipped = value,
                "rescued" => counts.rescued = value,
                "ignored" => counts.ignored = value,
                _ => {}
            }
        }
        hosts.insert(found[1].to_string(), counts);
    }
    hosts
}

#[cfg(test)]
mod tests {
    use super::*;

    const PREFIX: &str = "2026-12-03 15:25:41,697 p=7513 u=root n=ansible | ";

    fn dir_with_log(log: &str) -> (std::path::PathBuf, StateDir) {
        let root = std::env::temp_dir().join(format!("envctl-recap-{}", crate::keys::random_id()));
        let dir = StateDir::new(&root);
        write_private(&dir.ansible_log(), log.as_bytes()).unwrap();
        (root, dir)
    }

    fn names(names: &[&str]) -> Vec<String> {
        names.iter().map(|name| name.to_string()).collect()
    }

    #[test]
    fn a_run_that_matched_no_host_is_an_error_naming_the_machines() {
        let log = format!(
            "{PREFIX}[WARNING]: Could not match supplied host pattern, ignoring: zzz\n\n\
             {PREFIX}PLAY [zzz] *****\n{PREFIX}skipping: no hosts matched\n\
             {PREFIX}PLAY RECAP *****\n"
        );
        let (root, dir) = dir_with_log(&log);
        let err = format!("{:#}", played(&dir, &names(&["web1", "db1"])).unwrap_err());
        assert!(err.contains("ran no task on web1, db1"), "{err}");
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn only_the_machines_the_recap_shows_played_are_returned() {
        let log = format!(
            "{PREFIX}TASK [debug] ****\n{PREFIX}ok: [web1] => {{\n    \"msg\": \"db1 : ok=5 changed=1\"\n}}\n\
             {PREFIX}PLAY RECAP *****\n\
             {PREFIX}web1                       : ok=1    changed=0    unreachable=0    failed=0    skipped=0    rescued=0    ignored=0   \n\
             {PREFIX}db1                        : ok=0    changed=0    unreachable=1    failed=0    skipped=0    rescued=0    ignored=0   \n"
        );
        let (root, dir) = dir_with_log(&log);
        assert_eq!(
            played(&dir, &names(&["web1", "db1", "cache"])).unwrap(),
            names(&["web1"])
        );
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn no_recap_at_all_marks_nothing() {
        let (root, dir) = dir_with_log("");
        assert!(played(&dir, &names(&["web1"])).is_err());
        std::fs::remove_dir_all(root).unwrap();
    }

    /// `provision` with an `ansible-playbook` that matches no host and exits 0, as the
    /// real one does: an error naming the machine, which stays unprovisioned.
    #[test]
    fn provision_marks_nothing_when_ansible_matched_no_host() {
        use std::os::unix::fs::PermissionsExt;

        use crate::ops::{Session, Workspace};
        use crate::state::MachineRecord;

        let root = std::env::temp_dir().join(format!("envctl-nohost-{}", crate::keys::random_id()));
        let bin = root.join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let fake = bin.join("ansible-playbook");
        std::fs::write(
            &fake,
            "#!/bin/sh\necho 'skipping: no hosts matched'\nprintf 'x | PLAY RECAP ***\\n' >> \"$ANSIBLE_LOG_PATH\"\nexit 0\n",
        )
        .unwrap();
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(root.join("site.yml"), "- hosts: nothing\n").unwrap();
        std::fs::write(
            root.join("Machinefile"),
            "name: nohost\nnetwork: {subnet: 10.99.0.0/24}\nmachines:\n  - {name: a, ip: 10.99.0.11}\n\
             provision: {playbook: site.yml}\n",
        )
        .unwrap();
        let mut ws = Workspace::load(Some(&root.join("Machinefile"))).unwrap();
        ws.data_dir = root.join("data");
        // Only this test looks for ansible-playbook; the rest of PATH stays as it was.
        let path = std::env::var("PATH").unwrap_or_default();
        std::env::set_var("PATH", format!("{}:{path}", bin.display()));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let result = runtime.block_on(async {
            let mut session = Session::open(&ws, "provision", ws.select(&[])?)?;
            session.state.machines.insert(
                "a".into(),
                MachineRecord {
                    id: "a-id".into(),
                    ssh_host: "10.99.0.11".into(),
                    ssh_port: 22,
                    provisioned: false,
                    ..MachineRecord::default()
                },
            );
            session.save()?;
            let steps = super::super::provision::plan(
                &ws.manifest,
                &session.selected,
                &session.state,
                super::super::provision::Mode::All,
            );
            super::super::provision::run(&mut session, &steps).await
        });
        std::env::set_var("PATH", path);
        let err = format!("{:#}", result.unwrap_err());
        assert!(err.contains("ran no task on a"), "{err}");
        assert!(!ws.state_dir.load().unwrap().machines["a"].provisioned);
        std::fs::remove_dir_all(root).unwrap();
    }
}
