//! Choosing between KVM and TCG.
//!
//! `/dev/kvm` existing is not enough: nested or paravirtualised KVM can be there and still
//! run a real guest so slowly that it never boots. So `Auto` asks for KVM only after a
//! bounded probe: QEMU boots, under KVM, a 64 KiB firmware that switches to long mode with
//! paging, writes 64 MiB of memory and reports through the `isa-debug-exit` device. Real
//! KVM does that in well under a second; the probe gets [`PROBE_DEADLINE`] and is killed
//! when it overruns. The answer is kept for the life of the process.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;
use tokio::sync::OnceCell;

/// Which accelerator guests run with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Accel {
    /// KVM when the probe shows it really runs guests, else TCG.
    #[default]
    Auto,
    /// KVM, without asking; libvirt refuses the domain when there is none.
    Kvm,
    /// QEMU's emulator: slow, but works everywhere.
    Tcg,
}

impl Accel {
    /// libvirt's `<domain type>` for this accelerator (`Auto` must be resolved first).
    pub(crate) fn domain_type(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Auto | Accel::Tcg => "qemu",
        }
    }
}

/// How long the probe may run before KVM counts as not working.
const PROBE_DEADLINE: Duration = Duration::from_secs(3);

/// The exit status QEMU gives when the firmware writes 0x2a to `isa-debug-exit`.
const PROBE_EXIT: i32 = (0x2a << 1) | 1;

static KVM_WORKS: OnceCell<bool> = OnceCell::const_new();

/// `Kvm` or `Tcg`. `Auto` probes only when libvirt runs on this host: a remote host's
/// KVM cannot be tried from here, so it gets TCG, which always works.
pub(crate) async fn resolve(accel: Accel, local: bool) -> Accel {
    match accel {
        Accel::Kvm | Accel::Tcg => accel,
        Accel::Auto if !local => Accel::Tcg,
        Accel::Auto => {
            if *KVM_WORKS.get_or_init(kvm_works).await {
                Accel::Kvm
            } else {
                Accel::Tcg
            }
        }
    }
}

async fn kvm_works() -> bool {
    if !Path::new("/dev/kvm").exists() {
        return false;
    }
    let path = std::env::temp_dir().join(format!("envctl-kvm-probe-{}.bin", std::process::id()));
    if tokio::fs::write(&path, firmware()).await.is_err() {
        return false;
    }
    let works = run_probe(&path).await;
    let _ = tokio::fs::remove_file(&path).await;
    works
}

async fn run_probe(firmware: &Path) -> bool {
    let child = Command::new("qemu-system-x86_64")
        .args(["-accel", "kvm", "-machine", "pc", "-m", "128"])
        .args(["-nodefaults", "-no-user-config", "-display", "none"])
        .args(["-serial", "none", "-monitor", "none"])
        .args(["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04", "-bios"])
        .arg(firmware)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn();
    let Ok(mut child) = child else {
        return false;
    };
    match tokio::time::timeout(PROBE_DEADLINE, child.wait()).await {
        Ok(Ok(status)) => status.code() == Some(PROBE_EXIT),
        _ => {
            let _ = child.kill().await;
            false
        }
    }
}

/// The probe's firmware: [`PROBE_CODE`] at the start of a 64 KiB BIOS image, which QEMU
/// maps at 0xF0000, and a jump to it at the reset vector (offset 0xFFF0).
fn firmware() -> Vec<u8> {
    let mut image = vec![0u8; 0x10000];
    image[..PROBE_CODE.len()].copy_from_slice(&PROBE_CODE);
    // ljmp $0xf000, $0x0000
    image[0xfff0..0xfff5].copy_from_slice(&[0xea, 0x00, 0x00, 0x00, 0xf0]);
    image
}

/// Assembled (GNU as, `as --32`, then `ld --oformat binary -Ttext 0`) from:
///
/// ```text
///     .code16                       # at 0xF0000, entered from the reset vector
///     cli
///     xor %ax, %ax ; mov %ax, %ds
///     lgdtl %cs:(gdt_desc - start)
///     mov %cr0, %eax ; or $1, %eax ; mov %eax, %cr0
///     ljmpl $0x08, $(0xF0000 + start32 - start)
///     .code32
/// start32:
///     mov $0x10, %eax ; mov %eax, %ds ; mov %eax, %es ; mov %eax, %ss
///     mov $0x1000, %edi ; xor %eax, %eax ; mov $3072, %ecx ; rep stosl
///     movl $0x2003, 0x1000          # PML4 -> PDPT at 0x2000
///     movl $0x3003, 0x2000          # PDPT -> PD at 0x3000
///     mov $0x3000, %edi ; mov $0x83, %eax ; mov $512, %ecx
/// 1:  mov %eax, (%edi) ; add $0x200000, %eax ; add $8, %edi ; loop 1b   # 1 GiB, 2 MiB pages
///     mov %cr4, %eax ; or $0x20, %eax ; mov %eax, %cr4                  # PAE
///     mov $0x1000, %eax ; mov %eax, %cr3
///     mov $0xC0000080, %ecx ; rdmsr ; or $0x100, %eax ; wrmsr           # EFER.LME
///     mov %cr0, %eax ; or $0x80000000, %eax ; mov %eax, %cr0            # paging
///     ljmp $0x18, $(0xF0000 + start64 - start)
///     .code64
/// start64:
///     mov $0x1000000, %rdi ; mov $(64 * 1024 * 1024 / 8), %rcx
///     xor %eax, %eax ; rep stosq                                        # 64 MiB
///     mov $0x2a, %al ; out %al, $0xf4                                   # isa-debug-exit
/// 2:  hlt ; jmp 2b
///     .p2align 3
/// gdt: .quad 0, 0x00CF9B000000FFFF, 0x00CF93000000FFFF, 0x00AF9B000000FFFF
/// gdt_desc: .word gdt_desc - gdt - 1 ; .long 0xF0000 + gdt - start
/// ```
const PROBE_CODE: [u8; 222] = [
    0xfa, 0x31, 0xc0, 0x8e, 0xd8, 0x2e, 0x66, 0x0f, 0x01, 0x16, 0xd8, 0x00, 0x0f, 0x20, 0xc0, 0x66,
    0x83, 0xc8, 0x01, 0x0f, 0x22, 0xc0, 0x66, 0xea, 0x1e, 0x00, 0x0f, 0x00, 0x08, 0x00, 0xb8, 0x10,
    0x00, 0x00, 0x00, 0x8e, 0xd8, 0x8e, 0xc0, 0x8e, 0xd0, 0xbf, 0x00, 0x10, 0x00, 0x00, 0x31, 0xc0,
    0xb9, 0x00, 0x0c, 0x00, 0x00, 0xf3, 0xab, 0xc7, 0x05, 0x00, 0x10, 0x00, 0x00, 0x03, 0x20, 0x00,
    0x00, 0xc7, 0x05, 0x00, 0x20, 0x00, 0x00, 0x03, 0x30, 0x00, 0x00, 0xbf, 0x00, 0x30, 0x00, 0x00,
    0xb8, 0x83, 0x00, 0x00, 0x00, 0xb9, 0x00, 0x02, 0x00, 0x00, 0x89, 0x07, 0x05, 0x00, 0x00, 0x20,
    0x00, 0x83, 0xc7, 0x08, 0xe2, 0xf4, 0x0f, 0x20, 0xe0, 0x83, 0xc8, 0x20, 0x0f, 0x22, 0xe0, 0xb8,
    0x00, 0x10, 0x00, 0x00, 0x0f, 0x22, 0xd8, 0xb9, 0x80, 0x00, 0x00, 0xc0, 0x0f, 0x32, 0x0d, 0x00,
    0x01, 0x00, 0x00, 0x0f, 0x30, 0x0f, 0x20, 0xc0, 0x0d, 0x00, 0x00, 0x00, 0x80, 0x0f, 0x22, 0xc0,
    0xea, 0x97, 0x00, 0x0f, 0x00, 0x18, 0x00, 0x48, 0xc7, 0xc7, 0x00, 0x00, 0x00, 0x01, 0x48, 0xc7,
    0xc1, 0x00, 0x00, 0x80, 0x00, 0x31, 0xc0, 0xf3, 0x48, 0xab, 0xb0, 0x2a, 0xe6, 0xf4, 0xf4, 0xeb,
    0xfd, 0x8d, 0xb4, 0x00, 0x00, 0x8d, 0x74, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0xff, 0xff, 0x00, 0x00, 0x00, 0x9b, 0xcf, 0x00, 0xff, 0xff, 0x00, 0x00, 0x00, 0x93, 0xcf, 0x00,
    0xff, 0xff, 0x00, 0x00, 0x00, 0x9b, 0xaf, 0x00, 0x1f, 0x00, 0xb8, 0x00, 0x0f, 0x00,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn firmware_jumps_from_the_reset_vector_to_the_code() {
        let image = firmware();
        assert_eq!(image.len(), 0x10000);
        assert_eq!(&image[0xfff0..0xfff5], &[0xea, 0x00, 0x00, 0x00, 0xf0]);
        assert_eq!(image[0], 0xfa, "the code starts with cli");
        // The GDT descriptor at the end names the GDT at 0xF0000 + 0xb8.
        assert_eq!(&PROBE_CODE[0xd8..], &[0x1f, 0x00, 0xb8, 0x00, 0x0f, 0x00]);
    }

    #[tokio::test]
    async fn forced_choices_are_kept_and_remote_auto_is_tcg() {
        assert_eq!(resolve(Accel::Kvm, true).await, Accel::Kvm);
        assert_eq!(resolve(Accel::Tcg, true).await, Accel::Tcg);
        assert_eq!(resolve(Accel::Auto, false).await, Accel::Tcg);
        assert_eq!(Accel::Kvm.domain_type(), "kvm");
        assert_eq!(Accel::Tcg.domain_type(), "qemu");
    }
}
