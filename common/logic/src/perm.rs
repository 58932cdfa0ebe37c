// SPDX-License-Identifier: GPL-2.0
//! Config-space policy as data: which bits of each capability are virtualized (served from the
//! per-device virtual image, never from the device) and which are writable by user space, plus
//! the handler that interprets them. Mirrors upstream `vfio_pci_init_perm_bits` and the
//! `pci_cap_length`/`pci_ext_cap_length` tables of `vfio_pci_config.c`.
//!
//! Every table is `static`, built at compile time: one copy shared by every device and every
//! module, with nothing to allocate, refcount or free (upstream allocates them at module init;
//! the 2019 split needed a refcounted, locked allocation for the same data).
//!
//! A read of a virtualized bit returns the virtual image; a read of any other bit goes to the
//! device. A write changes only writable bits: writable virtualized bits in the virtual image,
//! writable physical bits on the device (read-modify-write), so a host-owned bit is never
//! written. Tables are rounded up to whole dwords, like upstream's `alloc_perm_bits`.

use super::pci_regs::{self as r, cap_id, ext_cap_id};

/// How a read of a byte range owned by a table is answered (upstream's `readfn`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadKind {
    /// Virtual bits from the image, the rest from the device (`vfio_default_config_read`).
    Default,
    /// `Default`, with BAR sizing and the virtual memory-enable bit (`vfio_basic_config_read`).
    Basic,
    /// `Default`, after refreshing the MSI queue size (`vfio_msi_config_read`).
    Msi,
    /// From the device, except capability ID/next, which come from the image
    /// (`vfio_direct_config_read`).
    Direct,
    /// From the device, unchanged (`vfio_raw_config_read`).
    Raw,
    /// From the image only (`vfio_virt_config_read`).
    Virt,
}

/// How a write to a byte range owned by a table is applied (upstream's `writefn`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteKind {
    /// Writable bits only, virtual ones to the image (`vfio_default_config_write`).
    Default,
    /// `Default` plus COMMAND (memory/io enable, BAR restore, INTx disable) and BAR dirtiness.
    Basic,
    /// `Default`, then a PMCSR write becomes a power-state change.
    Pm,
    /// `Default`, then VPD address/data emulation.
    Vpd,
    /// `Default`, then DEVCTL FLR becomes a function reset and MRRS is set with a floor.
    Exp,
    /// `Default`, then AF FLR becomes a function reset.
    Af,
    /// `Default`, then MSI enable and queue size are fixed up and written to the device.
    Msi,
    /// Straight to the device (`vfio_raw_config_write`).
    Raw,
    /// Straight into the image (`vfio_virt_config_write`).
    Virt,
}

/// The policy for one capability (upstream's `struct perm_bits`).
#[derive(Debug)]
pub struct PermBits {
    /// Per-byte mask of virtualized bits, from the capability's start.
    pub virt: &'static [u8],
    /// Per-byte mask of writable bits, from the capability's start.
    pub write: &'static [u8],
    /// The read handler.
    pub read: ReadKind,
    /// The write handler; `None` drops writes silently (upstream: no `writefn`).
    pub write_fn: Option<WriteKind>,
}

/// `count` (1, 2 or 4) little-endian bytes of `s` at `off`, when all are in bounds: the fast
/// path of every config access (a plain load instead of a loop of checked byte reads).
#[inline]
pub fn le_at(s: &[u8], off: usize, count: usize) -> Option<u32> {
    let end = off.checked_add(count)?;
    let b = s.get(off..end)?;
    match *b {
        [b0, b1, b2, b3] => Some(u32::from_le_bytes([b0, b1, b2, b3])),
        [b0, b1] => Some(u16::from_le_bytes([b0, b1]) as u32),
        [b0] => Some(b0 as u32),
        _ => None,
    }
}

/// Stores the low `count` (1, 2 or 4) bytes of `val` little-endian at `off` when all are in
/// bounds, as one store of that width (a copy of a run-time length would be a `memcpy` call);
/// false, storing nothing, otherwise.
#[inline]
pub fn set_le_at(s: &mut [u8], off: usize, count: usize, val: u32) -> bool {
    let Some(end) = off.checked_add(count) else {
        return false;
    };
    match s.get_mut(off..end) {
        Some(b @ [_, _, _, _]) => b.copy_from_slice(&val.to_le_bytes()),
        Some(b @ [_, _]) => b.copy_from_slice(&(val as u16).to_le_bytes()),
        Some([b]) => *b = val as u8,
        _ => return false,
    }
    true
}

#[inline]
fn mask_at(table: &[u8], offset: usize, count: usize) -> u32 {
    if let Some(m) = le_at(table, offset, count) {
        return m;
    }
    // Bytes past the table read as 0 (not virtualized, not writable). Upstream's tables are
    // sized to the capability, so only malformed chains (two abutting capabilities of one ID,
    // two MSI capabilities of different layouts) reach past them; upstream then reads past its
    // allocation.
    let mut m = 0u32;
    let mut i = 0;
    while i < count && i < 4 {
        let b = offset
            .checked_add(i)
            .and_then(|o| table.get(o))
            .copied()
            .unwrap_or(0);
        m |= (b as u32) << (8 * i);
        i += 1;
    }
    m
}

impl PermBits {
    /// The virtualized bits of the `count` (1, 2 or 4) bytes at `offset`, little-endian.
    #[inline]
    pub fn virt_bits(&self, offset: usize, count: usize) -> u32 {
        mask_at(self.virt, offset, count)
    }

    /// The writable bits of the `count` (1, 2 or 4) bytes at `offset`, little-endian.
    #[inline]
    pub fn write_bits(&self, offset: usize, count: usize) -> u32 {
        mask_at(self.write, offset, count)
    }
}

/// Compile-time builder for a table of `N` bytes (`p_setb`/`p_setw`/`p_setd`).
#[derive(Debug)]
pub struct Bits<const N: usize> {
    /// Virtualized bits.
    pub virt: [u8; N],
    /// Writable bits.
    pub write: [u8; N],
}

impl<const N: usize> Bits<N> {
    const fn new() -> Self {
        Self {
            virt: [0; N],
            write: [0; N],
        }
    }

    const fn set(mut self, off: usize, width: usize, virt: u32, write: u32) -> Self {
        let mut i = 0;
        while i < width {
            self.virt[off + i] = (virt >> (8 * i)) as u8;
            self.write[off + i] = (write >> (8 * i)) as u8;
            i += 1;
        }
        self
    }

    const fn b(self, off: u16, virt: u8, write: u8) -> Self {
        self.set(off as usize, 1, virt as u32, write as u32)
    }

    const fn w(self, off: u16, virt: u16, write: u16) -> Self {
        self.set(off as usize, 2, virt as u32, write as u32)
    }

    const fn d(self, off: u16, virt: u32, write: u32) -> Self {
        self.set(off as usize, 4, virt, write)
    }
}

const ALL8: u8 = 0xff;
const ALL16: u16 = 0xffff;
const ALL32: u32 = 0xffff_ffff;

/// The standard header (`init_pci_cap_basic_perm`).
pub static BASIC_BITS: Bits<64> = BASIC_BITS_BUILT;

/// The standard header of a device that may not master the bus (`DeviceInfo::no_dma`): as
/// [`BASIC_BITS`], with COMMAND's bus-master bit virtual too, so the function never gets it.
pub static BASIC_NO_DMA_BITS: Bits<64> = BASIC_BITS_BUILT.w(
    r::COMMAND,
    r::COMMAND_INTX_DISABLE | r::COMMAND_MASTER,
    ALL16,
);

const BASIC_BITS_BUILT: Bits<64> = Bits::new()
    // Virtualized for SR-IOV VFs, which read 0xffff.
    .w(r::VENDOR_ID, ALL16, 0)
    .w(r::DEVICE_ID, ALL16, 0)
    // INTx disable is ours: we mask INTx with it, and emulate it for pre-2.3 devices.
    .w(r::COMMAND, r::COMMAND_INTX_DISABLE, ALL16)
    // The capability list bit, so that hiding every capability can clear it.
    .w(r::STATUS, r::STATUS_CAP_LIST, 0)
    .b(r::CACHE_LINE_SIZE, 0, ALL8)
    .b(r::LATENCY_TIMER, 0, ALL8)
    .b(r::BIST, 0, ALL8)
    // BARs are sized against the virtual image; the real ones are the host's.
    .d(r::BASE_ADDRESS_0, ALL32, ALL32)
    .d(r::BASE_ADDRESS_0 + 4, ALL32, ALL32)
    .d(r::BASE_ADDRESS_0 + 8, ALL32, ALL32)
    .d(r::BASE_ADDRESS_0 + 12, ALL32, ALL32)
    .d(r::BASE_ADDRESS_0 + 16, ALL32, ALL32)
    .d(r::BASE_ADDRESS_5, ALL32, ALL32)
    .d(r::ROM_ADDRESS, ALL32, ALL32)
    .b(r::CAPABILITY_LIST, ALL8, 0)
    .b(r::INTERRUPT_LINE, ALL8, ALL8)
    // Virtual so INTx can be hidden.
    .b(r::INTERRUPT_PIN, ALL8, 0);

/// Power Management (`init_pci_cap_pm_perm`): PME is the host's, the power state is trapped.
pub static PM_BITS: Bits<8> = Bits::new()
    .b(r::CAP_LIST_NEXT, ALL8, 0)
    .w(r::PM_PMC, r::PM_CAP_PME_MASK, 0)
    .d(
        r::PM_CTRL,
        r::PM_CTRL_PME_ENABLE | r::PM_CTRL_PME_STATUS,
        !(r::PM_CTRL_PME_ENABLE | r::PM_CTRL_PME_STATUS | r::PM_CTRL_STATE_MASK),
    );

/// Vital Product Data (`init_pci_cap_vpd_perm`): address and data are emulated.
pub static VPD_BITS: Bits<8> = Bits::new()
    .b(r::CAP_LIST_NEXT, ALL8, 0)
    .w(r::VPD_ADDR, ALL16, ALL16)
    .d(r::VPD_DATA, ALL32, ALL32);

/// PCI-X (`init_pci_cap_pcix_perm`), sized for version 2.
pub static PCIX_BITS: Bits<24> = Bits::new()
    .b(r::CAP_LIST_NEXT, ALL8, 0)
    .w(r::X_CMD, 0, ALL16)
    .d(r::X_ECC_CSR, 0, ALL32);

/// PCI Express (`init_pci_cap_exp_perm`): FLR, MPS and MRRS virtualized; phantom functions
/// and ARI forwarding are the host's.
pub static EXP_BITS: Bits<{ r::CAP_EXP_ENDPOINT_SIZEOF_V2 as usize }> = Bits::new()
    .b(r::CAP_LIST_NEXT, ALL8, 0)
    .w(
        r::EXP_DEVCTL,
        r::EXP_DEVCTL_BCR_FLR | r::EXP_DEVCTL_PAYLOAD | r::EXP_DEVCTL_READRQ,
        !r::EXP_DEVCTL_PHANTOM,
    )
    .w(r::EXP_DEVCTL2, 0, !r::EXP_DEVCTL2_ARI);

/// Advanced Features (`init_pci_cap_af_perm`): only FLR, which is trapped. Upstream allocates
/// 6 bytes rounded up to 8.
pub static AF_BITS: Bits<8> =
    Bits::new()
        .b(r::CAP_LIST_NEXT, ALL8, 0)
        .b(r::AF_CTRL, r::AF_CTRL_FLR, r::AF_CTRL_FLR);

/// AER uncorrectable error bits user space may write (status, mask, severity).
pub const AER_UNCOR_WRITABLE: u32 = 0x0000_0001 // undefined
    | 0x0000_0010 // data link protocol
    | 0x0000_0020 // surprise down
    | 0x0000_1000 // poisoned TLP
    | 0x0000_2000 // flow control protocol
    | 0x0000_4000 // completion timeout
    | 0x0000_8000 // completer abort
    | 0x0001_0000 // unexpected completion
    | 0x0002_0000 // receiver overflow
    | 0x0004_0000 // malformed TLP
    | 0x0008_0000 // ECRC
    | 0x0010_0000 // unsupported request
    | 0x0020_0000 // ACS violation
    | 0x0040_0000 // internal
    | 0x0080_0000 // MC blocked TLP
    | 0x0100_0000 // atomic egress blocked
    | 0x0200_0000; // TLP prefix blocked
/// AER correctable error bits user space may write (status, mask).
pub const AER_COR_WRITABLE: u32 = 0x0001 // receiver error
    | 0x0040 // bad TLP
    | 0x0080 // bad DLLP
    | 0x0100 // REPLAY_NUM rollover
    | 0x1000 // replay timer timeout
    | 0x2000 // advisory non-fatal
    | 0x4000 // corrected internal
    | 0x8000; // header log overflow
/// AER capabilities bits user space may write: ECRC generation and check enable.
pub const AER_CAP_WRITABLE: u32 = 0x40 | 0x100;

/// Advanced Error Reporting (`init_pci_ext_cap_err_perm`).
pub static ERR_BITS: Bits<{ r::ERR_ROOT_COMMAND as usize }> = Bits::new()
    // The whole header dword, because it holds the next pointer.
    .d(0, ALL32, 0)
    .d(r::ERR_UNCOR_STATUS, 0, AER_UNCOR_WRITABLE)
    .d(r::ERR_UNCOR_MASK, 0, AER_UNCOR_WRITABLE)
    .d(r::ERR_UNCOR_SEVER, 0, AER_UNCOR_WRITABLE)
    .d(r::ERR_COR_STATUS, 0, AER_COR_WRITABLE)
    .d(r::ERR_COR_MASK, 0, AER_COR_WRITABLE)
    .d(r::ERR_CAP, 0, AER_CAP_WRITABLE);

/// Power Budgeting (`init_pci_ext_cap_pwr_perm`). Upstream's comment says "data selector" but
/// it opens the byte at `PCI_PWR_DATA` (0x08), not `PCI_PWR_DSR` (0x04); we match the code.
pub static PWR_BITS: Bits<{ r::EXT_CAP_PWR_SIZEOF as usize }> =
    Bits::new().d(0, ALL32, 0).b(r::PWR_DATA, 0, ALL8);

const fn msi_bits<const N: usize>(is_64: bool, maskbit: bool) -> Bits<N> {
    let b = Bits::new()
        .b(r::CAP_LIST_NEXT, ALL8, 0)
        // Only the low byte of message control: the upper one is reserved.
        .b(r::MSI_FLAGS, ALL8, ALL8)
        .d(r::MSI_ADDRESS_LO, ALL32, ALL32);
    if is_64 {
        let b = b
            .d(r::MSI_ADDRESS_HI, ALL32, ALL32)
            .w(r::MSI_DATA_64, ALL16, ALL16);
        if maskbit {
            b.d(r::MSI_MASK_64, 0, ALL32).d(r::MSI_PENDING_64, 0, ALL32)
        } else {
            b
        }
    } else {
        let b = b.w(r::MSI_DATA_32, ALL16, ALL16);
        if maskbit {
            b.d(r::MSI_MASK_32, 0, ALL32).d(r::MSI_PENDING_32, 0, ALL32)
        } else {
            b
        }
    }
}

/// MSI, 32-bit address, no per-vector masking (10 bytes, rounded to 12).
pub static MSI32_BITS: Bits<12> = msi_bits(false, false);
/// MSI, 64-bit address, no per-vector masking (14 bytes, rounded to 16).
pub static MSI64_BITS: Bits<16> = msi_bits(true, false);
/// MSI, 32-bit address, per-vector masking (20 bytes).
pub static MSI32_MASK_BITS: Bits<20> = msi_bits(false, true);
/// MSI, 64-bit address, per-vector masking (24 bytes).
pub static MSI64_MASK_BITS: Bits<24> = msi_bits(true, true);

const fn table(
    virt: &'static [u8],
    write: &'static [u8],
    read: ReadKind,
    w: WriteKind,
) -> PermBits {
    PermBits {
        virt,
        write,
        read,
        write_fn: Some(w),
    }
}

/// The standard header.
pub static BASIC: PermBits = table(
    &BASIC_BITS.virt,
    &BASIC_BITS.write,
    ReadKind::Basic,
    WriteKind::Basic,
);
/// The standard header of a device that may not master the bus.
pub static BASIC_NO_DMA: PermBits = table(
    &BASIC_NO_DMA_BITS.virt,
    &BASIC_NO_DMA_BITS.write,
    ReadKind::Basic,
    WriteKind::Basic,
);
/// Power Management.
pub static PM: PermBits = table(
    &PM_BITS.virt,
    &PM_BITS.write,
    ReadKind::Default,
    WriteKind::Pm,
);
/// Vital Product Data.
pub static VPD: PermBits = table(
    &VPD_BITS.virt,
    &VPD_BITS.write,
    ReadKind::Default,
    WriteKind::Vpd,
);
/// PCI-X.
pub static PCIX: PermBits = table(
    &PCIX_BITS.virt,
    &PCIX_BITS.write,
    ReadKind::Default,
    WriteKind::Default,
);
/// PCI Express.
pub static EXP: PermBits = table(
    &EXP_BITS.virt,
    &EXP_BITS.write,
    ReadKind::Default,
    WriteKind::Exp,
);
/// Advanced Features.
pub static AF: PermBits = table(
    &AF_BITS.virt,
    &AF_BITS.write,
    ReadKind::Default,
    WriteKind::Af,
);
/// Advanced Error Reporting.
pub static ERR: PermBits = table(
    &ERR_BITS.virt,
    &ERR_BITS.write,
    ReadKind::Default,
    WriteKind::Default,
);
/// Power Budgeting.
pub static PWR: PermBits = table(
    &PWR_BITS.virt,
    &PWR_BITS.write,
    ReadKind::Default,
    WriteKind::Default,
);
/// The four MSI layouts, indexed by [`MsiLayout`] minus one.
pub static MSI: [PermBits; 4] = [
    table(
        &MSI32_BITS.virt,
        &MSI32_BITS.write,
        ReadKind::Msi,
        WriteKind::Msi,
    ),
    table(
        &MSI64_BITS.virt,
        &MSI64_BITS.write,
        ReadKind::Msi,
        WriteKind::Msi,
    ),
    table(
        &MSI32_MASK_BITS.virt,
        &MSI32_MASK_BITS.write,
        ReadKind::Msi,
        WriteKind::Msi,
    ),
    table(
        &MSI64_MASK_BITS.virt,
        &MSI64_MASK_BITS.write,
        ReadKind::Msi,
        WriteKind::Msi,
    ),
];
/// Every other known capability: read-only, from the device, ID and next virtualized
/// (`cap_perms[]`/`ecap_perms[]` defaults and `direct_ro_perms`).
pub static DIRECT_RO: PermBits = PermBits {
    virt: &[],
    write: &[],
    read: ReadKind::Direct,
    write_fn: None,
};
/// Vendor-specific capabilities (standard, VSEC and DVSEC): read like `DIRECT_RO`, written
/// raw, because their registers are the device's own business.
pub static VENDOR: PermBits = PermBits {
    virt: &[],
    write: &[],
    read: ReadKind::Direct,
    write_fn: Some(WriteKind::Raw),
};
/// Bytes no capability claims: raw access both ways (some devices hide registers there).
pub static UNASSIGNED: PermBits = PermBits {
    virt: &[],
    write: &[],
    read: ReadKind::Raw,
    write_fn: Some(WriteKind::Raw),
};
/// Bytes a driver virtualized wholesale (`PCI_CAP_ID_INVALID_VIRT`).
pub static VIRT: PermBits = PermBits {
    virt: &[],
    write: &[],
    read: ReadKind::Virt,
    write_fn: Some(WriteKind::Virt),
};

/// Which of the four MSI tables a device uses, 0 meaning "not chosen yet". Upstream builds the
/// table on the first MSI capability found and keeps it for the others.
pub type MsiLayout = u8;

/// The MSI layout for a message-control value (1..=4).
pub const fn msi_layout(flags: u16) -> MsiLayout {
    1 + if flags & r::MSI_FLAGS_64BIT != 0 {
        1
    } else {
        0
    } + if flags & r::MSI_FLAGS_MASKBIT != 0 {
        2
    } else {
        0
    }
}

/// The table of a standard capability (`cap_perms[]`); `msi` is the device's layout.
pub fn cap_perms(id: u8, msi: MsiLayout) -> &'static PermBits {
    match id {
        0 => &BASIC,
        cap_id::PM => &PM,
        cap_id::VPD => &VPD,
        cap_id::PCIX => &PCIX,
        cap_id::VNDR => &VENDOR,
        cap_id::EXP => &EXP,
        cap_id::AF => &AF,
        // Upstream would use its per-device MSI table, which exists whenever the map names an
        // MSI capability; if it somehow did not, read-only is the safe answer.
        cap_id::MSI => (msi as usize)
            .checked_sub(1)
            .and_then(|i| MSI.get(i))
            .unwrap_or(&DIRECT_RO),
        _ => &DIRECT_RO,
    }
}

/// The table of an extended capability (`ecap_perms[]`, `direct_ro_perms` beyond the max).
pub fn ecap_perms(id: u8) -> &'static PermBits {
    match id as u16 {
        ext_cap_id::ERR => &ERR,
        ext_cap_id::PWR => &PWR,
        ext_cap_id::VNDR | ext_cap_id::DVSEC => &VENDOR,
        _ => &DIRECT_RO,
    }
}

/// A length-table entry meaning "computed from the capability's registers".
pub const VARIABLE: u16 = 0xff;

/// Upstream's `pci_cap_length[]`: bytes each standard capability occupies, 0 to hide it,
/// [`VARIABLE`] to compute it. Index 0 is the standard header.
pub const CAP_LENGTH: [u8; cap_id::MAX as usize + 1] = {
    let mut t = [0u8; cap_id::MAX as usize + 1];
    t[0] = r::STD_HEADER_SIZEOF as u8;
    t[cap_id::PM as usize] = r::PM_SIZEOF as u8;
    t[cap_id::AGP as usize] = r::AGP_SIZEOF as u8;
    t[cap_id::VPD as usize] = r::CAP_VPD_SIZEOF as u8;
    t[cap_id::MSI as usize] = 0xff;
    t[cap_id::PCIX as usize] = 0xff;
    t[cap_id::HT as usize] = 0xff;
    t[cap_id::VNDR as usize] = 0xff;
    t[cap_id::EXP as usize] = 0xff;
    t[cap_id::MSIX as usize] = r::CAP_MSIX_SIZEOF as u8;
    t[cap_id::SATA as usize] = 0xff;
    t[cap_id::AF as usize] = r::CAP_AF_SIZEOF as u8;
    // SLOTID, CHSWP, DBG, CCRC, SHPC, SSVID, AGP3, SECDEV and EA stay 0: hidden.
    t
};

/// Upstream's `pci_ext_cap_length[]`, indexed by extended capability ID.
pub const EXT_CAP_LENGTH: [u16; ext_cap_id::MAX as usize + 1] = {
    use ext_cap_id as e;
    let mut t = [0u16; e::MAX as usize + 1];
    t[e::ERR as usize] = r::ERR_ROOT_COMMAND;
    t[e::VC as usize] = VARIABLE;
    t[e::DSN as usize] = r::EXT_CAP_DSN_SIZEOF;
    t[e::PWR as usize] = r::EXT_CAP_PWR_SIZEOF;
    t[e::MFVC as usize] = VARIABLE;
    t[e::VC9 as usize] = VARIABLE;
    t[e::VNDR as usize] = VARIABLE;
    t[e::ACS as usize] = VARIABLE;
    t[e::ARI as usize] = r::EXT_CAP_ARI_SIZEOF;
    t[e::ATS as usize] = r::EXT_CAP_ATS_SIZEOF;
    t[e::SRIOV as usize] = r::EXT_CAP_SRIOV_SIZEOF;
    t[e::MCAST as usize] = r::EXT_CAP_MCAST_ENDPOINT_SIZEOF;
    t[e::PRI as usize] = r::EXT_CAP_PRI_SIZEOF;
    t[e::REBAR as usize] = VARIABLE;
    t[e::DPA as usize] = VARIABLE;
    t[e::TPH as usize] = VARIABLE;
    t[e::LTR as usize] = r::EXT_CAP_LTR_SIZEOF;
    t[e::DVSEC as usize] = VARIABLE;
    // RCLD, RCILC, RCEC, RCRB, CAC, MRIOV, AMD_XXX, SECPCI, PMUX, PASID and every ID upstream
    // does not list (DPC, L1SS, PTM, DLF, PL_16GT, NPEM, PL_32GT, DOE, ...) stay 0: hidden.
    t
};
