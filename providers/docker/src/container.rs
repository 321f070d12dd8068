//! Machines as containers: what a machine's container is made of, the archive of keys put in
//! it before its first start, and the calls that drive its life.

use std::collections::HashMap;
use std::io;

use bollard::body_full;
use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, ContainerStateStatusEnum,
    ContainerSummaryStateEnum, EndpointIpamConfig, EndpointSettings, HostConfig, Mount,
    MountTmpfsOptions, MountType, NetworkingConfig, PortBinding, PortMap,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, ListContainersOptionsBuilder, LogsOptionsBuilder,
    RemoveContainerOptionsBuilder, StopContainerOptionsBuilder, UploadToContainerOptionsBuilder,
};
use envctl_provider::{
    Access, EnvironmentId, FolderBind, Init, MachineSpec, MachineState, MachineStatus, MachineUp,
    Phase, PortForward, ProviderError, Report, SshEndpoint, UserIds,
};
use futures_util::StreamExt;

use crate::engine::is_not_found;
use crate::image::image_name;
use crate::systemd::{self, CgroupHost, CgroupPlan};
use crate::{labels, DockerProvider};

/// The container's only process. A foreground sshd keeps it up; the options point it at the
/// files envctl installs, so any image with sshd works, not only envctl's own.
pub(crate) const SSHD_CMD: [&str; 7] = [
    "/usr/sbin/sshd",
    "-D",
    "-e",
    "-o",
    "HostKey=/etc/ssh/ssh_host_ed25519_key",
    "-o",
    "AuthorizedKeysFile=.ssh/authorized_keys /etc/ssh/authorized_keys/%u",
];

/// Splits an FQDN into Docker's `Hostname` (first label) and `Domainname` (the rest), which
/// Docker writes to /etc/hosts as `ip fqdn short` so `hostname -f` prints the FQDN.
pub(crate) fn split_hostname(fqdn: &str) -> (&str, &str) {
    fqdn.split_once('.').unwrap_or((fqdn, ""))
}

/// The container that backs `machine`: not privileged, no added capability; its
/// forwarded ports published and its live synced folders mounted. A systemd machine also
/// gets what systemd needs ([`systemd::apply`]).
pub(crate) fn create_body(
    env: &EnvironmentId,
    machine: &MachineSpec,
    image: &str,
    cgroups: CgroupHost,
) -> ContainerCreateBody {
    let (hostname, domainname) = split_hostname(&machine.hostname);
    let endpoint = EndpointSettings {
        ipam_config: Some(EndpointIpamConfig {
            ipv4_address: Some(machine.ip.to_string()),
            ..Default::default()
        }),
        aliases: Some(machine.aliases.clone()),
        ..Default::default()
    };
    let mut labels = labels::machine_labels(env, &machine.name);
    labels.insert(labels::INIT.to_string(), machine.init.to_string());
    labels.insert(
        labels::PORTS.to_string(),
        ports_label(&machine.forwarded_ports),
    );
    labels.insert(
        labels::FOLDERS.to_string(),
        folders_label(&machine.binds, machine.user_ids),
    );
    let mut body = ContainerCreateBody {
        image: Some(image.to_string()),
        hostname: Some(hostname.to_string()),
        domainname: (!domainname.is_empty()).then(|| domainname.to_string()),
        cmd: Some(SSHD_CMD.iter().map(|arg| arg.to_string()).collect()),
        labels: Some(labels),
        host_config: Some(HostConfig {
            nano_cpus: Some(i64::from(machine.cpus) * 1_000_000_000),
            memory: Some(i64::from(machine.memory_mib) * 1024 * 1024),
            network_mode: Some(env.network_name()),
            privileged: Some(false),
            publish_all_ports: Some(false),
            ..Default::default()
        }),
        networking_config: Some(NetworkingConfig {
            endpoints_config: Some(HashMap::from([(env.network_name(), endpoint)])),
        }),
        ..Default::default()
    };
    if machine.init == Init::Systemd {
        systemd::apply(&mut body, &CgroupPlan::new(cgroups, env, &machine.name));
    }
    publish(&mut body, &machine.forwarded_ports);
    mount_folders(&mut body, &machine.binds);
    body
}

/// The live folders and the user's ids as a label, to tell when the Machinefile asks for
/// others: the engine mounts only at creation.
fn folders_label(binds: &[FolderBind], ids: Option<UserIds>) -> String {
    let mut each: Vec<String> = binds
        .iter()
        .map(|b| format!("{}={}", b.host.display(), b.guest))
        .collect();
    each.sort();
    let ids = ids
        .map(|ids| format!("|{}:{}", ids.uid, ids.gid))
        .unwrap_or_default();
    format!("{}{ids}", each.join(";"))
}

/// Each live folder as a bind mount, read-write, and over each path it hides an empty,
/// read-only tmpfs that no one may list (the engine mounts the deeper path after the
/// folder). Mounts, not `binds` strings, so a path with `:` or `,` is no problem.
fn mount_folders(body: &mut ContainerCreateBody, binds: &[FolderBind]) {
    if binds.is_empty() {
        return;
    }
    let mut mounts = Vec::new();
    for bind in binds {
        mounts.push(Mount {
            target: Some(bind.guest.clone()),
            source: Some(bind.host.display().to_string()),
            typ: Some(MountType::BIND),
            read_only: Some(false),
            ..Default::default()
        });
        for hidden in &bind.hidden {
            mounts.push(Mount {
                target: Some(hidden.clone()),
                typ: Some(MountType::TMPFS),
                read_only: Some(true),
                tmpfs_options: Some(MountTmpfsOptions {
                    size_bytes: Some(4096),
                    mode: Some(0),
                    ..Default::default()
                }),
                ..Default::default()
            });
        }
    }
    if let Some(host) = body.host_config.as_mut() {
        host.mounts = Some(mounts);
    }
}

/// The script that gives the machine's user `ids`, run once as root right after the
/// container first starts, before anyone logs in (usermod refuses a user with processes).
/// `-o`: the host's uid may be another user's in the image. The home folder's files follow,
/// without crossing into a mounted folder, whose files are the host's.
fn take_ids_script(user: &str, ids: UserIds) -> String {
    format!(
        r#"set -e; u='{user}'; g=$(id -gn "$u"); [ "$(id -g "$u")" = {gid} ] || groupmod -o -g {gid} "$g"; [ "$(id -u "$u")" = {uid} ] || usermod -o -u {uid} "$u"; home=$(getent passwd "$u" | cut -d: -f6); [ -z "$home" ] || [ ! -d "$home" ] || find "$home" -xdev -exec chown -h {uid}:{gid} {{}} +"#,
        uid = ids.uid,
        gid = ids.gid
    )
}

/// The forwarded ports as a label, to tell when the Machinefile asks for others.
fn ports_label(forwards: &[PortForward]) -> String {
    let mut each: Vec<String> = forwards
        .iter()
        .map(|f| format!("{}/{}={}:{}", f.guest, f.protocol, f.host_ip, f.host))
        .collect();
    each.sort();
    each.join(",")
}

/// Publishes each forwarded port at its host address and port: the engine's own proxy
/// then carries it, for as long as the container runs, and the ports go with it.
fn publish(body: &mut ContainerCreateBody, forwards: &[PortForward]) {
    if forwards.is_empty() {
        return;
    }
    let mut bindings: PortMap = HashMap::new();
    for forward in forwards {
        let binding = PortBinding {
            host_ip: Some(forward.host_ip.to_string()),
            host_port: Some(forward.host.to_string()),
        };
        bindings
            .entry(format!("{}/{}", forward.guest, forward.protocol))
            .or_insert_with(|| Some(Vec::new()))
            .get_or_insert_with(Vec::new)
            .push(binding);
    }
    body.exposed_ports = Some(bindings.keys().cloned().collect());
    if let Some(host) = body.host_config.as_mut() {
        host.port_bindings = Some(bindings);
    }
}

/// For a systemd machine: whatever the image's own sshd configuration says, its ssh unit
/// (`ssh` on Debian, `sshd` elsewhere) starts sshd on the files envctl installs, as the
/// `sshd` mode's command line does. `%` is doubled for systemd's own specifiers.
fn ssh_unit_dropin() -> String {
    let options: Vec<String> = SSHD_CMD[3..]
        .chunks(2)
        .map(|pair| format!("\"{}{}\"", pair[0], pair[1].replace('%', "%%")))
        .collect();
    format!(
        "# Written by envctl: sshd uses the host key and authorized keys envctl installs.\n\
         [Service]\nExecStart=\nExecStart=/usr/sbin/sshd -D $SSHD_OPTS {}\n",
        options.join(" ")
    )
}

/// The keys the machine needs before sshd first starts, as a tar to unpack at `/`: the host
/// key pair and the user's authorized key, owned by root. No `etc/` or `etc/ssh/` entries, so
/// the image's own directories keep their owners and modes.
pub(crate) fn key_archive(machine: &MachineSpec) -> io::Result<Vec<u8>> {
    let user = &machine.user;
    if user.is_empty() || user.contains('/') || user == "." || user == ".." {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("`{user}` cannot name a file of authorized keys"),
        ));
    }
    let mut private = machine.host_key.private_openssh.clone();
    // OpenSSH expects each key file to end with a newline.
    if !private.ends_with('\n') {
        private.push('\n');
    }
    let public = format!("{}\n", machine.host_key.public_openssh.trim_end());
    let authorized = format!("{}\n", machine.authorized_key.trim_end());

    let mut builder = tar::Builder::new(Vec::new());
    append_file(
        &mut builder,
        "etc/ssh/ssh_host_ed25519_key",
        0o600,
        private.as_bytes(),
    )?;
    append_file(
        &mut builder,
        "etc/ssh/ssh_host_ed25519_key.pub",
        0o644,
        public.as_bytes(),
    )?;
    let mut dir = root_header(tar::EntryType::Directory, 0o755, 0);
    builder.append_data(&mut dir, "etc/ssh/authorized_keys/", io::empty())?;
    let path = format!("etc/ssh/authorized_keys/{user}");
    append_file(&mut builder, &path, 0o644, authorized.as_bytes())?;
    if machine.init == Init::Systemd {
        let dropin = ssh_unit_dropin();
        for unit in ["ssh", "sshd"] {
            let path = format!("etc/systemd/system/{unit}.service.d/envctl.conf");
            append_file(&mut builder, &path, 0o644, dropin.as_bytes())?;
        }
    }
    builder.into_inner()
}

/// A container keeps the PID 1 and the published ports it was made with: one made for
/// `sshd` cannot start systemd (no tmpfs, no cgroup), and the engine publishes ports only
/// at creation. Rather than start it as it was and let the Machinefile seem obeyed, `up`
/// says how to make it anew. (A container from before these labels ran sshd and
/// published nothing.)
fn check_made_as_asked(
    existing: &ContainerInspectResponse,
    machine: &MachineSpec,
    name: &str,
) -> Result<(), ProviderError> {
    let labels = existing
        .config
        .as_ref()
        .and_then(|config| config.labels.as_ref());
    let label = |key: &str| {
        labels
            .and_then(|labels| labels.get(key))
            .map(String::as_str)
    };
    let made_with = label(labels::INIT).unwrap_or(Init::Sshd.as_str());
    let difference = if made_with != machine.init.as_str() {
        format!(
            "it was made to run {made_with} as PID 1 and the Machinefile now says `init: {}`",
            machine.init
        )
    } else if label(labels::PORTS).unwrap_or("") != ports_label(&machine.forwarded_ports) {
        "it was made with other forwarded ports than the Machinefile now lists".to_string()
    } else if label(labels::FOLDERS).unwrap_or("")
        != folders_label(&machine.binds, machine.user_ids)
    {
        "it was made with other synced folders (or for another owner of them) than the \
         Machinefile now asks"
            .to_string()
    } else {
        return Ok(());
    };
    Err(ProviderError::machine(
        &machine.name,
        format!("starting container `{name}`"),
        format!(
            "{difference}; `envctl destroy {m}` then `envctl up {m}` makes it anew",
            m = machine.name
        ),
    ))
}

/// What envctl calls a container's state.
pub(crate) fn machine_state(state: Option<ContainerSummaryStateEnum>) -> MachineState {
    match state {
        Some(ContainerSummaryStateEnum::RUNNING) => MachineState::Running,
        Some(ContainerSummaryStateEnum::EXITED | ContainerSummaryStateEnum::CREATED) => {
            MachineState::Stopped
        }
        Some(other) => MachineState::Other(other.to_string()),
        None => MachineState::Other("unknown".to_string()),
    }
}

fn root_header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_size(size);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header
}

fn append_file(
    builder: &mut tar::Builder<Vec<u8>>,
    path: &str,
    mode: u32,
    contents: &[u8],
) -> io::Result<()> {
    let mut header = root_header(tar::EntryType::Regular, mode, contents.len() as u64);
    builder.append_data(&mut header, path, contents)
}

impl DockerProvider {
    pub(crate) async fn up_machine(
        &self,
        env: &EnvironmentId,
        machine: &MachineSpec,
        report: &dyn Report,
    ) -> Result<MachineUp, ProviderError> {
        let name = env.resource_name(&machine.name);
        let up = |id: String, changed: bool| MachineUp {
            id,
            endpoint: SshEndpoint {
                host: machine.ip.to_string(),
                port: 22,
            },
            access: Access::Ready,
            guest_address: None,
            changed,
        };
        let mut existing = self.owned_container(env, &machine.name).await?;
        let never_started = existing
            .as_ref()
            .and_then(|c| c.state.as_ref())
            .and_then(|state| state.status)
            == Some(ContainerStateStatusEnum::CREATED);
        if never_started {
            // An `up` cut off between creating it and starting it: its keys may never
            // have been copied in, so it is made afresh rather than trusted.
            self.remove(&machine.name, &name).await?;
            existing = None;
        }
        let Some(existing) = existing else {
            let id = self.create_machine(env, machine, report).await?;
            report.phase(&machine.name, Phase::Starting);
            self.start(&machine.name, &name).await?;
            if let Some(ids) = machine.user_ids {
                self.take_ids(&machine.name, &name, &machine.user, ids)
                    .await?;
            }
            return Ok(up(id, true));
        };
        check_made_as_asked(&existing, machine, &name)?;
        let id = existing.id.unwrap_or_else(|| name.clone());
        match existing.state.and_then(|state| state.status) {
            Some(ContainerStateStatusEnum::RUNNING) => {
                report.phase(&machine.name, Phase::AlreadyRunning);
                Ok(up(id, false))
            }
            Some(ContainerStateStatusEnum::PAUSED) => {
                report.phase(&machine.name, Phase::Starting);
                self.docker.unpause_container(&name).await.map_err(|err| {
                    self.machine_error(&machine.name, format!("unpausing container `{name}`"), err)
                })?;
                Ok(up(id, true))
            }
            _ => {
                report.phase(&machine.name, Phase::Starting);
                self.start(&machine.name, &name).await?;
                Ok(up(id, true))
            }
        }
    }

    /// Runs [`take_ids_script`] in the container as root; fails with what it printed.
    async fn take_ids(
        &self,
        machine: &str,
        name: &str,
        user: &str,
        ids: UserIds,
    ) -> Result<(), ProviderError> {
        use bollard::exec::{CreateExecOptions, StartExecResults};
        let action = format!(
            "giving `{user}` in `{name}` the synced folder owner's uid {}",
            ids.uid
        );
        let script = take_ids_script(user, ids);
        let exec = self
            .docker
            .create_exec(
                name,
                CreateExecOptions {
                    cmd: Some(vec!["/bin/sh", "-c", &script]),
                    user: Some("root"),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    ..Default::default()
                },
            )
            .await
            .map_err(|err| self.machine_error(machine, action.clone(), err))?;
        let mut text = String::new();
        if let StartExecResults::Attached { mut output, .. } = self
            .docker
            .start_exec(&exec.id, None)
            .await
            .map_err(|err| self.machine_error(machine, action.clone(), err))?
        {
            while let Some(chunk) = output.next().await {
                match chunk {
                    Ok(chunk) => text.push_str(&chunk.to_string()),
                    Err(err) => return Err(self.machine_error(machine, action, err)),
                }
            }
        }
        let code = self
            .docker
            .inspect_exec(&exec.id)
            .await
            .map_err(|err| self.machine_error(machine, action.clone(), err))?
            .exit_code;
        if code != Some(0) {
            return Err(ProviderError::machine(
                machine,
                action,
                format!("the script ended with {code:?}: {}", text.trim()),
            ));
        }
        Ok(())
    }

    pub(crate) async fn halt_machine(
        &self,
        env: &EnvironmentId,
        machine: &str,
    ) -> Result<(), ProviderError> {
        if self.owned_container(env, machine).await?.is_none() {
            return Ok(());
        }
        let name = env.resource_name(machine);
        // No time given: the engine waits as long as the container was made to allow, 30 s
        // for systemd to stop its units in order, Docker's 10 s for a lone sshd.
        let options = StopContainerOptionsBuilder::new().build();
        match self.docker.stop_container(&name, Some(options)).await {
            Err(err) if !is_not_found(&err) => {
                Err(self.machine_error(machine, format!("stopping container `{name}`"), err))
            }
            _ => Ok(()),
        }
    }

    pub(crate) async fn destroy_machine(
        &self,
        env: &EnvironmentId,
        machine: &str,
    ) -> Result<(), ProviderError> {
        if self.owned_container(env, machine).await?.is_none() {
            return Ok(());
        }
        self.remove(machine, &env.resource_name(machine)).await
    }

    pub(crate) async fn machine_statuses(
        &self,
        env: &EnvironmentId,
    ) -> Result<Vec<MachineStatus>, ProviderError> {
        let options = ListContainersOptionsBuilder::new()
            .all(true)
            .filters(&labels::env_filter(env))
            .build();
        let containers = self
            .docker
            .list_containers(Some(options))
            .await
            .map_err(|err| {
                self.backend_error(format!("listing the containers of `{}`", env.name), err)
            })?;
        let prefix = format!("/{}-", env.name);
        let mut statuses: Vec<MachineStatus> = containers
            .into_iter()
            .map(|container| {
                let from_name = || {
                    let names = container.names.as_deref().unwrap_or_default();
                    names
                        .iter()
                        .find_map(|n| n.strip_prefix(&prefix))
                        .map(str::to_string)
                };
                let name = container
                    .labels
                    .as_ref()
                    .and_then(|labels| labels.get(labels::MACHINE).cloned())
                    .or_else(from_name)
                    .unwrap_or_default();
                MachineStatus {
                    name,
                    id: container.id.unwrap_or_default(),
                    state: machine_state(container.state),
                }
            })
            .collect();
        statuses.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(statuses)
    }

    pub(crate) async fn machine_log_tail(
        &self,
        env: &EnvironmentId,
        machine: &str,
        lines: usize,
    ) -> Option<String> {
        let name = env.resource_name(machine);
        let container = self.docker.inspect_container(&name, None).await.ok()?;
        let boots_systemd = container
            .config
            .and_then(|config| config.labels)
            .and_then(|labels| labels.get(labels::INIT).cloned())
            .as_deref()
            == Some(Init::Systemd.as_str());
        let running = container.state.and_then(|state| state.running) == Some(true);
        if boots_systemd && running {
            if let Some(journal) = self.journal_tail(&name, lines).await {
                return Some(journal);
            }
        }
        // An `sshd` machine, or a systemd one not running: what PID 1 printed.
        let options = LogsOptionsBuilder::new()
            .stdout(true)
            .stderr(true)
            .tail(&lines.to_string())
            .build();
        let mut stream = self.docker.logs(&name, Some(options));
        let mut text = String::new();
        while let Some(chunk) = stream.next().await {
            text.push_str(&chunk.ok()?.to_string());
        }
        Some(text)
    }

    /// The machine's container, if there is one and it is this environment's. A container
    /// with the name but not the environment's id is someone else's: an error, left alone.
    async fn owned_container(
        &self,
        env: &EnvironmentId,
        machine: &str,
    ) -> Result<Option<ContainerInspectResponse>, ProviderError> {
        let name = env.resource_name(machine);
        let container = match self.docker.inspect_container(&name, None).await {
            Ok(container) => container,
            Err(err) if is_not_found(&err) => return Ok(None),
            Err(err) => {
                return Err(self.machine_error(
                    machine,
                    format!("inspecting container `{name}`"),
                    err,
                ))
            }
        };
        let labels = container
            .config
            .as_ref()
            .and_then(|config| config.labels.as_ref());
        if labels.and_then(|labels| labels.get(labels::ENV_ID)) != Some(&env.id) {
            let reason = format!(
                "container `{name}` {}; remove it with `docker rm -f {name}` or rename this \
                 environment",
                labels::describe_owner(labels)
            );
            return Err(ProviderError::machine(
                machine,
                format!("checking container `{name}`"),
                reason,
            ));
        }
        Ok(Some(container))
    }

    /// Creates the container and puts the keys in it. If the keys cannot be put in, the
    /// container goes again, so the next `up` makes it afresh instead of starting one
    /// whose sshd cannot start.
    async fn create_machine(
        &self,
        env: &EnvironmentId,
        machine: &MachineSpec,
        report: &dyn Report,
    ) -> Result<String, ProviderError> {
        let name = env.resource_name(&machine.name);
        let keys = key_archive(machine).map_err(|err| {
            ProviderError::machine(&machine.name, "packing the machine's keys", err)
        })?;
        report.phase(&machine.name, Phase::Creating);
        let image = image_name(&machine.image)?;
        let cgroups = self.cgroup_host().await?;
        let options = CreateContainerOptionsBuilder::new().name(&name).build();
        let created = self
            .docker
            .create_container(Some(options), create_body(env, machine, &image, cgroups))
            .await
            .map_err(|err| {
                self.machine_error(
                    &machine.name,
                    format!("creating container `{name}` from image `{image}`"),
                    err,
                )
            })?;
        let options = UploadToContainerOptionsBuilder::new().path("/").build();
        let uploaded = self
            .docker
            .upload_to_container(&created.id, Some(options), body_full(keys.into()))
            .await;
        if let Err(err) = uploaded {
            let failure = self.machine_error(
                &machine.name,
                format!("copying the ssh keys into container `{name}`"),
                err,
            );
            // The keys error says more than a failed cleanup would.
            let _ = self.remove(&machine.name, &name).await;
            return Err(failure);
        }
        Ok(created.id)
    }

    async fn start(&self, machine: &str, name: &str) -> Result<(), ProviderError> {
        self.docker
            .start_container(name, None)
            .await
            .map_err(|err| self.machine_error(machine, format!("starting container `{name}`"), err))
    }

    /// Removes a container with its anonymous volumes, running or not.
    async fn remove(&self, machine: &str, name: &str) -> Result<(), ProviderError> {
        let options = RemoveContainerOptionsBuilder::new()
            .force(true)
            .v(true)
            .build();
        match self.docker.remove_container(name, Some(options)).await {
            Err(err) if !is_not_found(&err) => {
                Err(self.machine_error(machine, format!("removing container `{name}`"), err))
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use envctl_provider::EnvironmentSpec;
    use std::io::Read;
    use std::path::PathBuf;

    use envctl_provider::{FolderType, HostKey, ImageSource, NetworkSpec};

    use super::*;

    fn env() -> EnvironmentSpec {
        EnvironmentSpec {
            who: EnvironmentId {
                name: "demo".to_string(),
                id: "id-demo".to_string(),
                project_dir: PathBuf::from("/src/demo"),
                console_dir: PathBuf::from("/tmp/console"),
            },
            network: NetworkSpec {
                subnet: "10.1.0.0/24".parse().unwrap(),
                gateway: "10.1.0.1".parse().unwrap(),
            },
        }
    }

    fn machine() -> MachineSpec {
        MachineSpec {
            name: "web".to_string(),
            hostname: "web.demo.example.test".to_string(),
            ip: "10.1.0.10".parse().unwrap(),
            cpus: 2,
            memory_mib: 512,
            user: "vagrant".to_string(),
            aliases: vec!["web".to_string(), "web.demo.example.test".to_string()],
            image: ImageSource::DockerImage("debian:bookworm".to_string()),
            authorized_key: "ssh-ed25519 AAAAuser envctl".to_string(),
            host_key: HostKey {
                private_openssh:
                    "-----BEGIN OPENSSH PRIVATE KEY-----\nSECRET\n-----END OPENSSH PRIVATE KEY-----"
                        .to_string(),
                public_openssh: "ssh-ed25519 AAAAhost".to_string(),
            },
            init: envctl_provider::Init::Sshd,
            forwarded_ports: Vec::new(),
            binds: Vec::new(),
            user_ids: None,
        }
    }

    #[test]
    fn hostnames_split_at_the_first_dot() {
        let cases = [
            ("web.demo.example.test", ("web", "demo.example.test")),
            ("web.test", ("web", "test")),
            ("web", ("web", "")),
        ];
        for (fqdn, expected) in cases {
            assert_eq!(split_hostname(fqdn), expected, "{fqdn}");
        }
    }

    /// (path, kind, mode, uid, gid, contents) of each entry.
    type Entry = (String, tar::EntryType, u32, u64, u64, String);

    fn entries(archive: &[u8]) -> Vec<Entry> {
        let mut archive = tar::Archive::new(archive);
        archive
            .entries()
            .unwrap()
            .map(|entry| {
                let mut entry = entry.unwrap();
                let header = entry.header().clone();
                let mut text = String::new();
                entry.read_to_string(&mut text).unwrap();
                (
                    entry.path().unwrap().display().to_string(),
                    header.entry_type(),
                    header.mode().unwrap(),
                    header.uid().unwrap(),
                    header.gid().unwrap(),
                    text,
                )
            })
            .collect()
    }

    #[test]
    fn the_key_archive_holds_keys_owned_by_root() {
        let machine = machine();
        let archive = key_archive(&machine).unwrap();
        let file = |path: &str, mode, text: &str| {
            (
                path.to_string(),
                tar::EntryType::Regular,
                mode,
                0,
                0,
                text.to_string(),
            )
        };
        assert_eq!(
            entries(&archive),
            vec![
                file(
                    "etc/ssh/ssh_host_ed25519_key",
                    0o600,
                    "-----BEGIN OPENSSH PRIVATE KEY-----\nSECRET\n-----END OPENSSH PRIVATE KEY-----\n"
                ),
                file("etc/ssh/ssh_host_ed25519_key.pub", 0o644, "ssh-ed25519 AAAAhost\n"),
                (
                    "etc/ssh/authorized_keys/".to_string(),
                    tar::EntryType::Directory,
                    0o755,
                    0,
                    0,
                    String::new()
                ),
                file("etc/ssh/authorized_keys/vagrant", 0o644, "ssh-ed25519 AAAAuser envctl\n"),
            ]
        );
    }

    #[test]
    fn the_key_archive_refuses_a_user_that_is_a_path() {
        for user in ["", "..", "a/b"] {
            let mut machine = machine();
            machine.user = user.to_string();
            assert!(key_archive(&machine).is_err(), "user `{user}`");
        }
    }

    #[test]
    fn the_container_is_plain_and_on_the_network() {
        let env = env();
        let machine = machine();
        let body = create_body(&env, &machine, "envctl-debian:0123456789ab", V1_CGROUPFS);
        assert_eq!(body.image.as_deref(), Some("envctl-debian:0123456789ab"));
        assert_eq!(body.hostname.as_deref(), Some("web"));
        assert_eq!(body.domainname.as_deref(), Some("demo.example.test"));
        assert_eq!(body.cmd.as_deref().unwrap(), SSHD_CMD.map(String::from));
        assert!(body.env.is_none() && body.exposed_ports.is_none() && body.volumes.is_none());
        let labels = body.labels.unwrap();
        assert_eq!(labels[labels::MACHINE], "web");
        assert_eq!(labels[labels::ENV_ID], "id-demo");
        assert_eq!(labels[labels::ENV], "demo");
        assert_eq!(labels[labels::PROJECT], "/src/demo");

        let host = body.host_config.unwrap();
        assert_eq!(host.nano_cpus, Some(2_000_000_000));
        assert_eq!(host.memory, Some(512 * 1024 * 1024));
        assert_eq!(host.network_mode.as_deref(), Some("demo-net"));
        assert_eq!(host.privileged, Some(false));
        assert!(host.binds.is_none() && host.mounts.is_none() && host.port_bindings.is_none());

        let endpoints = body.networking_config.unwrap().endpoints_config.unwrap();
        let endpoint = &endpoints["demo-net"];
        let ipam = endpoint.ipam_config.as_ref().unwrap();
        assert_eq!(ipam.ipv4_address.as_deref(), Some("10.1.0.10"));
        assert_eq!(endpoint.aliases.as_ref(), Some(&machine.aliases));
    }

    const V1_CGROUPFS: CgroupHost = CgroupHost {
        version: systemd::CgroupVersion::V1,
        systemd_driver: false,
    };

    /// systemd gets its command, signal, grace period, tmpfs and one writable cgroup
    /// subtree, and nothing that makes it privileged.
    #[test]
    fn a_systemd_machine_boots_unprivileged() {
        let mut machine = machine();
        machine.init = Init::Systemd;
        let body = create_body(&env(), &machine, "envctl-debian:0123456789ab", V1_CGROUPFS);
        assert_eq!(body.cmd.as_deref().unwrap(), ["/lib/systemd/systemd"]);
        assert_eq!(body.stop_signal.as_deref(), Some("SIGRTMIN+3"));
        assert_eq!(body.stop_timeout, Some(30));
        assert_eq!(body.labels.unwrap()[labels::INIT], "systemd");
        let host = body.host_config.unwrap();
        assert_eq!(host.privileged, Some(false));
        assert!(host.cap_add.is_none() && host.security_opt.is_none() && host.devices.is_none());
        let mut tmpfs: Vec<String> = host.tmpfs.unwrap().into_keys().collect();
        tmpfs.sort();
        assert_eq!(tmpfs, ["/run", "/run/lock"]);
        assert_eq!(
            host.binds.unwrap(),
            ["/sys/fs/cgroup/systemd/envctl_id_demo_web:/sys/fs/cgroup/systemd:rw"]
        );
        assert_eq!(host.cgroup_parent.as_deref(), Some("/envctl_id_demo_web"));
    }

    /// The ssh unit's drop-in starts sshd on envctl's files; `%u` reaches sshd as `%u`.
    #[test]
    fn a_systemd_machine_gets_an_ssh_unit_dropin() {
        let mut machine = machine();
        machine.init = Init::Systemd;
        let archive = key_archive(&machine).unwrap();
        let paths: Vec<String> = entries(&archive).into_iter().map(|e| e.0).collect();
        assert!(paths.contains(&"etc/systemd/system/ssh.service.d/envctl.conf".to_string()));
        assert!(paths.contains(&"etc/systemd/system/sshd.service.d/envctl.conf".to_string()));
        let dropin = ssh_unit_dropin();
        assert!(dropin.contains("ExecStart=\nExecStart=/usr/sbin/sshd -D $SSHD_OPTS \"-oHostKey=/etc/ssh/ssh_host_ed25519_key\" \"-oAuthorizedKeysFile=.ssh/authorized_keys /etc/ssh/authorized_keys/%%u\""), "{dropin}");
    }

    #[test]
    fn forwarded_ports_are_published_at_their_host_address() {
        let mut machine = machine();
        machine.forwarded_ports = vec![
            PortForward {
                guest: 80,
                host: 8080,
                host_ip: "127.0.0.1".parse().unwrap(),
                protocol: envctl_provider::Protocol::Tcp,
                auto_correct: false,
            },
            PortForward {
                guest: 53,
                host: 5353,
                host_ip: "0.0.0.0".parse().unwrap(),
                protocol: envctl_provider::Protocol::Udp,
                auto_correct: false,
            },
        ];
        let body = create_body(&env(), &machine, "debian:bookworm", V1_CGROUPFS);
        let mut exposed = body.exposed_ports.clone().unwrap();
        exposed.sort();
        assert_eq!(exposed, ["53/udp", "80/tcp"]);
        let bindings = body.host_config.unwrap().port_bindings.unwrap();
        let web = bindings["80/tcp"].as_ref().unwrap();
        assert_eq!(web[0].host_ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(web[0].host_port.as_deref(), Some("8080"));
        assert_eq!(
            body.labels.unwrap()[labels::PORTS],
            "53/udp=0.0.0.0:5353,80/tcp=127.0.0.1:8080"
        );
    }

    #[test]
    fn synced_folders_are_bind_mounts_with_envctl_hidden() {
        let mut machine = machine();
        machine.init = Init::Systemd;
        machine.binds = vec![FolderBind {
            kind: FolderType::Bind,
            tag: "envctl0".into(),
            host: "/p/my, proj".into(),
            guest: "/vagrant".into(),
            hidden: vec!["/vagrant/.envctl".into()],
        }];
        machine.user_ids = Some(UserIds {
            uid: 4321,
            gid: 4322,
        });
        let body = create_body(&env(), &machine, "debian:bookworm", V1_CGROUPFS);
        let host = body.host_config.clone().unwrap();
        let mounts: Vec<String> = host
            .mounts
            .unwrap()
            .into_iter()
            .map(|m| {
                format!(
                    "{:?} {:?} {:?} ro={:?} mode={:?}",
                    m.typ,
                    m.source,
                    m.target,
                    m.read_only,
                    m.tmpfs_options.and_then(|t| t.mode)
                )
            })
            .collect();
        assert_eq!(
            mounts,
            [
                "Some(BIND) Some(\"/p/my, proj\") Some(\"/vagrant\") ro=Some(false) mode=None",
                "Some(TMPFS) None Some(\"/vagrant/.envctl\") ro=Some(true) mode=Some(0)",
            ]
        );
        // The systemd machine keeps its own tmpfs and cgroup bind beside the folders.
        assert!(host.tmpfs.unwrap().contains_key("/run"));
        assert_eq!(
            body.labels.unwrap()[labels::FOLDERS],
            "/p/my, proj=/vagrant|4321:4322"
        );
        let script = take_ids_script("vagrant", machine.user_ids.unwrap());
        assert!(
            script.contains("groupmod -o -g 4322") && script.contains("usermod -o -u 4321"),
            "{script}"
        );
    }

    #[test]
    fn no_secret_in_the_container_spec() {
        let body = create_body(&env(), &machine(), "debian:bookworm", V1_CGROUPFS);
        let spec = format!("{body:?}");
        assert!(
            !spec.contains("SECRET") && !spec.contains("PRIVATE KEY"),
            "{spec}"
        );
    }

    #[test]
    fn states_map_to_machine_states() {
        use ContainerSummaryStateEnum as S;
        let cases = [
            (Some(S::RUNNING), MachineState::Running),
            (Some(S::EXITED), MachineState::Stopped),
            (Some(S::CREATED), MachineState::Stopped),
            (Some(S::PAUSED), MachineState::Other("paused".to_string())),
            (
                Some(S::RESTARTING),
                MachineState::Other("restarting".to_string()),
            ),
            (None, MachineState::Other("unknown".to_string())),
        ];
        for (state, expected) in cases {
            assert_eq!(machine_state(state), expected, "{state:?}");
        }
    }
}
