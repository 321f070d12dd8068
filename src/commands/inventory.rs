use anyhow::Result;

use crate::cli::InventoryArgs;
use crate::ops::{self, InventoryFormat, Workspace};
use crate::output;

pub fn run(ws: &Workspace, InventoryArgs { list, host }: InventoryArgs) -> Result<()> {
    let format = match (list, host) {
        (_, Some(host)) => InventoryFormat::Host(host),
        (true, None) => InventoryFormat::List,
        (false, None) => InventoryFormat::Ini,
    };
    output::data(&ops::inventory(ws, format)?);
    Ok(())
}
