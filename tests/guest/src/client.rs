// SPDX-License-Identifier: GPL-2.0
//! An independent VFIO client: the rust-vmm `vfio-ioctls` crate (cloud-hypervisor's VFIO
//! layer), which no one here wrote, opens a device the way a VMM does and writes a transcript
//! of what it sees. The same device bound to upstream C `vfio-pci` and to our driver must give
//! the same transcript.
//!
//! Which parts of the crate, and why: `VfioContainer::new(None)` (no KVM device: KVM is not
//! available under TCG, and the crate's `kvm` feature is off), `VfioDevice::new` (group,
//! `VFIO_SET_IOMMU` type1v2, `VFIO_GROUP_GET_DEVICE_FD`, every region's and IRQ's info), and
//! the same through `VfioIommufd` (feature `vfio_cdev`: the device cdev bound to an iommufd
//! and attached to a fresh IOAS, as QEMU's `vfio-pci,iommufd=` does),
//! `region_read`, `get_region_*`, `get_irq_info`, `enable_msix`/`trigger_irq`/`disable_msix`
//! with `vmm-sys-util` eventfds, and the container's `vfio_dma_map`/`vfio_dma_unmap`. BARs are
//! mapped with `mmap` on the crate's device fd at the offsets the crate reports (the crate
//! itself has no mapping helper; cloud-hypervisor does the same). In noiommu mode the crate
//! cannot open the device: it opens the group as `/dev/vfio/<group>`, while a noiommu group's
//! node is `/dev/vfio/noiommu-<group>` (and its container only knows type1 IOMMUs); the
//! transcript is then that one error line, which must be the same under both drivers.

use iommufd_ioctls::IommuFd;
use std::path::Path;
use std::sync::Arc;
use vfio_ioctls::{VfioContainer, VfioDevice, VfioIommufd, VfioOps};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

const CONFIG_INDEX: u32 = vfio_bindings::bindings::vfio::VFIO_PCI_CONFIG_REGION_INDEX;
const MSIX_INDEX: u32 = vfio_bindings::bindings::vfio::VFIO_PCI_MSIX_IRQ_INDEX;
const NUM_REGIONS: u32 = vfio_bindings::bindings::vfio::VFIO_PCI_NUM_REGIONS;
const NUM_IRQS: u32 = vfio_bindings::bindings::vfio::VFIO_PCI_NUM_IRQS;
const REGION_FLAG_MMAP: u32 = vfio_bindings::bindings::vfio::VFIO_REGION_INFO_FLAG_MMAP;
const PCI_CAP_ID_MSIX: u8 = 0x11;
/// Where the DMA check maps its buffer in the device's address space.
const DMA_IOVA: u64 = 0x1000_0000;

/// What the client saw, line by line.
pub type Transcript = Vec<String>;

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The offset of the MSI-X capability in a config space, walking the capability list.
fn msix_cap(cfg: &[u8]) -> Option<usize> {
    if cfg.get(6)? & 0x10 == 0 {
        return None;
    }
    let mut at = (*cfg.get(0x34)? & 0xfc) as usize;
    for _ in 0..48 {
        if at == 0 {
            return None;
        }
        if *cfg.get(at)? == PCI_CAP_ID_MSIX {
            return Some(at);
        }
        at = (*cfg.get(at + 1)? & 0xfc) as usize;
    }
    None
}

/// How the crate reaches the device: as QEMU's `vfio-pci` does by default (container and
/// group) or with `iommufd=` (the device cdev bound to an iommufd, attached to an IOAS).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Container,
    Iommufd,
}

impl Backend {
    /// The name the checks use, as in the rest of the suite.
    pub fn how(self) -> &'static str {
        match self {
            Backend::Container => "group",
            Backend::Iommufd => "cdev",
        }
    }
}

fn open_backend(backend: Backend) -> Result<Arc<dyn VfioOps>, String> {
    match backend {
        Backend::Container => VfioContainer::new(None)
            .map(|c| Arc::new(c) as Arc<dyn VfioOps>)
            .map_err(|e| format!("VfioContainer::new: error {e}")),
        Backend::Iommufd => {
            let fd = IommuFd::new().map_err(|e| format!("IommuFd::new: error {e:?}"))?;
            VfioIommufd::new(Arc::new(fd), None, None)
                .map(|i| Arc::new(i) as Arc<dyn VfioOps>)
                .map_err(|e| format!("VfioIommufd::new: error {e}"))
        }
    }
}

/// Opens the device at `bdf` through the crate and records what a VMM would look at.
pub fn transcript(bdf: &str, backend: Backend) -> Transcript {
    let mut t = Transcript::new();
    let ops = match open_backend(backend) {
        Ok(o) => o,
        Err(e) => {
            t.push(e);
            return t;
        }
    };
    let sysfs = format!("/sys/bus/pci/devices/{bdf}");
    let attach_ioas = backend == Backend::Iommufd;
    let dev = match VfioDevice::new(Path::new(&sysfs), ops.clone(), attach_ioas) {
        Ok(d) => d,
        Err(e) => {
            t.push(format!("VfioDevice::new: error {e}"));
            return t;
        }
    };
    t.push(format!("max_interrupts {}", dev.max_interrupts()));
    for i in 0..NUM_REGIONS {
        t.push(format!(
            "region {i}: flags {:#x} size {:#x} offset {:#x} caps {}",
            dev.get_region_flags(i),
            dev.get_region_size(i),
            dev.get_region_offset(i),
            dev.get_region_caps(i).len()
        ));
    }
    for i in 0..NUM_IRQS {
        t.push(format!("irq {i}: {:?}", dev.get_irq_info(i)));
    }
    let cfg_size = dev.get_region_size(CONFIG_INDEX).min(4096) as usize;
    // A failed read only logs in the crate: the filler shows it.
    let mut cfg = vec![0xa5u8; cfg_size];
    dev.region_read(CONFIG_INDEX, &mut cfg, 0);
    for (n, chunk) in cfg.chunks(64).enumerate() {
        t.push(format!("config {:#05x}: {}", n * 64, hex(chunk)));
    }
    map_bars(&dev, &mut t);
    msix(&dev, &cfg, &mut t);
    dma(ops.as_ref(), &mut t);
    t
}

/// Maps every mmap-able BAR, reads its first dword through the mapping and through
/// `region_read`, and unmaps it.
fn map_bars(dev: &VfioDevice, t: &mut Transcript) {
    use std::os::fd::AsRawFd;
    for i in 0..6 {
        let (flags, size, offset) = (
            dev.get_region_flags(i),
            dev.get_region_size(i),
            dev.get_region_offset(i),
        );
        if flags & REGION_FLAG_MMAP == 0 || size == 0 {
            continue;
        }
        let len = size.min(4096) as usize;
        // SAFETY: a fresh shared mapping chosen by the kernel (address NULL) of the device fd
        // the crate owns, which outlives the mapping (unmapped below, before `dev` drops).
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                dev.as_raw_fd(),
                offset as libc::off_t,
            )
        };
        if p == libc::MAP_FAILED {
            t.push(format!(
                "bar {i}: mmap error {}",
                std::io::Error::last_os_error()
            ));
            continue;
        }
        // SAFETY: `p` maps at least 4 readable bytes (len >= 4: BARs are at least 16 bytes)
        // until the munmap below; a volatile read, as for any device register.
        let mapped = unsafe { std::ptr::read_volatile(p as *const u32) };
        // SAFETY: `p`, `len` are exactly the mapping made above.
        unsafe { libc::munmap(p, len) };
        let mut b = [0u8; 4];
        dev.region_read(i, &mut b, 0);
        t.push(format!(
            "bar {i}: mmap dword 0 {mapped:#010x}, region_read {:#010x}",
            u32::from_le_bytes(b)
        ));
    }
}

/// MSI-X through the crate: enable every vector with eventfds, fire vector 0 from user space,
/// look at the MSI-X control word as the config region shows it, disable.
fn msix(dev: &VfioDevice, cfg: &[u8], t: &mut Transcript) {
    let Some(count) = dev
        .get_irq_info(MSIX_INDEX)
        .map(|i| i.count)
        .filter(|&c| c > 0)
    else {
        t.push("msix: none".into());
        return;
    };
    let fds: Result<Vec<EventFd>, _> = (0..count).map(|_| EventFd::new(EFD_NONBLOCK)).collect();
    let fds = match fds {
        Ok(f) => f,
        Err(e) => {
            t.push(format!("msix: eventfd error {e}"));
            return;
        }
    };
    let control = |dev: &VfioDevice| match msix_cap(cfg) {
        Some(at) => {
            let mut b = [0u8; 2];
            dev.region_read(CONFIG_INDEX, &mut b, at as u64 + 2);
            format!("{:#06x}", u16::from_le_bytes(b))
        }
        None => "(no MSI-X capability)".to_string(),
    };
    t.push(format!(
        "msix: {count} vectors, control before {}",
        control(dev)
    ));
    match dev.enable_msix(fds.iter().collect()) {
        Ok(()) => t.push(format!("msix: enabled, control {}", control(dev))),
        Err(e) => {
            t.push(format!("msix: enable error {e}"));
            return;
        }
    }
    let fired = dev
        .trigger_irq(MSIX_INDEX, 0)
        .map_err(|e| e.to_string())
        .and_then(|()| {
            // The trigger signals the eventfd synchronously.
            fds[0].read().map_err(|e| e.to_string())
        });
    t.push(format!("msix: trigger vector 0 -> eventfd {fired:?}"));
    let others = fds[1..].iter().filter(|f| f.read().is_ok()).count();
    t.push(format!("msix: other vectors signalled {others}"));
    match dev.disable_msix() {
        Ok(()) => t.push(format!("msix: disabled, control {}", control(dev))),
        Err(e) => t.push(format!("msix: disable error {e}")),
    }
}

/// One page of anonymous memory mapped for DMA at [`DMA_IOVA`] and unmapped again.
fn dma(ops: &dyn VfioOps, t: &mut Transcript) {
    let len = 4096;
    // SAFETY: a fresh private anonymous mapping chosen by the kernel; unmapped below.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        t.push(format!(
            "dma: mmap error {}",
            std::io::Error::last_os_error()
        ));
        return;
    }
    // SAFETY: `p` is a live mapping of `len` bytes that stays mapped until after the unmap
    // from the IOMMU below, and no device is programmed to DMA into it.
    let mapped = unsafe { ops.vfio_dma_map(DMA_IOVA, len, p as *mut u8) };
    t.push(format!(
        "dma: map {:?}",
        mapped.as_ref().map_err(|e| e.to_string())
    ));
    if mapped.is_ok() {
        let r = ops.vfio_dma_unmap(DMA_IOVA, len);
        t.push(format!("dma: unmap {:?}", r.map_err(|e| e.to_string())));
    }
    // SAFETY: `p`, `len` are exactly the mapping made above, no longer mapped for DMA.
    unsafe { libc::munmap(p, len) };
}
