//! The rest of a machine's life: halt, destroy, status, and the removal of the base VMs.

use std::time::Instant;

use envctl_provider::{EnvironmentId, MachineState, MachineStatus, ProviderError};

use crate::network::mac_from_vbox;
use crate::vm::Owner;
use crate::{keys, VirtualboxProvider};

/// What envctl calls a VM's `VMState`.
pub(crate) fn machine_state(vm_state: &str) -> MachineState {
    match vm_state {
        "running" => MachineState::Running,
        "poweroff" | "aborted" | "saved" | "aborted-saved" => MachineState::Stopped,
        other => MachineState::Other(other.to_string()),
    }
}

/// States in which the VM has no process to stop.
fn is_off(vm_state: &str) -> bool {
    matches!(vm_state, "poweroff" | "aborted" | "saved" | "aborted-saved")
}

impl VirtualboxProvider {
    /// Halt: the ACPI power button, then a hard power-off if the guest has not shut down
    /// within the halt timeout.
    pub(crate) async fn halt_machine(
        &self,
        env: &EnvironmentId,
        machine: &str,
    ) -> Result<(), ProviderError> {
        let vm = env.resource_name(machine);
        let err = |action: &str| {
            let action = format!("{action} VM `{vm}`");
            move |e| self.machine_error(machine, action, e)
        };
        let Owner::Ours(_) = self.owner(env, &vm).await.map_err(err("inspecting"))? else {
            return Ok(());
        };
        let state = self
            .vm_info(&vm)
            .await
            .map_err(err("inspecting"))?
            .state()
            .to_string();
        if is_off(&state) {
            return Ok(());
        }
        if state == "running"
            && self
                .vbox
                .run(["controlvm", vm.as_str(), "acpipowerbutton"])
                .await
                .is_ok()
            && self.wait_off(&vm).await.map_err(err("waiting for"))?
        {
            return Ok(());
        }
        self.vbox
            .run(["controlvm", vm.as_str(), "poweroff"])
            .await
            .map_err(err("powering off"))?;
        Ok(())
    }

    /// Polls the VM's state until it is off (true) or the halt timeout passes (false).
    async fn wait_off(&self, vm: &str) -> Result<bool, crate::vboxmanage::CallError> {
        let deadline = Instant::now() + self.halt_timeout;
        loop {
            tokio::time::sleep(self.poll_interval).await;
            if is_off(self.vm_info(vm).await?.state()) {
                return Ok(true);
            }
            if Instant::now() >= deadline {
                return Ok(false);
            }
        }
    }

    /// Destroy: powers the VM off, removes its fixed DHCP address and deletes it with its
    /// disks. The base VM stays for the other machines; `teardown` removes it.
    pub(crate) async fn destroy_machine(
        &self,
        env: &EnvironmentId,
        machine: &str,
    ) -> Result<(), ProviderError> {
        let vm = env.resource_name(machine);
        let err = |action: &str| {
            let action = format!("{action} VM `{vm}`");
            move |e| self.machine_error(machine, action, e)
        };
        let Owner::Ours(extra) = self.owner(env, &vm).await.map_err(err("inspecting"))? else {
            return Ok(());
        };
        let info = self.vm_info(&vm).await.map_err(err("inspecting"))?;
        if !is_off(info.state()) {
            self.vbox
                .run(["controlvm", vm.as_str(), "poweroff"])
                .await
                .map_err(err("powering off"))?;
        }
        if let (Some(interface), Some(mac)) = (
            extra.get(keys::DHCP),
            info.get("macaddress2").and_then(mac_from_vbox),
        ) {
            self.remove_fixed_address(interface, mac)
                .await
                .map_err(err("removing the fixed DHCP address of"))?;
        }
        self.vbox
            .run(["unregistervm", vm.as_str(), "--delete"])
            .await
            .map_err(err("deleting"))?;
        Ok(())
    }

    /// Status: `list vms`, then for each VM named like one of the environment's, its extradata
    /// (whose it is, which machine) and, for the environment's machines, its state.
    pub(crate) async fn machine_statuses(
        &self,
        env: &EnvironmentId,
    ) -> Result<Vec<MachineStatus>, ProviderError> {
        let prefix = format!("{}-", env.name);
        let base_prefix = format!("{}--", env.name);
        let mut statuses = Vec::new();
        for (name, uuid) in self.list_vms().await? {
            if !name.starts_with(&prefix) || name.starts_with(&base_prefix) {
                continue;
            }
            let action = || format!("inspecting VM `{name}`");
            let Owner::Ours(extra) = self
                .owner(env, &name)
                .await
                .map_err(|e| self.backend_error(action(), e))?
            else {
                continue;
            };
            let Some(machine) = extra.get(keys::MACHINE) else {
                continue;
            };
            let info = self
                .vm_info(&name)
                .await
                .map_err(|e| self.backend_error(action(), e))?;
            statuses.push(MachineStatus {
                name: machine.clone(),
                id: uuid,
                state: machine_state(info.state()),
            });
        }
        statuses.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(statuses)
    }

    /// Teardown: deletes the environment's base VMs. Their snapshots are the parents of the
    /// machines' disks, so this fails while a machine is left.
    pub(crate) async fn remove_bases(&self, env: &EnvironmentId) -> Result<(), ProviderError> {
        let prefix = format!("{}--box-", env.name);
        for (name, _) in self.list_vms().await? {
            if !name.starts_with(&prefix) {
                continue;
            }
            let action = format!("deleting base VM `{name}`");
            if let Owner::Ours(_) = self
                .owner(env, &name)
                .await
                .map_err(|e| self.backend_error(&action, e))?
            {
                self.vbox
                    .run(["unregistervm", name.as_str(), "--delete"])
                    .await
                    .map_err(|e| self.backend_error(&action, e))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_map_to_envctl_states() {
        assert_eq!(machine_state("running"), MachineState::Running);
        assert_eq!(machine_state("poweroff"), MachineState::Stopped);
        assert_eq!(machine_state("aborted"), MachineState::Stopped);
        assert_eq!(machine_state("saved"), MachineState::Stopped);
        assert_eq!(
            machine_state("paused"),
            MachineState::Other("paused".to_string())
        );
        assert_eq!(
            machine_state("gurumeditation"),
            MachineState::Other("gurumeditation".to_string())
        );
    }
}
