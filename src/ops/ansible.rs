//! One `ansible-playbook` run over some machines, with the generated JSON inventory and
//! settings that make it fast without changing what the playbook means.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use futures_util::future::join_all;
use tokio::process::Command;

use super::access::{created_target, KeyFiles};
use super::galaxy::{self, GalaxyDirs};
use super::Session;
use crate::interrupt;
use crate::manifest::{DockerImage, Provision};
use crate::output;
use crate::ssh;
use crate::state::{create_private_dir, write_private};
use envctl_provider::ProviderKind;

/// The most hosts Ansible works on at once: past this, one machine's CPU is the limit.
const MAX_FORKS: usize = 20;
/// Arguments that make `ansible-playbook` ask a question on the terminal.
const PROMPTING_ARGS: &[&str] = &[
    "-K",
    "--ask-become-pass",
    "-k",
    "--ask-pass",
    "-J",
    "--ask-vault-pass",
    "--ask-vault-password",
];

/// Runs the playbook once on `machines` (no `--limit` when they are all of them),
/// streaming its output. Returns the machines Ansible played (see `play_recap`): a
/// machine no play matched was not provisioned, whatever the exit status says.
pub(super) async fn run(
    session: &Session<'_>,
    options: &Provision,
    machines: &[String],
) -> Result<Vec<String>> {
    let ws = session.ws;
    let every_machine = machines.len() == ws.manifest.machines.len();
    let names: &[String] = if every_machine { &[] } else { machines };
    let terminal = std::io::stdin().is_terminal();
    if !terminal {
        if let Some(arg) = prompting_arg(&options.ansible_args) {
            bail!(
                "`{arg}` in ansible_args asks a question on a terminal, and envctl is not run \
                 from one: run it in a terminal, or give the secret another way (e.g. \
                 vault_password_file)"
            );
        }
    }
    let program = which::which("ansible-playbook").context(
        "ansible-playbook is not on PATH: install Ansible (`apt-get install ansible`, or `pip install ansible-core`)",
    )?;
    let mut command = Command::new(program);
    command
        .current_dir(&ws.manifest.dir)
        // The JSON form: its values are marked so that Ansible never renders them.
        .arg("--inventory")
        .arg(ws.state_dir.inventory_json())
        .env("ANSIBLE_HOST_KEY_CHECKING", "True")
        .env("ANSIBLE_RETRY_FILES_ENABLED", "False")
        .env("PYTHONUNBUFFERED", "1")
        // With a terminal, Ansible may ask for a become or vault password on it.
        .stdin(if terminal {
            Stdio::inherit()
        } else {
            Stdio::null()
        });
    let control_dir = ws.state_dir.control_dir();
    create_private_dir(&control_dir)?;
    // Every played machine must be host-local for the faster key exchange: the setting is
    // one for the whole run.
    let host_local = machines.iter().all(|name| {
        (session.state.machines.get(name)).is_some_and(|m| ssh::stays_on_this_host(&m.ssh_host))
    });
    let mut settings = speed_settings(machines.len(), &control_dir, host_local);
    if runs_envctls_image(session, machines) && all_have_image_python(session, machines).await {
        settings.insert("ANSIBLE_PYTHON_INTERPRETER", IMAGE_PYTHON.to_string());
    }
    for (name, value) in settings {
        // What the user set in the environment wins.
        if std::env::var_os(name).is_none() {
            command.env(name, value);
        }
    }
    if let Some(requirements) = &options.galaxy_role_file {
        let dirs = GalaxyDirs::new(&ws.state_dir.root);
        if galaxy::install(requirements, &dirs, &ws.manifest.dir).await? {
            // What ansible-galaxy wrote with its own umask loses its group and other bits.
            ws.state_dir.restrict()?;
        }
        command
            .env("ANSIBLE_ROLES_PATH", dirs.roles_path())
            .env("ANSIBLE_COLLECTIONS_PATH", dirs.collections_path());
    }
    if let Some(config) = &options.config_file {
        command.env("ANSIBLE_CONFIG", config);
    }
    if let Some(verbose) = &options.verbose {
        command.arg(verbose);
    }
    if let Some(file) = &options.vault_password_file {
        command.arg("--vault-password-file").arg(file);
    }
    if !options.skip_tags.is_empty() {
        command.arg("--skip-tags").arg(options.skip_tags.join(","));
    }
    if let Some(limit) = limit(names, options.limit.as_deref()) {
        command.arg("--limit").arg(limit);
    }
    if !options.tags.is_empty() {
        command.arg("--tags").arg(options.tags.join(","));
    }
    if !options.extra_vars.is_empty() {
        // Through a private file, not the command line, where `ps` would show it.
        let json = serde_json::to_vec(&options.extra_vars).context("encoding extra_vars")?;
        write_private(&ws.state_dir.extra_vars(), &json)?;
        command
            .arg("--extra-vars")
            .arg(format!("@{}", ws.state_dir.extra_vars().display()));
    }
    command.args(&options.ansible_args).arg(&options.playbook);
    super::play_recap::log_to(&mut command, &ws.state_dir)?;
    output::verbose(&format!("running {:?}", command.as_std()));
    let mut child = command.spawn().context("running ansible-playbook")?;
    let status = match interrupt::cancellable(child.wait()).await {
        Ok(status) => status.context("running ansible-playbook")?,
        Err(interrupted) => {
            // Ansible stops cleanly on SIGINT (it was not sent one if envctl got its Ctrl-C
            // from `kill` rather than a terminal); it is waited for, never left running.
            if let Some(pid) = child.id().and_then(|pid| i32::try_from(pid).ok()) {
                // SAFETY: kill(2) with a pid from our own child, which we have not reaped.
                unsafe { libc::kill(pid, libc::SIGINT) };
            }
            child.wait().await.ok();
            return Err(interrupted.into());
        }
    };
    if !status.success() {
        bail!(
            "ansible-playbook failed ({status}); the machines are still up: fix the playbook and \
             run `envctl provision`"
        );
    }
    super::play_recap::played(&ws.state_dir, machines)
}

/// Settings that speed Ansible up and leave a playbook's meaning alone: as many forks as
/// machines (bounded), pipelining (envctl's images and boxes have no `requiretty` in
/// sudoers), and SSH connections kept open between tasks, with their sockets in
/// `control_dir` when its path leaves room for `%C` under the socket length limit (else
/// Ansible's default folder under `~/.ansible/cp`). When every machine is `host_local`,
/// fresh connections put the cheaper key exchange first, as envctl's own do (`ssh::locality`).
fn speed_settings(
    machines: usize,
    control_dir: &Path,
    host_local: bool,
) -> BTreeMap<&'static str, String> {
    let mut settings = BTreeMap::new();
    settings.insert("ANSIBLE_FORKS", machines.clamp(1, MAX_FORKS).to_string());
    settings.insert("ANSIBLE_PIPELINING", "True".to_string());
    let mut ssh_args = "-o ControlMaster=auto -o ControlPersist=60s".to_string();
    if host_local {
        ssh_args.push_str(" -o ");
        ssh_args.push_str(ssh::HOST_LOCAL_KEX);
    }
    settings.insert("ANSIBLE_SSH_ARGS", ssh_args);
    if ssh::control_sockets_fit(control_dir) {
        settings.insert(
            "ANSIBLE_SSH_CONTROL_PATH_DIR",
            control_dir.display().to_string(),
        );
        settings.insert("ANSIBLE_SSH_CONTROL_PATH", "%(directory)s/%%C".to_string());
    }
    settings
}

/// The python3 of envctl's own Docker image that keeps the bytecode of Ansible's modules
/// (`images/debian/ansible-python3`): a task's guest CPU is half compiling them otherwise.
const IMAGE_PYTHON: &str = "/usr/libexec/envctl/ansible-python3";

/// Whether every machine played is a container of envctl's own image, which has
/// [`IMAGE_PYTHON`]. Set as Ansible's default (`interpreter_python`), so a playbook's or
/// inventory's `ansible_python_interpreter` still wins; also spares interpreter discovery.
fn runs_envctls_image(session: &Session<'_>, machines: &[String]) -> bool {
    session.state.provider == Some(ProviderKind::Docker)
        && machines.iter().all(|name| {
            (session.ws.manifest.machines.iter())
                .any(|m| &m.name == name && m.docker == DockerImage::DefaultRecipe)
        })
}

/// Whether every machine has [`IMAGE_PYTHON`]: a container made from envctl's image
/// before it had one has not. Asked over each machine's pinned login, kept open as the
/// master of Ansible's first task, so the question costs no login of its own.
async fn all_have_image_python(session: &Session<'_>, machines: &[String]) -> bool {
    let keys = KeyFiles::of(session.ws);
    let control_dir = session.ws.state_dir.control_dir();
    let answers = join_all(machines.iter().map(|name| {
        let (keys, control_dir) = (&keys, &control_dir);
        async move {
            let machine = session
                .ws
                .manifest
                .machines
                .iter()
                .find(|m| &m.name == name)?;
            let target = created_target(machine, &session.state).ok()?;
            let conn = ssh::Connection {
                kept_open_in: Some(control_dir),
                ..ssh::Connection::pinned(&target, keys.creds())
            };
            let args = ssh::args(&conn, ssh::Mode::Batch).ok()?;
            let check = format!("test -x {IMAGE_PYTHON}");
            let outcome = ssh::run(&args, &check, b"", Duration::from_secs(30)).await;
            outcome.ok().map(|outcome| outcome.success())
        }
    }))
    .await;
    answers.into_iter().all(|has| has == Some(true))
}

fn prompting_arg(args: &[String]) -> Option<&str> {
    args.iter()
        .map(String::as_str)
        .find(|arg| PROMPTING_ARGS.contains(arg))
}

/// Ansible's `--limit`: the machines named, narrowed by the Machinefile's own limit.
fn limit(names: &[String], manifest_limit: Option<&str>) -> Option<String> {
    match (names.is_empty(), manifest_limit) {
        (true, None) => None,
        (true, Some(limit)) => Some(limit.to_string()),
        (false, None) => Some(names.join(",")),
        (false, Some(limit)) => Some(format!("{},&{limit}", names.join(","))),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::{limit, prompting_arg, speed_settings};

    #[test]
    fn limit_combines_names_and_the_machinefiles_limit() {
        let names = ["web1".to_string(), "db1".to_string()];
        let cases: [(&[String], Option<&str>, Option<&str>); 4] = [
            (&[], None, None),
            (&[], Some("web"), Some("web")),
            (&names, None, Some("web1,db1")),
            (&names, Some("web"), Some("web1,db1,&web")),
        ];
        for (names, manifest, want) in cases {
            assert_eq!(
                limit(names, manifest).as_deref(),
                want,
                "{names:?} {manifest:?}"
            );
        }
    }

    #[test]
    fn forks_follow_the_machines_and_sockets_fit() {
        let short = speed_settings(3, Path::new("/p/.envctl/cp"), false);
        assert_eq!(short["ANSIBLE_FORKS"], "3");
        assert_eq!(short["ANSIBLE_PIPELINING"], "True");
        assert_eq!(short["ANSIBLE_SSH_CONTROL_PATH_DIR"], "/p/.envctl/cp");
        assert_eq!(
            speed_settings(0, Path::new("/p"), false)["ANSIBLE_FORKS"],
            "1"
        );
        assert_eq!(
            speed_settings(50, Path::new("/p"), false)["ANSIBLE_FORKS"],
            "20"
        );
        let deep = format!("/{}/.envctl/cp", "d".repeat(80));
        let long = speed_settings(3, Path::new(&deep), false);
        assert!(!long.contains_key("ANSIBLE_SSH_CONTROL_PATH_DIR"));
        assert!(!long.contains_key("ANSIBLE_SSH_CONTROL_PATH"));
    }

    /// The key exchange goes first only when every machine is host-local, and ssh reads
    /// Ansible's arguments back with curve25519 first and the defaults still after it.
    #[test]
    fn host_local_runs_put_the_cheaper_key_exchange_first() {
        let dir = Path::new("/p/.envctl/cp");
        let routed = &speed_settings(3, dir, false)["ANSIBLE_SSH_ARGS"];
        assert!(!routed.contains("Kex"), "{routed}");
        let local = &speed_settings(3, dir, true)["ANSIBLE_SSH_ARGS"];
        let output = std::process::Command::new("ssh")
            .args(["-G", "-F", "/dev/null"])
            .args(local.split(' '))
            .arg("web1")
            .output()
            .unwrap();
        let printed = String::from_utf8_lossy(&output.stdout);
        let kex = printed
            .lines()
            .find_map(|line| line.strip_prefix("kexalgorithms "))
            .unwrap();
        assert!(kex.starts_with("curve25519-sha256,"), "{kex}");
        assert!(kex.contains("sntrup761x25519-sha512@openssh.com"), "{kex}");
    }

    #[test]
    fn prompting_args_are_found() {
        let args = ["-v".to_string(), "--ask-become-pass".to_string()];
        assert_eq!(prompting_arg(&args), Some("--ask-become-pass"));
        assert_eq!(prompting_arg(&args[..1]), None);
    }
}
