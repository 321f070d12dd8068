//! `modifyvm`: the options envctl uses, in both spellings VirtualBox 7 knows and the one
//! 6.x knows, applied all or nothing.

use crate::getopt::{opt, Args, Item, Opt};
use crate::state::{State, Vm};
use crate::{Ctx, Fail, Out};

pub fn modifyvm(ctx: &Ctx, state: &mut State, args: &[String]) -> Out {
    let indexed = |key, old, new| Opt {
        key,
        old,
        new,
        takes_value: true,
        indexed: true,
    };
    let mut table = vec![
        opt("name", &["--name"], true),
        opt("description", &["--description"], true),
        Opt {
            key: "ostype",
            old: &["--ostype"],
            new: &["--os-type"],
            takes_value: true,
            indexed: false,
        },
        opt("memory", &["--memory"], true),
        opt("cpus", &["--cpus"], true),
        indexed("nic", &["--nic"], &[]),
        indexed("nictype", &["--nictype"], &["--nic-type"]),
        indexed(
            "cableconnected",
            &["--cableconnected"],
            &["--cable-connected"],
        ),
        indexed("natpf", &["--natpf"], &["--nat-pf"]),
        indexed(
            "hostonlyadapter",
            &["--hostonlyadapter"],
            &["--host-only-adapter"],
        ),
        indexed("macaddress", &["--macaddress"], &["--mac-address"]),
        indexed("uart", &["--uart"], &[]),
        indexed("uartmode", &["--uartmode"], &["--uart-mode"]),
    ];
    if ctx.vmnet {
        table.push(indexed(
            "hostonlynet",
            &[],
            &["--host-only-net", "--hostonlynet"],
        ));
    }
    let mut args = Args::new(args, ctx.seven);
    let mut items = Vec::new();
    let mut target = None;
    while let Some(item) = args.next(&table) {
        match item? {
            Item::Positional(arg) if target.is_none() => target = Some(arg),
            Item::Positional(arg) => {
                return Err(Fail::syntax(format!("Invalid parameter '{arg}'")))
            }
            Item::Opt {
                key,
                index,
                value,
                spelled,
            } => {
                let value = value.unwrap_or_default();
                // Options that fetch a second value, as VBoxManage does.
                let extra = match (key, value.as_str()) {
                    ("natpf", "delete") => Some(args.fetch()?),
                    ("uart", v) if v != "off" && v != "disable" => Some(args.fetch()?),
                    ("uartmode", "server" | "client" | "tcpserver" | "tcpclient" | "file") => {
                        Some(args.fetch()?)
                    }
                    _ => None,
                };
                items.push((key, index, value, extra, spelled));
            }
        }
    }
    let at = state.vm(&target.ok_or_else(|| Fail::syntax("No machine specified".to_string()))?)?;
    match state.vms[at].state.as_str() {
        "running" | "paused" => {
            return Err(Fail::api(
                format!(
                    "The machine '{}' is already locked for a session (or being unlocked)",
                    state.vms[at].name
                ),
                "VBOX_E_INVALID_OBJECT_STATE",
            ));
        }
        "saved" => {
            return Err(Fail::api(
                "The machine is in saved state".to_string(),
                "VBOX_E_INVALID_VM_STATE",
            ))
        }
        _ => {}
    }
    let mut vm = state.vms[at].clone();
    for (key, index, value, extra, spelled) in items {
        let nic = if ["name", "description", "ostype", "memory", "cpus"].contains(&key) {
            0
        } else if (1..=8).contains(&index) {
            index as usize - 1
        } else {
            return Err(Fail::syntax(format!(
                "Missing or invalid slot number in '{spelled}'"
            )));
        };
        apply(ctx, state, &mut vm, nic, key, &value, extra)?;
    }
    state.vms[at] = vm;
    Ok(String::new())
}

/// One `modifyvm` option on `vm` (for NIC options, NIC `nic`, counted from 0).
fn apply(
    ctx: &Ctx,
    state: &mut State,
    vm: &mut Vm,
    nic: usize,
    key: &str,
    value: &str,
    extra: Option<String>,
) -> Result<(), Fail> {
    let number = |value: &str| {
        value
            .parse::<u32>()
            .map_err(|_| Fail::syntax(format!("Invalid number '{value}'")))
    };
    let invalid = |what: String| Err(Fail::api(what, "E_INVALIDARG"));
    match key {
        "name" => vm.name = value.to_string(),
        "description" => vm.description = value.to_string(),
        "ostype" => {}
        "memory" => vm.memory = number(value)?,
        "cpus" => match number(value)? {
            0 | 65.. => return invalid(format!("Invalid virtual CPU count: {value}")),
            cpus => vm.cpus = cpus,
        },
        "nic" => match value {
            "none" | "null" => vm.nics[nic].kind = "none".to_string(),
            "nat" | "bridged" | "intnet" | "hostonly" | "generic" | "natnetwork" => {
                vm.nics[nic].kind = value.to_string()
            }
            "hostonlynet" if ctx.vmnet => vm.nics[nic].kind = value.to_string(),
            _ => {
                return invalid(format!(
                    "Invalid type '{value}' specfied for NIC {}",
                    nic + 1
                ))
            }
        },
        "nictype" => match value {
            "Am79C970A" | "Am79C973" | "Am79C960" | "82540EM" | "82543GC" | "82545EM"
            | "virtio" => {}
            _ => {
                return invalid(format!(
                    "Invalid NIC type '{value}' specified for NIC {}",
                    nic + 1
                ))
            }
        },
        "cableconnected" => match value {
            "on" => vm.nics[nic].cable = true,
            "off" => vm.nics[nic].cable = false,
            _ => return Err(Fail::syntax(format!("Invalid value '{value}': on or off"))),
        },
        "hostonlyadapter" => vm.nics[nic].hostonly_adapter = value.to_string(),
        "hostonlynet" => vm.nics[nic].hostonly_net = value.to_string(),
        "natpf" => natpf(&mut vm.nics[nic].rules, nic, value, extra.as_deref())?,
        "macaddress" => {
            if value.eq_ignore_ascii_case("auto") {
                vm.nics[nic].mac = state.mac();
                return Ok(());
            }
            let hex = value.len() == 12 && value.bytes().all(|b| b.is_ascii_hexdigit());
            let unicast = value
                .as_bytes()
                .get(1)
                .and_then(|b| (*b as char).to_digit(16))
                .is_some_and(|d| d % 2 == 0);
            if !hex || !unicast {
                return invalid("Invalid MAC address format".to_string());
            }
            vm.nics[nic].mac = value.to_ascii_uppercase();
        }
        "uart" => match extra {
            None => vm.uart1 = None,
            Some(irq) => {
                let base = u32::from_str_radix(
                    value.trim_start_matches("0x").trim_start_matches("0X"),
                    16,
                )
                .map_err(|_| Fail::syntax(format!("Invalid I/O base '{value}'")))?;
                vm.uart1 = Some(format!("0x{base:04x},{}", number(&irq)?));
            }
        },
        "uartmode" => {
            vm.uartmode1 = Some(match extra {
                Some(path) => format!("{value},{path}"),
                None => value.to_string(),
            })
        }
        _ => unreachable!("every key of the table is handled"),
    }
    Ok(())
}

/// A NAT rule added to `rules` (NIC `nic`, from 0), or the one named `delete` removed: the
/// checks of `--natpf<N>` and of `controlvm <vm> natpf<N>` alike.
pub fn natpf(
    rules: &mut Vec<String>,
    nic: usize,
    value: &str,
    delete: Option<&str>,
) -> Result<(), Fail> {
    let invalid = |what: String| Err(Fail::api(what, "E_INVALIDARG"));
    if let Some(name) = delete {
        let before = rules.len();
        rules.retain(|rule| rule.split(',').next() != Some(name));
        if rules.len() == before {
            return invalid(format!("A NAT rule of this name does not exist: {name}"));
        }
        return Ok(());
    }
    let fields: Vec<&str> = value.split(',').collect();
    let [name, proto, _host_ip, host_port, _guest_ip, guest_port] = fields[..] else {
        return Err(Fail::syntax(format!("Invalid NAT rule '{value}'")));
    };
    if !proto.eq_ignore_ascii_case("tcp") && !proto.eq_ignore_ascii_case("udp") {
        return Err(Fail::api(
            format!("Invalid proto '{value}' specfied for NIC {}", nic + 1),
            "E_FAIL",
        ));
    }
    if host_port.parse::<u16>().is_err() || guest_port.parse::<u16>().is_err() {
        return invalid(format!("Invalid port in NAT rule '{value}'"));
    }
    if rules
        .iter()
        .any(|rule| rule.split(',').next() == Some(name))
    {
        return invalid(format!("A NAT rule of this name already exists: {name}"));
    }
    rules.push(fields.join(","));
    Ok(())
}
