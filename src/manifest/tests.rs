//! Data-driven: every `tests/bad-machinefiles/NAME.yaml` must produce exactly the problems
//! written in `NAME.expected`. `ENVCTL_BLESS=1 cargo test --lib manifest` rewrites the
//! expected files; read the diff before committing it.

use std::fs;
use std::path::{Path, PathBuf};

use super::{parse, ManifestError};

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bad-machinefiles")
}

#[test]
fn every_bad_machinefile_gives_its_expected_problems() {
    let bless = std::env::var_os("ENVCTL_BLESS").is_some();
    let mut cases: Vec<PathBuf> = fs::read_dir(cases_dir())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    cases.sort();
    assert!(cases.len() >= 15, "the bad Machinefiles are missing");
    let mut failures = Vec::new();
    for case in cases {
        let text = fs::read_to_string(&case).unwrap();
        // Parsed as if it were a Machinefile in that folder, reported as `Machinefile`.
        let err: ManifestError = match parse(&cases_dir().join("Machinefile"), &text) {
            Ok(_) => {
                failures.push(format!("{}: parsed without a problem", case.display()));
                continue;
            }
            Err(err) => err,
        };
        let got: String = err
            .problems
            .iter()
            .map(|problem| problem.render(Path::new("Machinefile")) + "\n")
            .collect::<String>()
            .replace(&cases_dir().display().to_string(), "<dir>");
        let expected_path = case.with_extension("expected");
        if bless {
            fs::write(&expected_path, &got).unwrap();
            continue;
        }
        let expected = fs::read_to_string(&expected_path).unwrap_or_default();
        if got != expected {
            failures.push(format!(
                "{}:\n--- expected\n{expected}--- got\n{got}",
                case.display()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_documented_example_and_the_example_environment_are_valid() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for path in [
        root.join("Machinefile.example"),
        root.join("environments/example/Machinefile"),
    ] {
        let text = fs::read_to_string(&path).unwrap();
        let manifest = parse(&path, &text).unwrap_or_else(|err| panic!("{err}"));
        assert!(!manifest.machines.is_empty());
    }
}

#[test]
fn defaults_apply_and_machines_override_them() {
    let text = "\
name: demo
network: {subnet: 10.1.0.0/24}
defaults: {cpus: 2, memory: 1024, user: ops}
machines:
  - {name: a, ip: 10.1.0.2, hostname: a.demo.test, groups: [web, db, web], vars: {port: 80}}
  - {name: b, ip: 10.1.0.3, cpus: 4, memory: 256}
";
    let manifest = parse(Path::new("/x/Machinefile"), text).unwrap();
    assert_eq!(manifest.network.gateway.to_string(), "10.1.0.1");
    let a = &manifest.machines[0];
    assert_eq!((a.cpus, a.memory_mib, a.user.as_str()), (2, 1024, "ops"));
    assert_eq!(a.groups, ["db", "web"]);
    assert_eq!(a.vars["port"], 80);
    let b = &manifest.machines[1];
    assert_eq!((b.cpus, b.memory_mib, b.hostname.as_str()), (4, 256, "b"));
}

/// The YAML scanner under serde takes time quadratic in the nesting depth: 200 KB of `[`
/// kept it busy for minutes. The line index stops at the limit first.
#[test]
fn deep_nesting_is_refused_quickly() {
    let text = format!("machines: {}", "[".repeat(200_000));
    let started = std::time::Instant::now();
    let err = parse(Path::new("/x/Machinefile"), &text).unwrap_err();
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    assert_eq!(err.problems.len(), 1, "{err}");
    assert!(
        err.problems[0].message.contains("more than 64 levels"),
        "{err}"
    );
}

#[test]
fn the_list_form_of_provision_is_read_into_provisioners() {
    use crate::manifest::{Action, Run, Script, DEFAULT_PROVISIONER};
    let dir = cases_dir();
    let text = "name: demo\nnetwork: {subnet: 10.1.0.0/24}\nmachines:\n  - {name: web1, ip: 10.1.0.2}\n  - {name: db1, ip: 10.1.0.3}\nprovision:\n  - {name: base, shell: {inline: 'echo hi', args: [a], env: {N: 1}}}\n  - {name: cert, file: {source: playbook.yml, destination: /tmp/p.yml}, machines: [db1]}\n  - {name: site, ansible: {playbook: playbook.yml}, run: always, machines: ['/web\\d/']}\n";
    let manifest = parse(&dir.join("Machinefile"), text).unwrap();
    let names: Vec<&str> = manifest
        .provisioners
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    assert_eq!(names, ["base", "cert", "site"]);
    let base = &manifest.provisioners[0];
    assert_eq!((base.run, &base.machines), (Run::Once, &None));
    let Action::Shell(shell) = &base.action else {
        panic!("{base:?}")
    };
    assert_eq!(shell.script, Script::Inline("echo hi".into()));
    assert_eq!(shell.env["N"], "1");
    assert!(shell.privileged);
    assert_eq!(
        manifest.provisioners[1].machines,
        Some(vec!["db1".to_string()])
    );
    assert_eq!(manifest.provisioners[2].run, Run::Always);
    assert_eq!(
        manifest.provisioners[2].machines,
        Some(vec!["web1".to_string()])
    );

    let mapping = "name: demo\nnetwork: {subnet: 10.1.0.0/24}\nmachines:\n  - {name: web1, ip: 10.1.0.2}\nprovision:\n  playbook: playbook.yml\n  tags: [a]\n";
    let manifest = parse(&dir.join("Machinefile"), mapping).unwrap();
    assert_eq!(manifest.provisioners.len(), 1);
    assert_eq!(manifest.provisioners[0].name, DEFAULT_PROVISIONER);
    assert!(matches!(&manifest.provisioners[0].action, Action::Ansible(a) if a.tags == ["a"]));
}
