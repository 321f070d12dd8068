//! A machine's live folders (`binds`) as VirtualBox shared folders of its VM, each named by
//! the bind's tag (`envctl0`, `envctl3`…). The guest mounts them by that name
//! (`mount -t vboxsf`) over SSH from envctl's ops; this module only makes the VM have them.
//!
//! A stopped VM's permanent shares are brought exactly to the machine's list. A running VM's
//! cannot change: `sharedfolder add` without `--transient` takes the machine's write lock,
//! which the VM process holds. It gets what it lacks as transient shares instead, which last
//! until it powers off (the next `up` then makes them permanent), and keeps what it has.
//! Shares not named `envctl…` are the user's and are never touched.

use envctl_provider::MachineSpec;

use crate::parse::{Share, VmInfo};
use crate::vboxmanage::CallError;
use crate::VirtualboxProvider;

/// What every share envctl makes is named after: the bind tags start with it.
const SHARE_PREFIX: &str = "envctl";

/// How a stopped VM's permanent shares reach the machine's list.
#[derive(Debug, Default, PartialEq, Eq)]
struct PermanentChanges {
    /// Names of envctl shares not wanted, or wanted with another folder, in the VM's order.
    remove: Vec<String>,
    /// Shares wanted and not there as they are, in the machine's order.
    add: Vec<Share>,
}

/// The shares `machine` wants: one per bind, its tag over its host folder.
fn wanted(machine: &MachineSpec) -> Vec<Share> {
    machine
        .binds
        .iter()
        .map(|bind| Share {
            name: bind.tag.clone(),
            host_path: host_path(&bind.host.display().to_string()),
        })
        .collect()
}

/// `path` as VirtualBox keeps it: without a trailing slash, except the root's
/// (`SharedFolder::i_protectedInit`), so a share it prints back compares equal.
fn host_path(path: &str) -> String {
    match path.trim_end_matches('/') {
        "" if path.starts_with('/') => "/".to_string(),
        trimmed => trimmed.to_string(),
    }
}

fn permanent_changes(wanted: &[Share], have: &[Share]) -> PermanentChanges {
    let remove = have
        .iter()
        .filter(|share| share.name.starts_with(SHARE_PREFIX) && !wanted.contains(share))
        .map(|share| share.name.clone())
        .collect();
    let add = wanted
        .iter()
        .filter(|share| !have.contains(share))
        .cloned()
        .collect();
    PermanentChanges { remove, add }
}

/// The wanted shares a running VM has neither permanently nor for this run, with the same
/// folder. One whose permanent share points elsewhere gets a transient share of the same
/// name, which the guest sees in its place (transient definitions take precedence).
fn missing_live(wanted: &[Share], machine: &[Share], transient: &[Share]) -> Vec<Share> {
    wanted
        .iter()
        .filter(|share| !machine.contains(share) && !transient.contains(share))
        .cloned()
        .collect()
}

impl VirtualboxProvider {
    /// Brings the permanent shares of the stopped VM `vm` (as `info` shows it) to what
    /// `machine` lists: stale envctl shares removed, then missing ones added.
    pub(crate) async fn sync_permanent_shares(
        &self,
        vm: &str,
        info: &VmInfo,
        machine: &MachineSpec,
    ) -> Result<(), CallError> {
        let changes = permanent_changes(&wanted(machine), &info.machine_shares());
        for name in &changes.remove {
            self.vbox
                .run(["sharedfolder", "remove", vm, "--name", name.as_str()])
                .await?;
        }
        for share in &changes.add {
            self.vbox.run(share_add(vm, share)).await?;
        }
        Ok(())
    }

    /// Gives the running (or paused) VM `vm` the shares of `machine` it lacks, as transient
    /// shares; removes nothing but a transient share whose name one of them takes.
    pub(crate) async fn add_transient_shares(
        &self,
        vm: &str,
        info: &VmInfo,
        machine: &MachineSpec,
    ) -> Result<(), CallError> {
        let transient = info.transient_shares();
        let missing = missing_live(&wanted(machine), &info.machine_shares(), &transient);
        for share in &missing {
            // A transient share of that name for another folder (the list changed twice
            // while the VM ran) goes first: names are unique among transient shares.
            if transient.iter().any(|had| had.name == share.name) {
                self.vbox
                    .run([
                        "sharedfolder",
                        "remove",
                        vm,
                        "--name",
                        share.name.as_str(),
                        "--transient",
                    ])
                    .await?;
            }
            let mut args = share_add(vm, share);
            args.push("--transient".to_string());
            self.vbox.run(args).await?;
        }
        Ok(())
    }
}

/// `sharedfolder add <vm> --name <name> --hostpath <path>`: each value as its own argument,
/// which every VBoxManage parser takes (7.0's RTGetOpt also takes `--name=x`; the
/// hand-written parser of older releases did not).
fn share_add(vm: &str, share: &Share) -> Vec<String> {
    [
        "sharedfolder",
        "add",
        vm,
        "--name",
        &share.name,
        "--hostpath",
        &share.host_path,
    ]
    .map(String::from)
    .to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shares(list: &[(&str, &str)]) -> Vec<Share> {
        list.iter()
            .map(|(name, host_path)| Share {
                name: name.to_string(),
                host_path: host_path.to_string(),
            })
            .collect()
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|name| name.to_string()).collect()
    }

    /// (wanted, the VM's permanent shares, names removed, shares added).
    #[test]
    fn permanent_shares_change_only_what_differs() {
        type Case<'a> = (
            &'a [(&'a str, &'a str)],
            &'a [(&'a str, &'a str)],
            &'a [&'a str],
            &'a [(&'a str, &'a str)],
        );
        let cases: &[Case] = &[
            (&[], &[], &[], &[]),
            (
                &[("envctl0", "/a"), ("envctl1", "/b")],
                &[],
                &[],
                &[("envctl0", "/a"), ("envctl1", "/b")],
            ),
            (
                &[("envctl0", "/a"), ("envctl1", "/b")],
                &[("envctl1", "/b"), ("envctl0", "/a")],
                &[],
                &[],
            ),
            // One removed, one moved to another folder, one new; the user's left alone.
            (
                &[("envctl1", "/c"), ("envctl2", "/d")],
                &[("envctl0", "/a"), ("mine", "/m"), ("envctl1", "/b")],
                &["envctl0", "envctl1"],
                &[("envctl1", "/c"), ("envctl2", "/d")],
            ),
            // Nothing wanted: every envctl share goes, whatever its number.
            (
                &[],
                &[("envctl7", "/x"), ("vagrant", "/v"), ("envctl", "/y")],
                &["envctl7", "envctl"],
                &[],
            ),
            // A user's share of a wanted folder under another name is no envctl share.
            (
                &[("envctl0", "/a")],
                &[("project", "/a")],
                &[],
                &[("envctl0", "/a")],
            ),
        ];
        for (wanted, have, remove, add) in cases {
            assert_eq!(
                permanent_changes(&shares(wanted), &shares(have)),
                PermanentChanges {
                    remove: names(remove),
                    add: shares(add),
                },
                "wanted {wanted:?}, have {have:?}"
            );
        }
    }

    /// (wanted, permanent, transient, added as transient).
    #[test]
    fn running_vm_gets_only_what_it_lacks() {
        type Case<'a> = (
            &'a [(&'a str, &'a str)],
            &'a [(&'a str, &'a str)],
            &'a [(&'a str, &'a str)],
            &'a [(&'a str, &'a str)],
        );
        let cases: &[Case] = &[
            (&[], &[("envctl0", "/a")], &[], &[]),
            (&[("envctl0", "/a")], &[("envctl0", "/a")], &[], &[]),
            (&[("envctl0", "/a")], &[], &[("envctl0", "/a")], &[]),
            (
                &[("envctl0", "/a"), ("envctl3", "/e")],
                &[("envctl0", "/a")],
                &[],
                &[("envctl3", "/e")],
            ),
            // A permanent share of another folder is covered by a transient one.
            (
                &[("envctl1", "/c")],
                &[("envctl1", "/b")],
                &[],
                &[("envctl1", "/c")],
            ),
        ];
        for (wanted, machine, transient, added) in cases {
            assert_eq!(
                missing_live(&shares(wanted), &shares(machine), &shares(transient)),
                shares(added),
                "wanted {wanted:?}, machine {machine:?}, transient {transient:?}"
            );
        }
    }

    #[test]
    fn host_paths_lose_a_trailing_slash_as_in_virtualbox() {
        for (given, kept) in [
            ("/a/b", "/a/b"),
            ("/a/b/", "/a/b"),
            ("/a//", "/a"),
            ("/", "/"),
        ] {
            assert_eq!(host_path(given), kept);
        }
    }
}
