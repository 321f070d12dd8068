use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Result;

use crate::cli::GlobalStatusArgs;
use crate::ops;
use crate::output;
use crate::registry::Entry;

pub fn run(args: GlobalStatusArgs) -> Result<()> {
    let report = ops::global_status(args.prune)?;
    for (entry, why) in &report.pruned {
        output::status(
            "Pruned",
            &format!("`{}` in {}: {why}", entry.name, entry.project_dir.display()),
        );
    }
    if report.entries.is_empty() {
        output::status("Listed", "no envctl environment on this machine");
        return Ok(());
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    output::data(&render(&report.entries, now));
    // Said on stderr, as Vagrant says it under its table, so stdout stays the table.
    output::status(
        "Note",
        &format!(
            "states are cached: each is what envctl last saw of the machine (`envctl status` in \
             a project sees them again); `envctl global-status --prune` drops environments \
             that are gone. The list is kept in {}",
            report.path.display()
        ),
    );
    Ok(())
}

/// One line per machine, under a header, in columns.
fn render(entries: &[Entry], now: u64) -> String {
    let mut rows = vec![[
        "environment".to_string(),
        "machine".to_string(),
        "provider".to_string(),
        "state".to_string(),
        "updated".to_string(),
        "directory".to_string(),
    ]];
    for entry in entries {
        for machine in &entry.machines {
            rows.push([
                entry.name.clone(),
                machine.name.clone(),
                entry.provider.clone(),
                machine
                    .state
                    .clone()
                    .unwrap_or_else(|| "unknown".to_string()),
                ago(now.saturating_sub(entry.updated)),
                entry.project_dir.display().to_string(),
            ]);
        }
    }
    let widths: Vec<usize> = (0..6)
        .map(|column| rows.iter().map(|row| row[column].len()).max().unwrap_or(0))
        .collect();
    let mut text = String::new();
    for (index, row) in rows.iter().enumerate() {
        for (column, width) in widths[..5].iter().enumerate() {
            text.push_str(&format!("{:width$}  ", row[column]));
        }
        // The last column unpadded, so no line ends in spaces.
        text.push_str(&row[5]);
        text.push('\n');
        if index == 0 {
            let total = widths[..5].iter().map(|width| width + 2).sum::<usize>() + widths[5];
            text.push_str(&"-".repeat(total));
            text.push('\n');
        }
    }
    text
}

fn ago(seconds: u64) -> String {
    match seconds {
        0..60 => format!("{seconds}s ago"),
        60..3600 => format!("{}m ago", seconds / 60),
        3600..86400 => format!("{}h ago", seconds / 3600),
        _ => format!("{}d ago", seconds / 86400),
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::registry::MachineEntry;

    #[test]
    fn every_machine_is_a_row_with_its_state_or_unknown() {
        let entry = Entry {
            project_dir: PathBuf::from("/home/u/habits"),
            machinefile: PathBuf::from("/home/u/habits/Machinefile"),
            name: "habits".into(),
            env_id: "id".into(),
            provider: "docker".into(),
            machines: vec![
                MachineEntry {
                    name: "web1".into(),
                    state: Some("running".into()),
                },
                MachineEntry {
                    name: "db1".into(),
                    state: None,
                },
            ],
            updated: 1000,
        };
        assert_eq!(
            render(&[entry], 1000 + 125),
            "environment  machine  provider  state    updated  directory\n\
             ----------------------------------------------------------------\n\
             habits       web1     docker    running  2m ago   /home/u/habits\n\
             habits       db1      docker    unknown  2m ago   /home/u/habits\n"
        );
    }

    #[test]
    fn ages_are_short() {
        for (seconds, want) in [
            (0, "0s ago"),
            (59, "59s ago"),
            (60, "1m ago"),
            (7200, "2h ago"),
            (172800, "2d ago"),
        ] {
            assert_eq!(ago(seconds), want);
        }
    }
}
