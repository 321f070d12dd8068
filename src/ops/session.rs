//! What every verb that changes an environment sets up, once, in the order that keeps bad
//! input harmless: the machines named are resolved (before the lock, which creates
//! `.envctl/`), the lock is taken, Ctrl-C is caught, the state is loaded. The provider is
//! connected when the verb asks, and the registry behind `global-status` is written once,
//! when the session ends, whether the verb succeeded or not.

use anyhow::Result;
use envctl_provider::{EnvironmentSpec, MachineState, ProviderKind};

use super::{global_status, Workspace};
use crate::interrupt;
use crate::manifest::Machine;
use crate::providers::AnyProvider;
use crate::state::{Lock, State};

pub struct Session<'ws> {
    pub ws: &'ws Workspace,
    /// The machines the command named (all when it named none), in Machinefile order.
    pub selected: Vec<&'ws Machine>,
    pub state: State,
    /// What the registry learns when the session ends.
    record: Record,
    _lock: Lock,
}

/// What a session tells the registry at its end.
enum Record {
    /// The environment, with the states the verb saw of some machines.
    States(Vec<(String, MachineState)>),
    /// Nothing of the environment is left.
    Forget,
}

impl<'ws> Session<'ws> {
    /// Takes `ws`'s lock for `verb` and loads its state. `selected` was resolved from the
    /// command's names before, so a bad name never created anything.
    pub fn open(ws: &'ws Workspace, verb: &str, selected: Vec<&'ws Machine>) -> Result<Self> {
        let lock = ws.state_dir.lock(verb)?;
        interrupt::install();
        let state = ws.state_dir.load()?;
        Ok(Session {
            ws,
            selected,
            state,
            record: Record::States(Vec::new()),
            _lock: lock,
        })
    }

    /// The environment as a backend knows it.
    pub fn env(&self) -> EnvironmentSpec {
        self.ws.env_spec(&self.state)
    }

    /// The provider the environment's machines exist under, if any were made.
    pub fn running_kind(&self) -> Option<ProviderKind> {
        self.state.provider
    }

    /// Connects to the provider the machines exist under; None when none were made.
    pub async fn connect_running(&self) -> Result<Option<AnyProvider>> {
        match self.running_kind() {
            Some(kind) => Ok(Some(self.ws.connect(kind).await?)),
            None => Ok(None),
        }
    }

    pub fn save(&self) -> Result<()> {
        self.ws.state_dir.save(&self.state)
    }

    pub fn selected_names(&self) -> Vec<String> {
        self.selected.iter().map(|m| m.name.clone()).collect()
    }

    /// Tells the registry, at the end, that `machine` was seen in `state`.
    pub fn saw(&mut self, machine: &str, state: MachineState) {
        if let Record::States(seen) = &mut self.record {
            seen.retain(|(name, _)| name != machine);
            seen.push((machine.to_string(), state));
        }
    }

    /// Tells the registry, at the end, that the environment is gone.
    pub fn forget(&mut self) {
        self.record = Record::Forget;
    }
}

impl Drop for Session<'_> {
    /// The registry is written once, however the verb ended: an `up` that failed half-way
    /// still made machines that `global-status` must list. It is only ever a warning.
    fn drop(&mut self) {
        match &self.record {
            Record::Forget => global_status::forget(self.ws),
            Record::States(seen) => {
                let seen: Vec<(&str, &MachineState)> = seen
                    .iter()
                    .map(|(name, state)| (name.as_str(), state))
                    .collect();
                global_status::remember_states(self.ws, &self.state, &seen);
            }
        }
    }
}
