//! `provision`: the mapping form (one Ansible run) or a list of named provisioners, each a
//! `shell`, `file` or `ansible` step with `run` and `machines`. The YAML decides the form,
//! so the section is read here from a `Value`, with unknown fields still reported.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use regex::Regex;
use serde::de::DeserializeOwned;
use serde_yaml::Value;

use super::raw::{RawFile, RawManifest, RawProvision, RawProvisioner, RawShell};
use super::validate::{is_identifier, provision, Problems};
use super::{Action, FileUpload, Machine, Provisioner, Run, Script, Shell, DEFAULT_PROVISIONER};

/// Every provisioner of the Machinefile, in order; empty when there is no `provision`.
pub(super) fn provisioners(
    raw: &RawManifest,
    path: &Path,
    dir: &Path,
    machines: &[Machine],
    problems: &mut Problems,
) -> Vec<Provisioner> {
    let Some(section) = &raw.provision else {
        return Vec::new();
    };
    match section {
        Value::Null => Vec::new(),
        Value::Mapping(_) => {
            let Some(ansible) = read::<RawProvision>(section, "provision", raw, problems) else {
                return Vec::new();
            };
            provision(&ansible, path, dir, "provision", problems)
                .map(|ansible| Provisioner {
                    name: DEFAULT_PROVISIONER.to_string(),
                    run: Run::Once,
                    machines: None,
                    action: Action::Ansible(ansible),
                })
                .into_iter()
                .collect()
        }
        Value::Sequence(entries) => {
            let mut names = HashSet::new();
            let mut list = Vec::new();
            for (index, entry) in entries.iter().enumerate() {
                let at = format!("provision.{index}");
                let Some(entry) = read::<RawProvisioner>(entry, &at, raw, problems) else {
                    continue;
                };
                let Some(provisioner) = provisioner(&entry, &at, path, dir, machines, problems)
                else {
                    continue;
                };
                if !names.insert(provisioner.name.clone()) {
                    problems.top(
                        &format!("{at}.name"),
                        format!("`{}` names two provisioners", provisioner.name),
                    );
                    continue;
                }
                list.push(provisioner);
            }
            list
        }
        _ => {
            problems.top(
                "provision",
                "give a mapping (one playbook) or a list of provisioners",
            );
            Vec::new()
        }
    }
}

/// `value` as `T`, with its unknown fields and type errors reported at `at`.
fn read<T: DeserializeOwned>(
    value: &Value,
    at: &str,
    raw: &RawManifest,
    problems: &mut Problems,
) -> Option<T> {
    let mut unknown = Vec::new();
    let result = serde_ignored::deserialize(value.clone(), |field| {
        unknown.push(field.to_string());
    });
    for field in unknown {
        problems.unknown_field(&format!("{at}.{field}"), raw);
    }
    result.map_err(|err| problems.top(at, err.to_string())).ok()
}

fn provisioner(
    raw: &RawProvisioner,
    at: &str,
    path: &Path,
    dir: &Path,
    machines: &[Machine],
    problems: &mut Problems,
) -> Option<Provisioner> {
    let name = match &raw.name {
        None => {
            problems.top(
                &format!("{at}.name"),
                "missing: every provisioner in the list needs a name",
            );
            None
        }
        Some(name) if !is_provisioner_name(name) => {
            problems.top(
                &format!("{at}.name"),
                format!("`{name}` cannot name a provisioner: use letters, digits, `-` and `_`"),
            );
            None
        }
        Some(name) => Some(name.clone()),
    };
    let run = match raw.run.as_deref() {
        None | Some("once") => Some(Run::Once),
        Some("always") => Some(Run::Always),
        Some("never") => Some(Run::Never),
        Some(other) => {
            problems.top(
                &format!("{at}.run"),
                format!("`{other}` is not one of once, always, never"),
            );
            None
        }
    };
    let selected = match &raw.machines {
        None => Some(None),
        Some(patterns) => select(patterns, &format!("{at}.machines"), machines, problems).map(Some),
    };
    let action = match (&raw.shell, &raw.file, &raw.ansible) {
        (Some(shell_step), None, None) => shell(shell_step, &format!("{at}.shell"), dir, problems),
        (None, Some(file_step), None) => file(file_step, &format!("{at}.file"), dir, problems),
        (None, None, Some(ansible)) => {
            provision(ansible, path, dir, &format!("{at}.ansible"), problems).map(Action::Ansible)
        }
        (None, None, None) => {
            problems.top(at, "missing: give one of `shell`, `file`, `ansible`");
            None
        }
        _ => {
            problems.top(at, "give only one of `shell`, `file`, `ansible`");
            None
        }
    };
    Some(Provisioner {
        name: name?,
        run: run?,
        machines: selected?,
        action: action?,
    })
}

fn is_provisioner_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Machine names and `/regex/`es to the machines they select, in Machinefile order. Each
/// must select at least one machine.
fn select(
    patterns: &[String],
    at: &str,
    machines: &[Machine],
    problems: &mut Problems,
) -> Option<Vec<String>> {
    let mut chosen = HashSet::new();
    let mut ok = true;
    for (index, pattern) in patterns.iter().enumerate() {
        let field = format!("{at}.{index}");
        let regex = pattern
            .strip_prefix('/')
            .and_then(|rest| rest.strip_suffix('/'))
            .filter(|inner| !inner.is_empty());
        let matched: Vec<&str> = match regex {
            Some(inner) => match Regex::new(inner) {
                Ok(regex) => machines
                    .iter()
                    .filter(|m| regex.is_match(&m.name))
                    .map(|m| m.name.as_str())
                    .collect(),
                Err(err) => {
                    // The regex crate's message draws the pattern over several lines.
                    let text = err.to_string();
                    let why = text.lines().last().unwrap_or_default().trim();
                    let why = why.strip_prefix("error: ").unwrap_or(why);
                    problems.top(&field, format!("`{pattern}` is not a valid regex: {why}"));
                    ok = false;
                    continue;
                }
            },
            None => machines
                .iter()
                .filter(|m| m.name == *pattern)
                .map(|m| m.name.as_str())
                .collect(),
        };
        if matched.is_empty() && !machines.is_empty() {
            problems.top(&field, format!("`{pattern}` selects no machine"));
            ok = false;
        }
        chosen.extend(matched);
    }
    let names = machines
        .iter()
        .filter(|m| chosen.contains(m.name.as_str()))
        .map(|m| m.name.clone())
        .collect();
    ok.then_some(names)
}

fn shell(raw: &RawShell, at: &str, dir: &Path, problems: &mut Problems) -> Option<Action> {
    let script = match (&raw.inline, &raw.path) {
        (Some(inline), None) => Some(Script::Inline(inline.clone())),
        (None, Some(path)) => {
            existing_file(dir, path, &format!("{at}.path"), problems).map(Script::Path)
        }
        (None, None) => {
            problems.top(at, "missing: give `inline` or `path`");
            None
        }
        (Some(_), Some(_)) => {
            problems.top(at, "give either `inline` or `path`, not both");
            None
        }
    };
    let mut env = BTreeMap::new();
    let mut env_ok = true;
    for (name, value) in &raw.env {
        let field = format!("{at}.env.{name}");
        if !is_identifier(name) {
            problems.top(
                &field,
                format!("`{name}` is not a valid variable name: use letters, digits and underscores, not starting with a digit"),
            );
            env_ok = false;
            continue;
        }
        let text = match value {
            Value::String(text) => text.clone(),
            Value::Number(number) => number.to_string(),
            Value::Bool(flag) => flag.to_string(),
            _ => {
                problems.top(&field, "give a string, number or boolean");
                env_ok = false;
                continue;
            }
        };
        env.insert(name.clone(), text);
    }
    Some(Action::Shell(Shell {
        script: script?,
        args: raw.args.clone(),
        env: env_ok.then_some(env)?,
        privileged: raw.privileged.unwrap_or(true),
    }))
}

fn file(raw: &RawFile, at: &str, dir: &Path, problems: &mut Problems) -> Option<Action> {
    let source = match &raw.source {
        None => {
            problems.top(&format!("{at}.source"), "missing: name the file to copy");
            None
        }
        Some(source) => existing_file(dir, source, &format!("{at}.source"), problems),
    };
    let destination = match raw.destination.as_deref() {
        None => {
            problems.top(
                &format!("{at}.destination"),
                "missing: name where the file goes on the machine",
            );
            None
        }
        Some(text) if text.trim().is_empty() || text.ends_with('/') || text.contains('\0') => {
            problems.top(
                &format!("{at}.destination"),
                format!(
                    "`{}` is not a file path: name the file, not its folder",
                    text.escape_debug()
                ),
            );
            None
        }
        Some(text) => Some(text.to_string()),
    };
    Some(Action::File(FileUpload {
        source: source?,
        destination: destination?,
    }))
}

/// `relative` under `dir`, when it is a file there.
fn existing_file(
    dir: &Path,
    relative: &str,
    field: &str,
    problems: &mut Problems,
) -> Option<PathBuf> {
    let path = dir.join(relative);
    if path.is_file() {
        return Some(path);
    }
    let why = if path.is_dir() {
        "is a folder: name a file"
    } else {
        "does not exist"
    };
    problems.top(field, format!("{} {why}", path.display()));
    None
}
