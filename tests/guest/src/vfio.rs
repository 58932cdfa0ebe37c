// SPDX-License-Identifier: GPL-2.0
//! A thin user-space VFIO client: the group/container path, the cdev + iommufd path, and the
//! device queries the tests compare.
//!
//! Structs and constants come from the rust-vmm `vfio-bindings` crate where their layout is the
//! same on 6.12. `vfio-bindings` 0.7 follows a newer kernel in which `vfio_device_bind_iommufd`
//! and `vfio_device_attach_iommufd_pt` grew fields, and it has no `iommufd.h`; those three
//! structs are written here exactly as 6.12's `include/uapi/linux/{vfio,iommufd}.h` define them.

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use vfio_bindings::bindings::vfio as uapi;

/// `_IO(type, nr)`: no direction and no size bits, as every VFIO/iommufd ioctl uses.
const fn io(ty: u8, nr: u8) -> u64 {
    ((ty as u64) << 8) | nr as u64
}
const VFIO_TYPE: u8 = b';';
const VFIO_BASE: u8 = 100;
pub const VFIO_GET_API_VERSION: u64 = io(VFIO_TYPE, VFIO_BASE);
pub const VFIO_CHECK_EXTENSION: u64 = io(VFIO_TYPE, VFIO_BASE + 1);
pub const VFIO_SET_IOMMU: u64 = io(VFIO_TYPE, VFIO_BASE + 2);
pub const VFIO_GROUP_GET_STATUS: u64 = io(VFIO_TYPE, VFIO_BASE + 3);
pub const VFIO_GROUP_SET_CONTAINER: u64 = io(VFIO_TYPE, VFIO_BASE + 4);
pub const VFIO_GROUP_GET_DEVICE_FD: u64 = io(VFIO_TYPE, VFIO_BASE + 6);
pub const VFIO_DEVICE_GET_INFO: u64 = io(VFIO_TYPE, VFIO_BASE + 7);
pub const VFIO_DEVICE_GET_REGION_INFO: u64 = io(VFIO_TYPE, VFIO_BASE + 8);
pub const VFIO_DEVICE_BIND_IOMMUFD: u64 = io(VFIO_TYPE, VFIO_BASE + 18);
pub const VFIO_DEVICE_ATTACH_IOMMUFD_PT: u64 = io(VFIO_TYPE, VFIO_BASE + 19);
const IOMMUFD_TYPE: u8 = b';';
pub const IOMMU_IOAS_ALLOC: u64 = io(IOMMUFD_TYPE, 0x81);

pub use uapi::{
    VFIO_TYPE1v2_IOMMU, VFIO_DEVICE_FLAGS_PCI, VFIO_GROUP_FLAGS_VIABLE, VFIO_NOIOMMU_IOMMU,
    VFIO_REGION_INFO_FLAG_READ, VFIO_REGION_INFO_FLAG_WRITE,
};
pub const CONFIG_INDEX: u32 = uapi::VFIO_PCI_CONFIG_REGION_INDEX;
pub const NUM_REGIONS: u32 = uapi::VFIO_PCI_NUM_REGIONS;
pub const NUM_IRQS: u32 = uapi::VFIO_PCI_NUM_IRQS;

/// 6.12 `struct vfio_device_bind_iommufd`.
#[repr(C)]
#[derive(Default)]
struct BindIommufd {
    argsz: u32,
    flags: u32,
    iommufd: i32,
    out_devid: u32,
}

/// 6.12 `struct vfio_device_attach_iommufd_pt`.
#[repr(C)]
#[derive(Default)]
struct AttachPt {
    argsz: u32,
    flags: u32,
    pt_id: u32,
}

/// 6.12 `struct iommu_ioas_alloc`.
#[repr(C)]
#[derive(Default)]
struct IoasAlloc {
    size: u32,
    flags: u32,
    out_ioas_id: u32,
}

fn ioctl_ptr<T>(fd: &impl AsRawFd, req: u64, arg: *mut T) -> io::Result<i32> {
    // SAFETY: `arg` points at a live, correctly sized `#[repr(C)]` struct (or string) of the
    // layout the ioctl expects; the kernel writes at most `argsz`/`size` bytes into it.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), req as _, arg) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn ioctl_val(fd: &impl AsRawFd, req: u64, val: libc::c_ulong) -> io::Result<i32> {
    // SAFETY: the ioctl takes its argument by value; no memory is passed.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), req as _, val) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn open_rw(path: &str) -> io::Result<File> {
    OpenOptions::new().read(true).write(true).open(path)
}

/// An open VFIO device plus whatever keeps it usable (container+group, or iommufd).
pub struct Device {
    pub file: File,
    _keep: Vec<File>,
    pub how: &'static str,
}

fn ctx<T>(r: io::Result<T>, what: &str) -> Result<T, String> {
    r.map_err(|e| format!("{what}: {e}"))
}

/// The legacy path: container, group, `VFIO_SET_IOMMU`, `VFIO_GROUP_GET_DEVICE_FD`.
pub fn open_via_group(group_node: &str, bdf: &str, iommu_type: u32) -> Result<Device, String> {
    let container = ctx(open_rw("/dev/vfio/vfio"), "open /dev/vfio/vfio")?;
    let v = ctx(
        ioctl_val(&container, VFIO_GET_API_VERSION, 0),
        "VFIO_GET_API_VERSION",
    )?;
    if v != uapi::VFIO_API_VERSION as i32 {
        return Err(format!(
            "VFIO_GET_API_VERSION = {v}, expected {}",
            uapi::VFIO_API_VERSION
        ));
    }
    let ext = ctx(
        ioctl_val(&container, VFIO_CHECK_EXTENSION, iommu_type as _),
        "VFIO_CHECK_EXTENSION",
    )?;
    if ext <= 0 {
        return Err(format!(
            "VFIO_CHECK_EXTENSION({iommu_type}) = {ext}: IOMMU type not supported"
        ));
    }
    let group = ctx(open_rw(group_node), &format!("open {group_node}"))?;
    let mut st = uapi::vfio_group_status {
        argsz: std::mem::size_of::<uapi::vfio_group_status>() as u32,
        flags: 0,
    };
    ctx(
        ioctl_ptr(&group, VFIO_GROUP_GET_STATUS, &mut st),
        "VFIO_GROUP_GET_STATUS",
    )?;
    if st.flags & VFIO_GROUP_FLAGS_VIABLE == 0 {
        return Err(format!(
            "group {group_node} not viable (flags {:#x})",
            st.flags
        ));
    }
    let mut cfd: i32 = container.as_raw_fd();
    ctx(
        ioctl_ptr(&group, VFIO_GROUP_SET_CONTAINER, &mut cfd),
        "VFIO_GROUP_SET_CONTAINER",
    )?;
    ctx(
        ioctl_val(&container, VFIO_SET_IOMMU, iommu_type as _),
        &format!("VFIO_SET_IOMMU({iommu_type})"),
    )?;
    let name = CString::new(bdf).map_err(|e| e.to_string())?;
    let dfd = ctx(
        ioctl_ptr(
            &group,
            VFIO_GROUP_GET_DEVICE_FD,
            name.as_ptr() as *mut libc::c_char,
        ),
        "VFIO_GROUP_GET_DEVICE_FD",
    )?;
    // SAFETY: the ioctl returned a new file descriptor that nothing else owns.
    let file = unsafe { <File as std::os::fd::FromRawFd>::from_raw_fd(dfd) };
    Ok(Device {
        file,
        _keep: vec![group, container],
        how: "group",
    })
}

/// The cdev path: `/dev/vfio/devices/vfioN`, `VFIO_DEVICE_BIND_IOMMUFD`, `IOMMU_IOAS_ALLOC`,
/// `VFIO_DEVICE_ATTACH_IOMMUFD_PT`.
pub fn open_via_cdev(cdev: &str) -> Result<Device, String> {
    let file = ctx(open_rw(cdev), &format!("open {cdev}"))?;
    let iommufd = ctx(open_rw("/dev/iommu"), "open /dev/iommu")?;
    let mut bind = BindIommufd {
        argsz: std::mem::size_of::<BindIommufd>() as u32,
        iommufd: iommufd.as_raw_fd(),
        ..Default::default()
    };
    ctx(
        ioctl_ptr(&file, VFIO_DEVICE_BIND_IOMMUFD, &mut bind),
        "VFIO_DEVICE_BIND_IOMMUFD",
    )?;
    let mut ioas = IoasAlloc {
        size: std::mem::size_of::<IoasAlloc>() as u32,
        ..Default::default()
    };
    ctx(
        ioctl_ptr(&iommufd, IOMMU_IOAS_ALLOC, &mut ioas),
        "IOMMU_IOAS_ALLOC",
    )?;
    let mut at = AttachPt {
        argsz: std::mem::size_of::<AttachPt>() as u32,
        flags: 0,
        pt_id: ioas.out_ioas_id,
    };
    ctx(
        ioctl_ptr(&file, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &mut at),
        "VFIO_DEVICE_ATTACH_IOMMUFD_PT",
    )?;
    Ok(Device {
        file,
        _keep: vec![iommufd],
        how: "cdev",
    })
}

/// The answers of one device to the queries the tests make, kept as raw bytes so two drivers
/// can be compared byte for byte.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answers {
    /// `VFIO_DEVICE_GET_INFO` with `argsz = sizeof` (24 on 6.12): the whole struct as
    /// returned, or the errno.
    pub info: Result<[u8; 24], i32>,
    /// `VFIO_DEVICE_GET_INFO` with `argsz = 8` (too small): the errno, or `0` if it succeeded.
    pub info_small: i32,
    /// `VFIO_DEVICE_GET_REGION_INFO` for the config region: the struct, or the errno.
    pub config_region: Result<[u8; 32], i32>,
    /// The first dword of config space, read at the config region's offset.
    pub config_ids: Result<[u8; 4], i32>,
    /// Every other region index below `num_regions`: the struct or the errno (informational).
    pub other_regions: Vec<(u32, Result<[u8; 32], i32>)>,
}

pub fn errno(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(-1)
}

fn as_bytes<T: Copy, const N: usize>(v: &T) -> [u8; N] {
    assert_eq!(std::mem::size_of::<T>(), N);
    let mut out = [0u8; N];
    // SAFETY: `T` is a plain `#[repr(C)]` integer struct of exactly `N` bytes without padding.
    unsafe { std::ptr::copy_nonoverlapping(v as *const T as *const u8, out.as_mut_ptr(), N) };
    out
}

pub fn device_info(f: &File, argsz: u32) -> io::Result<uapi::vfio_device_info> {
    // Fields the kernel should overwrite start as a pattern, so "not written" is visible too.
    let mut info = uapi::vfio_device_info {
        argsz,
        flags: 0xa5a5_a5a5,
        num_regions: 0xa5a5_a5a5,
        num_irqs: 0xa5a5_a5a5,
        cap_offset: 0xa5a5_a5a5,
        pad: 0xa5a5_a5a5,
    };
    ioctl_ptr(f, VFIO_DEVICE_GET_INFO, &mut info)?;
    Ok(info)
}

pub fn region_info(f: &File, index: u32) -> io::Result<uapi::vfio_region_info> {
    let mut r = uapi::vfio_region_info {
        argsz: std::mem::size_of::<uapi::vfio_region_info>() as u32,
        flags: 0xa5a5_a5a5,
        index,
        cap_offset: 0xa5a5_a5a5,
        size: 0xa5a5_a5a5_a5a5_a5a5,
        offset: 0xa5a5_a5a5_a5a5_a5a5,
    };
    ioctl_ptr(f, VFIO_DEVICE_GET_REGION_INFO, &mut r)?;
    Ok(r)
}

pub fn query(dev: &Device) -> Answers {
    let f = &dev.file;
    let info = device_info(f, std::mem::size_of::<uapi::vfio_device_info>() as u32);
    let info_small = match device_info(f, 8) {
        Ok(_) => 0,
        Err(e) => errno(&e),
    };
    let cfg = region_info(f, CONFIG_INDEX);
    let config_ids = match &cfg {
        Ok(r) => {
            let mut b = [0u8; 4];
            match f.read_exact_at(&mut b, r.offset) {
                Ok(()) => Ok(b),
                Err(e) => Err(errno(&e)),
            }
        }
        Err(e) => Err(errno(e)),
    };
    let n = info.as_ref().map(|i| i.num_regions).unwrap_or(0).min(64);
    let other_regions = (0..n)
        .filter(|&i| i != CONFIG_INDEX)
        .map(|i| {
            (
                i,
                region_info(f, i)
                    .map(|r| as_bytes::<_, 32>(&r))
                    .map_err(|e| errno(&e)),
            )
        })
        .collect();
    Answers {
        info: info.map(|i| as_bytes::<_, 24>(&i)).map_err(|e| errno(&e)),
        info_small,
        config_region: cfg.map(|r| as_bytes::<_, 32>(&r)).map_err(|e| errno(&e)),
        config_ids,
        other_regions,
    }
}

/// Decodes a returned `vfio_region_info` for messages.
pub fn show_region(b: &[u8; 32]) -> String {
    let u32at = |o: usize| u32::from_ne_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
    let u64at = |o: usize| {
        let mut a = [0u8; 8];
        a.copy_from_slice(&b[o..o + 8]);
        u64::from_ne_bytes(a)
    };
    format!(
        "argsz={} flags={:#x} index={} cap_offset={} size={:#x} offset={:#x}",
        u32at(0),
        u32at(4),
        u32at(8),
        u32at(12),
        u64at(16),
        u64at(24)
    )
}

pub fn show_info(b: &[u8; 24]) -> String {
    let u32at = |o: usize| u32::from_ne_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
    format!(
        "argsz={} flags={:#x} num_regions={} num_irqs={} cap_offset={:#x} pad={:#x}",
        u32at(0),
        u32at(4),
        u32at(8),
        u32at(12),
        u32at(16),
        u32at(20)
    )
}

pub fn region_fields(b: &[u8; 32]) -> (u32, u64, u64) {
    let flags = u32::from_ne_bytes([b[4], b[5], b[6], b[7]]);
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[16..24]);
    let size = u64::from_ne_bytes(a);
    a.copy_from_slice(&b[24..32]);
    (flags, size, u64::from_ne_bytes(a))
}

pub const VFIO_DEVICE_IOEVENTFD: u64 = io(VFIO_TYPE, VFIO_BASE + 16);
/// `VFIO_REGION_INFO_FLAG_CAPS` and `_MMAP`, and the MSI-X-mappable capability id.
pub const REGION_FLAG_MMAP: u32 = uapi::VFIO_REGION_INFO_FLAG_MMAP;
pub const REGION_FLAG_CAPS: u32 = uapi::VFIO_REGION_INFO_FLAG_CAPS;
pub const REGION_CAP_MSIX_MAPPABLE: u16 = uapi::VFIO_REGION_INFO_CAP_MSIX_MAPPABLE as u16;

/// `VFIO_DEVICE_GET_REGION_INFO` on a raw buffer of `max(argsz, 32)` bytes: every byte is
/// pre-filled with `0xa5`, then `argsz` and `index` are set. Returns the whole buffer as the
/// kernel left it (so capability bytes and untouched tails are visible), or the errno.
pub fn region_info_raw(f: &File, index: u32, argsz: u32) -> Result<Vec<u8>, i32> {
    let len = (argsz as usize).max(32);
    // u64 storage keeps the struct's alignment.
    let mut words = vec![0xa5a5_a5a5_a5a5_a5a5u64; len.div_ceil(8)];
    let p = words.as_mut_ptr().cast::<u8>();
    // SAFETY: `words` holds at least 32 bytes; argsz and index are at offsets 0 and 8.
    unsafe {
        std::ptr::copy_nonoverlapping(argsz.to_ne_bytes().as_ptr(), p, 4);
        std::ptr::copy_nonoverlapping(index.to_ne_bytes().as_ptr(), p.add(8), 4);
    }
    let r = ioctl_ptr(f, VFIO_DEVICE_GET_REGION_INFO, p);
    // SAFETY: `words` holds at least `len` initialised bytes.
    let out = unsafe { std::slice::from_raw_parts(p, len) }.to_vec();
    r.map(|_| out).map_err(|e| errno(&e))
}

/// 6.12 `struct vfio_device_ioeventfd` (32 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Ioeventfd {
    pub argsz: u32,
    pub flags: u32,
    pub offset: u64,
    pub data: u64,
    pub fd: i32,
    pub reserved: u32,
}

/// `VFIO_DEVICE_IOEVENTFD`: 0 or the errno.
pub fn ioeventfd(f: &File, mut a: Ioeventfd) -> i32 {
    match ioctl_ptr(f, VFIO_DEVICE_IOEVENTFD, &mut a) {
        Ok(_) => 0,
        Err(e) => errno(&e),
    }
}

/// A new eventfd (counter 0, close-on-exec).
pub fn eventfd() -> Result<File, String> {
    // SAFETY: plain syscall without pointers.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
    if fd < 0 {
        return Err(format!("eventfd: {}", io::Error::last_os_error()));
    }
    // SAFETY: a new descriptor nothing else owns.
    Ok(unsafe { <File as std::os::fd::FromRawFd>::from_raw_fd(fd) })
}

/// Adds 1 to an eventfd's counter: 0 or the errno.
pub fn signal(ev: &File) -> i32 {
    let one: u64 = 1;
    // SAFETY: writes 8 bytes from a live u64.
    let r = unsafe { libc::write(ev.as_raw_fd(), (&one as *const u64).cast(), 8) };
    if r == 8 {
        0
    } else {
        errno(&io::Error::last_os_error())
    }
}

/// A `mmap` of part of a device fd, unmapped on drop.
pub struct Mapping {
    ptr: *mut u8,
    len: usize,
}

impl Mapping {
    /// `mmap(NULL, len, PROT_READ|PROT_WRITE, flags, fd, off)`: the mapping or the errno.
    pub fn new(f: &File, off: i64, len: usize, flags: i32) -> Result<Mapping, i32> {
        Self::with_prot(f, off, len, libc::PROT_READ | libc::PROT_WRITE, flags)
    }

    /// `mmap(NULL, len, prot, flags, fd, off)`: the mapping or the errno.
    pub fn with_prot(
        f: &File,
        off: i64,
        len: usize,
        prot: i32,
        flags: i32,
    ) -> Result<Mapping, i32> {
        // SAFETY: a new mapping at an address the kernel chooses; nothing is aliased.
        let p = unsafe { libc::mmap64(std::ptr::null_mut(), len, prot, flags, f.as_raw_fd(), off) };
        if p == libc::MAP_FAILED {
            return Err(errno(&io::Error::last_os_error()));
        }
        Ok(Mapping { ptr: p.cast(), len })
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// A volatile 4-byte read at `off` (faults the page in; SIGBUS if the driver refuses).
    pub fn read32(&self, off: usize) -> u32 {
        assert!(off + 4 <= self.len && off.is_multiple_of(4));
        // SAFETY: inside the mapping and aligned; device memory is read with one access.
        unsafe { std::ptr::read_volatile(self.ptr.add(off).cast::<u32>()) }
    }

    pub fn write32(&self, off: usize, v: u32) {
        assert!(off + 4 <= self.len && off.is_multiple_of(4));
        // SAFETY: as in `read32`.
        unsafe { std::ptr::write_volatile(self.ptr.add(off).cast::<u32>(), v) }
    }

    pub fn read64(&self, off: usize) -> u64 {
        assert!(off + 8 <= self.len && off.is_multiple_of(8));
        // SAFETY: as in `read32`.
        unsafe { std::ptr::read_volatile(self.ptr.add(off).cast::<u64>()) }
    }

    pub fn write64(&self, off: usize, v: u64) {
        assert!(off + 8 <= self.len && off.is_multiple_of(8));
        // SAFETY: as in `read32`.
        unsafe { std::ptr::write_volatile(self.ptr.add(off).cast::<u64>(), v) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly what `new` mapped.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

/// How a forked child ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChildEnd {
    Exit(i32),
    Signal(i32),
    /// fork or waitpid failed (errno).
    Error(i32),
}

impl std::fmt::Display for ChildEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChildEnd::Exit(c) => write!(f, "child exit {c}"),
            ChildEnd::Signal(libc::SIGBUS) => write!(f, "child SIGBUS"),
            ChildEnd::Signal(s) => write!(f, "child signal {s}"),
            ChildEnd::Error(e) => write!(f, "fork/wait errno {e}"),
        }
    }
}

/// Runs `body` in a forked child (which inherits every mapping) and reports how it ended; the
/// child exits with `body`'s return value through `_exit`, so nothing of the parent's runs
/// twice. Used to touch a mapping that may raise SIGBUS without risking the test binary.
pub fn in_child(body: impl FnOnce() -> i32) -> ChildEnd {
    // The guest binary is single-threaded; stdout is flushed after every line.
    // SAFETY: fork in a single-threaded process; the child only runs `body` and `_exit`s.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return ChildEnd::Error(errno(&io::Error::last_os_error()));
    }
    if pid == 0 {
        let code = body();
        // SAFETY: ends the child without running the parent's destructors or atexit handlers.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: waits for our own child; `status` is a live int.
    let r = unsafe { libc::waitpid(pid, &mut status, 0) };
    if r < 0 {
        return ChildEnd::Error(errno(&io::Error::last_os_error()));
    }
    if libc::WIFSIGNALED(status) {
        ChildEnd::Signal(libc::WTERMSIG(status))
    } else {
        ChildEnd::Exit(libc::WEXITSTATUS(status))
    }
}

/// A group attached to its own container, from which device fds can be taken again and again
/// (the open/close loop and the benchmark).
pub struct Group {
    pub group: File,
    _container: File,
}

impl Group {
    pub fn open(group_node: &str, iommu_type: u32) -> Result<Self, String> {
        let container = ctx(open_rw("/dev/vfio/vfio"), "open /dev/vfio/vfio")?;
        let group = ctx(open_rw(group_node), &format!("open {group_node}"))?;
        let mut cfd: i32 = container.as_raw_fd();
        ctx(
            ioctl_ptr(&group, VFIO_GROUP_SET_CONTAINER, &mut cfd),
            "VFIO_GROUP_SET_CONTAINER",
        )?;
        ctx(
            ioctl_val(&container, VFIO_SET_IOMMU, iommu_type as _),
            &format!("VFIO_SET_IOMMU({iommu_type})"),
        )?;
        Ok(Self {
            group,
            _container: container,
        })
    }

    /// `VFIO_GROUP_GET_DEVICE_FD` with `name` as given (a BDF, possibly with options).
    pub fn device(&self, name: &str) -> io::Result<File> {
        let name =
            CString::new(name).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let fd = ioctl_ptr(
            &self.group,
            VFIO_GROUP_GET_DEVICE_FD,
            name.as_ptr() as *mut libc::c_char,
        )?;
        // SAFETY: the ioctl returned a new file descriptor that nothing else owns.
        Ok(unsafe { <File as std::os::fd::FromRawFd>::from_raw_fd(fd) })
    }
}

pub const VFIO_DEVICE_RESET: u64 = io(VFIO_TYPE, VFIO_BASE + 11);
pub const VFIO_DEVICE_GET_PCI_HOT_RESET_INFO: u64 = io(VFIO_TYPE, VFIO_BASE + 12);
pub const VFIO_DEVICE_PCI_HOT_RESET: u64 = io(VFIO_TYPE, VFIO_BASE + 13);
pub const VFIO_DEVICE_FEATURE: u64 = io(VFIO_TYPE, VFIO_BASE + 17);
pub const VFIO_DEVICE_FLAGS_RESET: u32 = 1;

/// `VFIO_DEVICE_RESET`: 0 or the errno.
pub fn reset(f: &File) -> i32 {
    match ioctl_val(f, VFIO_DEVICE_RESET, 0) {
        Ok(_) => 0,
        Err(e) => errno(&e),
    }
}

/// `GET_PCI_HOT_RESET_INFO` with room for `room` entries: the header (argsz, flags, count) and
/// the entries (id, segment, bus, devfn), or the errno with the header as written back.
/// One `vfio_pci_dependent_device`: (group or device ID, segment, bus, devfn).
pub type Dependent = (u32, u16, u8, u8);

pub fn hot_reset_info(f: &File, room: usize) -> (Result<(), i32>, [u32; 3], Vec<Dependent>) {
    let mut buf = vec![0u32; 3 + room * 2];
    buf[0] = (12 + room * 8) as u32;
    buf[1] = 0xa5a5_a5a5;
    buf[2] = 0xa5a5_a5a5;
    let r = ioctl_ptr(f, VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, buf.as_mut_ptr())
        .map(|_| ())
        .map_err(|e| errno(&e));
    let hdr = [buf[0], buf[1], buf[2]];
    let n = if r.is_ok() {
        (hdr[2] as usize).min(room)
    } else {
        0
    };
    let devs = (0..n)
        .map(|i| {
            let (id, rest) = (buf[3 + 2 * i], buf[4 + 2 * i]);
            (id, rest as u16, (rest >> 16) as u8, (rest >> 24) as u8)
        })
        .collect();
    (r, hdr, devs)
}

/// `PCI_HOT_RESET` with `flags` and the group fds `fds` (`count` overrides their number).
pub fn hot_reset(f: &File, flags: u32, fds: &[i32], count: Option<u32>) -> i32 {
    let mut buf: Vec<u32> = vec![
        (12 + fds.len() * 4) as u32,
        flags,
        count.unwrap_or(fds.len() as u32),
    ];
    buf.extend(fds.iter().map(|&x| x as u32));
    match ioctl_ptr(f, VFIO_DEVICE_PCI_HOT_RESET, buf.as_mut_ptr()) {
        Ok(_) => 0,
        Err(e) => errno(&e),
    }
}

/// `VFIO_DEVICE_FEATURE` with `flags` and `data`: 0 or the errno.
pub fn feature(f: &File, flags: u32, data: &[u8]) -> i32 {
    let mut buf: Vec<u8> = Vec::new();
    buf.extend_from_slice(&((8 + data.len()) as u32).to_ne_bytes());
    buf.extend_from_slice(&flags.to_ne_bytes());
    buf.extend_from_slice(data);
    match ioctl_ptr(f, VFIO_DEVICE_FEATURE, buf.as_mut_ptr()) {
        Ok(_) => 0,
        Err(e) => errno(&e),
    }
}

/// Bit 40 and up of a device fd offset select the region (`VFIO_PCI_OFFSET_SHIFT`).
pub const REGION_SHIFT: u32 = 40;
/// `VFIO_PCI_ROM_REGION_INDEX`.
pub const ROM_INDEX: u32 = 6;
/// `VFIO_PCI_VGA_REGION_INDEX`.
pub const VGA_INDEX: u32 = 8;
/// The device fd offset of region `index`.
pub const fn region_offset(index: u32) -> i64 {
    (index as i64) << REGION_SHIFT
}
/// The device fd offset of the config region.
pub const CONFIG_BASE: i64 = region_offset(CONFIG_INDEX);

/// An ioctl whose argument is a plain value: its return value or the errno.
pub fn ioctl_plain(f: &File, req: u64, val: u64) -> Result<i32, i32> {
    ioctl_val(f, req, val as libc::c_ulong).map_err(|e| errno(&e))
}
