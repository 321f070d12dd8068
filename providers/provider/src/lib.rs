//! The contract between envctl and its backends.
//!
//! A backend takes plain data ([`EnvironmentSpec`], [`MachineSpec`]), does one thing and
//! returns data or a typed [`ProviderError`]. It never reads the Machinefile, never writes
//! envctl's state directory and never prints: progress goes through [`Report`].

mod error;
mod owner;
pub mod routes;
mod spec;
pub mod vagrant_keys;

use std::future::Future;

pub use error::{BoxError, ProviderError};
pub use owner::{group_holdings, Holding, Owner};
pub use spec::{
    Access, BoxImage, BuildRecipe, Capabilities, EnvironmentId, EnvironmentSpec, FolderBind,
    FolderType, GuestAddress, HostKey, ImageKind, ImageSource, Init, MachineSpec, MachineState,
    MachineStatus, MachineUp, NetworkSpec, Phase, PortForward, Protocol, ProviderKind, SshEndpoint,
    UserIds,
};

/// Where a backend says what it is doing, machine by machine.
pub trait Report: Send + Sync {
    fn phase(&self, machine: &str, phase: Phase);
}

/// A [`Report`] that drops everything, for callers that show no progress.
pub struct Silent;

impl Report for Silent {
    fn phase(&self, _machine: &str, _phase: Phase) {}
}

/// One backend: Docker, libvirt or VirtualBox.
///
/// Every method is idempotent: asking for a state that already holds changes nothing,
/// so an interrupted command is repaired by running it again.
pub trait Provider: Send + Sync {
    fn kind(&self) -> ProviderKind;

    /// What this backend can do; the planner checks it before any side effect.
    fn capabilities(&self) -> Capabilities;

    /// Checks that change nothing: the backend answers, the subnet is free for this
    /// environment, the images or boxes named exist or can be made.
    fn preflight(
        &self,
        env: &EnvironmentSpec,
        machines: &[MachineSpec],
    ) -> impl Future<Output = Result<(), ProviderError>> + Send;

    /// Makes what the machines share (network, images) once per `up`.
    fn prepare(
        &self,
        env: &EnvironmentSpec,
        machines: &[MachineSpec],
        report: &dyn Report,
    ) -> impl Future<Output = Result<(), ProviderError>> + Send;

    /// Creates the machine if it is missing and starts it if it is stopped.
    fn up(
        &self,
        env: &EnvironmentSpec,
        machine: &MachineSpec,
        report: &dyn Report,
    ) -> impl Future<Output = Result<MachineUp, ProviderError>> + Send;

    /// Stops the machine; a missing or stopped machine is not an error.
    fn halt(
        &self,
        env: &EnvironmentId,
        machine: &str,
    ) -> impl Future<Output = Result<(), ProviderError>> + Send;

    /// Removes the machine and everything made for it alone; a missing one is not an error.
    fn destroy(
        &self,
        env: &EnvironmentId,
        machine: &str,
    ) -> impl Future<Output = Result<(), ProviderError>> + Send;

    /// Removes what the machines shared, once none is left.
    fn teardown(
        &self,
        env: &EnvironmentId,
    ) -> impl Future<Output = Result<(), ProviderError>> + Send;

    /// The state of every machine of the environment that the backend knows of.
    fn status(
        &self,
        env: &EnvironmentId,
    ) -> impl Future<Output = Result<Vec<MachineStatus>, ProviderError>> + Send;

    /// Every environment that has resources on this backend, found by the marks on them,
    /// whatever its id: what `envctl gc` and `up`'s repair of lost state start from.
    fn holdings(&self) -> impl Future<Output = Result<Vec<Holding>, ProviderError>> + Send;

    /// The last lines a machine printed (console or sshd log), to explain a failure.
    /// Never wrong to leave as it is: some backends have nothing to show.
    fn log_tail(
        &self,
        _env: &EnvironmentId,
        _machine: &str,
        _lines: usize,
    ) -> impl Future<Output = Option<String>> + Send {
        async { None }
    }
}
