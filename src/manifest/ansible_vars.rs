//! What the Machinefile and its folder may hand to Ansible.
//!
//! Ansible renders every string of an inventory as a Jinja template. envctl marks its
//! JSON inventories so that nothing in them is rendered, but the line-format inventory
//! (Vagrant's, also written to `inventory_path`) has no such marking: template
//! delimiters are kept out of what goes into it, the machines' vars and the project's
//! path, which the key file's path is made from.
//!
//! The connection itself is envctl's: it reaches each machine at its address, as its
//! user, with the environment's key, checking the host key envctl generated against
//! `.envctl/known_hosts`. Vars that would change that are refused, since one of them
//! could switch host-key checking off or send the connection elsewhere;
//! `provision.ansible_args` stays the documented way around.

use std::path::Path;

use serde_json::Value;

/// What opens a Jinja expression, statement or comment.
const TEMPLATE_DELIMITERS: [&str; 3] = ["{{", "{%", "{#"];

/// The variables of Ansible's ssh connection that decide where it goes, as whom, with
/// which key or password, through which program and arguments, and whether it checks the
/// host key: envctl sets the ones it needs and the rest must stay at their defaults.
/// Tuning (`ansible_ssh_pipelining`, `ansible_ssh_timeout`, …) stays the user's.
const CONNECTION_VARS: [&str; 26] = [
    "ansible_connection",
    "ansible_host",
    "ansible_ssh_host",
    "ansible_port",
    "ansible_ssh_port",
    "ansible_user",
    "ansible_ssh_user",
    "ansible_password",
    "ansible_ssh_pass",
    "ansible_ssh_password",
    "ansible_sshpass_prompt",
    "ansible_private_key_file",
    "ansible_ssh_private_key_file",
    "ansible_ssh_pkcs11_provider",
    "ansible_ssh_args",
    "ansible_ssh_common_args",
    "ansible_ssh_extra_args",
    "ansible_scp_extra_args",
    "ansible_sftp_extra_args",
    "ansible_ssh_executable",
    "ansible_scp_executable",
    "ansible_sftp_executable",
    "ansible_host_key_checking",
    "ansible_ssh_host_key_checking",
    // A shared control socket would reuse a connection made, and checked, elsewhere.
    "ansible_control_path",
    "ansible_control_path_dir",
];

/// Why envctl keeps the variable `name` for itself, if it does.
pub fn reserved_var(name: &str) -> Option<String> {
    CONNECTION_VARS.contains(&name).then(|| {
        format!(
            "`{name}` decides how Ansible connects, which envctl sets itself so that every \
             connection checks the host key it generated: it cannot be set here \
             (`provision.ansible_args` can, at the cost of that check)"
        )
    })
}

/// Why `value` (a var's value, however nested) cannot go into the line-format inventory.
pub fn template_in(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => template_delimiter(text).map(|found| {
            format!(
                "holds `{found}`, which Ansible would render as a template: envctl passes vars \
                 as data; put templates in the playbook's vars"
            )
        }),
        Value::Array(items) => items.iter().find_map(template_in),
        Value::Object(map) => map.iter().find_map(|(key, item)| {
            template_delimiter(key)
                .map(|found| {
                    format!("has the key `{key}`, which holds `{found}`: Ansible would render it")
                })
                .or_else(|| template_in(item))
        }),
        _ => None,
    }
}

/// Why generated files cannot name paths under `dir`, if they cannot. The inventory,
/// `ssh_config` and ssh's own options name the key and `known_hosts` under it: a template
/// delimiter would be rendered by Ansible, a line break or other control character (or
/// U+2028/U+2029, where Python ends a line) would end a line of the inventory, and `"`,
/// `\` and `${` cannot be written in `ssh_config` at all.
pub fn unusable_project_dir(dir: &Path) -> Option<String> {
    let Some(text) = dir.to_str() else {
        return Some("is not UTF-8".into());
    };
    if let Some(found) = template_delimiter(text) {
        return Some(format!(
            "holds `{found}`, which Ansible would render as a template"
        ));
    }
    let odd = text
        .chars()
        .find(|c| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '"' | '\\'));
    if let Some(odd) = odd {
        return Some(format!(
            "holds {odd:?}, which the generated inventory or ssh_config cannot carry"
        ));
    }
    text.contains("${")
        .then(|| "holds `${`, which ssh would expand as a variable".into())
}

fn template_delimiter(text: &str) -> Option<&'static str> {
    TEMPLATE_DELIMITERS
        .into_iter()
        .find(|delimiter| text.contains(delimiter))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn connection_vars_are_envctls() {
        for name in [
            "ansible_host",
            "ansible_port",
            "ansible_user",
            "ansible_connection",
            "ansible_ssh_common_args",
            "ansible_ssh_extra_args",
            "ansible_ssh_private_key_file",
            "ansible_ssh_args",
            "ansible_ssh_host",
            "ansible_ssh_port",
            "ansible_ssh_user",
            "ansible_private_key_file",
            "ansible_host_key_checking",
            "ansible_ssh_executable",
        ] {
            assert!(reserved_var(name).is_some(), "{name}");
        }
        for name in [
            "ansible_python_interpreter",
            "ansible_become",
            "ansible_ssh_pipelining",
            "ANSIBLE_HOST",
            "http_port",
        ] {
            assert_eq!(reserved_var(name), None, "{name}");
        }
    }

    #[test]
    fn templates_are_found_however_deep() {
        for value in [
            json!("{{ lookup('pipe', 'id') }}"),
            json!("a {% if x %}"),
            json!("{# note #}"),
            json!(["ok", {"k": "{{x}}"}]),
            json!({"{{k}}": 1}),
        ] {
            assert!(template_in(&value).is_some(), "{value}");
        }
        for value in [
            json!("{ not a template }"),
            json!(["a", 1]),
            json!({"k": "v"}),
        ] {
            assert_eq!(template_in(&value), None, "{value}");
        }
    }

    #[test]
    fn project_folders_generated_files_cannot_name() {
        for dir in [
            "/src/p{{lookup('pipe','touch X')}}",
            "/src/a{%b",
            "/src/a\nb",
            "/src/a\u{2028}b",
            "/src/a\u{85}b",
            "/src/a\"b",
            "/src/a\\b",
            "/src/${HOME}",
        ] {
            assert!(unusable_project_dir(Path::new(dir)).is_some(), "{dir:?}");
        }
        for dir in ["/src/my project", "/src/100%", "/src/a{b}", "/src/ünï"] {
            assert_eq!(unusable_project_dir(Path::new(dir)), None, "{dir:?}");
        }
    }
}
