//! The command line on bad input: clear errors, exit code 2, nothing created. No service
//! is needed for these.

mod common;

use std::fs;

use common::{envctl_in, repo, show};

#[test]
fn a_bad_machinefile_exits_2_and_creates_nothing() {
    let dir = std::env::temp_dir().join(format!("envctl-cli-bad-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    fs::copy(
        repo().join("tests/bad-machinefiles/duplicates.yaml"),
        dir.join("Machinefile"),
    )
    .unwrap();
    for args in [
        &["validate"][..],
        &["up"],
        &["up", "--provider", "docker"],
        &["status"],
        &["destroy", "-f"],
    ] {
        let output = envctl_in(&dir, args);
        assert_eq!(
            output.status.code(),
            Some(2),
            "envctl {args:?}: {}",
            show(&output)
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("Machinefile:12: machine `c`, field `ip`: 10.1.0.2 is already the address of machine `a`"), "{stderr}");
        assert!(
            !dir.join(".envctl").exists(),
            "envctl {args:?} created state"
        );
    }
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_machinefile_is_found_in_parent_folders() {
    let nested = std::env::temp_dir().join(format!("envctl-cli-nested-{}", std::process::id()));
    fs::create_dir_all(nested.join("a/b")).unwrap();
    fs::write(
        nested.join("Machinefile"),
        "name: nested\nnetwork: {subnet: 10.9.0.0/24}\nmachines:\n  - {name: m, ip: 10.9.0.5}\n",
    )
    .unwrap();
    let output = envctl_in(&nested.join("a/b"), &["validate"]);
    assert!(output.status.success(), "{}", show(&output));
    assert!(String::from_utf8_lossy(&output.stderr).contains("1 machines (m)"));
    let output = envctl_in(
        &std::env::temp_dir(),
        &[
            "-f",
            nested.join("Machinefile").to_str().unwrap(),
            "inventory",
            "--host",
            "m",
        ],
    );
    let host: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    // Marked as data, as `ansible-inventory --list` marks it: Ansible never renders it.
    assert_eq!(host["ansible_host"]["__ansible_unsafe"], "10.9.0.5");
    fs::remove_dir_all(&nested).unwrap();
}

#[test]
fn unknown_machines_and_providers_are_refused_before_anything_happens() {
    let example = repo().join("environments/example");
    let cases: [(&[&str], &str); 3] = [
        (
            &["up", "web9"],
            "has no machine `web9`; its machines are: web1, web2, db1",
        ),
        (&["up", "--provider", "podman"], "unknown provider `podman`"),
        (&["ssh", "nope"], "has no machine `nope`"),
    ];
    for (args, message) in cases {
        let output = envctl_in(&example, args);
        assert!(!output.status.success(), "envctl {args:?} passed");
        assert!(
            String::from_utf8_lossy(&output.stderr).contains(message),
            "envctl {args:?}: {}",
            show(&output)
        );
    }
    assert!(
        !example.join(".envctl").exists(),
        "state was created in the example environment"
    );
}

#[test]
fn destroy_without_a_terminal_needs_force() {
    let output = envctl_in(&repo().join("environments/example"), &["destroy"]);
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("pass --force"),
        "{}",
        show(&output)
    );
}

#[test]
fn a_missing_box_or_virtualbox_is_a_clear_error_that_changes_nothing() {
    let dir = std::env::temp_dir().join(format!("envctl-cli-box-{}", std::process::id()));
    let empty = dir.join("empty-store");
    fs::create_dir_all(&empty).unwrap();
    fs::copy(
        repo().join("environments/example/Machinefile"),
        dir.join("Machinefile"),
    )
    .unwrap();
    fs::copy(
        repo().join("environments/example/playbook.yml"),
        dir.join("playbook.yml"),
    )
    .unwrap();
    let run = |provider: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_envctl"))
            .args(["up", "--provider", provider])
            .current_dir(&dir)
            .env("ENVCTL_DATA_DIR", &empty)
            .env("VAGRANT_HOME", &empty)
            .env("PATH", "/usr/bin:/bin")
            .output()
            .unwrap()
    };
    for provider in ["virtualbox", "libvirt"] {
        let output = run(provider);
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        let expected = format!("box `debian/bookworm64` for {provider} is not installed: add it with `envctl box add debian/bookworm64 FILE.box`");
        assert!(stderr.contains(&expected), "{}", show(&output));
        assert!(!dir.join(".envctl").exists(), "a missing box created state");
    }
    // With the box added, VirtualBox itself is missing here: said plainly.
    let box_dir = empty.join("boxes/debian-VAGRANTSLASH-bookworm64/0/virtualbox");
    fs::create_dir_all(&box_dir).unwrap();
    fs::write(
        box_dir.join("metadata.json"),
        r#"{"provider":"virtualbox"}"#,
    )
    .unwrap();
    let output = run("virtualbox");
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("VBoxManage"),
        "{}",
        show(&output)
    );
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn names_that_select_nothing_exit_2_before_anything_happens() {
    let example = repo().join("environments/example");
    let machines = "its machines are: web1, web2, db1";
    let bad_regex = "`/web[/` is not a valid regular expression";
    let cases: [(&[&str], &str); 11] = [
        (&["up", "/web[/"], bad_regex),
        (&["halt", "/web[/"], bad_regex),
        (&["reload", "web1", "/web[/"], bad_regex),
        (&["provision", "/web[/"], bad_regex),
        (&["destroy", "-f", "/web[/"], bad_regex),
        (&["ssh", "/web[/"], bad_regex),
        (
            &["up", "/^cache/"],
            "matches `/^cache/`; its machines are: web1, web2, db1",
        ),
        (&["reload", "/^cache/"], machines),
        (&["destroy", "-f", "web1", "/cache/"], machines),
        (&["up", "web9"], "has no machine `web9`"),
        (
            &["ssh", "/web/"],
            "`/web/` matches 2 machines (web1, web2); this command takes one",
        ),
    ];
    for (args, message) in cases {
        let output = envctl_in(&example, args);
        assert_eq!(
            output.status.code(),
            Some(2),
            "envctl {args:?}: {}",
            show(&output)
        );
        assert!(
            String::from_utf8_lossy(&output.stderr).contains(message),
            "envctl {args:?}: {}",
            show(&output)
        );
    }
    assert!(
        !example.join(".envctl").exists(),
        "state was created in the example environment"
    );
}

#[test]
fn status_is_json_or_machine_readable_not_both() {
    let output = envctl_in(
        &repo().join("environments/example"),
        &["status", "--json", "--machine-readable"],
    );
    assert_eq!(output.status.code(), Some(2), "{}", show(&output));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("cannot be used with"),
        "{}",
        show(&output)
    );
}

#[test]
fn global_status_needs_no_machinefile() {
    let dir = std::env::temp_dir().join(format!("envctl-cli-global-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    for args in [&["global-status"][..], &["global-status", "--prune"]] {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_envctl"))
            .args(args)
            .current_dir(&dir)
            .env("ENVCTL_DATA_DIR", dir.join("data"))
            .output()
            .unwrap();
        assert!(output.status.success(), "{args:?}: {}", show(&output));
        assert!(output.stdout.is_empty(), "{args:?}: {}", show(&output));
        assert!(
            String::from_utf8_lossy(&output.stderr).contains("no envctl environment"),
            "{args:?}: {}",
            show(&output)
        );
    }
    assert!(
        !dir.join("data").exists(),
        "listing nothing made the data folder"
    );
    fs::remove_dir_all(&dir).unwrap();
}
