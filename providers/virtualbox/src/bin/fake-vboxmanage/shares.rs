//! `sharedfolder add|remove`, in the order of checks of VirtualBox 7.0's
//! `handleSharedFolderAdd`/`handleSharedFolderRemove` (VBoxManageMisc.cpp), which take the
//! machine's lock before calling `IMachine` or `IConsole`:
//!
//! - a permanent share takes the write lock, which a running or paused VM's process holds:
//!   "already locked for a session" (`Machine::lockMachine`); a saved VM is locked by no one
//!   but is not mutable (`Machine::createSharedFolder`, `MutableOrRunningStateDep`);
//! - `--transient` takes a shared lock and needs the VM's console, which only a running or
//!   paused VM has: "Machine '…' is not currently running." otherwise;
//! - names are unique within their scope only: a transient share may carry the name of a
//!   permanent one, and then stands in for it;
//! - the host path is made absolute by VBoxManage (`RTPathAbs`), loses a trailing slash and
//!   must be an existing folder (`SharedFolder::i_protectedInit`).
//!
//! 6.x takes the same options; the stand-in gives it 7.0's behaviour.

use std::path::Path;

use crate::getopt::{opt, Opt};
use crate::state::{SharedFolder, State, Vm};
use crate::vms::{has, parse, value, Opts};
use crate::{Ctx, Fail, Out};

pub fn sharedfolder(ctx: &Ctx, state: &mut State, args: &[String]) -> Out {
    let Some((sub, rest)) = args.split_first() else {
        return Err(Fail::syntax("Not enough parameters".to_string()));
    };
    match sub.as_str() {
        "add" => add(ctx, state, rest),
        "remove" => remove(ctx, state, rest),
        other => Err(Fail::syntax(format!("Invalid parameter '{other}'"))),
    }
}

fn add(ctx: &Ctx, state: &mut State, args: &[String]) -> Out {
    let table = [
        opt("name", &["--name"], true),
        opt("hostpath", &["--hostpath"], true),
        opt("readonly", &["--readonly"], false),
        opt("transient", &["--transient"], false),
        opt("automount", &["--automount"], false),
        opt("auto-mount-point", &["--auto-mount-point"], true),
    ];
    let (opts, machine) = parse_target(ctx, args, &table)?;
    let name = value(&opts, "name")
        .ok_or_else(|| Fail::syntax("No shared folder name (--name) was given".to_string()))?;
    for (bad, what) in [(' ', "space"), ('\t', "tabs"), ('\n', "newline")] {
        if name.contains(bad) {
            return Err(Fail::syntax(format!(
                "Invalid shared folder name '{name}': contains {what}"
            )));
        }
    }
    let given = value(&opts, "hostpath")
        .ok_or_else(|| Fail::syntax("No host path (--hostpath) was given".to_string()))?;
    let host_path = absolute(&given)?;
    let at = state.vm(&machine)?;
    let vm = &mut state.vms[at];
    let folder = SharedFolder {
        name: name.clone(),
        host_path: host_path.clone(),
        writable: !has(&opts, "readonly"),
        automount: has(&opts, "automount"),
        auto_mount_point: value(&opts, "auto-mount-point").unwrap_or_default(),
    };
    if has(&opts, "transient") {
        running(vm, &machine)?;
        if vm.transient_folders.iter().any(|f| f.name == name) {
            return Err(exists(&name, "VBOX_E_FILE_ERROR"));
        }
        usable(&name, &host_path)?;
        vm.transient_folders.push(folder);
        vm.transient_folders.sort_by(|a, b| a.name.cmp(&b.name));
        return Ok(String::new());
    }
    mutable(vm)?;
    if vm.shared_folders.iter().any(|f| f.name == name) {
        return Err(exists(&name, "VBOX_E_OBJECT_IN_USE"));
    }
    usable(&name, &host_path)?;
    vm.shared_folders.push(folder);
    Ok(String::new())
}

fn remove(ctx: &Ctx, state: &mut State, args: &[String]) -> Out {
    let table = [
        opt("name", &["--name"], true),
        opt("transient", &["--transient"], false),
    ];
    let (opts, machine) = parse_target(ctx, args, &table)?;
    let name = value(&opts, "name")
        .ok_or_else(|| Fail::syntax("No shared folder name (--name) was given".to_string()))?;
    let at = state.vm(&machine)?;
    let vm = &mut state.vms[at];
    let (folders, code) = if has(&opts, "transient") {
        running(vm, &machine)?;
        (&mut vm.transient_folders, "VBOX_E_FILE_ERROR")
    } else {
        mutable(vm)?;
        (&mut vm.shared_folders, "VBOX_E_OBJECT_NOT_FOUND")
    };
    let Some(index) = folders.iter().position(|f| f.name == name) else {
        return Err(Fail::api(
            format!("Could not find a shared folder named '{name}'."),
            code,
        ));
    };
    folders.remove(index);
    Ok(String::new())
}

/// The options and the one machine named among the arguments.
fn parse_target(ctx: &Ctx, args: &[String], table: &[Opt]) -> Result<(Opts, String), Fail> {
    let (opts, positional) = parse(ctx, args, table)?;
    match positional.as_slice() {
        [machine] => Ok((opts, machine.clone())),
        [] => Err(Fail::syntax("No machine was specified".to_string())),
        [first, then, ..] => Err(Fail::syntax(format!(
            "Machine name is given more than once: first '{first}', then '{then}'"
        ))),
    }
}

/// A transient share needs the VM's console: it must be running or paused.
fn running(vm: &Vm, given: &str) -> Result<(), Fail> {
    if vm.is_running() {
        return Ok(());
    }
    Err(Fail::exit(format!(
        "Machine '{given}' is not currently running."
    )))
}

/// A permanent share needs the machine's write lock and a mutable machine.
fn mutable(vm: &Vm) -> Result<(), Fail> {
    if vm.is_running() {
        return Err(Fail::api(
            format!(
                "The machine '{}' is already locked for a session (or being unlocked)",
                vm.name
            ),
            "VBOX_E_INVALID_OBJECT_STATE",
        ));
    }
    if vm.state == "saved" {
        return Err(Fail::api(
            "The machine is not mutable or running (state is Saved)".to_string(),
            "VBOX_E_INVALID_VM_STATE",
        ));
    }
    Ok(())
}

fn exists(name: &str, code: &'static str) -> Fail {
    Fail::api(format!("Shared folder named '{name}' already exists"), code)
}

/// `path` made absolute against the working directory, without a trailing slash.
fn absolute(path: &str) -> Result<String, Fail> {
    let full = std::path::absolute(path)
        .map_err(|err| Fail::exit(format!("RTAbsPath failed on '{path}': {err}")))?;
    let full = full.display().to_string();
    Ok(match full.trim_end_matches('/') {
        "" => "/".to_string(),
        trimmed => trimmed.to_string(),
    })
}

/// A share needs a name, and its host path must be an existing folder.
fn usable(name: &str, host_path: &str) -> Result<(), Fail> {
    if name.is_empty() {
        return Err(Fail::api("Invalid argument".to_string(), "E_INVALIDARG"));
    }
    let path = Path::new(host_path);
    let Ok(meta) = std::fs::metadata(path) else {
        let parent_exists = path.parent().is_some_and(Path::exists);
        let rc = if parent_exists {
            "VERR_FILE_NOT_FOUND"
        } else {
            "VERR_PATH_NOT_FOUND"
        };
        return Err(Fail::api(
            format!("RTPathQueryInfo failed on shared folder path '{host_path}': {rc}"),
            "E_INVALIDARG",
        ));
    };
    if !meta.is_dir() {
        return Err(Fail::api(
            format!("Shared folder path '{host_path}' is not a directory"),
            "E_INVALIDARG",
        ));
    }
    Ok(())
}
