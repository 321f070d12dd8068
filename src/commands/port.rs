use anyhow::Result;

use crate::cli::PortArgs;
use crate::ops::{self, Workspace};
use crate::output;

/// Every forwarded port of the machines, in `vagrant port`'s words: guest => host, the
/// host port in effect (the one `auto_correct` chose, once `up` did).
pub fn run(ws: &Workspace, args: PortArgs) -> Result<()> {
    let machines = match &args.name {
        Some(name) => vec![ws.select_one(name)?],
        None => ws.manifest.machines.iter().collect(),
    };
    let mut text = String::new();
    for machine in machines {
        let forwards = ops::forwarded_ports(ws, machine)?;
        if forwards.is_empty() {
            text.push_str(&format!("{}: no forwarded ports\n", machine.name));
            continue;
        }
        text.push_str(&format!(
            "{}: the forwarded ports are listed below\n\n",
            machine.name
        ));
        for forward in &forwards {
            text.push_str(&format!(
                "    {} (guest) => {} (host, {}, {})\n",
                forward.guest, forward.host, forward.host_ip, forward.protocol
            ));
        }
        text.push('\n');
    }
    output::data(&text);
    Ok(())
}
