//! Ctrl-C while envctl changes an environment. The first one lets the backend call in
//! flight finish (so nothing is left half-made), stops waiting and provisioning, saves
//! what is done and exits 130: the next command picks up from there. A second one exits
//! at once.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::Notify;

use crate::output;

/// Exit status after an interrupt, as shells report a death by SIGINT.
pub const EXIT_INTERRUPTED: u8 = 130;

static REQUESTED: AtomicBool = AtomicBool::new(false);
static NOTIFY: Notify = Notify::const_new();

/// The error a command stops with after the first Ctrl-C.
#[derive(Debug)]
pub struct Interrupted;

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("interrupted; what was done is saved: run the command again to finish")
    }
}

impl std::error::Error for Interrupted {}

/// Takes over Ctrl-C for the rest of the process; later calls do nothing. Call from
/// within the runtime, once the command is past any question it asks.
pub fn install() {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        // Registered here, not when the task first runs, so no Ctrl-C falls in between.
        match signal(SignalKind::interrupt()) {
            Ok(sigint) => {
                tokio::spawn(handle_ctrl_c(sigint));
            }
            Err(err) => output::verbose(&format!("Ctrl-C keeps its default: {err}")),
        }
    });
}

async fn handle_ctrl_c(mut sigint: Signal) {
    if sigint.recv().await.is_none() {
        return;
    }
    REQUESTED.store(true, Ordering::SeqCst);
    NOTIFY.notify_waiters();
    output::status(
        "Interrupted",
        "finishing the step in progress, then stopping (Ctrl-C again to stop at once)",
    );
    if sigint.recv().await.is_some() {
        output::error(
            "interrupted twice: stopped at once; the next `envctl up` repairs what was cut off",
        );
        std::process::exit(i32::from(EXIT_INTERRUPTED));
    }
}

/// As if Ctrl-C had been pressed once (`true`), or never (`false`): for the verbs' tests,
/// which take turns while they use it.
#[cfg(test)]
pub fn set_requested(pressed: bool) {
    REQUESTED.store(pressed, Ordering::SeqCst);
    if pressed {
        NOTIFY.notify_waiters();
    }
}

pub fn requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}

/// Fails with [`Interrupted`] once Ctrl-C was pressed: call between steps.
pub fn check() -> Result<(), Interrupted> {
    if requested() {
        Err(Interrupted)
    } else {
        Ok(())
    }
}

/// Resolves when Ctrl-C is pressed (at once if it already was).
pub async fn wait() {
    loop {
        let notified = NOTIFY.notified();
        tokio::pin!(notified);
        // Registered before the flag is read, so a Ctrl-C in between is not missed.
        notified.as_mut().enable();
        if requested() {
            return;
        }
        notified.await;
    }
}

/// Runs `work` unless Ctrl-C comes first, for work that is safe to drop midway (waiting,
/// polling), never for a backend call.
pub async fn cancellable<F: Future>(work: F) -> Result<F::Output, Interrupted> {
    tokio::select! {
        biased;
        () = wait() => Err(Interrupted),
        output = work => Ok(output),
    }
}
