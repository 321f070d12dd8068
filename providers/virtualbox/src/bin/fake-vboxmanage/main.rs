//! A stand-in for VirtualBox's `VBoxManage`, for envctl's tests on machines without
//! VirtualBox. It implements the subcommands envctl uses with the argument grammar of the
//! VirtualBox manual ("VBoxManage", 6.1 and 7.0), its output formats and exit codes (1 when
//! an operation fails, 2 for a syntax error, each with `VBoxManage: error: …` on stderr), and
//! it refuses what VBoxManage would refuse: unknown options, missing ones, missing VMs, a
//! linked clone without a snapshot, 7.0 spellings under 6.x, `hostonlynet` without vmnet, a
//! permanent shared folder changed while the VM runs.
//!
//! Environment:
//! - `FAKE_VBOX_STATE` (required): a directory for `state.json` (what exists) and
//!   `transcript` (every call, one line each, appended).
//! - `FAKE_VBOX_VERSION`: what `--version` prints; its major version picks the grammar.
//!   Default `7.0.14r161095`.
//! - `FAKE_VBOX_VMNET=1`: a build with host-only networks (VirtualBox 7 on macOS).
//! - `FAKE_VBOX_NETWORKS_CONF`: the networks.conf `hostonlyif ipconfig` honours; unset, the
//!   default range 192.168.56.0/21 applies.
//! - `FAKE_VBOX_FAIL_CALL=N`: the Nth call (counting every call in the state) fails.
//! - `FAKE_VBOX_FAIL_ON=sub[:K]`: the Kth (default first) call of subcommand `sub` fails.
//! - `FAKE_VBOX_ACPI=ignore`: guests ignore `controlvm … acpipowerbutton`.
//!
//! An injected failure is recorded in the transcript like any call and changes nothing else.

mod getopt;
mod modifyvm;
mod nets;
mod shares;
mod state;
mod vms;

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::state::State;

/// How a call fails.
pub struct Fail {
    syntax: bool,
    message: String,
    code: &'static str,
}

impl Fail {
    /// A command line VBoxManage does not accept (exit code 2).
    pub fn syntax(message: String) -> Fail {
        Fail {
            syntax: true,
            message,
            code: "",
        }
    }

    /// A failure VBoxManage reports itself rather than relays from the API (its
    /// `RTMsgErrorExit`): exit code 1, one error line and no `Details:`.
    pub fn exit(message: String) -> Fail {
        Fail {
            syntax: false,
            message,
            code: "",
        }
    }

    /// An operation VirtualBox refused (exit code 1), with its COM result code.
    pub fn api(message: String, code: &'static str) -> Fail {
        Fail {
            syntax: false,
            message,
            code,
        }
    }
}

/// What the stand-in is pretending to be.
pub struct Ctx {
    pub version: String,
    /// VirtualBox 7's grammar.
    pub seven: bool,
    /// Host-only networks exist (7 on macOS).
    pub vmnet: bool,
    pub acpi_ignored: bool,
    pub networks_conf: Option<PathBuf>,
}

pub type Out = Result<String, Fail>;

fn main() -> ExitCode {
    let Some(dir) = std::env::var_os("FAKE_VBOX_STATE").map(PathBuf::from) else {
        eprintln!("fake-vboxmanage: FAKE_VBOX_STATE is not set");
        return ExitCode::from(1);
    };
    match run(&dir) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("fake-vboxmanage: {err}");
            ExitCode::from(1)
        }
    }
}

fn run(dir: &Path) -> Result<ExitCode, String> {
    let version =
        std::env::var("FAKE_VBOX_VERSION").unwrap_or_else(|_| "7.0.14r161095".to_string());
    let seven = !version.starts_with("6.");
    let ctx = Ctx {
        seven,
        vmnet: seven && std::env::var("FAKE_VBOX_VMNET").as_deref() == Ok("1"),
        acpi_ignored: std::env::var("FAKE_VBOX_ACPI").as_deref() == Ok("ignore"),
        networks_conf: std::env::var_os("FAKE_VBOX_NETWORKS_CONF").map(PathBuf::from),
        version,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();

    // Calls may come from several threads of envctl at once: one at a time.
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("lock"))
        .map_err(|err| format!("lock: {err}"))?;
    lock.lock().map_err(|err| format!("lock: {err}"))?;

    let mut transcript = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("transcript"))
        .map_err(|err| format!("transcript: {err}"))?;
    writeln!(transcript, "{}", transcript_line(&args))
        .map_err(|err| format!("transcript: {err}"))?;

    let state_path = dir.join("state.json");
    let mut state = State::load(&state_path)?;
    let sub = args.first().cloned().unwrap_or_default();
    state.calls += 1;
    let nth_of_sub = {
        let count = state.calls_of.entry(sub.clone()).or_insert(0);
        *count += 1;
        *count
    };
    let result = match injected(state.calls, &sub, nth_of_sub) {
        Some(fail) => Err(fail),
        None => {
            let mut work = state.clone();
            let result = dispatch(&ctx, &mut work, &args);
            if result.is_ok() {
                state = work;
            }
            result
        }
    };
    state.save(&state_path)?;
    Ok(match result {
        Ok(out) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(fail) => {
            eprintln!("VBoxManage: error: {}", fail.message);
            if fail.syntax {
                return Ok(ExitCode::from(2));
            }
            if fail.code.is_empty() {
                return Ok(ExitCode::from(1));
            }
            eprintln!(
                "VBoxManage: error: Details: code {} ({})",
                fail.code,
                hex(fail.code)
            );
            ExitCode::from(1)
        }
    })
}

/// The failure the environment asks for at this call, if any.
fn injected(call: u64, sub: &str, nth_of_sub: u64) -> Option<Fail> {
    let fail = || Some(Fail::api("injected failure".to_string(), "E_FAIL"));
    if std::env::var("FAKE_VBOX_FAIL_CALL")
        .ok()
        .and_then(|n| n.parse().ok())
        == Some(call)
    {
        return fail();
    }
    let wanted = std::env::var("FAKE_VBOX_FAIL_ON").ok()?;
    let (name, nth) = match wanted.split_once(':') {
        Some((name, nth)) => (name.to_string(), nth.parse().ok()?),
        None => (wanted, 1),
    };
    if name == sub && nth == nth_of_sub {
        return fail();
    }
    None
}

fn dispatch(ctx: &Ctx, state: &mut State, args: &[String]) -> Out {
    let Some((sub, rest)) = args.split_first() else {
        return Err(Fail::syntax("No command given".to_string()));
    };
    match sub.as_str() {
        "--version" | "-v" | "-V" if rest.is_empty() => Ok(format!("{}\n", ctx.version)),
        "list" => vms::list(ctx, state, rest),
        "showvminfo" => vms::showvminfo(ctx, state, rest),
        "import" => vms::import(ctx, state, rest),
        "clonevm" => vms::clonevm(ctx, state, rest),
        "snapshot" => vms::snapshot(ctx, state, rest),
        "modifyvm" => modifyvm::modifyvm(ctx, state, rest),
        "startvm" => vms::startvm(ctx, state, rest),
        "controlvm" => vms::controlvm(ctx, state, rest),
        "unregistervm" => vms::unregistervm(ctx, state, rest),
        "sharedfolder" => shares::sharedfolder(ctx, state, rest),
        "setextradata" => vms::setextradata(state, rest),
        "getextradata" => vms::getextradata(state, rest),
        "hostonlyif" => nets::hostonlyif(ctx, state, rest),
        "hostonlynet" if ctx.vmnet => nets::hostonlynet(ctx, state, rest),
        "dhcpserver" => nets::dhcpserver(ctx, state, rest),
        other => Err(Fail::syntax(format!("Invalid command '{other}'"))),
    }
}

/// The call as a shell would show it: arguments with spaces or quotes single-quoted.
fn transcript_line(args: &[String]) -> String {
    let quoted: Vec<String> = args
        .iter()
        .map(|arg| {
            if arg.is_empty() || arg.contains([' ', '\'', '"', '\t']) {
                format!("'{}'", arg.replace('\'', "'\\''"))
            } else {
                arg.clone()
            }
        })
        .collect();
    format!("VBoxManage {}", quoted.join(" "))
}

fn hex(code: &str) -> &'static str {
    match code {
        "VBOX_E_OBJECT_NOT_FOUND" => "0x80bb0001",
        "VBOX_E_INVALID_VM_STATE" => "0x80bb0002",
        "VBOX_E_FILE_ERROR" => "0x80bb0004",
        "VBOX_E_INVALID_OBJECT_STATE" => "0x80bb0007",
        "VBOX_E_OBJECT_IN_USE" => "0x80bb000c",
        "E_INVALIDARG" => "0x80070057",
        "E_ACCESSDENIED" => "0x80070005",
        _ => "0x80004005",
    }
}
