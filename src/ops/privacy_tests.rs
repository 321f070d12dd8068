//! `.envctl/` holds the environment's secrets: nothing in it may be open to the group or
//! to others. This goes through everything `up` writes there without a provider (lock,
//! state, keys, known_hosts, the console folder, bootstrap's files, inventory,
//! ssh_config) plus what programs envctl runs add with their own umask, and walks it.
//! (`extra_vars.json`, written by `provision`, goes through the same `write_private`.)

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use envctl_provider::ImageSource;

use super::{access, bootstrap, machine_spec, Workspace};
use crate::keys;
use crate::state::MachineRecord;

const MACHINEFILE: &str = "\
name: private
network: {subnet: 10.9.0.0/24}
machines:
  - {name: web1, ip: 10.9.0.11}
  - {name: db1, ip: 10.9.0.12}
";

/// Every entry under `root` (itself included) that has a group or other bit, with its
/// mode, relative to `root`.
fn open_entries(root: &Path) -> Vec<(String, u32)> {
    let mut open = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(path) = pending.pop() {
        let meta = fs::symlink_metadata(&path).unwrap();
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            let relative = path.strip_prefix(root).unwrap().display().to_string();
            open.push((relative, mode));
        }
        if meta.is_dir() {
            pending.extend(fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        }
    }
    open.sort();
    open
}

fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("envctl-private-{}", keys::random_id()));
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("Machinefile"), MACHINEFILE).unwrap();
    dir
}

#[test]
fn nothing_in_the_state_folder_is_open_to_others() {
    let dir = scratch();
    let ws = Workspace::load(Some(&dir.join("Machinefile"))).unwrap();
    let state_dir = &ws.state_dir;

    // `up`, in its order, up to the backend.
    let _lock = state_dir.lock("up").unwrap();
    let mut state = state_dir.load().unwrap();
    let keypair = keys::ensure_keypair(state_dir, &ws.manifest.name).unwrap();
    for machine in &ws.manifest.machines {
        machine_spec(
            &ws,
            envctl_provider::ProviderKind::Docker,
            machine,
            ImageSource::DockerImage("x".into()),
            vec![],
            &keypair,
        )
        .unwrap();
    }
    state.provider = Some(envctl_provider::ProviderKind::Virtualbox);
    state_dir.save(&state).unwrap();
    access::write_known_hosts(&ws).unwrap();
    let console = state_dir.create_console_dir().unwrap();

    // A backend's tool writes a console log with its umask's mode, as VirtualBox does.
    let log = console.join("web1.log");
    fs::write(&log, "booting\n").unwrap();
    fs::set_permissions(&log, fs::Permissions::from_mode(0o644)).unwrap();

    // Bootstrap, then ssh recording the box's host key in the file made for it.
    let (_, first_contact) = bootstrap::prepare_state(state_dir, "web1").unwrap();
    let mut record = OpenOptions::new()
        .append(true)
        .create(true)
        .open(&first_contact)
        .unwrap();
    writeln!(record, "10.9.0.11 ssh-ed25519 AAAAbox").unwrap();

    state.machines.insert(
        "web1".into(),
        MachineRecord {
            id: "id".into(),
            ssh_host: "10.9.0.11".into(),
            ssh_port: 22,
            provisioned: false,
            ..Default::default()
        },
    );
    state_dir.save(&state).unwrap();
    access::write_generated(&ws, &state).unwrap();

    // What envctl wrote itself is private already; only the backend's log is not.
    assert_eq!(
        open_entries(&state_dir.root),
        [("console/web1.log".to_string(), 0o644)]
    );
    for written in [
        "lock",
        "state.json",
        "id_ed25519",
        "id_ed25519.pub",
        "host_keys/web1",
        "host_keys/db1",
        "known_hosts",
        "vagrant_insecure_key.ed25519",
        "first_contact/web1",
        "inventory",
        "inventory.json",
        "ssh_config",
    ] {
        assert!(
            state_dir.root.join(written).is_file(),
            "{written} was not written"
        );
    }

    // `up` ends by taking away what the programs it ran left open.
    state_dir.restrict().unwrap();
    assert_eq!(open_entries(&state_dir.root), []);
    assert_eq!(
        fs::metadata(&log).unwrap().permissions().mode() & 0o777,
        0o600
    );
    fs::remove_dir_all(dir).unwrap();
}

/// A machine removed behind envctl's back is made anew from the box, with a host key of
/// its own: the next bootstrap must not hold it to the key the old one showed.
#[test]
fn a_new_bootstrap_forgets_the_host_key_first_seen_before() {
    let dir = scratch();
    let ws = Workspace::load(Some(&dir.join("Machinefile"))).unwrap();
    let (_, first_contact) = bootstrap::prepare_state(&ws.state_dir, "web1").unwrap();
    fs::write(&first_contact, "10.9.0.11 ssh-ed25519 AAAAold\n").unwrap();
    let (_, again) = bootstrap::prepare_state(&ws.state_dir, "web1").unwrap();
    assert_eq!(again, first_contact);
    assert_eq!(fs::read_to_string(&again).unwrap(), "");
    let mode = fs::metadata(&again).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    fs::remove_dir_all(&dir).unwrap();
}
