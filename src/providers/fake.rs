//! A backend for tests of the verbs: it keeps machines in memory, records every call in
//! order, and fails on command, so ordering, repair, interruption and partial failure are
//! tested without an engine (youki's `TestManager` idea). Machines it brings up are ready
//! at once: nothing listens for SSH.

use std::collections::BTreeMap;
use std::sync::Mutex;

use envctl_provider::{
    Access, Capabilities, EnvironmentId, EnvironmentSpec, Holding, ImageKind, MachineSpec,
    MachineState, MachineStatus, MachineUp, Owner, Provider, ProviderError, ProviderKind, Report,
    SshEndpoint,
};

/// One call the verbs made, with the machine it was about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Call {
    Preflight,
    Prepare,
    Up(String),
    Halt(String),
    Destroy(String),
    Teardown,
    Status,
    Holdings,
}

impl Call {
    /// The call's name, as a provider error says what it was doing.
    fn action(&self) -> &'static str {
        match self {
            Call::Preflight => "preflight",
            Call::Prepare => "prepare",
            Call::Up(_) => "up",
            Call::Halt(_) => "halt",
            Call::Destroy(_) => "destroy",
            Call::Teardown => "teardown",
            Call::Status => "status",
            Call::Holdings => "holdings",
        }
    }
}

/// Which call fails, and how often (each failure is used up once).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub call: Call,
    pub reason: &'static str,
}

#[derive(Default)]
pub struct FakeProvider {
    /// Each machine's state and id, by name; what `status` reports.
    machines: Mutex<BTreeMap<String, (MachineState, String)>>,
    calls: Mutex<Vec<Call>>,
    failures: Mutex<Vec<Failure>>,
    holdings: Mutex<Vec<Holding>>,
    /// The call during which Ctrl-C is pressed: it still finishes, as a real one would.
    interrupt_at: Mutex<Option<Call>>,
    /// How many machines were ever created, for fresh ids.
    created: Mutex<usize>,
}

impl FakeProvider {
    /// Makes the next `call` fail with `reason`.
    pub fn fail(&self, call: Call, reason: &'static str) {
        lock(&self.failures).push(Failure { call, reason });
    }

    /// Presses Ctrl-C (once) while `call` runs.
    pub fn interrupt_at(&self, call: Call) {
        *lock(&self.interrupt_at) = Some(call);
    }

    /// Forgets the calls made so far, to look at what the next command does.
    pub fn clear_calls(&self) {
        lock(&self.calls).clear();
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        lock(&self.calls).clone()
    }

    /// The state of every machine the backend holds.
    pub fn states(&self) -> BTreeMap<String, MachineState> {
        lock(&self.machines)
            .iter()
            .map(|(name, (state, _))| (name.clone(), state.clone()))
            .collect()
    }

    /// Puts a machine in a state behind envctl's back (stopped, removed, half made).
    pub fn set_state(&self, machine: &str, state: Option<MachineState>) {
        let mut machines = lock(&self.machines);
        match state {
            Some(state) => {
                let id = machines
                    .get(machine)
                    .map(|(_, id)| id.clone())
                    .unwrap_or_else(|| format!("fake-{machine}"));
                machines.insert(machine.to_string(), (state, id));
            }
            None => {
                machines.remove(machine);
            }
        }
    }

    /// What `holdings` answers: resources of other environments, for `gc` and repair.
    pub fn add_holding(&self, owner: Owner, resource: &str) {
        lock(&self.holdings).push(Holding {
            owner,
            resources: vec![resource.to_string()],
        });
    }

    /// Records `call`, then fails it if a failure was asked for.
    fn enter(&self, call: Call) -> Result<(), ProviderError> {
        lock(&self.calls).push(call.clone());
        let mut interrupt_at = lock(&self.interrupt_at);
        if interrupt_at.as_ref() == Some(&call) {
            *interrupt_at = None;
            crate::interrupt::set_requested(true);
        }
        drop(interrupt_at);
        let mut failures = lock(&self.failures);
        let Some(index) = failures.iter().position(|failure| failure.call == call) else {
            return Ok(());
        };
        let failure = failures.remove(index);
        let action = call.action();
        Err(match call {
            Call::Up(machine) | Call::Halt(machine) | Call::Destroy(machine) => {
                ProviderError::machine(&machine, action, failure.reason)
            }
            _ => ProviderError::backend(action, failure.reason),
        })
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A test that panicked while holding it has failed already.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Provider for FakeProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Docker
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            image_kind: ImageKind::Docker,
        }
    }

    async fn preflight(
        &self,
        _env: &EnvironmentSpec,
        _machines: &[MachineSpec],
    ) -> Result<(), ProviderError> {
        self.enter(Call::Preflight)
    }

    async fn prepare(
        &self,
        _env: &EnvironmentSpec,
        _machines: &[MachineSpec],
        _report: &dyn Report,
    ) -> Result<(), ProviderError> {
        self.enter(Call::Prepare)
    }

    async fn up(
        &self,
        _env: &EnvironmentSpec,
        machine: &MachineSpec,
        _report: &dyn Report,
    ) -> Result<MachineUp, ProviderError> {
        self.enter(Call::Up(machine.name.clone()))?;
        let mut machines = lock(&self.machines);
        let (changed, id) = match machines.get(&machine.name) {
            Some((MachineState::Running, id)) => (false, id.clone()),
            Some((_, id)) => (true, id.clone()),
            None => {
                let mut created = lock(&self.created);
                *created += 1;
                (true, format!("fake-{}-{created}", machine.name))
            }
        };
        machines.insert(machine.name.clone(), (MachineState::Running, id.clone()));
        Ok(MachineUp {
            id,
            endpoint: SshEndpoint {
                host: machine.ip.to_string(),
                port: 22,
            },
            access: Access::Ready,
            guest_address: None,
            changed,
        })
    }

    async fn halt(&self, _env: &EnvironmentId, machine: &str) -> Result<(), ProviderError> {
        self.enter(Call::Halt(machine.to_string()))?;
        if let Some((state, _)) = lock(&self.machines).get_mut(machine) {
            *state = MachineState::Stopped;
        }
        Ok(())
    }

    async fn destroy(&self, _env: &EnvironmentId, machine: &str) -> Result<(), ProviderError> {
        self.enter(Call::Destroy(machine.to_string()))?;
        lock(&self.machines).remove(machine);
        Ok(())
    }

    async fn teardown(&self, _env: &EnvironmentId) -> Result<(), ProviderError> {
        self.enter(Call::Teardown)
    }

    async fn status(&self, _env: &EnvironmentId) -> Result<Vec<MachineStatus>, ProviderError> {
        self.enter(Call::Status)?;
        Ok(lock(&self.machines)
            .iter()
            .map(|(name, (state, id))| MachineStatus {
                name: name.clone(),
                id: id.clone(),
                state: state.clone(),
            })
            .collect())
    }

    async fn holdings(&self) -> Result<Vec<Holding>, ProviderError> {
        self.enter(Call::Holdings)?;
        Ok(lock(&self.holdings).clone())
    }
}
