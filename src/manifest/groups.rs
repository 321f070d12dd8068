//! `groups`: Ansible group variables and nested groups, checked as Ansible would need
//! them: valid names that are neither Ansible's own nor a machine's, known children, no
//! cycle, and variables that the line-format inventory can carry.

use std::collections::{BTreeMap, BTreeSet};

use super::ansible_vars::template_in;
use super::raw::RawManifest;
use super::reserved::reserved_group;
use super::validate::{is_identifier, to_json_vars, Problems};
use super::{Group, Machine};

pub(super) fn groups(
    raw: &RawManifest,
    machines: &[Machine],
    problems: &mut Problems,
) -> BTreeMap<String, Group> {
    // A child may be a group defined here or one that machines name.
    let known: BTreeSet<&str> = raw
        .groups
        .keys()
        .map(String::as_str)
        .chain(
            machines
                .iter()
                .flat_map(|m| m.groups.iter().map(String::as_str)),
        )
        .collect();
    let mut groups = BTreeMap::new();
    for (name, group) in &raw.groups {
        let at = format!("groups.{name}");
        let mut ok = true;
        let mut fail = |field: &str, message: String| {
            problems.top(field, message);
            ok = false;
        };
        if !is_identifier(name) {
            fail(&at, format!("`{name}` is not a valid Ansible group name: use letters, digits and underscores, not starting with a digit"));
        } else if let Some(why) = reserved_group(name) {
            fail(&at, why);
        } else if machines.iter().any(|m| m.name == *name) {
            fail(
                &at,
                format!("group `{name}` has the name of a machine; Ansible cannot tell them apart"),
            );
        }
        for (index, child) in group.children.iter().enumerate() {
            if !known.contains(child.as_str()) {
                fail(
                    &format!("{at}.children.{index}"),
                    format!("`{child}` is not a group: define it under `groups` or name it in a machine's `groups`"),
                );
            }
        }
        let vars = match to_json_vars(&group.vars) {
            Ok(vars) => vars,
            Err((field, why)) => {
                fail(&format!("{at}.vars.{field}"), why);
                BTreeMap::new()
            }
        };
        for (var, value) in &vars {
            if let Some(why) = template_in(value) {
                fail(&format!("{at}.vars.{var}"), why);
            }
        }
        if ok {
            let mut children = group.children.clone();
            children.dedup();
            groups.insert(name.clone(), Group { vars, children });
        }
    }
    if let Some(cycle) = find_cycle(&groups) {
        problems.top(
            &format!("groups.{}.children", cycle[0]),
            format!(
                "groups contain each other: {}; Ansible needs a tree",
                cycle.join(" → ")
            ),
        );
    }
    groups
}

/// A path of groups that leads back to its first one, if any.
fn find_cycle(groups: &BTreeMap<String, Group>) -> Option<Vec<String>> {
    fn visit(
        name: &str,
        groups: &BTreeMap<String, Group>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|seen| seen == name) {
            let mut cycle = path[start..].to_vec();
            cycle.push(name.to_string());
            return Some(cycle);
        }
        if done.contains(name) {
            return None;
        }
        path.push(name.to_string());
        for child in groups
            .get(name)
            .map(|g| g.children.as_slice())
            .unwrap_or(&[])
        {
            if let Some(cycle) = visit(child, groups, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(name.to_string());
        None
    }
    let mut done = BTreeSet::new();
    groups
        .keys()
        .find_map(|name| visit(name, groups, &mut Vec::new(), &mut done))
}
