use anyhow::Result;

use crate::ops::{self, Workspace};
use crate::output;

/// The Machinefile was validated when the workspace was loaded; what depends on the
/// provider it would run under (and on this host: ports in use) is checked here, as `up`
/// checks it before making anything. Then say what it holds.
pub fn run(ws: &Workspace) -> Result<()> {
    ops::check_against_provider(ws)?;
    let names: Vec<&str> = ws
        .manifest
        .machines
        .iter()
        .map(|m| m.name.as_str())
        .collect();
    output::status(
        "Valid",
        &format!(
            "{}: {} machines ({})",
            ws.manifest.path.display(),
            names.len(),
            names.join(", ")
        ),
    );
    Ok(())
}
