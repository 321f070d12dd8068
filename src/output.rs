//! Everything envctl says goes through here: status lines and errors on stderr, data
//! (inventory, ssh-config, `--json`) on stdout. No other module prints.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use envctl_provider::{Phase, Report};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

static VERBOSITY: AtomicU8 = AtomicU8::new(0);

pub fn set_verbosity(level: u8) {
    VERBOSITY.store(level, Ordering::Relaxed);
}

/// A line of progress, cargo style: a right-aligned verb, then what it is about.
pub fn status(verb: &str, message: &str) {
    let mut err = std::io::stderr().lock();
    if std::io::stderr().is_terminal() {
        writeln!(err, "\x1b[1;32m{verb:>12}\x1b[0m {message}").ok();
    } else {
        writeln!(err, "{verb:>12} {message}").ok();
    }
}

/// Shown only with `-v`.
pub fn verbose(message: &str) {
    if VERBOSITY.load(Ordering::Relaxed) > 0 {
        status("Debug", message);
    }
}

pub fn error(message: &str) {
    writeln!(std::io::stderr().lock(), "error: {message}").ok();
}

/// Data for the user or a script, on stdout as it is.
pub fn data(text: &str) {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes()).ok();
    out.flush().ok();
}

/// Each machine's phase and elapsed time while machines come up: a live display on a
/// terminal, plain lines otherwise.
pub struct Progress {
    started: Instant,
    display: Display,
}

enum Display {
    Live {
        multi: MultiProgress,
        bars: HashMap<String, ProgressBar>,
    },
    Lines {
        last: Mutex<HashMap<String, String>>,
    },
}

impl Progress {
    pub fn new(machines: &[String]) -> Progress {
        let started = Instant::now();
        if !std::io::stderr().is_terminal() {
            return Progress {
                started,
                display: Display::Lines {
                    last: Mutex::new(HashMap::new()),
                },
            };
        }
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let width = machines.iter().map(String::len).max().unwrap_or(0);
        let style =
            ProgressStyle::with_template("{spinner} {prefix:.bold} {wide_msg} {elapsed:>4}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner());
        let bars = machines
            .iter()
            .map(|name| {
                let bar = multi.add(ProgressBar::new_spinner());
                bar.set_style(style.clone());
                bar.set_prefix(format!("{name:width$}"));
                bar.set_message("waiting");
                bar.enable_steady_tick(Duration::from_millis(120));
                (name.clone(), bar)
            })
            .collect();
        Progress {
            started,
            display: Display::Live { multi, bars },
        }
    }

    /// Says what `machine` is doing now.
    pub fn set(&self, machine: &str, what: &str) {
        match &self.display {
            Display::Live { bars, .. } => {
                if let Some(bar) = bars.get(machine) {
                    bar.set_message(what.to_string());
                }
            }
            Display::Lines { last } => {
                let mut last = last.lock().unwrap_or_else(|poison| poison.into_inner());
                if last.get(machine).map(String::as_str) == Some(what) {
                    return;
                }
                last.insert(machine.to_string(), what.to_string());
                let elapsed = self.started.elapsed().as_secs_f32();
                writeln!(
                    std::io::stderr().lock(),
                    "{machine}: {what} ({elapsed:.1}s)"
                )
                .ok();
            }
        }
    }

    /// Freezes `machine`'s line with its final word.
    pub fn finish(&self, machine: &str, what: &str) {
        self.set(machine, what);
        if let Display::Live { bars, .. } = &self.display {
            if let Some(bar) = bars.get(machine) {
                bar.finish_with_message(what.to_string());
            }
        }
    }

    /// A warning about `machine`, printed above the live display rather than through it.
    pub fn warn(&self, machine: &str, what: &str) {
        let line = format!("warning: {machine}: {what}");
        if let Display::Live { multi, .. } = &self.display {
            if multi.println(&line).is_ok() {
                return;
            }
        }
        writeln!(std::io::stderr().lock(), "{line}").ok();
    }
}

impl Report for Progress {
    fn phase(&self, machine: &str, phase: Phase) {
        self.set(machine, &phase.to_string());
    }
}

/// Asks a yes/no question on the terminal; anything but yes is no.
pub fn confirm(question: &str) -> bool {
    eprint!("{question} [y/N] ");
    std::io::stderr().flush().ok();
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer).ok();
    matches!(answer.trim(), "y" | "Y" | "yes" | "Yes")
}
