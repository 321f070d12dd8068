//! The libvirt provider against a real libvirtd, with guests under QEMU/TCG.
//!
//! These tests need libvirtd on qemu:///system: when it does not answer they fail with a
//! message that says to run scripts/ensure-libvirt; they never skip. The boot test needs
//! the test box `${ENVCTL_CACHE:-~/.cache/envctl}/boxes/debian-bookworm-test.box` (made by
//! scripts/ensure-test-box); it waits for the file to appear, and fails when it does not.
//!
//! `ENVCTL_TEST_BOX_DIR=<folder>` boots an already unpacked box instead (its folder name,
//! less a `box-` prefix, is the box version).
//!
//! Each test names its environment with its own prefix and the process id, removes what an
//! earlier run of it left behind when it starts, and removes what it made when it ends,
//! pass or fail (a guard).

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, UNIX_EPOCH};

use envctl_libvirt::{Accel, LibvirtOptions, LibvirtProvider};
use envctl_provider::{
    Access, BoxImage, EnvironmentSpec, ImageSource, MachineSpec, MachineState, Phase, Provider,
    ProviderError,
};
use virt::connect::Connect;

const URI: &str = "qemu:///system";
const BOX_NAME: &str = "envctl/debian-bookworm-test";
const BOOT_DEADLINE: Duration = Duration::from_secs(600);
const BOX_WAIT: Duration = Duration::from_secs(1800);

// ---------------------------------------------------------------------------------------
// The tests

#[tokio::test]
async fn libvirt_connect_without_daemon_says_what_to_start() {
    let opts = LibvirtOptions {
        uri: Some("qemu+unix:///system?socket=/nonexistent/libvirt-sock".to_string()),
        ..LibvirtOptions::default()
    };
    if std::env::var_os("LIBVIRT_DEFAULT_URI").is_some() {
        panic!("unset LIBVIRT_DEFAULT_URI: it overrides the URI this test needs");
    }
    match LibvirtProvider::connect(opts).await {
        Err(ProviderError::Unavailable {
            endpoint, reason, ..
        }) => {
            assert!(endpoint.contains("/nonexistent/libvirt-sock"), "{endpoint}");
            assert!(reason.contains("systemctl start libvirtd"), "{reason}");
        }
        Err(other) => panic!("expected unavailable, got {other}"),
        Ok(_) => panic!("connected to a socket that does not exist"),
    }
}

#[tokio::test]
async fn libvirt_preflight_refuses_overlaps_foreign_names_and_bad_boxes() {
    let provider = provider().await;
    let name = unique("lvt-pre");
    let _guard = Guard::new(&name, &["lvt-pre-"]);
    let bad_box = tempdir(&name).join("bad-box");
    std::fs::create_dir_all(&bad_box).expect("make the bad box folder");
    std::fs::write(
        bad_box.join("metadata.json"),
        r#"{"provider":"virtualbox"}"#,
    )
    .expect("write metadata");
    let good_box = tempdir(&name).join("good-box");
    std::fs::create_dir_all(&good_box).expect("make the good box folder");
    std::fs::write(
        good_box.join("metadata.json"),
        r#"{"provider":"libvirt","format":"qcow2"}"#,
    )
    .expect("write metadata");
    std::fs::write(good_box.join("box.img"), b"not really qcow2").expect("write box.img");

    // Someone else's network in the middle of the subnet.
    let blocker = format!("{name}-blocker");
    define_network(&blocker, None, "10.213.51.65", 26);
    let env = env(&name, "10.213.51.0/24");
    let machines = [machine(&env, "m1", 10, &good_box, "1")];
    match provider.preflight(&env, &machines).await {
        Err(ProviderError::SubnetConflict { subnet, other }) => {
            assert_eq!(subnet, env.network.subnet);
            assert!(
                other.contains(&blocker),
                "the conflict names `{other}`, not {blocker}"
            );
        }
        other => panic!("preflight let an overlapping subnet through: {other:?}"),
    }

    // A network with the environment's name that is not its own.
    let free = env_with_id(&name, "10.213.52.0/24", &env.id);
    define_network(&free.network_name(), None, "10.213.53.1", 24);
    let machines = [machine(&free, "m1", 10, &good_box, "1")];
    match provider.preflight(&free, &machines).await {
        Err(err @ ProviderError::Backend { .. }) => {
            let text = format!("{err}: {}", source_text(&err));
            assert!(
                text.contains(&free.network_name()) && text.contains("not made by envctl"),
                "{text}"
            );
        }
        other => panic!("preflight accepted someone else's network: {other:?}"),
    }
    undefine_network(&free.network_name());
    provider
        .preflight(&free, &machines)
        .await
        .expect("preflight of a free subnet");

    let machines = [machine(&free, "m1", 10, &bad_box, "1")];
    match provider.preflight(&free, &machines).await {
        Err(ProviderError::Image { image, reason }) => {
            assert_eq!(image, format!("{BOX_NAME} 1"));
            assert!(reason.contains("virtualbox"), "{reason}");
        }
        other => panic!("preflight accepted a virtualbox box: {other:?}"),
    }

    // A domain with a machine's name that is not the environment's is left alone.
    let foreign = free.resource_name("m1");
    define_bare_domain(&foreign);
    let good = machine(&free, "m1", 10, &good_box, "1");
    let report = Recorder::default();
    for result in [
        provider.up(&free, &good, &report).await.map(|_| ()),
        provider.destroy(&free, "m1").await,
        provider.halt(&free, "m1").await,
    ] {
        let err = result.expect_err("someone else's domain was touched");
        let text = format!("{err}: {}", source_text(&err));
        assert!(
            text.contains(&foreign) && text.contains("not made by envctl"),
            "{text}"
        );
    }
    assert!(domain_exists(&foreign), "the foreign domain is still there");
    assert_eq!(provider.status(&free).await.expect("status"), vec![]);
}

#[tokio::test]
async fn libvirt_auto_acceleration_is_probed_once_and_bounded() {
    let provider = provider().await;
    let started = Instant::now();
    let accel = provider.acceleration().await;
    let first = started.elapsed();
    let started = Instant::now();
    assert_eq!(provider.acceleration().await, accel, "the answer is kept");
    let second = started.elapsed();
    eprintln!("acceleration {accel:?}: probed in {first:.1?}, then {second:.1?}");
    assert!(matches!(accel, Accel::Kvm | Accel::Tcg));
    assert!(
        first < Duration::from_secs(10),
        "the probe is bounded: {first:?}"
    );
    if !Path::new("/dev/kvm").exists() {
        assert_eq!(accel, Accel::Tcg);
    }
}

#[tokio::test]
async fn libvirt_two_machines_boot_resolve_each_other_and_go_away() {
    let provider = provider().await;
    let _box_volume_is_mine = BOX_VOLUME_USERS.lock().await;
    let name = unique("lvt-main");
    let guard = Guard::new(&name, &["lvt-main-"]);
    let (box_dir, version) = test_box().await;
    let box_volume = envctl_libvirt::box_volume_name(&BoxImage {
        name: BOX_NAME.into(),
        version: version.clone(),
        dir: box_dir.clone(),
    });
    // Start from no box volume, so the upload is measured, and drop those of earlier
    // builds of the test box: only these tests use this box name.
    sweep("envctl-box-envctl-VAGRANTSLASH-debian-bookworm-test-");
    assert!(!volume_exists(&box_volume));

    let env = env(&name, "10.213.50.0/24");
    let alpha = machine(&env, "alpha", 10, &box_dir, &version);
    let beta = machine(&env, "beta", 11, &box_dir, &version);
    let both = [alpha.clone(), beta.clone()];
    let key = insecure_key(&name);
    eprintln!("acceleration: {:?}", provider.acceleration().await);

    provider.preflight(&env, &both).await.expect("preflight");

    // prepare uploads the box once; the second prepare adds beta's lease and uploads nothing.
    let report = Recorder::default();
    let started = Instant::now();
    provider
        .prepare(&env, std::slice::from_ref(&alpha), &report)
        .await
        .expect("first prepare");
    let first_prepare = started.elapsed();
    assert!(
        report.saw("alpha", Phase::BuildingImage),
        "the first prepare uploads the box"
    );
    let (key_before, capacity_before) = volume_identity(&box_volume);
    let report = Recorder::default();
    let started = Instant::now();
    provider
        .prepare(&env, &both, &report)
        .await
        .expect("second prepare");
    let second_prepare = started.elapsed();
    assert!(
        !report.saw("alpha", Phase::BuildingImage) && !report.saw("beta", Phase::BuildingImage)
    );
    assert_eq!(volume_identity(&box_volume), (key_before, capacity_before));
    eprintln!("prepare: first (upload) {first_prepare:.1?}, second {second_prepare:.1?}");
    let net_xml = network_xml(&env.network_name());
    for machine in &both {
        assert!(
            net_xml.contains(&format!("ip='{}'", machine.ip)),
            "no lease for {}:\n{net_xml}",
            machine.name
        );
    }
    assert!(!net_xml.contains("<range"), "{net_xml}");
    assert_eq!(network_autostart(&env.network_name()), Some(false));

    // One machine alone, then both at once: time to SSH.
    let started = Instant::now();
    let up = provider
        .up(&env, &alpha, &report)
        .await
        .expect("up alpha alone");
    assert!(up.changed && up.access == Access::VagrantInsecureKey && up.guest_address.is_none());
    wait_for_ssh(&provider, &env, &alpha, &key).await;
    let alone = started.elapsed();
    provider
        .destroy(&env, "alpha")
        .await
        .expect("destroy alpha after the lone boot");

    let started = Instant::now();
    let (a, b) = tokio::join!(
        async {
            let up = provider.up(&env, &alpha, &report).await.expect("up alpha");
            wait_for_ssh(&provider, &env, &alpha, &key).await;
            (up, started.elapsed())
        },
        async {
            let up = provider.up(&env, &beta, &report).await.expect("up beta");
            wait_for_ssh(&provider, &env, &beta, &key).await;
            (up, started.elapsed())
        },
    );
    eprintln!(
        "time to ssh: 1 machine alone {alone:.1?}; 2 in parallel: alpha {:.1?}, beta {:.1?}",
        a.1, b.1
    );
    for (machine, up) in [(&alpha, &a.0), (&beta, &b.0)] {
        assert!(up.changed);
        assert_eq!(up.endpoint.host, machine.ip.to_string());
        assert_eq!(up.endpoint.port, 22);
    }

    // Each resolves the other's hostname with its own resolver, and the network's dnsmasq
    // answers for every name of the other.
    for (from, to) in [(&alpha, &beta), (&beta, &alpha)] {
        let name = &to.hostname;
        let out = ssh(&key, from.ip, &format!("getent hosts {name}"))
            .unwrap_or_else(|| panic!("{} does not resolve {name}", from.name));
        assert!(
            out.contains(&to.ip.to_string()),
            "{} resolves {name} as `{out}`",
            from.name
        );
        for name in &to.aliases {
            let asked = format!("python3 -c '{DNS_QUERY}' {name} {}", env.network.gateway);
            let out = ssh(&key, from.ip, &asked).unwrap_or_default();
            assert_eq!(
                out.trim(),
                to.ip.to_string(),
                "dnsmasq answers {name} to {}",
                from.name
            );
        }
        // A single-label name reaches dnsmasq only when the guest searches the network's
        // domain (systemd-networkd's UseDomains=): the box decides, so this is only told.
        let short = ssh(&key, from.ip, &format!("getent hosts {}", to.name));
        eprintln!(
            "{} resolves `{}` with its own resolver: {}",
            from.name,
            to.name,
            short.as_deref().map_or("no", str::trim)
        );
        let log = console_log(&env, &from.name);
        assert!(
            std::fs::metadata(&log)
                .map(|m| m.len() > 0)
                .unwrap_or(false),
            "{} is empty",
            log.display()
        );
        let tail = provider
            .log_tail(&env, &from.name, 5)
            .await
            .expect("a console log tail");
        assert!(!tail.is_empty() && tail.lines().count() <= 5, "{tail}");
    }

    let status = provider.status(&env).await.expect("status");
    assert_eq!(
        states(&status),
        [
            ("alpha", MachineState::Running),
            ("beta", MachineState::Running)
        ]
    );
    assert_eq!(status[0].id, a.0.id);
    let again = provider
        .up(&env, &alpha, &report)
        .await
        .expect("up a running machine");
    assert!(!again.changed && again.id == a.0.id);

    let started = Instant::now();
    let (x, y) = tokio::join!(provider.halt(&env, "alpha"), provider.halt(&env, "beta"));
    x.expect("halt alpha");
    y.expect("halt beta");
    eprintln!("halt of both: {:.1?}", started.elapsed());
    let status = provider.status(&env).await.expect("status after halt");
    assert_eq!(
        states(&status),
        [
            ("alpha", MachineState::Stopped),
            ("beta", MachineState::Stopped)
        ]
    );
    provider
        .halt(&env, "alpha")
        .await
        .expect("halt a stopped machine");

    let up = provider
        .up(&env, &alpha, &report)
        .await
        .expect("up a stopped machine");
    assert!(up.changed && up.id == a.0.id);
    let status = provider.status(&env).await.expect("status after up");
    assert_eq!(
        states(&status),
        [
            ("alpha", MachineState::Running),
            ("beta", MachineState::Stopped)
        ]
    );

    // What `envctl gc` sees: the owner, with its folder, and everything made for it.
    let holding = provider
        .holdings()
        .await
        .expect("holdings")
        .into_iter()
        .find(|holding| holding.owner.env_id == env.id)
        .expect("the environment's holding");
    assert_eq!(holding.owner.env, name);
    assert_eq!(holding.owner.project_dir.as_ref(), Some(&env.project_dir));
    assert_eq!(
        holding.resources,
        [
            format!("domain {name}-alpha"),
            format!("domain {name}-beta"),
            format!("network {}", env.network_name()),
        ]
    );

    for machine in ["alpha", "beta"] {
        provider.destroy(&env, machine).await.expect("destroy");
        provider
            .destroy(&env, machine)
            .await
            .expect("destroy a missing machine");
    }
    provider.teardown(&env).await.expect("teardown");
    provider.teardown(&env).await.expect("teardown again");
    assert_eq!(
        provider.status(&env).await.expect("status after destroy"),
        vec![]
    );
    let holdings = provider.holdings().await.expect("holdings after teardown");
    assert!(
        holdings.iter().all(|h| h.owner.env_id != env.id),
        "{holdings:?}"
    );
    let leftovers = guard.leftovers();
    assert!(leftovers.is_empty(), "left behind: {leftovers:?}");
    for machine in ["alpha", "beta"] {
        assert!(
            !console_log(&env, machine).exists(),
            "the console log of {machine} stays"
        );
    }
    assert!(
        volume_exists(&box_volume),
        "the box volume is shared and stays"
    );
}

/// The same provider through `qemu+ssh://`: the box goes up through a stream, no local
/// path is handed to the daemon, and no console log is written on this side.
#[tokio::test]
async fn libvirt_over_ssh_brings_a_machine_up_the_same_way() {
    let uri = std::env::var("ENVCTL_TEST_LIBVIRT_SSH_URI").unwrap_or_else(|_| {
        "qemu+ssh://root@127.0.0.1:2222/system?command=/var/lib/envctl-test/libvirt-ssh/ssh"
            .to_string()
    });
    let opts = LibvirtOptions {
        uri: Some(uri.clone()),
        accel: Accel::Tcg,
        halt_timeout: Duration::from_secs(30),
    };
    let provider = match LibvirtProvider::connect(opts).await {
        Ok(provider) => provider,
        Err(err) => {
            panic!("libvirtd does not answer on {uri}: run scripts/ensure-libvirt-ssh ({err})")
        }
    };
    assert_eq!(provider.uri(), uri);
    let _box_volume_is_mine = BOX_VOLUME_USERS.lock().await;
    let name = unique("lvt-ssh");
    let guard = Guard::new(&name, &["lvt-ssh-"]);
    let (box_dir, version) = test_box().await;
    let env = env(&name, "10.213.60.0/24");
    let alpha = machine(&env, "alpha", 10, &box_dir, &version);
    let key = insecure_key(&name);

    provider
        .preflight(&env, std::slice::from_ref(&alpha))
        .await
        .expect("preflight over ssh");
    let report = Recorder::default();
    provider
        .prepare(&env, std::slice::from_ref(&alpha), &report)
        .await
        .expect("prepare over ssh");
    let up = provider
        .up(&env, &alpha, &report)
        .await
        .expect("up over ssh");
    assert!(up.changed && up.access == Access::VagrantInsecureKey);
    wait_for_ssh(&provider, &env, &alpha, &key).await;
    assert_eq!(
        states(&provider.status(&env).await.expect("status")),
        [("alpha", MachineState::Running)]
    );
    assert!(
        !console_log(&env, "alpha").exists(),
        "a console log was written locally for a remote daemon"
    );
    assert!(provider.log_tail(&env, "alpha", 5).await.is_none());

    provider.halt(&env, "alpha").await.expect("halt over ssh");
    assert_eq!(
        states(&provider.status(&env).await.expect("status")),
        [("alpha", MachineState::Stopped)]
    );
    provider
        .destroy(&env, "alpha")
        .await
        .expect("destroy over ssh");
    provider.teardown(&env).await.expect("teardown over ssh");
    let leftovers = guard.leftovers();
    assert!(leftovers.is_empty(), "left behind: {leftovers:?}");
}

// ---------------------------------------------------------------------------------------
// Specs

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", std::process::id())
}

fn env(name: &str, subnet: &str) -> EnvironmentSpec {
    env_with_id(name, subnet, &envctl_testkit::unique_id())
}

fn env_with_id(name: &str, subnet: &str, id: &str) -> EnvironmentSpec {
    let mut env = envctl_testkit::env(name, subnet);
    env.who.id = id.to_string();
    env.who.project_dir = PathBuf::from(format!("/tmp/{name}"));
    env.who.console_dir = tempdir(name).join("console");
    env
}

fn machine(
    env: &EnvironmentSpec,
    name: &str,
    host: u32,
    box_dir: &Path,
    version: &str,
) -> MachineSpec {
    let image = ImageSource::Box(BoxImage {
        name: BOX_NAME.to_string(),
        version: version.to_string(),
        dir: box_dir.to_path_buf(),
    });
    MachineSpec {
        memory_mib: 512,
        ..envctl_testkit::machine(env, name, host, image)
    }
}

fn tempdir(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name)
}

fn console_log(env: &EnvironmentSpec, machine: &str) -> PathBuf {
    env.console_dir.join(format!("{machine}.log"))
}

fn states(status: &[envctl_provider::MachineStatus]) -> Vec<(&str, MachineState)> {
    status
        .iter()
        .map(|m| (m.name.as_str(), m.state.clone()))
        .collect()
}

fn source_text(err: &ProviderError) -> String {
    std::error::Error::source(err)
        .map(|source| source.to_string())
        .unwrap_or_default()
}

use envctl_testkit::Recorder;

// ---------------------------------------------------------------------------------------
// The provider, the box and SSH

async fn provider() -> LibvirtProvider {
    let opts = LibvirtOptions {
        uri: Some(URI.to_string()),
        accel: Accel::Auto,
        halt_timeout: Duration::from_secs(60),
    };
    match LibvirtProvider::connect(opts).await {
        Ok(provider) => provider,
        Err(err) => panic!("libvirtd does not answer on {URI}: run scripts/ensure-libvirt ({err})"),
    }
}

/// Held by each test that boots from the test box's volume, for as long as it runs: one of
/// them deletes every volume of the box first (to measure the upload), which would pull
/// the disk from under a machine of another test running beside it.
static BOX_VOLUME_USERS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Waits for the test box, unpacks it once per build and returns the folder and a version
/// that changes with each build.
async fn test_box() -> (PathBuf, String) {
    if let Some(dir) = std::env::var_os("ENVCTL_TEST_BOX_DIR") {
        let dir = PathBuf::from(dir);
        let name = dir
            .file_name()
            .map(|name| name.to_string_lossy().into_owned());
        let version = name
            .unwrap_or_default()
            .trim_start_matches("box-")
            .to_string();
        return (dir, version);
    }
    let cache = std::env::var_os("ENVCTL_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/envctl")
        });
    let boxfile = cache.join("boxes/debian-bookworm-test.box");
    let started = Instant::now();
    while !boxfile.exists() {
        assert!(
            started.elapsed() < BOX_WAIT,
            "no test box at {}: run scripts/ensure-test-box",
            boxfile.display()
        );
        tokio::time::sleep(Duration::from_secs(10)).await;
    }
    unpack_once(&boxfile)
}

/// Unpacks the box beside the test binary unless this build of it already is. The tests
/// of this binary run in parallel and each asks for the box: one unpacks it while the
/// others wait, or they would share (and delete) each other's half-written folder.
fn unpack_once(boxfile: &Path) -> (PathBuf, String) {
    static UNPACKING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = UNPACKING
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let meta = std::fs::metadata(boxfile).expect("stat the test box");
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    let version = format!("{}.{}", mtime, meta.len());
    let dir = tempdir(&format!("box-{version}"));
    // Earlier builds' unpacked boxes are of no more use.
    for entry in std::fs::read_dir(tempdir(""))
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("box-") && entry.path() != dir {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    if !dir.join("box.img").exists() {
        let partial = tempdir(&format!("box-{version}.partial"));
        let _ = std::fs::remove_dir_all(&partial);
        std::fs::create_dir_all(&partial).expect("make the box folder");
        let status = Command::new("tar")
            .arg("-xf")
            .arg(boxfile)
            .arg("-C")
            .arg(&partial)
            .status()
            .expect("run tar");
        assert!(status.success(), "unpacking {} failed", boxfile.display());
        std::fs::rename(&partial, &dir).expect("move the unpacked box in place");
    }
    (dir, version)
}

/// A private copy of Vagrant's insecure ed25519 key, mode 600 as ssh wants.
fn insecure_key(name: &str) -> PathBuf {
    let source = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../images/libvirt-box/vagrant-insecure-keys/vagrant.key.ed25519");
    let key = tempdir(name).join("vagrant.key.ed25519");
    std::fs::create_dir_all(tempdir(name)).expect("make the test folder");
    std::fs::copy(&source, &key).expect("copy the insecure key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod the key");
    key
}

async fn wait_for_ssh(
    provider: &LibvirtProvider,
    env: &EnvironmentSpec,
    machine: &MachineSpec,
    key: &Path,
) {
    let started = Instant::now();
    let addr = SocketAddr::from((machine.ip, 22));
    loop {
        if started.elapsed() > BOOT_DEADLINE {
            let tail = provider
                .log_tail(env, &machine.name, 30)
                .await
                .unwrap_or_default();
            panic!(
                "{} did not answer ssh within {BOOT_DEADLINE:?}; console:\n{tail}",
                machine.name
            );
        }
        let open = tokio::task::spawn_blocking(move || {
            TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok()
        })
        .await
        .unwrap_or(false);
        if open {
            let (key, ip) = (key.to_path_buf(), machine.ip);
            let answer = tokio::task::spawn_blocking(move || ssh(&key, ip, "hostname"))
                .await
                .ok()
                .flatten();
            if answer.is_some_and(|name| !name.trim().is_empty()) {
                return;
            }
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// Asks the DNS server argv[2] for the A record of argv[1] and prints the address.
const DNS_QUERY: &str = r#"import socket, struct, sys
name, server = sys.argv[1], sys.argv[2]
labels = b"".join(bytes([len(p)]) + p.encode() for p in name.split("."))
query = struct.pack(">6H", 7, 0x100, 1, 0, 0, 0) + labels + bytes(1) + struct.pack(">2H", 1, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(5)
s.sendto(query, (server, 53))
reply = s.recv(512)
print(socket.inet_ntoa(reply[-4:]) if struct.unpack(">H", reply[6:8])[0] else "")"#;

fn ssh(key: &Path, ip: Ipv4Addr, command: &str) -> Option<String> {
    let output = Command::new("ssh")
        .arg("-i")
        .arg(key)
        .args([
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
        ])
        .args([
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=5",
            "-o",
            "LogLevel=ERROR",
        ])
        .arg(format!("vagrant@{ip}"))
        .arg(command)
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}

// ---------------------------------------------------------------------------------------
// libvirt, directly, to set the scene and to check what the provider left

fn connect() -> Connect {
    Connect::open(Some(URI)).unwrap_or_else(|err| {
        panic!("libvirtd does not answer on {URI}: run scripts/ensure-libvirt ({err})")
    })
}

fn define_network(name: &str, _owner: Option<&str>, gateway: &str, prefix: u8) {
    let xml = format!(
        "<network><name>{name}</name><ip address='{gateway}' prefix='{prefix}'/></network>"
    );
    connect()
        .define_network_xml(&xml)
        .expect("define a network");
}

fn undefine_network(name: &str) {
    if let Ok(net) = connect().lookup_network_by_name(name) {
        let _ = net.destroy();
        let _ = net.undefine();
    }
}

fn define_bare_domain(name: &str) {
    let xml = format!(
        "<domain type='qemu'><name>{name}</name><memory unit='MiB'>64</memory>\
         <os><type arch='x86_64'>hvm</type></os></domain>"
    );
    connect().define_domain_xml(&xml).expect("define a domain");
}

fn domain_exists(name: &str) -> bool {
    connect().lookup_domain_by_name(name).is_ok()
}

fn network_xml(name: &str) -> String {
    let net = connect()
        .lookup_network_by_name(name)
        .expect("the network exists");
    net.xml_desc(0).expect("the network's XML")
}

fn network_autostart(name: &str) -> Option<bool> {
    connect()
        .lookup_network_by_name(name)
        .ok()?
        .autostart()
        .ok()
}

fn volume_identity(name: &str) -> (String, u64) {
    let pool = connect()
        .lookup_storage_pool_by_name("default")
        .expect("pool default");
    let volume = pool
        .lookup_storage_vol_by_name(name)
        .expect("the box volume exists");
    (
        volume.key().expect("its key"),
        volume.info().expect("its info").capacity,
    )
}

fn volume_exists(name: &str) -> bool {
    let pool = connect()
        .lookup_storage_pool_by_name("default")
        .expect("pool default");
    pool.lookup_storage_vol_by_name(name).is_ok()
}

/// Removes every domain, network and volume whose name starts with the test's name (or,
/// at the start, with the test's prefix: an earlier run's), and the test's folder.
struct Guard {
    name: String,
}

impl Guard {
    fn new(name: &str, earlier: &[&str]) -> Guard {
        for prefix in earlier {
            sweep(prefix);
        }
        let _ = std::fs::remove_dir_all(tempdir(name));
        Guard {
            name: name.to_string(),
        }
    }

    /// What is still there with the test's name.
    fn leftovers(&self) -> Vec<String> {
        let connect = connect();
        let prefix = format!("{}-", self.name);
        let mut left: Vec<String> = Vec::new();
        for domain in connect.list_all_domains(0).unwrap_or_default() {
            left.extend(
                domain
                    .name()
                    .ok()
                    .filter(|name| name.starts_with(&prefix))
                    .map(|n| format!("domain {n}")),
            );
        }
        for net in connect.list_all_networks(0).unwrap_or_default() {
            left.extend(
                net.name()
                    .ok()
                    .filter(|name| name.starts_with(&prefix))
                    .map(|n| format!("network {n}")),
            );
        }
        if let Ok(pool) = connect.lookup_storage_pool_by_name("default") {
            let _ = pool.refresh(0);
            for name in pool.list_volumes().unwrap_or_default() {
                if name.starts_with(&prefix) {
                    left.push(format!("volume {name}"));
                }
            }
        }
        left
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        // ENVCTL_TEST_KEEP=1 leaves a failed test's machines up to look at; the next run
        // of the test removes them.
        if std::thread::panicking() && std::env::var_os("ENVCTL_TEST_KEEP").is_some() {
            return;
        }
        sweep(&format!("{}-", self.name));
        let _ = std::fs::remove_dir_all(tempdir(&self.name));
    }
}

fn sweep(prefix: &str) {
    let Ok(connect) = Connect::open(Some(URI)) else {
        return;
    };
    for domain in connect.list_all_domains(0).unwrap_or_default() {
        if domain.name().is_ok_and(|name| name.starts_with(prefix)) {
            let _ = domain.destroy();
            let _ = domain.undefine_flags(
                virt::sys::VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | virt::sys::VIR_DOMAIN_UNDEFINE_NVRAM,
            );
        }
    }
    for net in connect.list_all_networks(0).unwrap_or_default() {
        if net.name().is_ok_and(|name| name.starts_with(prefix)) {
            let _ = net.destroy();
            let _ = net.undefine();
        }
    }
    if let Ok(pool) = connect.lookup_storage_pool_by_name("default") {
        let _ = pool.refresh(0);
        for volume in pool.list_all_volumes(0).unwrap_or_default() {
            if volume.name().is_ok_and(|name| name.starts_with(prefix)) {
                let _ = volume.delete(0);
            }
        }
    }
}
