use std::io::Read;

use envctl_provider::{BoxImage, HostKey, ImageSource};
use serde_json::Value;

use super::*;

fn machine() -> MachineSpec {
    MachineSpec {
        name: "web1".into(),
        hostname: "web1.example.test".into(),
        ip: "10.0.0.11".parse().unwrap(),
        cpus: 1,
        memory_mib: 512,
        user: "vagrant".into(),
        aliases: vec![],
        image: ImageSource::Box(BoxImage {
            name: "debian/bookworm64".into(),
            version: "0".into(),
            dir: "/nowhere".into(),
        }),
        authorized_key: "ssh-ed25519 AAAAenv envctl it's".into(),
        host_key: HostKey {
            private_openssh:
                "-----BEGIN OPENSSH PRIVATE KEY-----\nSECRET\n-----END OPENSSH PRIVATE KEY-----\n"
                    .into(),
            public_openssh: "ssh-ed25519 AAAAhost".into(),
        },
        init: envctl_provider::Init::default(),
        forwarded_ports: Vec::new(),
        binds: Vec::new(),
        user_ids: None,
    }
}

fn seed(machine: &MachineSpec) -> Seed<'_> {
    Seed {
        machine,
        instance_id: "0123abcd-web1",
        mac: "52:54:00:aa:bb:cc",
        search_domain: Some("example.test"),
        dns_server: "10.0.0.1".parse().unwrap(),
    }
}

/// Reads a file back out of the image with fatfs, the way a guest's vfat driver would.
fn read_back(image: &[u8], name: &str) -> String {
    let fs = fatfs::FileSystem::new(Cursor::new(image.to_vec()), fatfs::FsOptions::new())
        .expect("the seed is not a FAT file system");
    let mut text = String::new();
    fs.root_dir()
        .open_file(name)
        .unwrap_or_else(|err| panic!("{name} missing: {err}"))
        .read_to_string(&mut text)
        .unwrap();
    text
}

#[test]
fn the_seed_is_a_vfat_disk_labelled_cidata_that_linux_recognises() {
    let machine = machine();
    let image = seed(&machine).image().unwrap();
    let fs = fatfs::FileSystem::new(Cursor::new(image.clone()), fatfs::FsOptions::new()).unwrap();
    assert_eq!(fs.volume_label(), "CIDATA");
    let mut names: Vec<String> = fs
        .root_dir()
        .iter()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    names.sort();
    assert_eq!(names, ["meta-data", "network-config", "user-data"]);
    // cloud-init finds the seed through blkid: it must see vfat and the label.
    let path = std::env::temp_dir().join(format!("envctl-seed-test-{}.img", std::process::id()));
    std::fs::write(&path, &image).unwrap();
    let probe = std::process::Command::new("blkid")
        .args(["-p", "-o", "export"])
        .arg(&path)
        .output()
        .expect("running blkid (util-linux)");
    std::fs::remove_file(&path).unwrap();
    let found = String::from_utf8_lossy(&probe.stdout);
    assert!(found.contains("TYPE=vfat"), "blkid saw: {found}");
    assert!(found.contains("LABEL=CIDATA"), "blkid saw: {found}");
}

#[test]
fn user_data_makes_the_machine_one_of_the_environment() {
    let machine = machine();
    let text = read_back(&seed(&machine).image().unwrap(), "user-data");
    let body = text
        .strip_prefix("#cloud-config\n")
        .expect("user-data must start with #cloud-config");
    let config: Value = serde_json::from_str(body).unwrap();
    let user = &config["users"][0];
    assert_eq!(user["name"], "vagrant");
    assert_eq!(
        user["ssh_authorized_keys"],
        json!(["ssh-ed25519 AAAAenv envctl it's"])
    );
    assert_eq!(user["lock_passwd"], true);
    assert_eq!(config["ssh_keys"]["ed25519_public"], "ssh-ed25519 AAAAhost");
    assert!(config["ssh_keys"]["ed25519_private"]
        .as_str()
        .unwrap()
        .contains("SECRET"));
    assert_eq!(config["ssh_deletekeys"], true);
    // Setting it would make cloud-init restart sshd after the machine answered.
    assert!(config.get("ssh_pwauth").is_none());
    assert_eq!(config["hostname"], "web1");
    assert_eq!(config["fqdn"], "web1.example.test");
    let dropin = &config["write_files"][0];
    assert_eq!(dropin["path"], "/etc/ssh/sshd_config.d/00-envctl.conf");
    for setting in ["PasswordAuthentication no", "PermitRootLogin no"] {
        assert!(dropin["content"].as_str().unwrap().contains(setting));
    }
    // Keys the box trusted before are dropped once, before cloud-init adds ours, and the
    // command is valid shell.
    let bootcmd: Vec<&str> = config["bootcmd"][0]
        .as_array()
        .unwrap()
        .iter()
        .map(|word| word.as_str().unwrap())
        .collect();
    assert_eq!(
        bootcmd[..3],
        ["cloud-init-per", "instance", "envctl-forget-box-keys"]
    );
    assert_eq!(bootcmd.last(), Some(&"vagrant"));
    let script = bootcmd[5];
    assert!(script.contains("rm -f \"$home/.ssh/authorized_keys\""));
    let check = std::process::Command::new("sh")
        .args(["-n", "-c", script])
        .status()
        .unwrap();
    assert!(check.success());
}

#[test]
fn meta_and_network_config_name_the_instance_and_the_nic() {
    let machine = machine();
    let image = seed(&machine).image().unwrap();
    let meta: Value = serde_json::from_str(&read_back(&image, "meta-data")).unwrap();
    assert_eq!(
        meta,
        json!({"instance-id": "0123abcd-web1", "local-hostname": "web1"})
    );
    let network: Value = serde_json::from_str(&read_back(&image, "network-config")).unwrap();
    assert_eq!(
        network,
        json!({"version": 2, "ethernets": {"envctl0": {
            "match": {"macaddress": "52:54:00:aa:bb:cc"},
            "dhcp4": true,
            "nameservers": {"addresses": ["10.0.0.1"], "search": ["example.test"]},
        }}})
    );
    let without_domain = Seed {
        search_domain: None,
        ..seed(&machine)
    };
    let network: Value = serde_json::from_str(&read_back(
        &without_domain.image().unwrap(),
        "network-config",
    ))
    .unwrap();
    assert!(network["ethernets"]["envctl0"].get("nameservers").is_none());
}
