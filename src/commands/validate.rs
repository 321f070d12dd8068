use anyhow::Result;

use crate::ops::Workspace;
use crate::output;

/// The Machinefile was validated when the workspace was loaded: say what it holds.
pub fn run(ws: &Workspace) -> Result<()> {
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
