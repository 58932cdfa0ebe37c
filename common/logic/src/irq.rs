// SPDX-License-Identifier: GPL-2.0
//! The interrupt ioctls' arguments and upstream's rules for them: `VFIO_DEVICE_GET_IRQ_INFO`
//! (`vfio_pci_ioctl_get_irq_info`, `vfio_pci_get_irq_count`) and `VFIO_DEVICE_SET_IRQS`
//! (`vfio_set_irqs_validate_and_prepare` in `vfio_main.c`, then the dispatch and per-index
//! checks of `vfio_pci_set_irqs_ioctl` in `vfio_pci_intrs.c`).
//!
//! Everything a request can be refused for without touching the device is decided here, with
//! upstream's errno and in upstream's order: the kernel decodes the header ([`IrqSet`]),
//! asks [`IrqSet::validate`] how many data bytes to copy, and turns the request into one
//! [`Command`] with [`plan`]. What is left to the kernel is only what depends on the running
//! system: resolving eventfds, allocating vectors, requesting interrupts.

use super::errno::{Errno, EINVAL, ENOTTY};

/// `VFIO_PCI_INTX_IRQ_INDEX`.
pub const INTX: u32 = 0;
/// `VFIO_PCI_MSI_IRQ_INDEX`.
pub const MSI: u32 = 1;
/// `VFIO_PCI_MSIX_IRQ_INDEX`.
pub const MSIX: u32 = 2;
/// `VFIO_PCI_ERR_IRQ_INDEX`.
pub const ERR: u32 = 3;
/// `VFIO_PCI_REQ_IRQ_INDEX`.
pub const REQ: u32 = 4;
/// `VFIO_PCI_NUM_IRQS`.
pub const NUM_IRQS: u32 = 5;

/// `VFIO_IRQ_INFO_EVENTFD`.
pub const INFO_EVENTFD: u32 = 1 << 0;
/// `VFIO_IRQ_INFO_MASKABLE`.
pub const INFO_MASKABLE: u32 = 1 << 1;
/// `VFIO_IRQ_INFO_AUTOMASKED`.
pub const INFO_AUTOMASKED: u32 = 1 << 2;
/// `VFIO_IRQ_INFO_NORESIZE`.
pub const INFO_NORESIZE: u32 = 1 << 3;

/// `VFIO_IRQ_SET_DATA_NONE`.
pub const SET_DATA_NONE: u32 = 1 << 0;
/// `VFIO_IRQ_SET_DATA_BOOL`.
pub const SET_DATA_BOOL: u32 = 1 << 1;
/// `VFIO_IRQ_SET_DATA_EVENTFD`.
pub const SET_DATA_EVENTFD: u32 = 1 << 2;
/// `VFIO_IRQ_SET_DATA_TYPE_MASK`.
pub const SET_DATA_TYPE_MASK: u32 = SET_DATA_NONE | SET_DATA_BOOL | SET_DATA_EVENTFD;
/// `VFIO_IRQ_SET_ACTION_MASK`.
pub const SET_ACTION_MASK: u32 = 1 << 3;
/// `VFIO_IRQ_SET_ACTION_UNMASK`.
pub const SET_ACTION_UNMASK: u32 = 1 << 4;
/// `VFIO_IRQ_SET_ACTION_TRIGGER`.
pub const SET_ACTION_TRIGGER: u32 = 1 << 5;
/// `VFIO_IRQ_SET_ACTION_TYPE_MASK`.
pub const SET_ACTION_TYPE_MASK: u32 = SET_ACTION_MASK | SET_ACTION_UNMASK | SET_ACTION_TRIGGER;

/// `PCI_MSI_FLAGS_QMASK`: Multiple Message Capable, log2 of the vectors the function asks for.
pub const MSI_FLAGS_QMASK: u16 = 0x000e;
/// `PCI_MSIX_FLAGS_QSIZE`: table size minus one.
pub const MSIX_FLAGS_QSIZE: u16 = 0x07ff;

use super::uapi::u32_at;

/// What `GET_IRQ_INFO` and the `SET_IRQS` range check need to know about the device.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IrqCaps {
    /// The virtual interrupt pin (`vconfig[PCI_INTERRUPT_PIN]`): 0 means no INTx (also when
    /// the pin is hidden, e.g. for `nointx` devices).
    pub intx_pin: u8,
    /// The physical MSI capability's Message Control, if the function has MSI.
    pub msi_flags: Option<u16>,
    /// The physical MSI-X capability's Message Control, if the function has MSI-X.
    pub msix_flags: Option<u16>,
    /// The function is PCI Express (`pci_is_pcie`): only then does it have an ERR index.
    pub pcie: bool,
    /// MSI-X vectors can be added while MSI-X is enabled (`pci_msix_can_alloc_dyn`).
    pub dyn_msix: bool,
}

impl IrqCaps {
    /// `vfio_pci_get_irq_count`: how many vectors `index` has (0 for an unknown index).
    pub fn count(&self, index: u32) -> u32 {
        match index {
            INTX => u32::from(self.intx_pin != 0),
            MSI => self
                .msi_flags
                .map_or(0, |f| 1 << ((f & MSI_FLAGS_QMASK) >> 1)),
            MSIX => self
                .msix_flags
                .map_or(0, |f| u32::from(f & MSIX_FLAGS_QSIZE) + 1),
            ERR => u32::from(self.pcie),
            REQ => 1,
            _ => 0,
        }
    }
}

/// `struct vfio_irq_info` (argsz, flags, index, count: 16 bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IrqInfo {
    /// Size of the user's buffer, echoed back.
    pub argsz: u32,
    /// `VFIO_IRQ_INFO_*`.
    pub flags: u32,
    /// The interrupt index asked about.
    pub index: u32,
    /// Number of vectors.
    pub count: u32,
}

impl IrqInfo {
    /// Bytes upstream reads from and writes back to user space (all of the structure).
    pub const MINSZ: usize = 16;

    /// Decodes the bytes read from user space.
    pub fn from_user(b: &[u8; Self::MINSZ]) -> Self {
        Self {
            argsz: u32_at(b, 0),
            flags: u32_at(b, 4),
            index: u32_at(b, 8),
            count: u32_at(b, 12),
        }
    }

    /// Upstream's answer: `-EINVAL` for a short `argsz`, an index past the last, or ERR on a
    /// function that is not PCI Express; otherwise flags and count for the index.
    pub fn answer(self, caps: &IrqCaps) -> Result<Self, Errno> {
        if (self.argsz as usize) < Self::MINSZ || self.index >= NUM_IRQS {
            return Err(EINVAL);
        }
        if self.index == ERR && !caps.pcie {
            return Err(EINVAL);
        }
        let mut flags = INFO_EVENTFD;
        if self.index == INTX {
            flags |= INFO_MASKABLE | INFO_AUTOMASKED;
        } else if self.index != MSIX || !caps.dyn_msix {
            flags |= INFO_NORESIZE;
        }
        Ok(Self {
            flags,
            count: caps.count(self.index),
            ..self
        })
    }

    /// The structure as user space sees it.
    pub fn to_bytes(&self) -> [u8; Self::MINSZ] {
        let mut b = [0u8; Self::MINSZ];
        for (i, v) in [self.argsz, self.flags, self.index, self.count]
            .iter()
            .enumerate()
        {
            b[i * 4..i * 4 + 4].copy_from_slice(&v.to_ne_bytes());
        }
        b
    }
}

/// The header of `struct vfio_irq_set` (argsz, flags, index, start, count: 20 bytes); the data
/// follows it in user memory.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IrqSet {
    /// Size of the header plus data.
    pub argsz: u32,
    /// One `VFIO_IRQ_SET_DATA_*` and one `VFIO_IRQ_SET_ACTION_*`.
    pub flags: u32,
    /// Interrupt index.
    pub index: u32,
    /// First vector.
    pub start: u32,
    /// Number of vectors (0 with `DATA_NONE` and `TRIGGER` disables the index).
    pub count: u32,
}

impl IrqSet {
    /// Bytes of the header (`offsetofend(struct vfio_irq_set, count)`); the data starts here.
    pub const MINSZ: usize = 20;

    /// Decodes the header read from user space.
    pub fn from_user(b: &[u8; Self::MINSZ]) -> Self {
        Self {
            argsz: u32_at(b, 0),
            flags: u32_at(b, 4),
            index: u32_at(b, 8),
            start: u32_at(b, 12),
            count: u32_at(b, 16),
        }
    }

    /// The header as user space writes it (for tests and the guest suite).
    pub fn to_bytes(&self) -> [u8; Self::MINSZ] {
        let mut b = [0u8; Self::MINSZ];
        for (i, v) in [self.argsz, self.flags, self.index, self.start, self.count]
            .iter()
            .enumerate()
        {
            b[i * 4..i * 4 + 4].copy_from_slice(&v.to_ne_bytes());
        }
        b
    }

    /// `vfio_set_irqs_validate_and_prepare` with `max` = the index's vector count: the number
    /// of data bytes to copy from user space after the header, or `-EINVAL`.
    pub fn validate(&self, max: u32) -> Result<usize, Errno> {
        if (self.argsz as usize) < Self::MINSZ
            || self.index >= NUM_IRQS
            || self.count >= u32::MAX - self.start
            || self.flags & !(SET_DATA_TYPE_MASK | SET_ACTION_TYPE_MASK) != 0
        {
            return Err(EINVAL);
        }
        // `count < U32_MAX - start` above, so this cannot overflow.
        if self.start >= max || self.start + self.count > max {
            return Err(EINVAL);
        }
        let size: u64 = match self.flags & SET_DATA_TYPE_MASK {
            SET_DATA_NONE => 0,
            SET_DATA_BOOL => 1,
            SET_DATA_EVENTFD => 4,
            _ => return Err(EINVAL),
        };
        let need = u64::from(self.count) * size;
        if u64::from(self.argsz) - (Self::MINSZ as u64) < need {
            return Err(EINVAL);
        }
        Ok(need as usize)
    }
}

/// Which interrupt type the device delivers right now (`vdev->irq_type`; one at a time).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// Nothing enabled (`VFIO_PCI_NUM_IRQS`).
    #[default]
    None,
    /// INTx.
    Intx,
    /// MSI.
    Msi,
    /// MSI-X.
    Msix,
}

impl Mode {
    /// The index of this mode, as user space names it (`NUM_IRQS` for none).
    pub fn index(self) -> u32 {
        match self {
            Mode::None => NUM_IRQS,
            Mode::Intx => INTX,
            Mode::Msi => MSI,
            Mode::Msix => MSIX,
        }
    }
}

/// What [`plan`] needs to know about the device's interrupt state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IrqStatus {
    /// The active mode.
    pub mode: Mode,
    /// An ERR eventfd is set.
    pub err_set: bool,
    /// A REQ eventfd is set.
    pub req_set: bool,
    /// The function is PCI Express.
    pub pcie: bool,
}

/// The single-eventfd indexes (ERR and REQ).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Single {
    /// `VFIO_PCI_ERR_IRQ_INDEX`.
    Err,
    /// `VFIO_PCI_REQ_IRQ_INDEX`.
    Req,
}

/// What to do to an ERR or REQ eventfd.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SingleOp {
    /// Signal it if set (loopback testing).
    Signal,
    /// Drop it.
    Clear,
    /// Replace it with the eventfd behind this fd (`fd >= 0`).
    Set(i32),
}

/// One `SET_IRQS` request, checked: exactly what the kernel must do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command<'a> {
    /// Nothing (a `false` bool).
    Noop,
    /// Mask INTx (`__vfio_pci_intx_mask`).
    IntxMask,
    /// Unmask INTx, re-sending a pending interrupt (`__vfio_pci_intx_unmask`).
    IntxUnmask,
    /// Unmask INTx whenever this eventfd is signalled (`vfio_virqfd_enable`).
    IntxUnmaskFd(i32),
    /// Stop unmasking by eventfd (`vfio_virqfd_disable`).
    IntxUnmaskFdOff,
    /// INTx is active: replace its trigger (`None`: signal nothing).
    IntxSetTrigger(Option<i32>),
    /// Nothing is active: enable INTx with this trigger (`None` is allowed, as upstream).
    IntxEnable(Option<i32>),
    /// Disable INTx.
    IntxDisable,
    /// Signal the INTx trigger (loopback).
    IntxSignal,
    /// Disable MSI (`msix` false) or MSI-X.
    MsiDisable {
        /// MSI-X rather than MSI.
        msix: bool,
    },
    /// Set the triggers of vectors `start..start + count` from `fds` (native-endian `i32`s,
    /// `-1`: detach), enabling MSI/MSI-X with `start + count` vectors first when `enable`.
    MsiSetBlock {
        /// MSI-X rather than MSI.
        msix: bool,
        /// Nothing was active: allocate `start + count` vectors first.
        enable: bool,
        /// First vector.
        start: u32,
        /// Number of vectors.
        count: u32,
        /// `count` fds.
        fds: &'a [u8],
    },
    /// Signal the triggers of the vectors `start..start + count` that have one, all of them
    /// (`bools` `None`) or those whose byte is non-zero.
    MsiSignal {
        /// First vector.
        start: u32,
        /// Number of vectors.
        count: u32,
        /// One byte per vector for `DATA_BOOL`.
        bools: Option<&'a [u8]>,
    },
    /// Act on the ERR or REQ eventfd.
    Single(Single, SingleOp),
}

/// The `i`th native-endian `i32` of `data` (`-1` if missing, which [`IrqSet::validate`]
/// rules out).
pub fn fd_at(data: &[u8], i: usize) -> i32 {
    i32::from_ne_bytes(match data.get(i * 4..i * 4 + 4) {
        Some(b) => [b[0], b[1], b[2], b[3]],
        None => [0xff; 4],
    })
}

fn first_bool(data: &[u8]) -> bool {
    data.first().is_some_and(|&b| b != 0)
}

/// `vfio_pci_set_irqs_ioctl` and the per-index handlers, up to the point where they act:
/// `hdr` has passed [`IrqSet::validate`] and `data` holds the bytes it asked for.
pub fn plan<'a>(hdr: &IrqSet, data: &'a [u8], st: &IrqStatus) -> Result<Command<'a>, Errno> {
    let action = hdr.flags & SET_ACTION_TYPE_MASK;
    let dtype = hdr.flags & SET_DATA_TYPE_MASK;
    match (hdr.index, action) {
        (INTX, SET_ACTION_MASK) => intx_mask(hdr, dtype, data, st),
        (INTX, SET_ACTION_UNMASK) => intx_unmask(hdr, dtype, data, st),
        (INTX, SET_ACTION_TRIGGER) => intx_trigger(hdr, dtype, data, st),
        (MSI | MSIX, SET_ACTION_TRIGGER) => msi_trigger(hdr, dtype, data, st),
        (ERR, SET_ACTION_TRIGGER) if st.pcie => single(Single::Err, hdr, dtype, data, st.err_set),
        (REQ, SET_ACTION_TRIGGER) => single(Single::Req, hdr, dtype, data, st.req_set),
        // MSI/MSI-X masking is not exported by the PCI core; ERR and REQ only trigger.
        _ => Err(ENOTTY),
    }
}

fn intx_mask<'a>(
    hdr: &IrqSet,
    dtype: u32,
    data: &'a [u8],
    st: &IrqStatus,
) -> Result<Command<'a>, Errno> {
    if st.mode != Mode::Intx || hdr.start != 0 || hdr.count != 1 {
        return Err(EINVAL);
    }
    match dtype {
        SET_DATA_NONE => Ok(Command::IntxMask),
        SET_DATA_BOOL if first_bool(data) => Ok(Command::IntxMask),
        SET_DATA_BOOL => Ok(Command::Noop),
        // Upstream: "XXX implement me".
        _ => Err(ENOTTY),
    }
}

fn intx_unmask<'a>(
    hdr: &IrqSet,
    dtype: u32,
    data: &'a [u8],
    st: &IrqStatus,
) -> Result<Command<'a>, Errno> {
    if st.mode != Mode::Intx || hdr.start != 0 || hdr.count != 1 {
        return Err(EINVAL);
    }
    match dtype {
        SET_DATA_NONE => Ok(Command::IntxUnmask),
        SET_DATA_BOOL if first_bool(data) => Ok(Command::IntxUnmask),
        SET_DATA_BOOL => Ok(Command::Noop),
        _ => match fd_at(data, 0) {
            fd if fd >= 0 => Ok(Command::IntxUnmaskFd(fd)),
            _ => Ok(Command::IntxUnmaskFdOff),
        },
    }
}

fn intx_trigger<'a>(
    hdr: &IrqSet,
    dtype: u32,
    data: &'a [u8],
    st: &IrqStatus,
) -> Result<Command<'a>, Errno> {
    let intx = st.mode == Mode::Intx;
    if intx && hdr.count == 0 && dtype == SET_DATA_NONE {
        return Ok(Command::IntxDisable);
    }
    if !(intx || st.mode == Mode::None) || hdr.start != 0 || hdr.count != 1 {
        return Err(EINVAL);
    }
    if dtype == SET_DATA_EVENTFD {
        let fd = Some(fd_at(data, 0)).filter(|&fd| fd >= 0);
        return Ok(if intx {
            Command::IntxSetTrigger(fd)
        } else {
            Command::IntxEnable(fd)
        });
    }
    if !intx {
        return Err(EINVAL);
    }
    match dtype {
        SET_DATA_BOOL if !first_bool(data) => Ok(Command::Noop),
        _ => Ok(Command::IntxSignal),
    }
}

fn msi_trigger<'a>(
    hdr: &IrqSet,
    dtype: u32,
    data: &'a [u8],
    st: &IrqStatus,
) -> Result<Command<'a>, Errno> {
    let msix = hdr.index == MSIX;
    let active = st.mode.index() == hdr.index;
    if active && hdr.count == 0 && dtype == SET_DATA_NONE {
        return Ok(Command::MsiDisable { msix });
    }
    if !(active || st.mode == Mode::None) {
        return Err(EINVAL);
    }
    if dtype == SET_DATA_EVENTFD {
        return Ok(Command::MsiSetBlock {
            msix,
            enable: !active,
            start: hdr.start,
            count: hdr.count,
            fds: data,
        });
    }
    if !active {
        return Err(EINVAL);
    }
    let bools = (dtype == SET_DATA_BOOL).then_some(data);
    Ok(Command::MsiSignal {
        start: hdr.start,
        count: hdr.count,
        bools,
    })
}

/// `vfio_pci_set_err_trigger` / `vfio_pci_set_req_trigger` and
/// `vfio_pci_set_ctx_trigger_single`.
fn single<'a>(
    which: Single,
    hdr: &IrqSet,
    dtype: u32,
    data: &'a [u8],
    set: bool,
) -> Result<Command<'a>, Errno> {
    if hdr.start != 0 || hdr.count > 1 {
        return Err(EINVAL);
    }
    let op = match dtype {
        SET_DATA_NONE if !set => return Err(EINVAL),
        SET_DATA_NONE if hdr.count == 1 => SingleOp::Signal,
        SET_DATA_NONE => SingleOp::Clear,
        _ if hdr.count == 0 => return Err(EINVAL),
        SET_DATA_BOOL if first_bool(data) => SingleOp::Signal,
        SET_DATA_BOOL => return Ok(Command::Noop),
        _ => match fd_at(data, 0) {
            -1 => SingleOp::Clear,
            fd if fd >= 0 => SingleOp::Set(fd),
            _ => return Err(EINVAL),
        },
    };
    Ok(Command::Single(which, op))
}

/// `vdev->msi_qmax` after enabling `nvec` MSI vectors: `fls(nvec * 2 - 1) - 1`, the log2 of
/// `nvec` rounded up, which the virtual capability reports as Multiple Message Enable.
pub fn msi_qmax(nvec: u32) -> u8 {
    match nvec {
        0 => 0,
        n => (32 - (n.saturating_mul(2) - 1).leading_zeros() - 1) as u8,
    }
}

/// `vfio_pci_nointx`: functions whose INTx masking is broken in a way the PCI core does not
/// catch (Intel XL710/X710/XXV710 and X550); upstream hides their pin and keeps INTx disabled.
pub fn nointx_quirk(vendor: u16, device: u16) -> bool {
    const PCI_VENDOR_ID_INTEL: u16 = 0x8086;
    vendor == PCI_VENDOR_ID_INTEL
        && matches!(device, 0x1572 | 0x1574 | 0x1580..=0x1581 | 0x1583..=0x158b | 0x37d0..=0x37d2 | 0x1563)
}
