//! Vagrant's `--machine-readable` output, so scripts written against `vagrant status`
//! keep working: lines of `timestamp,target,type,data...`, and each provider's state in
//! the words Vagrant's provider for it uses.
//!
//! Within a field, a comma is written `%!(VAGRANT_COMMA)` and a newline `\n`, as Vagrant
//! does, so that splitting a line on commas always finds the fields.

use envctl_provider::{MachineState, ProviderKind};

use crate::ops::StatusReport;

/// A machine's state as Vagrant's provider would say it.
#[derive(Debug, PartialEq, Eq)]
pub struct VagrantState {
    /// `state`: what scripts compare, e.g. `running`, `poweroff`, `not_created`.
    pub id: String,
    /// `state-human-short`: the id with spaces, as `vagrant status` lists it.
    pub short: String,
    /// `state-human-long`: what the state means and what to run next.
    pub long: String,
}

/// `envctl status --machine-readable`: per machine (in `vagrant status` order) its
/// provider and state, then the human listing as one `ui,info` line.
pub fn status(report: &StatusReport, timestamp: u64) -> String {
    let kind = report.kind;
    let provider = kind.as_str();
    let mut out = String::new();
    let mut listing = Vec::new();
    let width = report
        .machines
        .iter()
        .map(|machine| machine.name.len())
        .max()
        .unwrap_or(0)
        .max(25);
    let mut last_long = String::new();
    for machine in &report.machines {
        let state = vagrant_state(kind, &machine.state);
        let target = machine.name.as_str();
        out += &line(timestamp, target, "metadata", &["provider", provider]);
        out += &line(timestamp, target, "provider-name", &[provider]);
        out += &line(timestamp, target, "state", &[&state.id]);
        out += &line(timestamp, target, "state-human-short", &[&state.short]);
        out += &line(timestamp, target, "state-human-long", &[&state.long]);
        listing.push(format!("{target:width$} {} ({provider})", state.short));
        last_long = state.long;
    }
    let message = if report.machines.len() == 1 {
        last_long
    } else {
        "This environment represents multiple machines. The machines are all listed\n\
         above with their current state. `envctl status --json` adds each one's\n\
         address and id."
            .to_string()
    };
    let text = format!(
        "Current machine states:\n\n{}\n\n{message}",
        listing.join("\n")
    );
    out += &line(timestamp, "", "ui", &["info", &text]);
    out
}

/// One line: `timestamp,target,type,data...`, each data field escaped.
pub fn line(timestamp: u64, target: &str, kind: &str, data: &[&str]) -> String {
    let mut text = format!("{timestamp},{target},{kind}");
    for field in data {
        text.push(',');
        text.push_str(&escape(field));
    }
    text.push('\n');
    text
}

/// Vagrant's escaping of a data field.
pub fn escape(field: &str) -> String {
    field
        .replace(',', "%!(VAGRANT_COMMA)")
        .replace('\n', "\\n")
        .replace('\r', "\\r")
}

/// `state` in the words of Vagrant's provider for `kind`: its docker provider says
/// `stopped`, vagrant-libvirt `shutoff` (libvirt's own word), its VirtualBox provider
/// `poweroff` (VBoxManage's); all say `not_created`. A state envctl does not map keeps
/// the backend's word, with `_` for spaces and dashes as Vagrant's state ids have.
pub fn vagrant_state(kind: ProviderKind, state: &MachineState) -> VagrantState {
    use MachineState as S;
    use ProviderKind as K;
    let (id, long) = match (kind, state) {
        (K::Docker, S::Running) => (
            "running",
            "The container is created and running. You can stop it using\n\
             `envctl halt`, and destroy it with `envctl destroy`.",
        ),
        (K::Docker, S::Stopped) => (
            "stopped",
            "The container is created but not running. You can run it again\n\
             with `envctl up`.",
        ),
        (K::Libvirt, S::Running) => (
            "running",
            "The Libvirt domain is running. To stop this machine, you can run\n\
             `envctl halt`. To destroy the machine, you can run `envctl destroy`.",
        ),
        (K::Libvirt, S::Stopped) => (
            "shutoff",
            "The Libvirt domain is not running. Run `envctl up` to start it.",
        ),
        (K::Libvirt, S::NotCreated) => (
            "not_created",
            "The Libvirt domain is not created. Run `envctl up` to create it.",
        ),
        (K::Virtualbox, S::Running) => (
            "running",
            "The VM is running. To stop this VM, you can run `envctl halt` to\n\
             shut it down. To restart it again, simply run `envctl up`.",
        ),
        (K::Virtualbox, S::Stopped) => (
            "poweroff",
            "The VM is powered off. To restart the VM, simply run `envctl up`",
        ),
        (K::Docker | K::Virtualbox, S::NotCreated) => (
            "not_created",
            "The environment has not yet been created. Run `envctl up` to\n\
             create the environment.",
        ),
        (_, S::Other(word)) => {
            let id: String = word
                .trim()
                .to_lowercase()
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .collect();
            return VagrantState {
                short: id.replace('_', " "),
                long: format!("The {kind} provider reports this machine as `{word}`."),
                id,
            };
        }
    };
    VagrantState {
        id: id.to_string(),
        short: id.replace('_', " "),
        long: long.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::MachineLine;

    #[test]
    fn fields_are_escaped_as_vagrant_escapes_them() {
        let cases = [
            ("plain", "plain"),
            ("a,b", "a%!(VAGRANT_COMMA)b"),
            ("one\ntwo", "one\\ntwo"),
            ("cr\r\n", "cr\\r\\n"),
            (",,\n", "%!(VAGRANT_COMMA)%!(VAGRANT_COMMA)\\n"),
        ];
        for (field, want) in cases {
            assert_eq!(escape(field), want, "{field:?}");
        }
        assert_eq!(
            line(7, "web1", "state-human-long", &["x, y\nz"]),
            "7,web1,state-human-long,x%!(VAGRANT_COMMA) y\\nz\n"
        );
        assert_eq!(
            line(7, "", "ui", &["info", "a,b"]),
            "7,,ui,info,a%!(VAGRANT_COMMA)b\n"
        );
    }

    #[test]
    fn states_use_each_vagrant_providers_words() {
        use MachineState as S;
        use ProviderKind as K;
        let cases = [
            (K::Docker, S::Running, "running", "running"),
            (K::Docker, S::Stopped, "stopped", "stopped"),
            (K::Docker, S::NotCreated, "not_created", "not created"),
            (K::Libvirt, S::Running, "running", "running"),
            (K::Libvirt, S::Stopped, "shutoff", "shutoff"),
            (K::Libvirt, S::NotCreated, "not_created", "not created"),
            (K::Virtualbox, S::Running, "running", "running"),
            (K::Virtualbox, S::Stopped, "poweroff", "poweroff"),
            (K::Virtualbox, S::NotCreated, "not_created", "not created"),
            (K::Docker, S::Other("paused".into()), "paused", "paused"),
            (
                K::Virtualbox,
                S::Other("aborted-saved".into()),
                "aborted_saved",
                "aborted saved",
            ),
        ];
        for (kind, state, id, short) in cases {
            let got = vagrant_state(kind, &state);
            assert_eq!(
                (got.id.as_str(), got.short.as_str()),
                (id, short),
                "{kind} {state:?}"
            );
            assert!(!got.long.is_empty());
        }
    }

    fn report(kind: ProviderKind, machines: &[(&str, MachineState)]) -> StatusReport {
        StatusReport {
            environment: "habits".into(),
            provider: Some(kind),
            kind,
            machines: machines
                .iter()
                .map(|(name, state)| MachineLine {
                    name: name.to_string(),
                    state: state.clone(),
                    ip: String::new(),
                    hostname: String::new(),
                    id: None,
                    in_machinefile: true,
                    forwarded_ports: Vec::new(),
                    synced_folders: Vec::new(),
                })
                .collect(),
        }
    }

    #[test]
    fn status_is_one_line_per_field_per_machine_then_the_listing() {
        let report = report(
            ProviderKind::Libvirt,
            &[
                ("web1", MachineState::Running),
                ("db1", MachineState::Stopped),
            ],
        );
        let text = status(&report, 1700000000);
        let lines: Vec<&str> = text.lines().collect();
        let want_head = [
            "1700000000,web1,metadata,provider,libvirt",
            "1700000000,web1,provider-name,libvirt",
            "1700000000,web1,state,running",
            "1700000000,web1,state-human-short,running",
            "1700000000,web1,state-human-long,The Libvirt domain is running. To stop this machine%!(VAGRANT_COMMA) you can run\\n`envctl halt`. To destroy the machine%!(VAGRANT_COMMA) you can run `envctl destroy`.",
            "1700000000,db1,metadata,provider,libvirt",
            "1700000000,db1,provider-name,libvirt",
            "1700000000,db1,state,shutoff",
            "1700000000,db1,state-human-short,shutoff",
            "1700000000,db1,state-human-long,The Libvirt domain is not running. Run `envctl up` to start it.",
        ];
        assert_eq!(lines[..10], want_head);
        assert_eq!(lines.len(), 11, "{text}");
        assert!(
            lines[10].starts_with(
                "1700000000,,ui,info,Current machine states:\\n\\nweb1                      running (libvirt)\\ndb1                       shutoff (libvirt)\\n\\nThis environment represents multiple machines."
            ),
            "{}",
            lines[10]
        );
        // Every line splits into timestamp, target, type and data, with no raw newline.
        for line in &lines {
            let fields: Vec<&str> = line.splitn(4, ',').collect();
            assert_eq!(fields.len(), 4, "{line}");
            assert_eq!(fields[0], "1700000000");
        }
    }

    #[test]
    fn one_machine_is_described_under_the_listing() {
        let text = status(
            &report(
                ProviderKind::Virtualbox,
                &[("solo", MachineState::NotCreated)],
            ),
            1,
        );
        assert!(text.contains("1,solo,state,not_created\n"), "{text}");
        assert!(
            text.ends_with(
                "not created (virtualbox)\\n\\nThe environment has not yet been created. Run `envctl up` to\\ncreate the environment.\n"
            ),
            "{text}"
        );
    }
}
