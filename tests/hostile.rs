//! Hostile input end to end, no services needed: a Machinefile, a state file, a box or
//! an environment variable that tries to run a command, write outside the project or
//! weaken host-key pinning is refused, and nothing runs (issue 12's "must hold").

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::show;

/// A project folder of its own with a small valid Machinefile; removed when dropped.
struct Project {
    dir: PathBuf,
}

impl Project {
    fn new(label: &str) -> Project {
        let dir =
            std::env::temp_dir().join(format!("envctl-hostile-{label}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let project = Project { dir };
        project.machinefile("");
        project
    }

    /// A valid Machinefile, with `extra` appended at the top level.
    fn machinefile(&self, extra: &str) {
        fs::write(
            self.dir.join("Machinefile"),
            format!(
                "name: hostile\nnetwork: {{subnet: 10.231.34.0/24}}\n\
                 machines:\n  - {{name: m1, ip: 10.231.34.5}}\n{extra}"
            ),
        )
        .unwrap();
    }

    fn envctl(&self, args: &[&str], vars: &[(&str, &str)]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_envctl"))
            .args(args)
            .current_dir(&self.dir)
            .env_remove("ENVCTL_PROVIDER")
            .env_remove("LIBVIRT_DEFAULT_URI")
            .env("ENVCTL_DATA_DIR", self.dir.join("data"))
            .envs(vars.iter().copied())
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// A script that leaves `marker` behind if anything runs it.
    fn trap(&self, marker: &Path) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let script = self.dir.join("trap.sh");
        fs::write(&script, format!("#!/bin/sh\ntouch {}\n", marker.display())).unwrap();
        fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
        script
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn a_libvirt_uri_that_runs_a_program_is_refused() {
    let project = Project::new("uri");
    let marker = project.dir.join("ran");
    let script = project.trap(&marker);
    let uri = format!("qemu+ext:///system?command={}", script.display());

    // From the Machinefile: bad input, refused by validation with line and field.
    project.machinefile(&format!("defaults:\n  libvirt:\n    uri: \"{uri}\"\n"));
    let output = project.envctl(&["status"], &[]);
    assert_eq!(output.status.code(), Some(2), "{}", show(&output));
    assert!(
        String::from_utf8_lossy(&output.stderr)
            .contains("Machinefile:7: field `defaults.libvirt.uri`"),
        "{}",
        show(&output)
    );

    // From LIBVIRT_DEFAULT_URI, once the state says the environment runs under libvirt.
    project.machinefile("");
    fs::create_dir_all(project.dir.join(".envctl")).unwrap();
    fs::write(
        project.dir.join(".envctl/state.json"),
        r#"{"env_id": "hostile1", "provider": "libvirt", "machines": {}}"#,
    )
    .unwrap();
    for args in [&["status"][..], &["halt"], &["gc", "--provider", "libvirt"]] {
        let output = project.envctl(args, &[("LIBVIRT_DEFAULT_URI", &uri)]);
        assert!(!output.status.success(), "{args:?}: {}", show(&output));
        assert!(
            String::from_utf8_lossy(&output.stderr).contains("envctl refuses this URI"),
            "{args:?}: {}",
            show(&output)
        );
    }
    assert!(!marker.exists(), "the URI's command ran");
}

#[test]
fn a_state_file_cannot_add_directives_to_ssh_config() {
    let project = Project::new("ssh-config");
    fs::create_dir_all(project.dir.join(".envctl")).unwrap();
    let state = serde_json::json!({
        "env_id": "hostile2",
        "provider": "docker",
        "machines": {"m1": {
            "id": "x",
            "ssh_host": "10.231.34.5\nHost *\n  ProxyCommand touch /tmp/envctl-hostile-ran",
            "ssh_port": 22,
        }},
    });
    fs::write(project.dir.join(".envctl/state.json"), state.to_string()).unwrap();
    let output = project.envctl(&["ssh-config"], &[]);
    assert!(!output.status.success(), "{}", show(&output));
    assert!(
        !String::from_utf8_lossy(&output.stdout).contains("ProxyCommand"),
        "{}",
        show(&output)
    );
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("records the ssh host"),
        "{}",
        show(&output)
    );
}
