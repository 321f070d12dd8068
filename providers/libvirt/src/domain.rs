//! Machines as libvirt domains: creating one on an overlay of the box, starting, stopping,
//! removing, and reading their state and console.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use envctl_provider::{
    Access, EnvironmentId, EnvironmentSpec, ImageSource, MachineSpec, MachineState, MachineStatus,
    MachineUp, Phase, ProviderError, ProviderKind, Report, SshEndpoint,
};
use virt::connect::Connect;
use virt::domain::{Domain, DomainState};
use virt::enumutil::Enum;
use virt::error::ErrorNumber;
use virt::sys;

use crate::accel;
use crate::conn::{found, machine_error};
use crate::network::{common_domain, mac_address};
use crate::seed::{self, Seed};
use crate::shares;
use crate::storage::{self, POOL};
use crate::xml::{self, DomainXml, Owner};
use crate::LibvirtProvider;

/// How often a halting machine is looked at, and asked again to power off.
const HALT_POLL: Duration = Duration::from_millis(500);
const HALT_RESEND: Duration = Duration::from_secs(10);

/// What `up` found under the machine's domain name.
enum Found {
    Missing,
    Running(String),
    /// Paused or suspended: running, but deaf to ACPI.
    Paused(String),
    Stopped(String),
}

impl LibvirtProvider {
    pub(crate) async fn up_machine(
        &self,
        env: &EnvironmentSpec,
        machine: &MachineSpec,
        report: &dyn Report,
    ) -> Result<MachineUp, ProviderError> {
        let name = env.resource_name(&machine.name);
        let id = match self.find(env, &machine.name).await? {
            Found::Running(uuid) => {
                report.phase(&machine.name, Phase::AlreadyRunning);
                return Ok(self.machine_up(machine, uuid, false));
            }
            Found::Stopped(uuid) => {
                report.phase(&machine.name, Phase::Starting);
                self.refresh_shares(env, machine, &uuid).await?;
                let (domain, machine_name) = (name.clone(), machine.name.clone());
                self.conn
                    .run(move |connect| start(connect, &machine_name, &domain))
                    .await?;
                uuid
            }
            Found::Paused(uuid) => {
                report.phase(&machine.name, Phase::Starting);
                let (domain, machine_name) = (name.clone(), machine.name.clone());
                self.conn
                    .run(move |connect| start(connect, &machine_name, &domain))
                    .await?;
                uuid
            }
            Found::Missing => self.create(env, machine, report).await?,
        };
        Ok(self.machine_up(machine, id, true))
    }

    pub(crate) async fn halt_machine(
        &self,
        env: &EnvironmentId,
        machine: &str,
    ) -> Result<(), ProviderError> {
        let name = env.resource_name(machine);
        match self.find(env, machine).await? {
            Found::Missing | Found::Stopped(_) => return Ok(()),
            Found::Paused(_) => {
                let who = machine.to_string();
                return self
                    .conn
                    .run(move |connect| power_off(connect, &who, &name))
                    .await;
            }
            Found::Running(_) => {}
        }
        let deadline = Instant::now() + self.halt_timeout;
        let mut asked: Option<Instant> = None;
        loop {
            let due = asked.is_none_or(|at| at.elapsed() >= HALT_RESEND);
            let (domain, who) = (name.clone(), machine.to_string());
            let running = self
                .conn
                .run(move |connect| shutdown(connect, &who, &domain, due))
                .await?;
            if !running {
                return Ok(());
            }
            if due {
                asked = Some(Instant::now());
            }
            if Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(HALT_POLL).await;
        }
        let (domain, who) = (name, machine.to_string());
        self.conn
            .run(move |connect| power_off(connect, &who, &domain))
            .await
    }

    pub(crate) async fn destroy_machine(
        &self,
        env: &EnvironmentId,
        machine: &str,
    ) -> Result<(), ProviderError> {
        // Checks ownership: someone else's domain of that name is left alone.
        let found = self.find(env, machine).await?;
        let (domain, who) = (env.resource_name(machine), machine.to_string());
        let exists = !matches!(found, Found::Missing);
        self.conn
            .run(move |connect| remove(connect, &who, &domain, exists))
            .await?;
        match self.console_log(env, machine) {
            Some(log) => remove_file(&log).await.map_err(|err| {
                ProviderError::machine(
                    machine,
                    format!("removing the console log {}", log.display()),
                    err,
                )
            }),
            None => Ok(()),
        }
    }

    pub(crate) async fn machine_statuses(
        &self,
        env: &EnvironmentId,
    ) -> Result<Vec<MachineStatus>, ProviderError> {
        let env = env.clone();
        self.conn.run(move |connect| statuses(connect, &env)).await
    }

    pub(crate) async fn machine_log_tail(
        &self,
        env: &EnvironmentId,
        machine: &str,
        lines: usize,
    ) -> Option<String> {
        let path = self.console_log(env, machine)?;
        let bytes = tokio::fs::read(&path).await.ok()?;
        let text = String::from_utf8_lossy(&bytes).replace('\r', "");
        let all: Vec<&str> = text.lines().collect();
        let tail = all[all.len().saturating_sub(lines)..].join("\n");
        Some(tail)
    }

    /// The console log of `machine`, when libvirt runs on this host to write it.
    fn console_log(&self, env: &EnvironmentId, machine: &str) -> Option<PathBuf> {
        if !self.conn.is_local() || !env.has_console_dir() {
            return None;
        }
        let dir = std::path::absolute(&env.console_dir).unwrap_or_else(|_| env.console_dir.clone());
        Some(dir.join(format!("{machine}.log")))
    }

    async fn find(&self, env: &EnvironmentId, machine: &str) -> Result<Found, ProviderError> {
        let (domain, who, env_id) = (
            env.resource_name(machine),
            machine.to_string(),
            env.id.clone(),
        );
        self.conn
            .run(move |connect| inspect(connect, &who, &domain, &env_id))
            .await
    }

    /// Makes the overlay and the domain and starts it; a failure removes all three.
    async fn create(
        &self,
        env: &EnvironmentSpec,
        machine: &MachineSpec,
        report: &dyn Report,
    ) -> Result<String, ProviderError> {
        let ImageSource::Box(image) = &machine.image else {
            return Err(ProviderError::Unsupported {
                provider: ProviderKind::Libvirt,
                what: format!("boot machine `{}` from a Docker image", machine.name),
            });
        };
        report.phase(&machine.name, Phase::Creating);
        let log = self.console_log(env, &machine.name);
        if let Some(dir) = log.as_deref().and_then(Path::parent) {
            tokio::fs::create_dir_all(dir).await.map_err(|err| {
                ProviderError::machine(
                    &machine.name,
                    format!("creating the console log folder {}", dir.display()),
                    err,
                )
            })?;
        }
        let name = env.resource_name(&machine.name);
        let owner = Owner {
            env: env.name.clone(),
            env_id: env.id.clone(),
            project: env.project_dir.display().to_string(),
            machine: Some(machine.name.clone()),
        };
        let volume = storage::overlay_name(&name);
        let seed_volume = seed::volume_name(&name);
        let mac = mac_address(&env.id, &machine.name);
        let instance_id = format!("{}-{}", env.id, machine.name);
        let seed_image = Seed {
            machine,
            instance_id: &instance_id,
            mac: &mac,
            search_domain: common_domain(std::slice::from_ref(machine)).as_deref(),
            dns_server: env.network.gateway,
        }
        .image()
        .map_err(|err| ProviderError::machine(&machine.name, "making the cloud-init seed", err))?;
        let shares = shares::write_wrappers(env, machine)?;
        let domain_xml = self.domain_xml(env, machine, &owner, &shares, None).await;
        let box_volume = storage::box_volume_name(image);
        let (who, domain) = (machine.name.clone(), name.clone());
        let uuid = self
            .conn
            .run(move |connect| {
                let disks = Disks {
                    overlay: &volume,
                    box_volume: &box_volume,
                    seed: &seed_volume,
                    seed_image: &seed_image,
                };
                define(connect, &who, &domain, &disks, &domain_xml)
            })
            .await?;
        report.phase(&machine.name, Phase::Starting);
        let (who, domain) = (machine.name.clone(), name.clone());
        let started = self
            .conn
            .run(move |connect| start(connect, &who, &domain))
            .await;
        if let Err(err) = started {
            let (who, domain) = (machine.name.clone(), name);
            let _ = self
                .conn
                .run(move |connect| remove(connect, &who, &domain, true))
                .await;
            if let Some(log) = log {
                let _ = remove_file(&log).await;
            }
            return Err(err);
        }
        Ok(uuid)
    }

    /// The domain `machine` is defined as; `uuid` when it is defined again over itself.
    async fn domain_xml(
        &self,
        env: &EnvironmentSpec,
        machine: &MachineSpec,
        owner: &Owner,
        shares: &[xml::Share],
        uuid: Option<&str>,
    ) -> String {
        let accel = accel::resolve(self.accel, self.conn.is_local()).await;
        let log = self.console_log(env, &machine.name);
        let name = env.resource_name(&machine.name);
        xml::domain(&DomainXml {
            name: &name,
            virt_type: accel.domain_type(),
            vcpus: machine.cpus,
            memory_mib: machine.memory_mib,
            pool: POOL,
            volume: &storage::overlay_name(&name),
            seed: &seed::volume_name(&name),
            network: &env.network_name(),
            mac: &mac_address(&env.id, &machine.name),
            console_log: log.as_deref().and_then(Path::to_str),
            owner,
            shares,
            uuid,
        })
    }

    /// Writes the stopped domain's virtiofsd wrappers anew and defines the domain again
    /// when its virtiofs exports are not the ones its machine lists now, as Vagrant applies
    /// a changed folder list on the next boot.
    async fn refresh_shares(
        &self,
        env: &EnvironmentSpec,
        machine: &MachineSpec,
        uuid: &str,
    ) -> Result<(), ProviderError> {
        let (domain, who) = (env.resource_name(&machine.name), machine.name.clone());
        let current = self
            .conn
            .run(move |connect| {
                let action = || format!("reading domain `{domain}`");
                let found = connect
                    .lookup_domain_by_name(&domain)
                    .map_err(|err| machine_error(&who, action(), err))?;
                found
                    .xml_desc(sys::VIR_DOMAIN_XML_INACTIVE)
                    .map_err(|err| machine_error(&who, action(), err))
            })
            .await?;
        let wanted = shares::write_wrappers(env, machine)?;
        if xml::parse_shares(&current) == wanted {
            return Ok(());
        }
        // Kept as they are: whose the domain is, which `inspect` has just checked.
        let Some(owner) = xml::parse_owner(&current) else {
            return Ok(());
        };
        let defined = self
            .domain_xml(env, machine, &owner, &wanted, Some(uuid))
            .await;
        let (domain, who) = (env.resource_name(&machine.name), machine.name.clone());
        self.conn
            .run(move |connect| {
                connect
                    .define_domain_xml(&defined)
                    .map(drop)
                    .map_err(|err| {
                        machine_error(&who, format!("redefining domain `{domain}`"), err)
                    })
            })
            .await
    }

    fn machine_up(&self, machine: &MachineSpec, id: String, changed: bool) -> MachineUp {
        MachineUp {
            id,
            endpoint: SshEndpoint {
                host: machine.ip.to_string(),
                port: 22,
            },
            access: Access::VagrantInsecureKey,
            guest_address: None,
            changed,
        }
    }
}

/// Looks the domain up and checks it is this environment's.
fn inspect(
    connect: &Connect,
    machine: &str,
    name: &str,
    env_id: &str,
) -> Result<Found, ProviderError> {
    let action = || format!("looking up domain `{name}`");
    let Some(domain) = found(connect.lookup_domain_by_name(name))
        .map_err(|err| machine_error(machine, action(), err))?
    else {
        return Ok(Found::Missing);
    };
    let owner = owner_of(&domain);
    if owner.as_ref().is_none_or(|owner| owner.env_id != env_id) {
        let reason = format!(
            "domain `{name}` {}; remove it with `virsh undefine {name}` or rename this environment",
            xml::describe_owner(owner.as_ref())
        );
        return Err(ProviderError::machine(
            machine,
            format!("checking domain `{name}`"),
            reason,
        ));
    }
    let uuid = domain
        .uuid_string()
        .map_err(|err| machine_error(machine, action(), err))?;
    let (state, _) = domain
        .state()
        .map_err(|err| machine_error(machine, action(), err))?;
    Ok(match state {
        Enum::Known(DomainState::Running | DomainState::Blocked) => Found::Running(uuid),
        Enum::Known(DomainState::Paused | DomainState::PMSuspended) => Found::Paused(uuid),
        _ => Found::Stopped(uuid),
    })
}

/// The volumes a new domain boots from.
struct Disks<'a> {
    overlay: &'a str,
    box_volume: &'a str,
    seed: &'a str,
    seed_image: &'a [u8],
}

/// Creates the overlay and the seed and defines the domain on them; returns the domain's
/// UUID.
fn define(
    connect: &Connect,
    machine: &str,
    name: &str,
    disks: &Disks,
    domain_xml: &str,
) -> Result<String, ProviderError> {
    let pool = connect.lookup_storage_pool_by_name(POOL).map_err(|err| {
        machine_error(
            machine,
            format!("looking up storage pool `{POOL}` (did prepare run?)"),
            err,
        )
    })?;
    storage::create_overlay(&pool, disks.overlay, disks.box_volume)?;
    let defined =
        storage::create_seed(connect, &pool, disks.seed, disks.seed_image).and_then(|()| {
            connect
                .define_domain_xml(domain_xml)
                .and_then(|domain| domain.uuid_string())
                .map_err(|err| machine_error(machine, format!("defining domain `{name}`"), err))
        });
    defined.inspect_err(|_| {
        let _ = storage::delete_volume(&pool, disks.overlay);
        let _ = storage::delete_volume(&pool, disks.seed);
    })
}

/// Starts a defined domain, or resumes a paused one.
fn start(connect: &Connect, machine: &str, name: &str) -> Result<(), ProviderError> {
    let domain = connect
        .lookup_domain_by_name(name)
        .map_err(|err| machine_error(machine, format!("looking up domain `{name}`"), err))?;
    let (state, _) = domain.state().map_err(|err| {
        machine_error(
            machine,
            format!("reading the state of domain `{name}`"),
            err,
        )
    })?;
    if state.is(DomainState::Paused) {
        return domain
            .resume()
            .map_err(|err| machine_error(machine, format!("resuming domain `{name}`"), err));
    }
    if state.is(DomainState::PMSuspended) {
        return domain
            .pm_wakeup(0)
            .map_err(|err| machine_error(machine, format!("waking up domain `{name}`"), err));
    }
    domain
        .create()
        .map(|_| ())
        .map_err(|err| machine_error(machine, format!("starting domain `{name}`"), err))
}

/// Asks the guest to power off (ACPI) when `ask`; says whether it still runs.
fn shutdown(
    connect: &Connect,
    machine: &str,
    name: &str,
    ask: bool,
) -> Result<bool, ProviderError> {
    let Some(domain) = found(connect.lookup_domain_by_name(name))
        .map_err(|err| machine_error(machine, format!("looking up domain `{name}`"), err))?
    else {
        return Ok(false);
    };
    let active = domain.is_active().map_err(|err| {
        machine_error(
            machine,
            format!("reading the state of domain `{name}`"),
            err,
        )
    })?;
    if active && ask {
        match domain.shutdown() {
            Err(err) if !err.code().is(ErrorNumber::OperationInvalid) => {
                return Err(machine_error(
                    machine,
                    format!("shutting down domain `{name}`"),
                    err,
                ));
            }
            _ => {}
        }
    }
    Ok(active)
}

/// Pulls the plug on a domain that did not power off in time.
fn power_off(connect: &Connect, machine: &str, name: &str) -> Result<(), ProviderError> {
    let Some(domain) = found(connect.lookup_domain_by_name(name))
        .map_err(|err| machine_error(machine, format!("looking up domain `{name}`"), err))?
    else {
        return Ok(());
    };
    match domain.destroy() {
        Err(err) if !err.code().is(ErrorNumber::OperationInvalid) => Err(machine_error(
            machine,
            format!("forcing off domain `{name}`"),
            err,
        )),
        _ => Ok(()),
    }
}

/// Forces the domain off, undefines it and deletes its overlay.
fn remove(connect: &Connect, machine: &str, name: &str, exists: bool) -> Result<(), ProviderError> {
    let domain = match exists {
        true => found(connect.lookup_domain_by_name(name))
            .map_err(|err| machine_error(machine, format!("looking up domain `{name}`"), err))?,
        false => None,
    };
    if let Some(domain) = domain {
        power_off(connect, machine, name)?;
        let flags = sys::VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
            | sys::VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
            | sys::VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA
            | sys::VIR_DOMAIN_UNDEFINE_NVRAM;
        found(domain.undefine_flags(flags))
            .map_err(|err| machine_error(machine, format!("undefining domain `{name}`"), err))?;
    }
    let Some(pool) = found(connect.lookup_storage_pool_by_name(POOL))
        .map_err(|err| machine_error(machine, format!("looking up storage pool `{POOL}`"), err))?
    else {
        return Ok(());
    };
    storage::delete_volume(&pool, &storage::overlay_name(name))?;
    storage::delete_volume(&pool, &seed::volume_name(name))
}

fn statuses(connect: &Connect, env: &EnvironmentId) -> Result<Vec<MachineStatus>, ProviderError> {
    let domains = connect.list_all_domains(0).map_err(|err| {
        crate::conn::backend_error(format!("listing the domains of `{}`", env.name), err)
    })?;
    let mut statuses: Vec<MachineStatus> = domains
        .iter()
        .filter_map(|domain| {
            let owner = owner_of(domain).filter(|owner| owner.env_id == env.id)?;
            let name = owner
                .machine
                .unwrap_or_else(|| domain.name().unwrap_or_default());
            let state = match domain.state() {
                Ok((state, _)) => machine_state(state),
                Err(_) => MachineState::Other("unknown".to_string()),
            };
            Some(MachineStatus {
                name,
                id: domain.uuid_string().unwrap_or_default(),
                state,
            })
        })
        .collect();
    statuses.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(statuses)
}

fn machine_state(state: virt::domain::DomainStateEnum) -> MachineState {
    let other = |words: &str| MachineState::Other(words.to_string());
    match state {
        Enum::Known(DomainState::Running | DomainState::Blocked) => MachineState::Running,
        Enum::Known(DomainState::Shutoff) => MachineState::Stopped,
        Enum::Known(DomainState::Paused) => other("paused"),
        Enum::Known(DomainState::Shutdown) => other("shutting down"),
        Enum::Known(DomainState::Crashed) => other("crashed"),
        Enum::Known(DomainState::PMSuspended) => other("suspended"),
        _ => other("unknown"),
    }
}

/// envctl's metadata on a domain; none when it has none.
pub(crate) fn owner_of(domain: &Domain) -> Option<Owner> {
    let text = domain
        .metadata(
            sys::VIR_DOMAIN_METADATA_ELEMENT as i32,
            Some(xml::NAMESPACE),
            0,
        )
        .ok()?;
    xml::parse_owner(&text)
}

async fn remove_file(path: &Path) -> std::io::Result<()> {
    match tokio::fs::remove_file(path).await {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => Err(err),
        _ => Ok(()),
    }
}
