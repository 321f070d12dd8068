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

#[test]
fn a_project_folder_named_as_a_template_is_refused() {
    let parent = Project::new("template-folder");
    let dir = parent.dir.join("p{{lookup('pipe','touch RAN')}}");
    fs::create_dir_all(&dir).unwrap();
    fs::rename(parent.dir.join("Machinefile"), dir.join("Machinefile")).unwrap();
    for args in [&["validate"][..], &["inventory"], &["up"]] {
        let output = Command::new(env!("CARGO_BIN_EXE_envctl"))
            .args(args)
            .current_dir(&dir)
            .env("ENVCTL_DATA_DIR", parent.dir.join("data"))
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}: {}", show(&output));
        assert!(
            String::from_utf8_lossy(&output.stderr)
                .contains("which Ansible would render as a template"),
            "{args:?}: {}",
            show(&output)
        );
    }
    assert!(!dir.join(".envctl").exists());
}

/// Python ends a line at U+0085, U+2028 and U+2029 too: Ansible, reading the line-format
/// inventory, must still see every host with its vars as written.
#[test]
fn line_separators_in_vars_keep_the_inventory_whole_with_ansible() {
    common::require_ansible();
    let project = Project::new("separators");
    project.machinefile("");
    let text = fs::read_to_string(project.dir.join("Machinefile")).unwrap();
    // YAML's own escapes: raw, YAML would fold U+0085 into a space before envctl saw it.
    let escaped = r"one\Ltwo\Pthree\Nfour";
    let value = "one\u{2028}two\u{2029}three\u{85}four";
    let text = text.replace(
        "  - {name: m1, ip: 10.231.34.5}\n",
        &format!(
            "  - {{name: m1, ip: 10.231.34.5, vars: {{motd: \"{escaped}\", list: [\"{escaped}\"]}}}}\n  - {{name: m2, ip: 10.231.34.6}}\n"
        ),
    );
    fs::write(project.dir.join("Machinefile"), text).unwrap();
    let output = project.envctl(&["inventory"], &[]);
    assert!(output.status.success(), "{}", show(&output));
    let ini = project.dir.join("inventory.ini");
    fs::write(&ini, &output.stdout).unwrap();
    let listed = Command::new("ansible-inventory")
        .arg("-i")
        .arg(&ini)
        .arg("--list")
        .output()
        .unwrap();
    assert!(listed.status.success(), "{}", show(&listed));
    let list: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    let hostvars = &list["_meta"]["hostvars"];
    assert_eq!(hostvars["m1"]["motd"], value, "{list:#}");
    assert_eq!(hostvars["m1"]["list"][0], value, "{list:#}");
    assert_eq!(hostvars["m2"]["ansible_host"], "10.231.34.6", "{list:#}");
}

/// Runs envctl in `dir` with a deadline: a Machinefile that is a FIFO or device must be
/// refused, not waited on or read forever.
fn envctl_within(dir: &Path, args: &[&str], limit: std::time::Duration) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_envctl"))
        .args(args)
        .current_dir(dir)
        .env("ENVCTL_DATA_DIR", dir.join("data"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            child.kill().unwrap();
            panic!("envctl {args:?} still ran after {limit:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn only_a_regular_file_of_sane_size_is_read_as_a_machinefile() {
    let project = Project::new("file-kinds");
    let fifo = project.dir.join("fifo");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let big = project.dir.join("big");
    fs::write(&big, "#".repeat(2 * 1024 * 1024)).unwrap();
    fs::create_dir_all(project.dir.join("folder")).unwrap();
    let cases = [
        ("/dev/zero", "is not a regular file"),
        (fifo.to_str().unwrap(), "is not a regular file"),
        (big.to_str().unwrap(), "is larger than 1024 KiB"),
        ("folder", "is a folder, not a Machinefile"),
    ];
    for (file, words) in cases {
        let limit = std::time::Duration::from_secs(20);
        let output = envctl_within(&project.dir, &["-f", file, "validate"], limit);
        assert_eq!(output.status.code(), Some(2), "{file}: {}", show(&output));
        assert!(
            String::from_utf8_lossy(&output.stderr).contains(words),
            "{file}: {}",
            show(&output)
        );
    }
}

#[test]
fn a_folder_named_machinefile_or_none_at_all_is_bad_input() {
    let project = Project::new("no-file");
    // The nearest `Machinefile` is a folder: refused, not passed over for a parent's.
    let nested = project.dir.join("sub");
    fs::create_dir_all(nested.join("Machinefile")).unwrap();
    let output = envctl_within(&nested, &["status"], std::time::Duration::from_secs(20));
    assert_eq!(output.status.code(), Some(2), "{}", show(&output));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("is a folder"),
        "{}",
        show(&output)
    );
    // None in the folder or any parent (the temporary folder's parents hold none).
    let bare = std::env::temp_dir().join(format!("envctl-hostile-bare-{}", std::process::id()));
    fs::create_dir_all(&bare).unwrap();
    let output = envctl_within(&bare, &["status"], std::time::Duration::from_secs(20));
    fs::remove_dir_all(&bare).unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", show(&output));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("no Machinefile in"),
        "{}",
        show(&output)
    );
}
