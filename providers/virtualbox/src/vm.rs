//! Machines as linked clones of their box's base VM (see `boxes`), configured with
//! `modifyvm` and started headless.
//!
//! A machine's VM carries the environment's extradata (`envctl/env`, `envctl/env-id`,
//! `envctl/machine`); a base VM carries the first two only. A VM with the right name but
//! another id is someone else's and is never touched.

use std::collections::BTreeMap;
use std::net::TcpListener;

use envctl_provider::{
    Access, BoxImage, EnvironmentId, EnvironmentSpec, GuestAddress, MachineSpec, MachineUp, Phase,
    ProviderError, Report, SshEndpoint,
};

use crate::boxes::{base_name, box_of};
use crate::network::{mac_colons, mac_vbox, nic2_mac, HostOnly};
use crate::parse::{self, VmInfo};
use crate::vboxmanage::CallError;
use crate::{keys, HostOnlyKind, VirtualboxProvider};

/// The snapshot of a base VM that machines are linked clones of.
pub(crate) const SNAPSHOT: &str = "envctl-base";
/// The NAT rule that forwards a host port on 127.0.0.1 to the guest's sshd.
pub(crate) const SSH_RULE: &str = "envctl-ssh";
/// The NAT rules that carry the machine's forwarded ports: `envctl-port0`, `envctl-port1`…
/// in the order of its list. Rules of other names are left alone.
pub(crate) const PORT_RULE: &str = "envctl-port";

/// The NAT rules `machine`'s forwarded ports need, as `showvminfo` prints them back. The
/// guest address stays empty: VirtualBox's NAT then forwards to the guest's NAT address.
fn port_rules(machine: &MachineSpec) -> Vec<String> {
    machine
        .forwarded_ports
        .iter()
        .enumerate()
        .map(|(index, forward)| {
            format!(
                "{PORT_RULE}{index},{},{},{},,{}",
                forward.protocol, forward.host_ip, forward.host, forward.guest
            )
        })
        .collect()
}

/// The names of `info`'s rules that carry forwarded ports.
fn port_rule_names(info: &VmInfo) -> Vec<String> {
    info.forwardings()
        .into_iter()
        .filter(|rule| rule.name.starts_with(PORT_RULE))
        .map(|rule| rule.name)
        .collect()
}

/// Who a VM belongs to, from its extradata.
pub(crate) enum Owner {
    Missing,
    Ours(BTreeMap<String, String>),
    Other(BTreeMap<String, String>),
}

/// What `up` made for a new machine so far, to undo if a later step fails.
#[derive(Default)]
struct ToUndo {
    /// The DHCP server (host-only interface) given the machine's fixed address.
    dhcp: Option<String>,
}

/// Says whose a VM is, from its extradata, for an error message.
pub(crate) fn describe_owner(extra: &BTreeMap<String, String>) -> String {
    match (extra.get(keys::ENV), extra.get(keys::ENV_ID)) {
        (Some(name), Some(id)) => format!("belongs to envctl environment `{name}` (id {id})"),
        (None, Some(id)) => format!("belongs to another envctl environment (id {id})"),
        _ => "was not made by envctl".to_string(),
    }
}

/// A port on 127.0.0.1 nothing listens on now. Another program could take it before the VM
/// starts; VirtualBox then starts the VM without the forward and SSH fails with the port named.
fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind(("127.0.0.1", 0))?.local_addr()?.port())
}

impl VirtualboxProvider {
    /// Up: creates the machine if it is missing and starts it if it is stopped.
    pub(crate) async fn up_machine(
        &self,
        env: &EnvironmentSpec,
        machine: &MachineSpec,
        report: &dyn Report,
    ) -> Result<MachineUp, ProviderError> {
        let image = box_of(machine)?;
        let vm = env.resource_name(&machine.name);
        let host_only = self.host_only_of(env).await?;
        let owner = self.owner(env, &vm).await.map_err(|err| {
            self.machine_error(
                &machine.name,
                format!("reading the extradata of VM `{vm}`"),
                err,
            )
        })?;
        match owner {
            Owner::Missing => {
                self.create_machine(env, machine, image, &host_only, report)
                    .await
            }
            Owner::Ours(extra) => {
                self.start_machine(env, machine, &host_only, &extra, report)
                    .await
            }
            Owner::Other(extra) => Err(ProviderError::machine(
                &machine.name,
                format!("creating VM `{vm}`"),
                format!(
                    "a VirtualBox VM of that name exists and {}",
                    describe_owner(&extra)
                ),
            )),
        }
    }

    async fn create_machine(
        &self,
        env: &EnvironmentSpec,
        machine: &MachineSpec,
        image: &BoxImage,
        host_only: &HostOnly,
        report: &dyn Report,
    ) -> Result<MachineUp, ProviderError> {
        let vm = env.resource_name(&machine.name);
        let base = base_name(env, image);
        report.phase(&machine.name, Phase::Creating);
        let args = [
            "clonevm",
            base.as_str(),
            "--snapshot",
            SNAPSHOT,
            "--options",
            "link",
            "--name",
            vm.as_str(),
            "--register",
        ];
        self.vbox.run(args).await.map_err(|err| {
            self.machine_error(
                &machine.name,
                format!("cloning `{base}` into VM `{vm}`"),
                err,
            )
        })?;
        let mut to_undo = ToUndo::default();
        let result = async {
            // The id first: from then on a crash leaves a VM envctl knows as its own.
            self.set_extradata(&vm, keys::ENV_ID, &env.id).await?;
            self.set_extradata(&vm, keys::ENV, &env.name).await?;
            self.set_extradata(&vm, keys::PROJECT, &env.project_dir.display().to_string())
                .await?;
            self.set_extradata(&vm, keys::MACHINE, &machine.name)
                .await?;
            let info = self.vm_info(&vm).await?;
            let port = self
                .configure(
                    env,
                    machine,
                    host_only,
                    &info,
                    &BTreeMap::new(),
                    &mut to_undo,
                )
                .await?;
            report.phase(&machine.name, Phase::Starting);
            self.vbox
                .run(["startvm", vm.as_str(), "--type", "headless"])
                .await?;
            Ok::<_, CallError>(self.machine_up(
                env,
                machine,
                info.uuid().unwrap_or(&vm),
                port,
                true,
            ))
        }
        .await;
        let err = match result {
            Ok(up) => return Ok(up),
            Err(err) => err,
        };
        let action = format!("setting up VM `{vm}`");
        match self.undo_machine(machine, &vm, &to_undo).await {
            Ok(()) => Err(self.machine_error(&machine.name, action, err)),
            Err(undo) => Err(self.machine_error(
                &machine.name,
                format!("{action} (deleting it again failed too, so it is left: {undo})"),
                err,
            )),
        }
    }

    /// Removes what `create_machine` made: the fixed DHCP address, then the VM.
    async fn undo_machine(
        &self,
        machine: &MachineSpec,
        vm: &str,
        to_undo: &ToUndo,
    ) -> Result<(), CallError> {
        if let Some(interface) = &to_undo.dhcp {
            self.remove_fixed_address(interface, nic2_mac(machine.ip))
                .await?;
        }
        self.vbox.run(["unregistervm", vm, "--delete"]).await?;
        Ok(())
    }

    /// Starts a machine that exists already, or says it is running.
    async fn start_machine(
        &self,
        env: &EnvironmentSpec,
        machine: &MachineSpec,
        host_only: &HostOnly,
        extra: &BTreeMap<String, String>,
        report: &dyn Report,
    ) -> Result<MachineUp, ProviderError> {
        let vm = env.resource_name(&machine.name);
        let err = |action: &str| {
            let action = format!("{action} VM `{vm}`");
            move |e| self.machine_error(&machine.name, action, e)
        };
        let info = self.vm_info(&vm).await.map_err(err("inspecting"))?;
        let uuid = info.uuid().unwrap_or(&vm).to_string();
        let forwarded = || {
            let rule = info
                .forwardings()
                .into_iter()
                .find(|rule| rule.name == SSH_RULE);
            rule.map(|rule| rule.host_port).ok_or_else(|| {
                let why = format!(
                    "it has no `{SSH_RULE}` port forward; run `envctl halt` and `envctl up`"
                );
                ProviderError::machine(
                    &machine.name,
                    format!("finding the SSH port of VM `{vm}`"),
                    why,
                )
            })
        };
        match info.state() {
            "running" => {
                report.phase(&machine.name, Phase::AlreadyRunning);
                let port = forwarded()?;
                self.sync_port_rules(&vm, &info, machine)
                    .await
                    .map_err(err("forwarding ports of"))?;
                self.add_transient_shares(&vm, &info, machine)
                    .await
                    .map_err(err("sharing folders with"))?;
                Ok(self.machine_up(env, machine, &uuid, port, false))
            }
            "paused" => {
                report.phase(&machine.name, Phase::Starting);
                self.vbox
                    .run(["controlvm", vm.as_str(), "resume"])
                    .await
                    .map_err(err("resuming"))?;
                self.sync_port_rules(&vm, &info, machine)
                    .await
                    .map_err(err("forwarding ports of"))?;
                self.add_transient_shares(&vm, &info, machine)
                    .await
                    .map_err(err("sharing folders with"))?;
                Ok(self.machine_up(env, machine, &uuid, forwarded()?, true))
            }
            "saved" => {
                report.phase(&machine.name, Phase::Starting);
                let port = forwarded()?;
                self.vbox
                    .run(["startvm", vm.as_str(), "--type", "headless"])
                    .await
                    .map_err(err("starting"))?;
                // A saved VM cannot be modified: its rules and shares change once it runs.
                self.sync_port_rules(&vm, &info, machine)
                    .await
                    .map_err(err("forwarding ports of"))?;
                if !machine.binds.is_empty() {
                    // Restored, it may have transient shares again: look anew.
                    let now = self.vm_info(&vm).await.map_err(err("inspecting"))?;
                    self.add_transient_shares(&vm, &now, machine)
                        .await
                        .map_err(err("sharing folders with"))?;
                }
                Ok(self.machine_up(env, machine, &uuid, port, true))
            }
            "poweroff" | "aborted" => {
                report.phase(&machine.name, Phase::Starting);
                let port = self
                    .configure(
                        env,
                        machine,
                        host_only,
                        &info,
                        extra,
                        &mut ToUndo::default(),
                    )
                    .await
                    .map_err(err("configuring"))?;
                self.vbox
                    .run(["startvm", vm.as_str(), "--type", "headless"])
                    .await
                    .map_err(err("starting"))?;
                Ok(self.machine_up(env, machine, &uuid, port, true))
            }
            other => Err(ProviderError::machine(
                &machine.name,
                format!("starting VM `{vm}`"),
                format!("it is {other}; wait for it to settle and run `envctl up` again"),
            )),
        }
    }

    /// Gives a stopped VM the machine's CPUs, memory and NICs, a fresh SSH port forward, the
    /// machine's shared folders and, where a DHCP server serves the host-only interface, a
    /// fixed address there.
    async fn configure(
        &self,
        env: &EnvironmentId,
        machine: &MachineSpec,
        host_only: &HostOnly,
        info: &VmInfo,
        extra: &BTreeMap<String, String>,
        to_undo: &mut ToUndo,
    ) -> Result<u16, CallError> {
        let vm = env.resource_name(&machine.name);
        let port = free_port().map_err(|source| CallError::Local {
            what: "finding a free port on 127.0.0.1".to_string(),
            source,
        })?;
        tokio::fs::create_dir_all(&env.console_dir)
            .await
            .map_err(|source| CallError::Local {
                what: format!("creating {}", env.console_dir.display()),
                source,
            })?;
        let had_rule = info.forwardings().iter().any(|rule| rule.name == SSH_RULE);
        let old_port_rules = port_rule_names(info);
        self.vbox
            .run(self.modify_args(env, machine, host_only, port, had_rule, &old_port_rules))
            .await?;
        self.sync_permanent_shares(&vm, info, machine).await?;
        if host_only.dhcp && extra.get(keys::DHCP) != Some(&host_only.name) {
            let mac = mac_colons(nic2_mac(machine.ip));
            let ip = machine.ip.to_string();
            let name = host_only.name.as_str();
            let args = [
                "dhcpserver",
                "modify",
                "--interface",
                name,
                "--mac-address",
                &mac,
                "--fixed-address",
                &ip,
            ];
            self.vbox.run(args).await?;
            to_undo.dhcp = Some(host_only.name.clone());
            self.set_extradata(&vm, keys::DHCP, &host_only.name).await?;
        }
        Ok(port)
    }

    /// `modifyvm`: VirtualBox 7 spells the NIC options `--nat-pf1`, `--host-only-adapter2`,
    /// `--mac-address2`, `--uart-mode1`; 6.x knows only `--natpf1`, `--hostonlyadapter2`,
    /// `--macaddress2`, `--uartmode1` (which 7 still accepts).
    fn modify_args(
        &self,
        env: &EnvironmentId,
        machine: &MachineSpec,
        host_only: &HostOnly,
        port: u16,
        had_rule: bool,
        old_port_rules: &[String],
    ) -> Vec<String> {
        let seven = self.version.has_new_option_names();
        let opt = |new: &str, old: &str| if seven { new } else { old }.to_string();
        let console = env.console_dir.join(format!("{}.log", machine.name));
        let mut args: Vec<String> = ["modifyvm", &env.resource_name(&machine.name)]
            .map(String::from)
            .to_vec();
        args.extend([
            "--cpus".into(),
            machine.cpus.to_string(),
            "--memory".into(),
            machine.memory_mib.to_string(),
        ]);
        args.extend(["--nic1".into(), "nat".into()]);
        if had_rule {
            args.extend([
                opt("--nat-pf1", "--natpf1"),
                "delete".into(),
                SSH_RULE.into(),
            ]);
        }
        args.extend([
            opt("--nat-pf1", "--natpf1"),
            format!("{SSH_RULE},tcp,127.0.0.1,{port},,22"),
        ]);
        // The forwarded ports, made anew like the SSH rule: the list may have changed.
        for name in old_port_rules {
            args.extend([opt("--nat-pf1", "--natpf1"), "delete".into(), name.clone()]);
        }
        for rule in port_rules(machine) {
            args.extend([opt("--nat-pf1", "--natpf1"), rule]);
        }
        match host_only.kind {
            HostOnlyKind::Interface => args.extend([
                "--nic2".into(),
                "hostonly".into(),
                opt("--host-only-adapter2", "--hostonlyadapter2"),
                host_only.name.clone(),
            ]),
            HostOnlyKind::Network => args.extend([
                "--nic2".into(),
                "hostonlynet".into(),
                "--host-only-net2".into(),
                host_only.name.clone(),
            ]),
        }
        args.extend([
            opt("--mac-address2", "--macaddress2"),
            mac_vbox(nic2_mac(machine.ip)),
        ]);
        args.extend(["--uart1".into(), "0x3F8".into(), "4".into()]);
        args.extend([
            opt("--uart-mode1", "--uartmode1"),
            "file".into(),
            console.display().to_string(),
        ]);
        args
    }

    /// Brings a running VM's forwarded-port rules to what `machine` lists, through
    /// `controlvm <vm> natpf1` (the same spelling in 6.x and 7.x): stale ones deleted, missing
    /// ones added, the rest left as they are.
    async fn sync_port_rules(
        &self,
        vm: &str,
        info: &VmInfo,
        machine: &MachineSpec,
    ) -> Result<(), CallError> {
        let wanted = port_rules(machine);
        let have: Vec<_> = info
            .forwardings()
            .into_iter()
            .filter(|rule| rule.name.starts_with(PORT_RULE))
            .collect();
        for stale in have.iter().filter(|rule| !wanted.contains(&rule.rule)) {
            self.vbox
                .run(["controlvm", vm, "natpf1", "delete", stale.name.as_str()])
                .await?;
        }
        for rule in wanted
            .iter()
            .filter(|rule| !have.iter().any(|had| had.rule == **rule))
        {
            self.vbox
                .run(["controlvm", vm, "natpf1", rule.as_str()])
                .await?;
        }
        Ok(())
    }

    fn machine_up(
        &self,
        env: &EnvironmentSpec,
        machine: &MachineSpec,
        id: &str,
        port: u16,
        changed: bool,
    ) -> MachineUp {
        MachineUp {
            id: id.to_string(),
            endpoint: SshEndpoint {
                host: "127.0.0.1".to_string(),
                port,
            },
            access: Access::VagrantInsecureKey,
            guest_address: Some(GuestAddress {
                mac: mac_colons(nic2_mac(machine.ip)),
                ip: machine.ip,
                prefix: env.network.subnet.prefix(),
            }),
            changed,
        }
    }

    /// Removes the fixed address of the NIC with `mac` from the DHCP server of `interface`;
    /// one already gone is not an error.
    pub(crate) async fn remove_fixed_address(
        &self,
        interface: &str,
        mac: [u8; 6],
    ) -> Result<String, CallError> {
        let mac = mac_colons(mac);
        match self
            .vbox
            .run([
                "dhcpserver",
                "modify",
                "--interface",
                interface,
                "--mac-address",
                &mac,
                "--remove-config",
            ])
            .await
        {
            Err(err) if err.is_not_found() => Ok(String::new()),
            other => other,
        }
    }

    pub(crate) async fn owner(&self, env: &EnvironmentId, vm: &str) -> Result<Owner, CallError> {
        match self.vbox.run(["getextradata", vm, "enumerate"]).await {
            Ok(out) => {
                let extra = parse::extradata_all(&out);
                if extra.get(keys::ENV_ID) == Some(&env.id) {
                    Ok(Owner::Ours(extra))
                } else {
                    Ok(Owner::Other(extra))
                }
            }
            Err(err) if err.is_not_found() => Ok(Owner::Missing),
            Err(err) => Err(err),
        }
    }

    pub(crate) async fn vm_info(&self, vm: &str) -> Result<VmInfo, CallError> {
        let out = self
            .vbox
            .run(["showvminfo", vm, "--machinereadable"])
            .await?;
        Ok(VmInfo::parse(&out))
    }

    pub(crate) async fn list_vms(&self) -> Result<Vec<(String, String)>, ProviderError> {
        let out = self
            .vbox
            .run(["list", "vms"])
            .await
            .map_err(|err| self.backend_error("listing VirtualBox's VMs", err))?;
        Ok(parse::vm_list(&out))
    }

    pub(crate) async fn set_extradata(
        &self,
        vm: &str,
        key: &str,
        value: &str,
    ) -> Result<String, CallError> {
        self.vbox.run(["setextradata", vm, key, value]).await
    }
}
