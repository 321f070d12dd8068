//! VM subcommands: list, showvminfo, import, clonevm, snapshot, modifyvm, startvm, controlvm,
//! unregistervm, setextradata, getextradata (`sharedfolder` is in `shares`).

use std::fmt::Write;

use crate::getopt::{opt, Args, Item, Opt};
use crate::modifyvm;
use crate::nets;
use crate::state::{State, Vm};
use crate::{Ctx, Fail, Out};

/// The options given, in order, with their values.
pub type Opts = Vec<(&'static str, Option<String>)>;

/// Options and positional arguments of a subcommand with plain (not indexed) options.
pub fn parse(ctx: &Ctx, args: &[String], table: &[Opt]) -> Result<(Opts, Vec<String>), Fail> {
    let mut opts = Vec::new();
    let mut positional = Vec::new();
    let mut args = Args::new(args, ctx.seven);
    while let Some(item) = args.next(table) {
        match item? {
            Item::Opt { key, value, .. } => opts.push((key, value)),
            Item::Positional(arg) => positional.push(arg),
        }
    }
    Ok((opts, positional))
}

fn one(positional: &[String], what: &str) -> Result<String, Fail> {
    match positional {
        [only] => Ok(only.clone()),
        [] => Err(Fail::syntax(format!("No {what} specified"))),
        [_, extra, ..] => Err(Fail::syntax(format!("Invalid parameter '{extra}'"))),
    }
}

pub fn value(opts: &[(&str, Option<String>)], key: &str) -> Option<String> {
    opts.iter()
        .rev()
        .find(|(k, _)| *k == key)
        .and_then(|(_, v)| v.clone())
}

pub fn has(opts: &[(&str, Option<String>)], key: &str) -> bool {
    opts.iter().any(|(k, _)| *k == key)
}

pub fn list(ctx: &Ctx, state: &mut State, args: &[String]) -> Out {
    let table = [
        opt("long", &["--long"], false),
        opt("sorted", &["--sorted"], false),
    ];
    let (_, positional) = parse(ctx, args, &table)?;
    let what = one(&positional, "list type")?;
    let line = |vm: &Vm| format!("\"{}\" {{{}}}\n", vm.name, vm.uuid);
    match what.as_str() {
        "vms" => Ok(state
            .vms
            .iter()
            .filter(|vm| vm.registered)
            .map(line)
            .collect()),
        "runningvms" => Ok(state
            .vms
            .iter()
            .filter(|vm| vm.registered && vm.is_running())
            .map(line)
            .collect()),
        "hostonlyifs" => Ok(nets::list_hostonlyifs(state)),
        "hostonlynets" if ctx.vmnet => Ok(nets::list_hostonlynets(state)),
        "dhcpservers" => Ok(nets::list_dhcpservers(state)),
        other => Err(Fail::syntax(format!("Unknown subcommand \"{other}\""))),
    }
}

pub fn showvminfo(ctx: &Ctx, state: &mut State, args: &[String]) -> Out {
    let table = [
        opt("machinereadable", &["--machinereadable"], false),
        opt("details", &["--details"], false),
        opt("log", &["--log"], true),
    ];
    let (opts, positional) = parse(ctx, args, &table)?;
    let vm = &state.vms[state.vm(&one(&positional, "machine")?)?];
    if !has(&opts, "machinereadable") {
        return Ok(format!("Name:                        {}\nUUID:                        {}\nState:                       {}\n", vm.name, vm.uuid, vm.state));
    }
    let mut out = String::new();
    let o = &mut out;
    kv(o, "name", &vm.name);
    kv(o, "groups", "/");
    kv(o, "UUID", &vm.uuid);
    kv(o, "description", &vm.description);
    let _ = write!(o, "memory={}\ncpus={}\n", vm.memory, vm.cpus);
    kv(o, "VMState", &vm.state);
    kv(o, "VMStateChangeTime", "2024-01-01T00:00:00.000000000");
    for (i, nic) in vm.nics.iter().enumerate() {
        let n = i + 1;
        match nic.kind.as_str() {
            "none" => {
                kv(o, &format!("nic{n}"), "none");
                continue;
            }
            "nat" => kv(o, &format!("natnet{n}"), "nat"),
            "hostonly" => kv(o, &format!("hostonlyadapter{n}"), &nic.hostonly_adapter),
            "hostonlynet" => kv(o, &format!("hostonly-network{n}"), &nic.hostonly_net),
            _ => {}
        }
        kv(o, &format!("macaddress{n}"), &nic.mac);
        kv(
            o,
            &format!("cableconnected{n}"),
            if nic.cable { "on" } else { "off" },
        );
        let kind = if nic.kind == "hostonlynet" {
            "hostonlynetwork"
        } else {
            nic.kind.as_str()
        };
        kv(o, &format!("nic{n}"), kind);
        kv(o, &format!("nictype{n}"), "82540EM");
        kv(o, &format!("nicspeed{n}"), "0");
        for (r, rule) in nic.rules.iter().enumerate() {
            kv(o, &format!("Forwarding({r})"), rule);
        }
    }
    kv(o, "uart1", vm.uart1.as_deref().unwrap_or("off"));
    if vm.uart1.is_some() {
        kv(
            o,
            "uartmode1",
            vm.uartmode1.as_deref().unwrap_or("disconnected"),
        );
    }
    // After the NICs and ports, before the snapshots, machine mappings first, as
    // VBoxManageInfo.cpp prints them.
    let mappings = [
        ("Machine", &vm.shared_folders),
        ("Transient", &vm.transient_folders),
    ];
    for (scope, folders) in mappings {
        for (i, folder) in folders.iter().enumerate() {
            let n = i + 1;
            kv(
                o,
                &format!("SharedFolderName{scope}Mapping{n}"),
                &folder.name,
            );
            kv(
                o,
                &format!("SharedFolderPath{scope}Mapping{n}"),
                &folder.host_path,
            );
        }
    }
    for (i, snapshot) in vm.snapshots.iter().enumerate() {
        let suffix = if i == 0 {
            String::new()
        } else {
            format!("-{i}")
        };
        kv(o, &format!("SnapshotName{suffix}"), snapshot);
    }
    if let Some(current) = vm.snapshots.last() {
        kv(o, "CurrentSnapshotName", current);
    }
    Ok(out)
}

/// One `key="value"` line, the value escaped as VBoxManage 7 does.
fn kv(out: &mut String, key: &str, value: &str) {
    let _ = writeln!(
        out,
        "{key}=\"{}\"",
        value.replace('\\', "\\\\").replace('"', "\\\"")
    );
}

pub fn import(ctx: &Ctx, state: &mut State, args: &[String]) -> Out {
    let table = [
        opt("dry-run", &["--dry-run"], false),
        opt("options", &["--options"], true),
        opt("vsys", &["--vsys"], true),
        opt("ostype", &["--ostype"], true),
        opt("vmname", &["--vmname"], true),
        opt("settingsfile", &["--settingsfile"], true),
        opt("basefolder", &["--basefolder"], true),
        opt("group", &["--group"], true),
        opt("memory", &["--memory"], true),
        opt("cpus", &["--cpus"], true),
        opt("description", &["--description"], true),
        opt("eula", &["--eula"], true),
        opt("unit", &["--unit"], true),
        opt("ignore", &["--ignore"], false),
        opt("scsitype", &["--scsitype"], true),
        opt("disk", &["--disk"], true),
    ];
    let (opts, positional) = parse(ctx, args, &table)?;
    let ovf = one(&positional, "OVF file")?;
    let per_vsys = [
        "ostype",
        "vmname",
        "settingsfile",
        "basefolder",
        "group",
        "memory",
        "cpus",
        "description",
        "eula",
        "unit",
        "ignore",
        "scsitype",
        "disk",
    ];
    let mut vsys_seen = false;
    for (key, value) in &opts {
        if *key == "vsys" {
            if value.as_deref() != Some("0") {
                return Err(Fail::api(
                    format!(
                        "Invalid virtual system index: {}",
                        value.clone().unwrap_or_default()
                    ),
                    "E_INVALIDARG",
                ));
            }
            vsys_seen = true;
        } else if per_vsys.contains(key) && !vsys_seen {
            return Err(Fail::syntax(format!(
                "Option \"--{key}\" requires preceding --vsys argument."
            )));
        }
    }
    if !std::path::Path::new(&ovf).is_file() {
        return Err(Fail::api(
            format!("Could not open the file '{ovf}' (VERR_FILE_NOT_FOUND)"),
            "VBOX_E_FILE_ERROR",
        ));
    }
    if has(&opts, "dry-run") {
        return Ok("Interpreting the appliance...\n".to_string());
    }
    let stem = std::path::Path::new(&ovf)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned());
    let name = value(&opts, "vmname")
        .or(stem)
        .unwrap_or_else(|| "vm".to_string());
    new_name_is_free(state, &name)?;
    let mut vm = Vm::new(&name, state);
    vm.ovf = Some(ovf);
    state.vms.push(vm);
    Ok("0%...10%...20%...30%...40%...50%...60%...70%...80%...90%...100%\nSuccessfully imported the appliance.\n".to_string())
}

fn new_name_is_free(state: &State, name: &str) -> Result<(), Fail> {
    if state.vms.iter().any(|vm| vm.name == name) {
        return Err(Fail::api(
            format!("Machine settings file '/home/user/VirtualBox VMs/{name}/{name}.vbox' already exists"),
            "VBOX_E_FILE_ERROR",
        ));
    }
    Ok(())
}

pub fn clonevm(ctx: &Ctx, state: &mut State, args: &[String]) -> Out {
    let table = [
        opt("snapshot", &["--snapshot"], true),
        opt("mode", &["--mode"], true),
        opt("options", &["--options"], true),
        opt("name", &["--name"], true),
        opt("groups", &["--groups"], true),
        opt("basefolder", &["--basefolder"], true),
        opt("uuid", &["--uuid"], true),
        opt("register", &["--register"], false),
    ];
    let (opts, positional) = parse(ctx, args, &table)?;
    if let Some(mode) = value(&opts, "mode") {
        if !["machine", "machineandchildren", "all"].contains(&mode.as_str()) {
            return Err(Fail::syntax(format!("Invalid clone mode '{mode}'")));
        }
    }
    let mut flags = Vec::new();
    for (key, value) in &opts {
        if *key != "options" {
            continue;
        }
        for word in value.as_deref().unwrap_or_default().split(',') {
            let word = word.trim().to_ascii_lowercase();
            if ![
                "link",
                "keepallmacs",
                "keepnatmacs",
                "keepdisknames",
                "keephwuuids",
            ]
            .contains(&word.as_str())
            {
                return Err(Fail::syntax(format!("Invalid clone options '{word}'")));
            }
            flags.push(word);
        }
    }
    let source = state.vms[state.vm(&one(&positional, "machine")?)?].clone();
    let snapshot = value(&opts, "snapshot");
    if let Some(snapshot) = &snapshot {
        if !source.snapshots.contains(snapshot) {
            return Err(Fail::api(
                format!("Could not find a snapshot named '{snapshot}'"),
                "VBOX_E_OBJECT_NOT_FOUND",
            ));
        }
    }
    let link = flags.iter().any(|f| f == "link");
    if link && snapshot.is_none() {
        return Err(Fail::api(
            "Linked clone can only be created from a snapshot".to_string(),
            "E_INVALIDARG",
        ));
    }
    let name = value(&opts, "name").unwrap_or_else(|| format!("{} Clone", source.name));
    new_name_is_free(state, &name)?;
    let keep_all = flags.iter().any(|f| f == "keepallmacs");
    let keep_nat = flags.iter().any(|f| f == "keepnatmacs");
    let mut clone = Vm {
        name: name.clone(),
        uuid: state.uuid(),
        registered: has(&opts, "register"),
        state: "poweroff".to_string(),
        snapshots: Vec::new(),
        linked_to: None,
        transient_folders: Vec::new(),
        ..source.clone()
    };
    for nic in &mut clone.nics {
        if nic.kind != "none" && !keep_all && !(keep_nat && nic.kind == "nat") {
            nic.mac = state.mac();
        }
    }
    if link {
        clone.linked_to = snapshot.map(|snapshot| (source.uuid.clone(), snapshot));
    }
    state.vms.push(clone);
    Ok(format!("0%...10%...20%...30%...40%...50%...60%...70%...80%...90%...100%\nMachine has been successfully cloned as \"{name}\"\n"))
}

pub fn snapshot(ctx: &Ctx, state: &mut State, args: &[String]) -> Out {
    let table = [
        opt("description", &["--description"], true),
        opt("live", &["--live"], false),
        opt("uniquename", &["--uniquename"], true),
    ];
    let (_, positional) = parse(ctx, args, &table)?;
    let [vm, sub, rest @ ..] = positional.as_slice() else {
        return Err(Fail::syntax("Not enough parameters".to_string()));
    };
    let at = state.vm(vm)?;
    match (sub.as_str(), rest) {
        ("take", [name]) => {
            state.vms[at].snapshots.push(name.clone());
            let uuid = state.uuid();
            Ok(format!("0%...10%...20%...30%...40%...50%...60%...70%...80%...90%...100%\nSnapshot taken. UUID: {uuid}\n"))
        }
        ("take", []) => Err(Fail::syntax("Missing snapshot name".to_string())),
        (verb, _) => Err(Fail::syntax(format!("Invalid parameter '{verb}'"))),
    }
}

pub fn startvm(ctx: &Ctx, state: &mut State, args: &[String]) -> Out {
    let table = [
        opt("type", &["--type"], true),
        opt("putenv", &["--putenv"], true),
    ];
    let (opts, positional) = parse(ctx, args, &table)?;
    if let Some(kind) = value(&opts, "type") {
        if !["gui", "headless", "sdl", "separate"].contains(&kind.as_str()) {
            return Err(Fail::syntax(format!("Invalid session type '{kind}'")));
        }
    }
    if positional.is_empty() {
        return Err(Fail::syntax("No machine specified".to_string()));
    }
    let mut out = String::new();
    for name in positional {
        let at = state.vm(&name)?;
        let vm = &state.vms[at];
        if vm.is_running() {
            return Err(Fail::api(
                format!(
                    "The machine '{}' is already locked by a session (or being locked or unlocked)",
                    vm.name
                ),
                "VBOX_E_INVALID_OBJECT_STATE",
            ));
        }
        for nic in &vm.nics {
            let missing = match nic.kind.as_str() {
                "hostonly" => !state
                    .hostonlyifs
                    .iter()
                    .any(|i| i.name == nic.hostonly_adapter),
                "hostonlynet" => !state
                    .hostonlynets
                    .iter()
                    .any(|n| n.name == nic.hostonly_net),
                _ => false,
            };
            if missing {
                let name = if nic.kind == "hostonly" {
                    &nic.hostonly_adapter
                } else {
                    &nic.hostonly_net
                };
                return Err(Fail::api(format!("Nonexistent host networking interface, name '{name}' (VERR_INTERNAL_ERROR)"), "E_FAIL"));
            }
        }
        let _ = write!(
            out,
            "Waiting for VM \"{}\" to power on...\nVM \"{}\" has been successfully started.\n",
            vm.name, vm.name
        );
        state.vms[at].state = "running".to_string();
    }
    Ok(out)
}

pub fn controlvm(ctx: &Ctx, state: &mut State, args: &[String]) -> Out {
    let (_, positional) = parse(ctx, args, &[])?;
    let [vm, action, ..] = positional.as_slice() else {
        return Err(Fail::syntax("Not enough parameters".to_string()));
    };
    let at = state.vm(vm)?;
    let vm = &mut state.vms[at];
    let not_running = || {
        Fail::api(
            format!("Machine '{}' is not currently running", vm.name),
            "VBOX_E_INVALID_VM_STATE",
        )
    };
    // `natpf<N> <rule>` or `natpf<N> delete <name>` (VBoxManageControlVM.cpp): a running
    // or paused VM's NAT rules, changed live; the same spelling in 6.x and 7.x.
    if let Some(number) = action.strip_prefix("natpf") {
        let nic = number
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=vm.nics.len()).contains(n))
            .ok_or_else(|| Fail::syntax(format!("Invalid NIC number '{number}'")))?
            - 1;
        if !matches!(vm.state.as_str(), "running" | "paused") {
            return Err(not_running());
        }
        let rest = &positional[2..];
        return match rest {
            [delete, name] if delete == "delete" => {
                modifyvm::natpf(&mut vm.nics[nic].rules, nic, delete, Some(name))
            }
            [rule] => modifyvm::natpf(&mut vm.nics[nic].rules, nic, rule, None),
            _ => Err(Fail::syntax(format!(
                "Missing or invalid argument to '{action}'"
            ))),
        }
        .map(|()| String::new());
    }
    let next = match (action.as_str(), vm.state.as_str()) {
        ("acpipowerbutton", "running") if ctx.acpi_ignored => "running",
        ("acpipowerbutton", "running") | ("poweroff", "running" | "paused") => "poweroff",
        ("pause", "running") => "paused",
        ("resume", "paused") => "running",
        ("savestate", "running" | "paused") => "saved",
        ("acpipowerbutton" | "poweroff" | "pause" | "resume" | "savestate", _) => {
            return Err(not_running())
        }
        (other, _) => return Err(Fail::syntax(format!("Invalid parameter '{other}'"))),
    };
    vm.state = next.to_string();
    if next == "poweroff" {
        // Transient shares belong to the VM process, which is gone.
        vm.transient_folders.clear();
    }
    Ok(if action == "poweroff" {
        "0%...10%...20%...30%...40%...50%...60%...70%...80%...90%...100%\n".to_string()
    } else {
        String::new()
    })
}

pub fn unregistervm(ctx: &Ctx, state: &mut State, args: &[String]) -> Out {
    let mut table = vec![opt("delete", &["--delete"], false)];
    if ctx.seven {
        table.push(opt("delete-all", &["--delete-all"], false));
    }
    let (_, positional) = parse(ctx, args, &table)?;
    let at = state.vm(&one(&positional, "machine")?)?;
    let vm = &state.vms[at];
    if vm.is_running() {
        return Err(Fail::api(
            format!(
                "Cannot unregister the machine '{}' while it is locked",
                vm.name
            ),
            "VBOX_E_INVALID_OBJECT_STATE",
        ));
    }
    if let Some(child) = state.vms.iter().find(|other| {
        other
            .linked_to
            .as_ref()
            .is_some_and(|(uuid, _)| *uuid == vm.uuid)
    }) {
        return Err(Fail::api(
            format!(
                "Cannot unregister the machine '{}': a disk of it has the child medium of '{}'",
                vm.name, child.name
            ),
            "VBOX_E_OBJECT_IN_USE",
        ));
    }
    state.vms.remove(at);
    Ok(String::new())
}

pub fn setextradata(state: &mut State, args: &[String]) -> Out {
    let (target, key, value) = match args {
        [target, key] => (target, key, None),
        [target, key, value] => (target, key, Some(value.clone()).filter(|v| !v.is_empty())),
        [] | [_] => return Err(Fail::syntax("Not enough parameters".to_string())),
        _ => return Err(Fail::syntax("Too many parameters".to_string())),
    };
    let map = if target == "global" {
        &mut state.global_extradata
    } else {
        let at = state.vm(target)?;
        &mut state.vms[at].extradata
    };
    match value {
        Some(value) => map.insert(key.clone(), value),
        None => map.remove(key),
    };
    Ok(String::new())
}

pub fn getextradata(state: &mut State, args: &[String]) -> Out {
    let (target, key) = match args {
        [target] => (target, None),
        [target, key] => (target, Some(key.as_str()).filter(|k| *k != "enumerate")),
        _ => return Err(Fail::syntax("Incorrect number of parameters".to_string())),
    };
    let map = if target == "global" {
        &state.global_extradata
    } else {
        &state.vms[state.vm(target)?].extradata
    };
    Ok(match key {
        None => map
            .iter()
            .map(|(k, v)| format!("Key: {k}, Value: {v}\n"))
            .collect(),
        Some(key) => match map.get(key) {
            Some(value) => format!("Value: {value}\n"),
            None => "No value set!\n".to_string(),
        },
    })
}
