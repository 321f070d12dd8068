//! Ansible inventory in Vagrant's generated-inventory line format, the same data as
//! Ansible's dynamic-inventory JSON (`--list`, `--host`), and as the inventory file
//! envctl runs `ansible-playbook` with.
//!
//! Ansible renders every string it reads from an inventory as a Jinja template, so a
//! project folder named `p{{lookup('pipe','…')}}` would run a command through the key
//! path. In JSON every string is marked `__ansible_unsafe` (what `ansible-inventory
//! --list` itself prints for such values; Ansible's JSON decoder reads it back as a value
//! it never renders), and envctl's own runs use the JSON form. The line format has no
//! such marking: there, validation keeps template delimiters out of the Machinefile's
//! values and out of the project's path (`manifest::validate`), and characters Python
//! splits lines at are written as escapes.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{json, Map, Value};

use crate::manifest::{Group, Machine};
use crate::ssh;

/// What every inventory is made of.
pub struct Inventory<'a> {
    pub env_name: &'a str,
    pub machines: &'a [Machine],
    /// The Machinefile's `groups`: variables and children.
    pub groups: &'a BTreeMap<String, Group>,
    pub private_key: &'a Path,
    pub known_hosts: &'a Path,
}

impl Inventory<'_> {
    /// The INI inventory, as `vagrant` writes it for its Ansible provisioner.
    pub fn to_ini(&self) -> String {
        let mut out = format!(
            "{} for environment `{}`; `envctl up` rewrites it.\n\n",
            crate::manifest::GENERATED_MARK,
            self.env_name
        );
        for machine in self.machines {
            out.push_str(&machine.name);
            // Vagrant's exact shape: user and key file in single quotes.
            out.push_str(&format!(
                " ansible_host={} ansible_port=22 ansible_user={} ansible_ssh_private_key_file={}",
                machine.ip,
                single_quote(&machine.user),
                single_quote(&self.private_key.display().to_string()),
            ));
            for (name, value) in &machine.vars {
                out.push_str(&format!(" {name}={}", ini_value(value)));
            }
            out.push('\n');
        }
        for (group, hosts) in self.groups() {
            out.push_str(&format!("\n[{group}]\n"));
            for host in hosts {
                out.push_str(host);
                out.push('\n');
            }
        }
        for (name, group) in self.groups {
            if !group.children.is_empty() {
                out.push_str(&format!("\n[{name}:children]\n"));
                for child in &group.children {
                    out.push_str(child);
                    out.push('\n');
                }
            }
            if !group.vars.is_empty() {
                out.push_str(&format!("\n[{name}:vars]\n"));
                for (var, value) in &group.vars {
                    out.push_str(&format!("{var}={}\n", python_literal(value)));
                }
            }
        }
        // In a vars section Ansible does not split the line, it only reads a Python literal.
        out.push_str(&format!(
            "\n[all:vars]\nansible_ssh_common_args={}\n",
            python_literal(&Value::String(self.ssh_common_args()))
        ));
        out
    }

    /// The inventory file envctl runs `ansible-playbook` with: the YAML inventory
    /// plugin's shape, written as JSON, every string marked unsafe.
    pub fn to_file_json(&self) -> Value {
        let mut hosts = Map::new();
        for machine in self.machines {
            hosts.insert(machine.name.clone(), self.host_vars(machine));
        }
        let mut children = Map::new();
        for (group, members) in self.groups() {
            let members: Map<String, Value> = members
                .into_iter()
                .map(|name| (name.to_string(), Value::Null))
                .collect();
            let mut entry = json!({ "hosts": members });
            if let Some(own) = self.groups.get(group) {
                entry["children"] = own
                    .children
                    .iter()
                    .map(|child| (child.clone(), json!({})))
                    .collect::<Map<String, Value>>()
                    .into();
                entry["vars"] =
                    unsafe_value(&Value::Object(own.vars.clone().into_iter().collect()));
            }
            children.insert(group.to_string(), entry);
        }
        json!({ "all": {
            "hosts": hosts,
            "vars": { "ansible_ssh_common_args": unsafe_value(&self.ssh_common_args().into()) },
            "children": children,
        } })
    }

    /// `ansible-inventory --list` JSON, every string marked unsafe.
    pub fn to_list_json(&self) -> Value {
        let mut root = Map::new();
        let mut hostvars = Map::new();
        for machine in self.machines {
            hostvars.insert(machine.name.clone(), self.host_vars(machine));
        }
        let groups = self.groups();
        let ungrouped: Vec<&str> = self
            .machines
            .iter()
            .filter(|machine| machine.groups.is_empty())
            .map(|machine| machine.name.as_str())
            .collect();
        let mut children: Vec<&str> = groups.keys().copied().collect();
        children.push("ungrouped");
        root.insert("_meta".into(), json!({ "hostvars": hostvars }));
        root.insert(
            "all".into(),
            json!({
                "children": children,
                "vars": { "ansible_ssh_common_args": unsafe_value(&self.ssh_common_args().into()) },
            }),
        );
        for (group, hosts) in groups {
            let mut entry = json!({ "hosts": hosts });
            if let Some(own) = self.groups.get(group) {
                if !own.children.is_empty() {
                    entry["children"] = json!(own.children);
                }
                if !own.vars.is_empty() {
                    entry["vars"] =
                        unsafe_value(&Value::Object(own.vars.clone().into_iter().collect()));
                }
            }
            root.insert(group.to_string(), entry);
        }
        root.insert("ungrouped".into(), json!({ "hosts": ungrouped }));
        Value::Object(root)
    }

    /// `--host NAME` JSON: that host's variables, or None for an unknown host.
    pub fn host_json(&self, name: &str) -> Option<Value> {
        let machine = self.machines.iter().find(|machine| machine.name == name)?;
        let mut vars = self.host_vars(machine);
        if let Value::Object(map) = &mut vars {
            map.insert(
                "ansible_ssh_common_args".into(),
                unsafe_value(&self.ssh_common_args().into()),
            );
        }
        Some(vars)
    }

    /// A host's variables for the JSON forms, every string marked unsafe.
    fn host_vars(&self, machine: &Machine) -> Value {
        let mut vars: Map<String, Value> = self.connection_vars(machine).into_iter().collect();
        for (name, value) in &machine.vars {
            vars.insert(name.clone(), value.clone());
        }
        unsafe_value(&Value::Object(vars))
    }

    fn connection_vars(&self, machine: &Machine) -> Vec<(String, Value)> {
        vec![
            ("ansible_host".into(), machine.ip.to_string().into()),
            ("ansible_port".into(), 22.into()),
            ("ansible_user".into(), Value::String(machine.user.clone())),
            (
                "ansible_ssh_private_key_file".into(),
                Value::String(self.private_key.display().to_string()),
            ),
        ]
    }

    /// Pins the environment's known_hosts: Ansible checks every host key against it.
    /// Ansible splits this string as a shell would and hands each word to ssh, which
    /// splits an option's value again on white space and expands `%` in it: the path is
    /// quoted for ssh first ([`ssh::config_path`]), then for the shell.
    fn ssh_common_args(&self) -> String {
        // Validation refuses a project path that ssh options cannot carry; should one
        // get here all the same, ssh fails to find the file rather than anything worse.
        let path = ssh::config_path(self.known_hosts)
            .unwrap_or_else(|_| self.known_hosts.display().to_string());
        format!(
            "-o {} -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes",
            shell_quote(&format!("UserKnownHostsFile={path}"))
        )
    }

    fn groups(&self) -> BTreeMap<&str, Vec<&str>> {
        let mut groups: BTreeMap<&str, Vec<&str>> = self
            .groups
            .iter()
            .flat_map(|(name, group)| {
                std::iter::once(name.as_str()).chain(group.children.iter().map(String::as_str))
            })
            .map(|name| (name, Vec::new()))
            .collect();
        for machine in self.machines {
            for group in &machine.groups {
                groups.entry(group).or_default().push(&machine.name);
            }
        }
        groups
    }
}

/// `value` with every string in it, however deep, as `{"__ansible_unsafe": "…"}`: the
/// JSON form of Ansible's unsafe text. Keys cannot be marked; validation keeps template
/// delimiters out of them.
fn unsafe_value(value: &Value) -> Value {
    match value {
        Value::String(text) => json!({ "__ansible_unsafe": text }),
        Value::Array(items) => Value::Array(items.iter().map(unsafe_value).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, value)| (key.clone(), unsafe_value(value)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// A value as Ansible's INI parser reads it back: it splits the line like a shell, then
/// reads each value as a Python literal when it can.
fn ini_value(value: &Value) -> String {
    match value {
        Value::String(text) if is_plain_word(text) => text.clone(),
        // Quoted twice: the shell quotes go at splitting, the Python ones keep a string.
        Value::String(_) => shell_quote(&python_literal(value)),
        Value::Number(number) => number.to_string(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Null => "None".into(),
        Value::Array(_) | Value::Object(_) => shell_quote(&python_literal(value)),
    }
}

/// A word that a Python literal reader rejects, so Ansible keeps it as the same string.
fn is_plain_word(text: &str) -> bool {
    let mut chars = text.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '/' || c == '_')
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/_.-:@".contains(c))
        && !matches!(text, "True" | "False" | "None")
}

fn python_literal(value: &Value) -> String {
    match value {
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Null => "None".into(),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(python_literal).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Object(map) => {
            let items: Vec<String> = map
                .iter()
                .map(|(key, value)| format!("{}: {}", python_string(key), python_literal(value)))
                .collect();
            format!("{{{}}}", items.join(", "))
        }
        Value::String(text) => python_string(text),
        // JSON numbers are valid Python literals too.
        other => other.to_string(),
    }
}

/// A Python string literal on one line. A JSON string is one, but JSON leaves U+0085,
/// U+2028 and U+2029 as they are, and Python's `splitlines`, which Ansible reads the
/// file with, ends a line at each: they are written as escapes.
fn python_string(text: &str) -> String {
    Value::String(text.to_string())
        .to_string()
        .replace('\u{85}', "\\u0085")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

fn single_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// Quotes for a POSIX shell (and Python's shlex), only when needed.
pub fn shell_quote(text: &str) -> String {
    if !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/_.-:=@,+".contains(c))
    {
        return text.to_string();
    }
    single_quote(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{DockerImage, Machine};

    fn machine(name: &str, ip: &str, groups: &[&str], vars: Value) -> Machine {
        Machine {
            name: name.into(),
            hostname: format!("{name}.demo.test"),
            ip: ip.parse().unwrap(),
            cpus: 1,
            memory_mib: 512,
            user: "vagrant".into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            vars: serde_json::from_value(vars).unwrap(),
            docker: DockerImage::DefaultRecipe,
            docker_init: envctl_provider::Init::Systemd,
            forwarded_ports: Vec::new(),
            synced_folders: Vec::new(),
            libvirt_box: None,
            virtualbox_box: None,
        }
    }

    fn machines() -> Vec<Machine> {
        vec![
            machine(
                "web1",
                "192.168.56.11",
                &["web"],
                json!({"http_port": 8080, "tier": "front end"}),
            ),
            machine("web2", "192.168.56.12", &["web"], json!({})),
            machine(
                "db1",
                "192.168.56.13",
                &["db"],
                json!({"primary": true, "opts": ["a", 1]}),
            ),
            machine("tool", "192.168.56.14", &[], json!({"count": "3"})),
        ]
    }

    static NO_GROUPS: BTreeMap<String, Group> = BTreeMap::new();

    fn inventory(machines: &[Machine]) -> Inventory<'_> {
        Inventory {
            env_name: "demo",
            machines,
            groups: &NO_GROUPS,
            private_key: Path::new("/p/.envctl/id_ed25519"),
            known_hosts: Path::new("/p q/.envctl/known_hosts"),
        }
    }

    #[test]
    fn ini_matches_vagrants_format() {
        let machines = machines();
        let expected = "\
# Generated by envctl for environment `demo`; `envctl up` rewrites it.

web1 ansible_host=192.168.56.11 ansible_port=22 ansible_user='vagrant' ansible_ssh_private_key_file='/p/.envctl/id_ed25519' http_port=8080 tier='\"front end\"'
web2 ansible_host=192.168.56.12 ansible_port=22 ansible_user='vagrant' ansible_ssh_private_key_file='/p/.envctl/id_ed25519'
db1 ansible_host=192.168.56.13 ansible_port=22 ansible_user='vagrant' ansible_ssh_private_key_file='/p/.envctl/id_ed25519' opts='[\"a\", 1]' primary=True
tool ansible_host=192.168.56.14 ansible_port=22 ansible_user='vagrant' ansible_ssh_private_key_file='/p/.envctl/id_ed25519' count='\"3\"'

[db]
db1

[web]
web1
web2

[all:vars]
ansible_ssh_common_args=\"-o 'UserKnownHostsFile=\\\"/p q/.envctl/known_hosts\\\"' -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes\"
";
        assert_eq!(inventory(&machines).to_ini(), expected);
    }

    #[test]
    fn ini_values_read_back_as_written() {
        // (value, how it must appear on the line)
        let cases = [
            (json!("web"), "web"),
            (json!("True"), "'\"True\"'"),
            (json!("10"), "'\"10\"'"),
            (json!(10), "10"),
            (json!(1.5), "1.5"),
            (json!(false), "False"),
            (json!(null), "None"),
            (json!("it's"), "'\"it'\\''s\"'"),
            (json!({"k": [true]}), "'{\"k\": [True]}'"),
        ];
        for (value, want) in cases {
            assert_eq!(ini_value(&value), want, "value {value}");
        }
    }

    #[test]
    fn dynamic_inventory_lists_groups_and_hostvars() {
        let machines = machines();
        let list = inventory(&machines).to_list_json();
        assert_eq!(list["web"]["hosts"], json!(["web1", "web2"]));
        assert_eq!(list["db"]["hosts"], json!(["db1"]));
        assert_eq!(list["ungrouped"]["hosts"], json!(["tool"]));
        assert_eq!(list["all"]["children"], json!(["db", "web", "ungrouped"]));
        let web1 = &list["_meta"]["hostvars"]["web1"];
        assert_eq!(web1["ansible_host"], unsafe_text("192.168.56.11"));
        assert_eq!(web1["http_port"], 8080);
        let host = inventory(&machines).host_json("db1").unwrap();
        assert_eq!(host["primary"], true);
        assert!(host["ansible_ssh_common_args"]["__ansible_unsafe"]
            .as_str()
            .unwrap()
            .contains("StrictHostKeyChecking=yes"));
        assert!(inventory(&machines).host_json("nope").is_none());
    }

    fn unsafe_text(text: &str) -> Value {
        json!({ "__ansible_unsafe": text })
    }

    /// Every string under `value` that Ansible would render, with where it is.
    fn renderable(value: &Value, at: &str, found: &mut Vec<String>) {
        match value {
            Value::String(_) => found.push(at.to_string()),
            Value::Array(items) => {
                for (index, item) in items.iter().enumerate() {
                    renderable(item, &format!("{at}[{index}]"), found);
                }
            }
            Value::Object(map) if map.len() == 1 && map.contains_key("__ansible_unsafe") => {}
            Value::Object(map) => {
                for (key, item) in map {
                    renderable(item, &format!("{at}.{key}"), found);
                }
            }
            _ => {}
        }
    }

    #[test]
    fn no_json_form_holds_a_string_ansible_would_render() {
        let mut machines = machines();
        machines[0]
            .vars
            .insert("nested".into(), json!({"a": ["x", {"b": "y"}], "n": 1}));
        let inventory = inventory(&machines);
        let list = inventory.to_list_json();
        let mut found = Vec::new();
        renderable(&list["_meta"], "_meta", &mut found);
        renderable(&list["all"]["vars"], "all.vars", &mut found);
        renderable(&inventory.host_json("web1").unwrap(), "host", &mut found);
        let file = inventory.to_file_json();
        renderable(&file["all"]["hosts"], "all.hosts", &mut found);
        renderable(&file["all"]["vars"], "all.vars", &mut found);
        assert_eq!(found, Vec::<String>::new());
        assert_eq!(
            file["all"]["hosts"]["web1"]["nested"],
            json!({"a": [unsafe_text("x"), {"b": unsafe_text("y")}], "n": 1})
        );
        assert_eq!(
            file["all"]["children"]["web"],
            json!({"hosts": {"web1": null, "web2": null}})
        );
        assert_eq!(
            file["all"]["hosts"]["web1"]["ansible_ssh_private_key_file"],
            unsafe_text("/p/.envctl/id_ed25519")
        );
    }

    #[test]
    fn line_breaks_python_sees_are_written_as_escapes() {
        let tricky = "a\u{85}b\u{2028}c\u{2029}d\ne\u{b}f\u{c}g\u{1c}h\u{1d}i\u{1e}j\rk";
        let mut machines = machines();
        machines[0].vars.insert("tricky".into(), json!(tricky));
        machines[0]
            .vars
            .insert("list".into(), json!({ tricky: [tricky] }));
        let ini = inventory(&machines).to_ini();
        // The characters Python's str.splitlines ends a line at, besides the real ends.
        let breaks = [
            '\r', '\u{b}', '\u{c}', '\u{1c}', '\u{1d}', '\u{1e}', '\u{85}', '\u{2028}', '\u{2029}',
        ];
        assert!(!ini.contains(breaks), "{ini:?}");
        let line = ini.lines().find(|line| line.starts_with("web1 ")).unwrap();
        assert!(
            line.contains(
                r#"tricky='"a\u0085b\u2028c\u2029d\ne\u000bf\fg\u001ch\u001di\u001ej\rk"'"#
            ),
            "{line}"
        );
    }

    #[test]
    fn group_vars_and_children_reach_every_form() {
        let machines = machines();
        let groups = BTreeMap::from([(
            "site".to_string(),
            Group {
                vars: BTreeMap::from([("region".to_string(), json!("eu west"))]),
                children: vec!["web".to_string(), "db".to_string()],
            },
        )]);
        let inventory = Inventory {
            groups: &groups,
            ..inventory(&machines)
        };
        let ini = inventory.to_ini();
        assert!(ini.contains("\n[site:children]\nweb\ndb\n"), "{ini}");
        assert!(ini.contains("\n[site:vars]\nregion=\"eu west\"\n"), "{ini}");
        assert!(ini.contains("\n[site]\n"), "{ini}");
        let list = inventory.to_list_json();
        assert_eq!(list["site"]["children"], json!(["web", "db"]));
        assert_eq!(
            list["site"]["vars"],
            json!({"region": {"__ansible_unsafe": "eu west"}})
        );
        let file = inventory.to_file_json();
        let site = &file["all"]["children"]["site"];
        assert_eq!(site["children"], json!({"web": {}, "db": {}}));
        assert_eq!(site["vars"]["region"]["__ansible_unsafe"], "eu west");
    }

    /// What Ansible does with `ansible_ssh_common_args` (split like a shell, by Python's
    /// shlex) and then ssh with each word: the known_hosts path reaches ssh whole, with a
    /// space and a `%` in it.
    #[test]
    fn ansible_and_ssh_read_the_known_hosts_path_whole() {
        let machines = machines();
        let inventory = Inventory {
            known_hosts: Path::new("/p q/100%/.envctl/known_hosts"),
            ..inventory(&machines)
        };
        let split = std::process::Command::new("python3")
            .args([
                "-c",
                "import shlex, sys; print(*shlex.split(sys.argv[1]), sep='\\n')",
            ])
            .arg(inventory.ssh_common_args())
            .output()
            .expect("python3, which Ansible needs anyway");
        let words: Vec<String> = String::from_utf8_lossy(&split.stdout)
            .lines()
            .map(str::to_string)
            .collect();
        let config = std::process::Command::new("ssh")
            .arg("-G")
            .args(&words)
            .arg("host")
            .output()
            .expect("the OpenSSH client");
        let config = String::from_utf8_lossy(&config.stdout);
        assert!(
            config
                .lines()
                .any(|line| line == "userknownhostsfile /p q/100%/.envctl/known_hosts"),
            "{words:?}\n{config}"
        );
    }
}
