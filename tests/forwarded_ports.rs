//! Forwarded ports on the real Docker Engine: a guest's service answers at its host port;
//! a host port another program holds is refused, naming it, before anything is made; the
//! forward survives `halt` and `up`; `envctl port` and `status --json` list it; nothing
//! listens after `destroy`. A forward the provider cannot make (udp under libvirt) is
//! refused by `validate`. Subnet 10.231.41.0/24. With `auto_correct`, a port another
//! program holds is replaced by one from 2200-2250, reported, kept across `halt` and
//! `up`: subnet 10.231.55.0/24.

mod common;

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use common::{docker_objects, require_docker, show, TestEnv};

fn machinefile(provider: &str, web: u16, db: u16) -> String {
    format!(
        "name: envctl-fwd\nprovider: {provider}\nnetwork: {{subnet: 10.231.41.0/24}}\n\
         defaults: {{libvirt: {{box: debian/bookworm64}}}}\nmachines:\n  \
         - name: web1\n    ip: 10.231.41.11\n    \
         forwarded_ports: [{{guest: 8000, host: {web}}}]\n  \
         - name: db1\n    ip: 10.231.41.12\n    \
         forwarded_ports: [{{guest: 8000, host: {db}}}]\n"
    )
}

/// A port nothing listens on now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// What `GET /hostname` answers at 127.0.0.1:`port`, waiting a little for the service.
fn fetch(port: u16) -> Result<String, String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = String::new();
    while Instant::now() < deadline {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(mut stream) => {
                stream.write_all(b"GET /hostname HTTP/1.0\r\n\r\n").unwrap();
                let mut reply = String::new();
                let _ = stream.read_to_string(&mut reply);
                if let Some((_, body)) = reply.split_once("\r\n\r\n") {
                    return Ok(body.trim().to_string());
                }
                last = format!("a reply without a body: {reply:?}");
            }
            Err(err) => last = err.to_string(),
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    Err(last)
}

#[test]
fn docker_forwarded_ports_reach_the_guest_and_go_with_it() {
    require_docker();
    let (web, db) = (free_port(), free_port());
    let held = TcpListener::bind(("127.0.0.1", db)).unwrap();
    let env = TestEnv::copy_of("example", |_| machinefile("docker", web, db));
    let label = "envctl.env=envctl-fwd";

    // A host port in use: refused, naming the machine, the field and who holds it.
    let refused = env.envctl(&["up"]);
    assert_eq!(refused.status.code(), Some(2), "{}", show(&refused));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("machine `db1`, field `forwarded_ports.0.host`")
            && stderr.contains(&format!("127.0.0.1:{db}/tcp is in use by "))
            && stderr.contains(&format!("(pid {})", std::process::id())),
        "{stderr}"
    );
    assert!(docker_objects("container", label).is_empty());
    assert!(docker_objects("network", label).is_empty());
    assert!(!env.state_dir().exists(), "refused, yet .envctl/ was made");
    drop(held);

    env.ok(&["up"]);
    // A service of the guest's own, started at boot: the host reaches it.
    env.ssh(
        "web1",
        "printf '%s\\n' '[Service]' 'ExecStart=/usr/bin/python3 -m http.server 8000 --directory /etc' \
         '[Install]' 'WantedBy=multi-user.target' | sudo tee /etc/systemd/system/web.service >/dev/null \
         && sudo systemctl enable --now web.service",
    );
    assert_eq!(fetch(web).as_deref(), Ok("web1"));

    let ports = env.ok(&["port", "web1"]);
    assert!(
        ports.contains(&format!("8000 (guest) => {web} (host, 127.0.0.1, tcp)")),
        "{ports}"
    );
    let status = env.status_json();
    let forward = &status["machines"][0]["forwarded_ports"][0];
    assert_eq!(forward["guest"], 8000);
    assert_eq!(forward["host"], u64::from(web));
    assert_eq!(forward["host_ip"], "127.0.0.1");

    // halt closes the port; up opens it again and the service answers once more.
    env.ok(&["halt"]);
    assert!(
        TcpStream::connect(("127.0.0.1", web)).is_err(),
        "open while halted"
    );
    env.ok(&["up"]);
    assert_eq!(fetch(web).as_deref(), Ok("web1"));

    env.ok(&["destroy", "--force"]);
    assert!(
        TcpStream::connect(("127.0.0.1", web)).is_err(),
        "open after destroy"
    );
    assert!(docker_objects("container", label).is_empty());

    // A forward the provider cannot make (libvirt's SSH tunnels carry tcp only):
    // validate says so and changes nothing.
    let udp = machinefile("libvirt", web, db).replacen(
        &format!("{{guest: 8000, host: {web}}}"),
        &format!("{{guest: 8000, host: {web}, protocol: udp}}"),
        1,
    );
    fs::write(env.dir.join("Machinefile"), udp).unwrap();
    let refused = env.envctl(&["validate"]);
    assert_eq!(refused.status.code(), Some(2), "{}", show(&refused));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("machine `web1`, field `forwarded_ports.0`")
            && stderr.contains("the libvirt provider forwards tcp ports only"),
        "{stderr}"
    );
    assert!(!env.state_dir().exists());
}

#[test]
fn docker_auto_correct_replaces_a_taken_port_and_keeps_it() {
    require_docker();
    let asked = free_port();
    let held = TcpListener::bind(("127.0.0.1", asked)).unwrap();
    let env = TestEnv::copy_of("example", |_| {
        format!(
            "name: envctl-fwd-auto\nnetwork: {{subnet: 10.231.55.0/24}}\nmachines:\n  \
             - name: web1\n    ip: 10.231.55.11\n    \
             forwarded_ports: [{{guest: 8000, host: {asked}, auto_correct: true}}]\n"
        )
    });
    let up = env.envctl(&["up"]);
    assert!(up.status.success(), "{}", show(&up));
    let status = env.status_json();
    let forward = &status["machines"][0]["forwarded_ports"][0];
    assert_eq!(forward["auto_correct"], true);
    let chosen = forward["host"].as_u64().unwrap() as u16;
    assert!((2200..=2250).contains(&chosen), "{chosen}");
    let stderr = String::from_utf8_lossy(&up.stderr);
    assert!(
        stderr.contains(&format!(
            "web1: 8000 (guest) => 127.0.0.1:{chosen} (host, tcp), auto-corrected from {asked} (taken)"
        )),
        "{stderr}"
    );
    assert!(env
        .ok(&["port", "web1"])
        .contains(&format!("8000 (guest) => {chosen} (host, 127.0.0.1, tcp)")),);
    env.ssh(
        "web1",
        "printf '%s\\n' '[Service]' 'ExecStart=/usr/bin/python3 -m http.server 8000 --directory /etc' \
         '[Install]' 'WantedBy=multi-user.target' | sudo tee /etc/systemd/system/web.service >/dev/null \
         && sudo systemctl enable --now web.service",
    );
    assert_eq!(fetch(chosen).as_deref(), Ok("web1"));

    // The choice holds across halt and up, though the asked port is free again.
    drop(held);
    env.ok(&["halt"]);
    env.ok(&["up"]);
    assert_eq!(
        env.status_json()["machines"][0]["forwarded_ports"][0]["host"],
        u64::from(chosen)
    );
    assert_eq!(fetch(chosen).as_deref(), Ok("web1"));

    env.ok(&["destroy", "--force"]);
    assert!(
        TcpStream::connect(("127.0.0.1", chosen)).is_err(),
        "open after destroy"
    );
}
