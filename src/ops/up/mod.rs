//! `envctl up`: plan, converge, record. The plan is worked out before anything changes;
//! converging creates and starts machines in parallel and waits until every one answers
//! SSH with the environment's key; recording writes the state, the inventory and the
//! other generated files, then runs the playbook once.

mod ready;

use std::collections::HashSet;

use anyhow::{bail, Result};
use envctl_provider::{
    ImageSource, MachineSpec, MachineState, MachineUp, PortForward, Provider, ProviderKind,
};
use futures_util::future::join_all;

use super::{
    access, choose_provider, folders, host_ports, image_source, machine_spec, mounts, ownership,
    provision, rsync, tunnels, MachineFailures, Session, Workspace,
};
use crate::interrupt;
use crate::keys;
use crate::output::{self, Progress};
use crate::providers::AnyProvider;
use crate::ssh::Credentials;
use crate::state::MachineRecord;
use ready::{bring_to_ready, Reach};

pub struct UpOptions {
    /// Machines to bring up; all when empty.
    pub names: Vec<String>,
    /// The provider asked for on the command line or in ENVCTL_PROVIDER.
    pub provider: Option<ProviderKind>,
    /// `--provision` (Some(true)), `--no-provision` (Some(false)), or Vagrant's default:
    /// provision machines that have not been provisioned since they were created.
    pub provision: Option<bool>,
    /// `--provision-with`: just these provisioners, whatever their `run`.
    pub provision_with: Vec<String>,
    /// Move an environment that runs under another provider: destroy it there first.
    pub switch: bool,
}

/// What `up` will do, worked out before the lock so that a missing image or box, like a
/// bad name, changes nothing.
struct Plan {
    kind: ProviderKind,
    /// Each selected machine's image, in selection order.
    images: Vec<ImageSource>,
    /// Each selected machine's forwards, host ports settled (`host_ports::settle`).
    forwards: Vec<Vec<PortForward>>,
}

/// What converging did to each machine.
struct Converged {
    /// Machines that existed before this `up` (a provisioned one stays provisioned).
    existing: HashSet<String>,
    results: Vec<Result<MachineUp>>,
}

/// `envctl up`.
pub async fn up(ws: &Workspace, opts: UpOptions) -> Result<()> {
    let selected = ws.select(&opts.names)?;
    provision::check_names(&ws.manifest, &opts.provision_with)?;
    let state = ws.state_dir.load()?;
    let kind = choose_provider(opts.provider, &ws.manifest, &state);
    folders::check(ws, kind, &selected)?;
    let forwards = host_ports::settle(ws, kind, &selected, &state)?;
    let images = selected
        .iter()
        .map(|machine| image_source(ws, machine, kind))
        .collect::<Result<Vec<_>>>()?;
    let mut session = Session::open(ws, "up", selected)?;
    let plan = Plan {
        kind,
        images,
        forwards,
    };
    up_planned(&mut session, plan, &opts).await
}

/// `up` under a session that is already open (`reload` holds one across halt and up),
/// under the provider the environment runs under.
pub(super) async fn up_selected(
    session: &mut Session<'_>,
    provision: Option<bool>,
    provision_with: &[String],
) -> Result<()> {
    let ws = session.ws;
    let kind = choose_provider(None, &ws.manifest, &session.state);
    folders::check(ws, kind, &session.selected)?;
    let forwards = host_ports::settle(ws, kind, &session.selected, &session.state)?;
    let images = session
        .selected
        .iter()
        .map(|machine| image_source(ws, machine, kind))
        .collect::<Result<Vec<_>>>()?;
    let opts = UpOptions {
        names: session.selected_names(),
        provider: Some(kind),
        provision,
        provision_with: provision_with.to_vec(),
        switch: false,
    };
    let plan = Plan {
        kind,
        images,
        forwards,
    };
    up_planned(session, plan, &opts).await
}

async fn up_planned(session: &mut Session<'_>, plan: Plan, opts: &UpOptions) -> Result<()> {
    leave_other_provider(session, plan.kind, opts.switch).await?;
    let keypair = keys::ensure_keypair(&session.ws.state_dir, &session.ws.manifest.name)?;
    let specs = session
        .selected
        .iter()
        .zip(plan.images)
        .zip(plan.forwards)
        .map(|((machine, image), forwards)| {
            machine_spec(session.ws, plan.kind, machine, image, forwards, &keypair)
        })
        .collect::<Result<Vec<_>>>()?;
    let provider = connect_checked(session, plan.kind, &specs).await?;
    folders::create_missing(&session.selected)?;
    // From here on resources exist: the provider is recorded first, so an interrupted
    // `up` is finished, not forgotten, by the next command.
    session.state.provider = Some(plan.kind);
    session.save()?;
    access::write_known_hosts(session.ws)?;
    session.ws.state_dir.create_console_dir()?;

    let creds = Credentials {
        private_key: &keypair.private_key_path,
        known_hosts: &session.ws.state_dir.known_hosts(),
    };
    let converged = converge(session, &provider, &specs, creds).await?;
    let changed = record(session, &specs, converged)?;
    if tunnels::used_by(plan.kind) {
        tunnel_forwards(session, &specs, creds)?;
    }
    sync_folders(session, &provider, plan.kind).await?;
    provision_if_due(session, opts, changed, plan.kind).await
}

/// Refuses to move the environment to `kind` from the provider it runs under, unless
/// asked to switch; switching destroys it there first, keeping its keys, id and names.
async fn leave_other_provider(
    session: &mut Session<'_>,
    kind: ProviderKind,
    switch: bool,
) -> Result<()> {
    let Some(current) = session.running_kind().filter(|current| *current != kind) else {
        return Ok(());
    };
    if !switch && !session.state.machines.is_empty() {
        bail!(
            "environment `{}` runs under the {current} provider; `envctl up --provider \
             {kind} --switch` moves it (destroying it under {current} first)",
            session.ws.manifest.name
        );
    }
    if !session.state.machines.is_empty() {
        output::status(
            "Switching",
            &format!("from {current}: destroying the machines there"),
        );
    }
    match session.ws.connect(current).await {
        Ok(old) => ownership::remove_all(&old, &session.env()).await?,
        // No machine recorded there: an `up` cut off early, nothing worth blocking on.
        Err(err) if session.state.machines.is_empty() => {
            output::status("Skipping", &format!("the clean-up under {current}: {err}"));
        }
        Err(err) => return Err(err.into()),
    }
    session.state.machines.clear();
    session.state.provider = None;
    session.save()?;
    access::write_generated(session.ws, &session.state)
}

/// Connects to `kind`, checks it can boot every machine, replaces what an earlier state of
/// this environment left there, and runs the backend's own checks. Nothing made yet.
async fn connect_checked(
    session: &Session<'_>,
    kind: ProviderKind,
    specs: &[MachineSpec],
) -> Result<AnyProvider> {
    let provider = session.ws.connect(kind).await?;
    let wanted = provider.capabilities().image_kind;
    if let Some(spec) = specs.iter().find(|spec| spec.image.kind() != wanted) {
        bail!(
            "machine `{}`: the {kind} provider cannot boot its image",
            spec.name
        );
    }
    let env = session.env();
    let holdings = provider.holdings().await?;
    // Replacing removes things: not once Ctrl-C was pressed.
    interrupt::check()?;
    for holding in ownership::left_by_an_earlier_state(&env, holdings) {
        output::status(
            "Replacing",
            &format!(
                "what an earlier `{}` in this folder left (id {}), which .envctl/ no longer \
                 records and whose keys are gone",
                env.name, holding.owner.env_id
            ),
        );
        ownership::remove_holding(&provider, &holding).await?;
    }
    provider.preflight(&env, specs).await?;
    interrupt::check()?;
    Ok(provider)
}

/// Makes what the machines share, then brings every machine up and to SSH-ready in
/// parallel. A backend call runs to its end even after Ctrl-C; waiting for SSH stops at
/// once.
async fn converge(
    session: &Session<'_>,
    provider: &AnyProvider,
    specs: &[MachineSpec],
    creds: Credentials<'_>,
) -> Result<Converged> {
    let env = session.env();
    let existing: HashSet<String> = provider
        .status(&env)
        .await?
        .into_iter()
        .filter(|machine| machine.state != MachineState::NotCreated)
        .map(|machine| machine.name)
        .collect();
    interrupt::check()?;
    let names: Vec<String> = specs.iter().map(|spec| spec.name.clone()).collect();
    let progress = Progress::new(&names);
    provider.prepare(&env, specs, &progress).await?;
    interrupt::check()?;
    let reach = Reach {
        provider,
        env: &env,
        creds,
        state_dir: &session.ws.state_dir,
        progress: &progress,
    };
    let results = join_all(specs.iter().map(|spec| async {
        let up = provider.up(&env, spec, &progress).await?;
        interrupt::check()?;
        interrupt::cancellable(bring_to_ready(&reach, spec, &up)).await??;
        Ok::<MachineUp, anyhow::Error>(up)
    }))
    .await;
    Ok(Converged { existing, results })
}

/// Writes down what converging did: each machine's record, the state, the inventory and
/// other generated files. Fails, after writing, if any machine did not come up. Returns
/// whether any machine changed.
fn record(session: &mut Session<'_>, specs: &[MachineSpec], converged: Converged) -> Result<bool> {
    let mut failures = MachineFailures::new("bring up", specs.len());
    let mut changed = false;
    for (spec, result) in specs.iter().zip(converged.results) {
        let up = match result {
            Ok(up) => up,
            Err(err) => {
                failures.push(&spec.name, err);
                continue;
            }
        };
        changed |= up.changed;
        let provisioned = converged.existing.contains(&spec.name)
            && session
                .state
                .machines
                .get(&spec.name)
                .is_some_and(|record| record.provisioned);
        let record = MachineRecord {
            id: up.id,
            ssh_host: up.endpoint.host,
            ssh_port: up.endpoint.port,
            provisioned,
            provisioners: match session.state.machines.get(&spec.name) {
                Some(old) if provisioned => old.provisioners.clone(),
                _ => Default::default(),
            },
            moved_ports: match session.ws.manifest.machine(&spec.name) {
                Some(machine) => {
                    host_ports::moved_ports(&machine.forwarded_ports, &spec.forwarded_ports)
                }
                None => Default::default(),
            },
        };
        report_forwards(session.ws, spec);
        session.state.machines.insert(spec.name.clone(), record);
        session.saw(&spec.name, MachineState::Running);
    }
    session.save()?;
    access::write_generated(session.ws, &session.state)?;
    // After the backends and ssh have written theirs with their own umask.
    session.ws.state_dir.restrict()?;
    interrupt::check()?;
    failures.into_result()?;
    Ok(changed)
}

/// Makes the SSH tunnels that forward the machines' ports (`tunnels.rs`), now that each
/// answers SSH; ends those of forwards the Machinefile no longer lists.
fn tunnel_forwards(
    session: &Session<'_>,
    specs: &[MachineSpec],
    creds: Credentials<'_>,
) -> Result<()> {
    let wanted: Vec<tunnels::Wanted> = specs
        .iter()
        .filter_map(|spec| {
            Some(tunnels::Wanted {
                name: &spec.name,
                user: &spec.user,
                record: session.state.machines.get(&spec.name)?,
                forwards: &spec.forwarded_ports,
            })
        })
        .collect();
    tunnels::ensure(
        &session.state.env_id,
        &session.ws.manifest.dir,
        &session.ws.state_dir.tunnels_log(),
        creds,
        &wanted,
    )
}

/// Says where `spec`'s guest ports answer on the host, as Vagrant's `up` does, and which
/// host port `auto_correct` moved.
fn report_forwards(ws: &Workspace, spec: &MachineSpec) {
    let asked = ws
        .manifest
        .machine(&spec.name)
        .map_or(&[][..], |machine| &machine.forwarded_ports[..]);
    for (index, forward) in spec.forwarded_ports.iter().enumerate() {
        let moved = match asked.get(index) {
            Some(asked) if asked.host != forward.host => {
                format!(", auto-corrected from {} (taken)", asked.host)
            }
            _ => String::new(),
        };
        output::status(
            "Forwarding",
            &format!(
                "{}: {} (guest) => {}:{} (host, {}){moved}",
                spec.name, forward.guest, forward.host_ip, forward.host, forward.protocol
            ),
        );
    }
}

/// Says which type each synced folder got, then pushes the rsync ones, before any
/// provisioner runs (as Vagrant does), on every `up` and `reload`.
async fn sync_folders(
    session: &Session<'_>,
    provider: &AnyProvider,
    kind: ProviderKind,
) -> Result<()> {
    for machine in &session.selected {
        let shown: Vec<String> = folders::uses(kind, &session.ws.manifest.dir, machine)
            .iter()
            .map(|u| {
                format!(
                    "{} → {} ({})",
                    rsync::shown_host(&session.ws.manifest.dir, &u.folder.host),
                    u.folder.guest,
                    u.used
                )
            })
            .collect();
        if !shown.is_empty() {
            output::status(
                "Folders",
                &format!("{}: {}", machine.name, shown.join(", ")),
            );
        }
    }
    // The tests' fake machines answer no SSH.
    if !provider.machines_answer_ssh() {
        return Ok(());
    }
    mounts::mount(session.ws, &session.state, kind, &session.selected).await?;
    rsync::push(session.ws, &session.state, kind, &session.selected).await
}

/// Runs the provisioners that are due: by Vagrant's rule, `once` ones on machines not
/// provisioned since they were made and `always` ones on every machine; with
/// `--provision`, all but `never` ones; with `--provision-with`, the ones named.
async fn provision_if_due(
    session: &mut Session<'_>,
    opts: &UpOptions,
    changed: bool,
    kind: ProviderKind,
) -> Result<()> {
    let count = session.selected.len();
    let mode = match (opts.provision, opts.provision_with.is_empty()) {
        (Some(false), _) => None,
        (_, false) => Some(provision::Mode::Named(&opts.provision_with)),
        (Some(true), true) => Some(provision::Mode::All),
        (None, true) => Some(provision::Mode::Due),
    };
    let steps = match mode {
        Some(mode) => provision::plan(
            &session.ws.manifest,
            &session.selected,
            &session.state,
            mode,
        ),
        None => Vec::new(),
    };
    if !changed && steps.is_empty() {
        output::status(
            "Finished",
            &format!("nothing to do: all {count} machines are running"),
        );
        return Ok(());
    }
    output::status("Ready", &format!("{count} machines under {kind}"));
    if !steps.is_empty() {
        provision::run(session, &steps).await?;
    }
    Ok(())
}
