//! What the Machinefile and its folder may hand to Ansible.
//!
//! Ansible renders every string of an inventory as a Jinja template. envctl marks its
//! JSON inventories so that nothing in them is rendered, but the line-format inventory
//! (Vagrant's, also written to `inventory_path`) has no such marking: template
//! delimiters are kept out of what goes into it, the machines' vars and the project's
//! path, which the key file's path is made from.

use std::path::Path;

use serde_json::Value;

/// What opens a Jinja expression, statement or comment.
const TEMPLATE_DELIMITERS: [&str; 3] = ["{{", "{%", "{#"];

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
