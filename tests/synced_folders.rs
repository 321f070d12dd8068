//! Synced folders. Without services: `validate` refuses a folder type the chosen provider
//! cannot do, and `status --json` says which type `auto` picks under each provider. On the real Docker Engine (subnet 10.231.50.0/24), one machine with the
//! default folder (a live bind at /vagrant) and an rsync folder: a file the host writes is
//! read in the guest at once; a file the guest user writes is the host user's (the
//! project folder's owner, uid 4321 here, since the tests run as root); `.envctl/` cannot
//! be read in the guest, not even by root; the rsync folder arrives at `up`, leaves out
//! `.envctl/` and `exclude`, is the machine user's, is pushed before provisioning by `up`
//! and `reload`, takes changes after `envctl rsync` and, under `envctl rsync-auto`, within
//! seconds; a container made with other folders is not
//! started as if it had them.

mod common;

use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{require_docker, show, TestEnv};

/// The "host user" of the tests: they run as root, so the project folder is given to an
/// ordinary uid, as a developer's checkout would be theirs.
const HOST_UID: u32 = 4321;

fn machinefile(provider: &str, folders: &str) -> String {
    format!(
        "name: envctl-folders\nprovider: {provider}\nnetwork: {{subnet: 10.231.50.0/24}}\n\
         defaults: {{libvirt: {{box: debian/bookworm64}}, virtualbox: {{box: debian/bookworm64}}}}\n\
         machines:\n  - name: dev\n    ip: 10.231.50.11\n{folders}"
    )
}

fn chown(path: &Path) {
    let status = Command::new("chown")
        .args(["-R", &format!("{HOST_UID}:{HOST_UID}")])
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn validate_refuses_folder_types_the_provider_cannot_do() {
    let cases = [
        (
            "libvirt",
            "    synced_folders: [{host: ., guest: /vagrant, type: 9p}]\n",
            "machine `dev`, field `synced_folders.0.type`: envctl does not mount `9p` folders",
        ),
        // A VirtualBox share of the project would show `.envctl/`, the private key in it.
        (
            "virtualbox",
            "    synced_folders: [{host: ., guest: /vagrant, type: virtualbox}]\n",
            "machine `dev`, field `synced_folders.0.type`: a VirtualBox shared folder of",
        ),
        (
            "virtualbox",
            "    synced_folders: [{host: ./src, guest: /srv/app, type: virtiofs, create: true}]\n",
            "field `synced_folders.0.type`: the virtualbox provider cannot do `virtiofs` folders: \
             it does virtualbox, rsync",
        ),
        (
            "libvirt",
            "    synced_folders: [{host: ./src, guest: /srv/app, type: virtiofs, create: true, owner: www-data}]\n",
            "field `synced_folders.0.owner`: applies to rsync and virtualbox folders only",
        ),
        (
            "docker",
            "    synced_folders: [{host: ., guest: /vagrant, type: virtiofs}]\n",
            "field `synced_folders.0.type`: the docker provider cannot do `virtiofs` folders",
        ),
        (
            "docker",
            "    synced_folders: [{host: ., guest: /vagrant, exclude: [tmp/]}]\n",
            "field `synced_folders.0.exclude`: applies to rsync folders only",
        ),
    ];
    for (provider, folders, expected) in cases {
        let env = TestEnv::copy_of("example", |_| machinefile(provider, folders));
        for verb in [&["validate"][..], &["up"][..]] {
            let out = env.envctl(verb);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{verb:?}: {}", show(&out));
            assert!(
                stderr.contains(expected) && stderr.contains("Machinefile:8:"),
                "{provider} {verb:?}: {stderr}"
            );
            assert!(!env.state_dir().exists(), "refused, yet .envctl/ was made");
        }
    }
}

#[test]
fn each_provider_says_which_type_each_folder_gets_before_anything_is_made() {
    let folders = "    synced_folders:\n      - {host: ., guest: /vagrant}\n      \
                   - {host: ./src, guest: /srv/app, create: true}\n      \
                   - {host: ./src, guest: /srv/copy, type: rsync, create: true}\n";
    // As Vagrant picks: a bind, rsync under libvirt, a VirtualBox shared folder but for
    // the project folder, whose `.envctl/` a share would show.
    let cases = [
        ("docker", ["bind", "bind", "rsync"]),
        ("libvirt", ["rsync", "rsync", "rsync"]),
        ("virtualbox", ["rsync", "virtualbox", "rsync"]),
    ];
    for (provider, want) in cases {
        let env = TestEnv::copy_of("example", |_| machinefile(provider, folders));
        let status = env.status_json();
        let got: Vec<&str> = status["machines"][0]["synced_folders"]
            .as_array()
            .unwrap()
            .iter()
            .map(|folder| folder["type"].as_str().unwrap())
            .collect();
        assert_eq!(got, want, "{provider}: {status}");
        assert!(!env.state_dir().exists(), "status made .envctl/");
    }
}

/// Waits until `check` holds, up to `limit`; how long it took.
fn within(limit: Duration, mut check: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if check() {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

#[test]
fn docker_bind_and_rsync_folders() {
    require_docker();
    let folders = "    synced_folders:\n      - {host: ., guest: /vagrant}\n      \
                   - {host: ./src, guest: /srv/app, type: rsync, exclude: [target/]}\n";
    // Reads the rsync folder on every up and reload: what it saw shows it was pushed first.
    let provision = "provision:\n  - {name: seen, run: always, shell: {inline: \"cat /srv/app/*.txt > /tmp/seen\"}}\n";
    let env = TestEnv::copy_of("example", |_| {
        machinefile("docker", &format!("{folders}{provision}"))
    });
    fs::create_dir_all(env.dir.join("src/target")).unwrap();
    fs::create_dir_all(env.dir.join("src/.envctl")).unwrap();
    fs::write(env.dir.join("src/a.txt"), "first\n").unwrap();
    fs::write(env.dir.join("src/target/big.o"), "built\n").unwrap();
    fs::write(env.dir.join("src/.envctl/id_ed25519"), "not for guests\n").unwrap();
    chown(&env.dir);

    let up = env.envctl(&["up"]);
    assert!(up.status.success(), "{}", show(&up));
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&up.stdout),
        String::from_utf8_lossy(&up.stderr)
    );
    assert!(
        said.contains("dev: . → /vagrant (bind), ./src → /srv/app (rsync)"),
        "up does not say which type each folder got: {said}"
    );
    let status = env.status_json();
    let listed = &status["machines"][0]["synced_folders"];
    assert_eq!(listed[0]["guest"], "/vagrant", "{status}");
    assert_eq!(listed[0]["type"], "bind", "{status}");
    assert_eq!(listed[1]["guest"], "/srv/app", "{status}");
    assert_eq!(listed[1]["type"], "rsync", "{status}");

    // Live: the guest user is the host user, and each sees the other's writes at once.
    assert_eq!(
        env.ssh("dev", "id -u; id -g"),
        format!("{HOST_UID}\n{HOST_UID}")
    );
    let from_host = env.dir.join("from-host.txt");
    fs::write(&from_host, "written on the host\n").unwrap();
    chown(&from_host);
    assert_eq!(
        env.ssh("dev", "cat /vagrant/from-host.txt"),
        "written on the host"
    );
    env.ssh(
        "dev",
        "echo built in the guest > /vagrant/from-guest.txt && echo more >> /vagrant/from-host.txt",
    );
    let made = fs::metadata(env.dir.join("from-guest.txt")).unwrap();
    assert_eq!(
        (made.uid(), made.gid()),
        (HOST_UID, HOST_UID),
        "not the host user's"
    );
    assert_eq!(
        fs::read_to_string(&from_host).unwrap(),
        "written on the host\nmore\n"
    );

    // `.envctl/`: an empty, read-only file system in the guest, for root too.
    let key = env.envctl(&["ssh", "dev", "--", "cat /vagrant/.envctl/id_ed25519"]);
    assert!(!key.status.success(), "the key was read: {}", show(&key));
    let root = env.ssh(
        "dev",
        "sudo ls -A /vagrant/.envctl | wc -l; sudo cat /vagrant/.envctl/id_ed25519 >/dev/null 2>&1 || echo refused; sudo touch /vagrant/.envctl/x >/dev/null 2>&1 || echo refused",
    );
    assert_eq!(root, "0\nrefused\nrefused");

    // rsync: there since `up`, the machine user's, without `.envctl/` or the excluded.
    assert_eq!(
        env.ssh(
            "dev",
            "cat /srv/app/a.txt; stat -c %U /srv/app/a.txt; ls -A /srv/app"
        ),
        "first\nvagrant\na.txt"
    );
    fs::write(env.dir.join("src/b.txt"), "second\n").unwrap();
    assert_eq!(env.ssh("dev", "ls /srv/app"), "a.txt");
    // A push waits for the environment's lock, as every verb that touches machines does:
    // here another holder keeps it for a moment (flock, as envctl's own lock is).
    let mut holder = Command::new("flock")
        .arg(env.dir.join(".envctl/lock"))
        .args(["sleep", "2"])
        .spawn()
        .expect("run flock (util-linux)");
    std::thread::sleep(Duration::from_millis(300));
    let pushed = env.envctl(&["rsync"]);
    holder.wait().unwrap();
    assert!(pushed.status.success(), "{}", show(&pushed));
    assert!(
        String::from_utf8_lossy(&pushed.stderr).contains("Waiting"),
        "{}",
        show(&pushed)
    );
    assert_eq!(env.ssh("dev", "cat /srv/app/b.txt"), "second");
    assert_eq!(
        env.ssh("dev", "cat /tmp/seen"),
        "first",
        "provisioned before the push"
    );

    // reload pushes before it provisions, as up does.
    fs::write(env.dir.join("src/b.txt"), "second, edited\n").unwrap();
    env.ok(&["reload", "dev"]);
    assert_eq!(env.ssh("dev", "cat /tmp/seen"), "first\nsecond, edited");

    // rsync-auto: pushes what changes, debounced, until Ctrl-C.
    let mut auto = Command::new(env!("CARGO_BIN_EXE_envctl"))
        .args(["rsync-auto", "dev"])
        .current_dir(&env.dir)
        .envs(env.vars.iter().map(|(name, value)| (name, value)))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(auto.stderr.take().unwrap()).lines();
    let watching = lines
        .by_ref()
        .map_while(Result::ok)
        .any(|line| line.contains("Watching"));
    assert!(watching, "rsync-auto never said it watches");
    fs::write(env.dir.join("src/c.txt"), "third\n").unwrap();
    let took = within(Duration::from_secs(10), || {
        env.ssh("dev", "cat /srv/app/c.txt 2>/dev/null || true") == "third"
    });
    eprintln!("rsync-auto: a new file reached the guest in {took:?}");
    assert!(
        took.is_some(),
        "rsync-auto did not push a new file within 10 s"
    );
    let _ = Command::new("kill")
        .args(["-INT", &auto.id().to_string()])
        .status();
    let ended = auto.wait().unwrap();
    assert!(ended.success(), "rsync-auto ended with {ended} on Ctrl-C");

    // Another live folder: the container cannot grow a mount, so `up` says to remake it.
    fs::create_dir_all(env.dir.join("more")).unwrap();
    let more = format!("{folders}      - {{host: ./more, guest: /more}}\n{provision}");
    fs::write(env.dir.join("Machinefile"), machinefile("docker", &more)).unwrap();
    env.ok(&["halt"]);
    let refused = env.envctl(&["up"]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success()
            && stderr.contains("made with other synced folders")
            && stderr.contains("`envctl destroy dev` then `envctl up dev`"),
        "{}",
        show(&refused)
    );
}
