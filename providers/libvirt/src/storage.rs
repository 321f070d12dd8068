//! Disks: the storage pool, the box's disk uploaded once as a shared volume, and each
//! machine's copy-on-write overlay on it.
//!
//! Everything goes through libvirt's storage API, and the box through a stream upload,
//! so a remote libvirt (`qemu+ssh://`) is served exactly like a local one.

use std::fs::File;
use std::io::Read;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use envctl_provider::{BoxImage, ProviderError};
use virt::connect::Connect;
use virt::storage_pool::StoragePool;
use virt::storage_vol::StorageVol;
use virt::stream::Stream;

use crate::conn::{backend_error, found};
use crate::xml;

/// The pool every volume goes in, made when missing.
pub(crate) const POOL: &str = "default";
const POOL_DIR: &str = "/var/lib/libvirt/images";

/// How long libvirt may take to notice an uploaded volume's format.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(60);

const UPLOAD_CHUNK: usize = 1 << 20;

/// A box's disk, checked to be a libvirt qcow2 box.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct BoxDisk {
    /// `name version`, for messages.
    pub label: String,
    pub volume: String,
    pub path: PathBuf,
    pub size: u64,
}

/// The volume a box is uploaded to, shared by every environment that uses the box:
/// `envctl-box-debian-VAGRANTSLASH-bookworm64-12.20240503.1.img`.
pub fn box_volume_name(image: &BoxImage) -> String {
    let name = image.name.replace('/', "-VAGRANTSLASH-");
    // Two builds of a box under one name and version (a rebuilt test box, a box added
    // again with --force) must not share a volume: the fingerprint tells them apart.
    match fingerprint(&image.dir.join("box.img")) {
        Some(print) => sanitise(&format!("envctl-box-{name}-{}-{print}.img", image.version)),
        None => sanitise(&format!("envctl-box-{name}-{}.img", image.version)),
    }
}

/// Eight hex digits of the disk file's size and modification time: cheap, and changed by
/// any new copy of the box (unpacking keeps the archive's times, so the same box file
/// added twice gives the same fingerprint).
fn fingerprint(path: &std::path::Path) -> Option<String> {
    use sha2::{Digest, Sha256};
    let meta = std::fs::metadata(path).ok()?;
    let modified = meta
        .modified()
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?;
    let digest = Sha256::digest(format!("{}:{}", meta.len(), modified.as_secs()));
    Some(digest.iter().take(4).map(|b| format!("{b:02x}")).collect())
}

/// The machine's own disk: `<resource name>.qcow2`.
pub(crate) fn overlay_name(resource: &str) -> String {
    sanitise(&format!("{resource}.qcow2"))
}

/// Reads `metadata.json` and finds `box.img`; the error says what is wrong with the box.
pub(crate) fn check_box(image: &BoxImage) -> Result<BoxDisk, ProviderError> {
    let label = format!("{} {}", image.name, image.version);
    let fail = |reason: String| ProviderError::Image {
        image: label.clone(),
        reason,
    };
    let meta_path = image.dir.join("metadata.json");
    let text = std::fs::read_to_string(&meta_path)
        .map_err(|err| fail(format!("reading {}: {err}", meta_path.display())))?;
    let meta: serde_json::Value = serde_json::from_str(&text)
        .map_err(|err| fail(format!("parsing {}: {err}", meta_path.display())))?;
    let field = |key: &str| meta.get(key).and_then(|value| value.as_str()).unwrap_or("");
    if field("provider") != "libvirt" {
        return Err(fail(format!(
            "{} says provider `{}`, not `libvirt`",
            meta_path.display(),
            field("provider")
        )));
    }
    if field("format") != "qcow2" {
        return Err(fail(format!(
            "{} says format `{}`, not `qcow2`",
            meta_path.display(),
            field("format")
        )));
    }
    let path = image.dir.join("box.img");
    let size = std::fs::metadata(&path)
        .map_err(|err| fail(format!("reading {}: {err}", path.display())))?
        .len();
    Ok(BoxDisk {
        label,
        volume: box_volume_name(image),
        path,
        size,
    })
}

/// The pool, defined, built, started and set to autostart as needed.
pub(crate) fn ensure_pool(connect: &Connect) -> Result<StoragePool, ProviderError> {
    let action = |what: &str| format!("{what} storage pool `{POOL}`");
    let pool = match found(connect.lookup_storage_pool_by_name(POOL))
        .map_err(|err| backend_error(action("looking up"), err))?
    {
        Some(pool) => pool,
        None => {
            let pool = connect
                .define_storage_pool_xml(&xml::dir_pool(POOL, POOL_DIR), 0)
                .map_err(|err| backend_error(action("defining"), err))?;
            pool.build(0)
                .map_err(|err| backend_error(action("building"), err))?;
            pool
        }
    };
    if !pool
        .is_active()
        .map_err(|err| backend_error(action("checking"), err))?
    {
        pool.create(0)
            .map_err(|err| backend_error(action("starting"), err))?;
    }
    if !pool
        .autostart()
        .map_err(|err| backend_error(action("checking"), err))?
    {
        pool.set_autostart(true)
            .map_err(|err| backend_error(action("setting autostart on"), err))?;
    }
    Ok(pool)
}

/// Whether the box's volume is there, whole.
pub(crate) fn has_box_volume(pool: &StoragePool, disk: &BoxDisk) -> Result<bool, ProviderError> {
    let name = &disk.volume;
    let existing = found(pool.lookup_storage_vol_by_name(name)).map_err(|err| {
        backend_error(format!("looking up volume `{name}` in pool `{POOL}`"), err)
    })?;
    let Some(volume) = existing else {
        return Ok(false);
    };
    let physical = physical_size(&volume, name)?;
    if physical != disk.size {
        return Err(ProviderError::Image {
            image: disk.label.clone(),
            reason: format!(
                "volume `{name}` in pool `{POOL}` holds {physical} bytes but {} has {}: an \
                 interrupted upload or another build of the box; if no machine uses it, \
                 remove it with `virsh vol-delete --pool {POOL} {name}`",
                disk.path.display(),
                disk.size
            ),
        });
    }
    Ok(true)
}

/// Uploads the box's disk to a new volume; a failure removes the volume.
pub(crate) fn upload_box(
    connect: &Connect,
    pool: &StoragePool,
    disk: &BoxDisk,
) -> Result<(), ProviderError> {
    let name = &disk.volume;
    let volume = StorageVol::create_xml(pool, &xml::upload_volume(name), 0)
        .map_err(|err| backend_error(format!("creating volume `{name}` in pool `{POOL}`"), err))?;
    let uploaded = upload(connect, &volume, disk).and_then(|()| settle(pool, disk));
    if uploaded.is_err() {
        let _ = volume.delete(0);
    }
    uploaded
}

/// Makes the machine's overlay on the box volume, replacing a leftover one: a machine
/// being created starts from the box.
pub(crate) fn create_overlay(
    pool: &StoragePool,
    name: &str,
    box_volume: &str,
) -> Result<StorageVol, ProviderError> {
    let base = pool.lookup_storage_vol_by_name(box_volume).map_err(|err| {
        backend_error(
            format!("looking up box volume `{box_volume}` in pool `{POOL}`"),
            err,
        )
    })?;
    let info = base
        .info()
        .map_err(|err| backend_error(format!("reading volume `{box_volume}`"), err))?;
    let path = base
        .path()
        .map_err(|err| backend_error(format!("reading the path of volume `{box_volume}`"), err))?;
    delete_volume(pool, name)?;
    StorageVol::create_xml(pool, &xml::overlay_volume(name, info.capacity, &path), 0)
        .map_err(|err| backend_error(format!("creating volume `{name}` in pool `{POOL}`"), err))
}

/// Deletes a volume of the pool; a missing one is not an error.
/// Replaces volume `name` with a raw disk holding `image`, readable by nobody but the
/// hypervisor (the seed carries the machine's private host key).
pub(crate) fn create_seed(
    connect: &Connect,
    pool: &StoragePool,
    name: &str,
    image: &[u8],
) -> Result<(), ProviderError> {
    delete_volume(pool, name)?;
    let size = image.len() as u64;
    let volume = StorageVol::create_xml(pool, &xml::seed_volume(name, size), 0)
        .map_err(|err| backend_error(format!("creating volume `{name}` in pool `{POOL}`"), err))?;
    let action = || format!("writing the cloud-init seed to volume `{name}`");
    let sent = send(connect, &volume, image, size, &action);
    if sent.is_err() {
        let _ = volume.delete(0);
    }
    sent
}

pub(crate) fn delete_volume(pool: &StoragePool, name: &str) -> Result<(), ProviderError> {
    let existing = found(pool.lookup_storage_vol_by_name(name)).map_err(|err| {
        backend_error(format!("looking up volume `{name}` in pool `{POOL}`"), err)
    })?;
    match existing.map(|volume| found(volume.delete(0))) {
        Some(Err(err)) => Err(backend_error(
            format!("deleting volume `{name}` in pool `{POOL}`"),
            err,
        )),
        _ => Ok(()),
    }
}

fn upload(connect: &Connect, volume: &StorageVol, disk: &BoxDisk) -> Result<(), ProviderError> {
    let name = &disk.volume;
    let action = || format!("uploading {} to volume `{name}`", disk.path.display());
    let file = File::open(&disk.path).map_err(|err| ProviderError::backend(action(), err))?;
    send(connect, volume, file, disk.size, &action)
}

/// Streams `size` bytes from `source` into `volume`.
fn send(
    connect: &Connect,
    volume: &StorageVol,
    mut source: impl Read,
    size: u64,
    action: &dyn Fn() -> String,
) -> Result<(), ProviderError> {
    let stream = Stream::new(connect, 0).map_err(|err| backend_error(action(), err))?;
    volume
        .upload(&stream, 0, size, 0)
        .map_err(|err| backend_error(action(), err))?;
    let mut buf = vec![0u8; UPLOAD_CHUNK];
    loop {
        let read = match source.read(&mut buf) {
            Ok(0) => break,
            Ok(read) => read,
            Err(err) => {
                let _ = stream.abort();
                return Err(ProviderError::backend(action(), err));
            }
        };
        let mut sent = 0;
        while sent < read {
            match stream.send(&buf[sent..read]) {
                Ok(n) if n > 0 => sent += n as usize,
                Ok(_) => {
                    let _ = stream.abort();
                    return Err(ProviderError::backend(
                        action(),
                        "libvirt took no more data",
                    ));
                }
                Err(err) => {
                    let _ = stream.abort();
                    return Err(backend_error(action(), err));
                }
            }
        }
    }
    stream.finish().map_err(|err| backend_error(action(), err))
}

/// Waits until libvirt has refreshed the uploaded volume: its whole size is there and it
/// is seen as qcow2, so overlays get the right capacity.
fn settle(pool: &StoragePool, disk: &BoxDisk) -> Result<(), ProviderError> {
    let name = &disk.volume;
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    loop {
        let volume = pool.lookup_storage_vol_by_name(name).map_err(|err| {
            backend_error(format!("looking up volume `{name}` after the upload"), err)
        })?;
        let xml = volume.xml_desc(0).map_err(|err| {
            backend_error(format!("reading volume `{name}` after the upload"), err)
        })?;
        let format = xml::volume_format(&xml);
        if physical_size(&volume, name)? == disk.size && format.as_deref() == Some("qcow2") {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(ProviderError::Image {
                image: disk.label.clone(),
                reason: format!(
                    "volume `{name}` still shows format {} {} s after the upload, not qcow2",
                    format.as_deref().unwrap_or("unknown"),
                    SETTLE_TIMEOUT.as_secs()
                ),
            });
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The bytes the volume's file holds, which for an upload is what was sent.
fn physical_size(volume: &StorageVol, name: &str) -> Result<u64, ProviderError> {
    volume
        .info_flags(virt::sys::VIR_STORAGE_VOL_GET_PHYSICAL)
        .map(|info| info.allocation)
        .map_err(|err| backend_error(format!("reading the size of volume `{name}`"), err))
}

/// Keeps letters, digits, `.`, `_` and `-`; anything else becomes `_`.
pub(crate) fn sanitise(name: &str) -> String {
    name.chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '.' | '_' | '-' => c,
            _ => '_',
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn image(name: &str, version: &str) -> BoxImage {
        BoxImage {
            name: name.to_string(),
            version: version.to_string(),
            dir: PathBuf::from("/nowhere"),
        }
    }

    #[test]
    fn volume_names_follow_vagrant_and_stay_safe() {
        let cases = [
            (
                "debian/bookworm64",
                "12.20240503.1",
                "envctl-box-debian-VAGRANTSLASH-bookworm64-12.20240503.1.img",
            ),
            ("envctl-test", "0", "envctl-box-envctl-test-0.img"),
            (
                "me/box with space",
                "1+b",
                "envctl-box-me-VAGRANTSLASH-box_with_space-1_b.img",
            ),
        ];
        for (name, version, expected) in cases {
            assert_eq!(box_volume_name(&image(name, version)), expected);
        }
        assert_eq!(overlay_name("demo-web"), "demo-web.qcow2");
    }

    #[test]
    fn another_build_of_a_box_gets_another_volume() {
        let dir = std::env::temp_dir().join(format!("envctl-libvirt-print-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let disk = dir.join("box.img");
        std::fs::write(&disk, "first build").unwrap();
        let image = BoxImage {
            name: "debian/bookworm64".into(),
            version: "0".into(),
            dir: dir.clone(),
        };
        let first = box_volume_name(&image);
        assert!(
            first.starts_with("envctl-box-debian-VAGRANTSLASH-bookworm64-0-"),
            "{first}"
        );
        assert_eq!(
            box_volume_name(&image),
            first,
            "the same box must keep its volume"
        );
        std::fs::write(&disk, "second, longer build").unwrap();
        assert_ne!(box_volume_name(&image), first);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn box_checks_name_what_is_wrong() {
        let dir = std::env::temp_dir().join(format!("envctl-libvirt-box-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let cases = [
            (
                Some(r#"{"provider":"libvirt","format":"qcow2"}"#),
                true,
                None,
            ),
            (
                Some(r#"{"provider":"virtualbox"}"#),
                true,
                Some("provider `virtualbox`"),
            ),
            (
                Some(r#"{"provider":"libvirt","format":"raw"}"#),
                true,
                Some("format `raw`"),
            ),
            (Some("{"), true, Some("parsing")),
            (None, true, Some("metadata.json")),
            (
                Some(r#"{"provider":"libvirt","format":"qcow2"}"#),
                false,
                Some("box.img"),
            ),
        ];
        for (meta, with_disk, expected) in cases {
            let _ = std::fs::remove_file(dir.join("metadata.json"));
            let _ = std::fs::remove_file(dir.join("box.img"));
            if let Some(meta) = meta {
                std::fs::write(dir.join("metadata.json"), meta).unwrap();
            }
            if with_disk {
                std::fs::write(dir.join("box.img"), b"QFI\xfb").unwrap();
            }
            let image = BoxImage {
                dir: dir.clone(),
                ..image("envctl/test", "1")
            };
            match (check_box(&image), expected) {
                (Ok(disk), None) => assert_eq!(disk.size, 4),
                (Err(ProviderError::Image { image, reason }), Some(expected)) => {
                    assert_eq!(image, "envctl/test 1");
                    assert!(
                        reason.contains(expected),
                        "{reason} should mention {expected}"
                    );
                }
                (other, expected) => panic!("{meta:?}: got {other:?}, expected {expected:?}"),
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
