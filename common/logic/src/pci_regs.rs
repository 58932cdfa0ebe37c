// SPDX-License-Identifier: GPL-2.0
//! The PCI configuration-space registers and capability IDs that config emulation needs, with
//! the values of `include/uapi/linux/pci_regs.h` (6.12). Only what the emulator and its
//! permission tables use; the names follow the C header so each can be checked against it.

/// Size of conventional config space.
pub const CFG_SPACE_SIZE: u16 = 256;
/// Size of PCIe extended config space.
pub const CFG_SPACE_EXP_SIZE: u16 = 4096;
/// Size of the standard (type 0) header.
pub const STD_HEADER_SIZEOF: u16 = 64;

/// Vendor ID (16 bits).
pub const VENDOR_ID: u16 = 0x00;
/// Device ID (16 bits).
pub const DEVICE_ID: u16 = 0x02;
/// Command register (16 bits).
pub const COMMAND: u16 = 0x04;
/// Respond to I/O space accesses.
pub const COMMAND_IO: u16 = 0x1;
/// Respond to memory space accesses.
pub const COMMAND_MEMORY: u16 = 0x2;
/// Bus master enable.
pub const COMMAND_MASTER: u16 = 0x4;
/// INTx emulation disable.
pub const COMMAND_INTX_DISABLE: u16 = 0x400;
/// Status register (16 bits).
pub const STATUS: u16 = 0x06;
/// The function has a capability list.
pub const STATUS_CAP_LIST: u16 = 0x10;
/// Cache line size (8 bits).
pub const CACHE_LINE_SIZE: u16 = 0x0c;
/// Latency timer (8 bits).
pub const LATENCY_TIMER: u16 = 0x0d;
/// Built-in self test (8 bits).
pub const BIST: u16 = 0x0f;
/// First BAR.
pub const BASE_ADDRESS_0: u16 = 0x10;
/// Last BAR of a type 0 header.
pub const BASE_ADDRESS_5: u16 = 0x24;
/// BAR space bit: 1 = I/O.
pub const BASE_ADDRESS_SPACE_IO: u32 = 0x01;
/// BAR memory type: 64-bit.
pub const BASE_ADDRESS_MEM_TYPE_64: u32 = 0x04;
/// BAR memory: prefetchable.
pub const BASE_ADDRESS_MEM_PREFETCH: u32 = 0x08;
/// Expansion ROM BAR of a type 0 header.
pub const ROM_ADDRESS: u16 = 0x30;
/// Expansion ROM decode enable.
pub const ROM_ADDRESS_ENABLE: u32 = 0x01;
/// Offset of the first capability.
pub const CAPABILITY_LIST: u16 = 0x34;
/// Interrupt line (8 bits).
pub const INTERRUPT_LINE: u16 = 0x3c;
/// Interrupt pin (8 bits).
pub const INTERRUPT_PIN: u16 = 0x3d;
/// Number of standard BARs.
pub const STD_NUM_BARS: usize = 6;

/// Capability header: ID byte.
pub const CAP_LIST_ID: u16 = 0;
/// Capability header: next pointer byte.
pub const CAP_LIST_NEXT: u16 = 1;
/// Capability-defined flags (16 bits).
pub const CAP_FLAGS: u16 = 2;
/// Size of a capability header.
pub const CAP_SIZEOF: u16 = 4;

/// Standard capability IDs (`PCI_CAP_ID_*`).
pub mod cap_id {
    /// Power Management.
    pub const PM: u8 = 0x01;
    /// Accelerated Graphics Port.
    pub const AGP: u8 = 0x02;
    /// Vital Product Data.
    pub const VPD: u8 = 0x03;
    /// Slot Identification.
    pub const SLOTID: u8 = 0x04;
    /// Message Signalled Interrupts.
    pub const MSI: u8 = 0x05;
    /// CompactPCI HotSwap.
    pub const CHSWP: u8 = 0x06;
    /// PCI-X.
    pub const PCIX: u8 = 0x07;
    /// HyperTransport.
    pub const HT: u8 = 0x08;
    /// Vendor-specific.
    pub const VNDR: u8 = 0x09;
    /// Debug port.
    pub const DBG: u8 = 0x0a;
    /// CompactPCI Central Resource Control.
    pub const CCRC: u8 = 0x0b;
    /// Standard Hot-Plug Controller.
    pub const SHPC: u8 = 0x0c;
    /// Bridge subsystem vendor/device ID.
    pub const SSVID: u8 = 0x0d;
    /// AGP target PCI-PCI bridge.
    pub const AGP3: u8 = 0x0e;
    /// Secure Device.
    pub const SECDEV: u8 = 0x0f;
    /// PCI Express.
    pub const EXP: u8 = 0x10;
    /// MSI-X.
    pub const MSIX: u8 = 0x11;
    /// SATA Data/Index configuration.
    pub const SATA: u8 = 0x12;
    /// Advanced Features.
    pub const AF: u8 = 0x13;
    /// Enhanced Allocation.
    pub const EA: u8 = 0x14;
    /// Highest ID upstream knows (`PCI_CAP_ID_MAX`).
    pub const MAX: u8 = EA;
}

/// Extended capability IDs (`PCI_EXT_CAP_ID_*`).
pub mod ext_cap_id {
    /// Advanced Error Reporting.
    pub const ERR: u16 = 0x01;
    /// Virtual Channel.
    pub const VC: u16 = 0x02;
    /// Device Serial Number.
    pub const DSN: u16 = 0x03;
    /// Power Budgeting.
    pub const PWR: u16 = 0x04;
    /// Root Complex Link Declaration.
    pub const RCLD: u16 = 0x05;
    /// Root Complex Internal Link Control.
    pub const RCILC: u16 = 0x06;
    /// Root Complex Event Collector.
    pub const RCEC: u16 = 0x07;
    /// Multi-Function VC.
    pub const MFVC: u16 = 0x08;
    /// Virtual Channel (second ID).
    pub const VC9: u16 = 0x09;
    /// Root Complex Register Block.
    pub const RCRB: u16 = 0x0a;
    /// Vendor-specific (VSEC).
    pub const VNDR: u16 = 0x0b;
    /// Config Access Correlation (obsolete).
    pub const CAC: u16 = 0x0c;
    /// Access Control Services.
    pub const ACS: u16 = 0x0d;
    /// Alternate Routing ID.
    pub const ARI: u16 = 0x0e;
    /// Address Translation Services.
    pub const ATS: u16 = 0x0f;
    /// Single Root I/O Virtualization.
    pub const SRIOV: u16 = 0x10;
    /// Multi Root I/O Virtualization.
    pub const MRIOV: u16 = 0x11;
    /// Multicast.
    pub const MCAST: u16 = 0x12;
    /// Page Request Interface.
    pub const PRI: u16 = 0x13;
    /// Reserved for AMD.
    pub const AMD_XXX: u16 = 0x14;
    /// Resizable BAR.
    pub const REBAR: u16 = 0x15;
    /// Dynamic Power Allocation.
    pub const DPA: u16 = 0x16;
    /// TPH Requester.
    pub const TPH: u16 = 0x17;
    /// Latency Tolerance Reporting.
    pub const LTR: u16 = 0x18;
    /// Secondary PCIe.
    pub const SECPCI: u16 = 0x19;
    /// Protocol Multiplexing.
    pub const PMUX: u16 = 0x1a;
    /// Process Address Space ID.
    pub const PASID: u16 = 0x1b;
    /// Downstream Port Containment.
    pub const DPC: u16 = 0x1d;
    /// L1 PM Substates.
    pub const L1SS: u16 = 0x1e;
    /// Precision Time Measurement.
    pub const PTM: u16 = 0x1f;
    /// Designated Vendor-Specific.
    pub const DVSEC: u16 = 0x23;
    /// Data Link Feature.
    pub const DLF: u16 = 0x25;
    /// Physical Layer 16.0 GT/s.
    pub const PL_16GT: u16 = 0x26;
    /// Native PCIe Enclosure Management.
    pub const NPEM: u16 = 0x29;
    /// Physical Layer 32.0 GT/s.
    pub const PL_32GT: u16 = 0x2a;
    /// Data Object Exchange.
    pub const DOE: u16 = 0x2e;
    /// Highest ID upstream knows (`PCI_EXT_CAP_ID_MAX`).
    pub const MAX: u16 = DOE;
}

/// The ID field of an extended capability header.
pub const fn ext_cap_id(header: u32) -> u16 {
    (header & 0xffff) as u16
}

/// The next pointer of an extended capability header (dword aligned).
pub const fn ext_cap_next(header: u32) -> u16 {
    ((header >> 20) & 0xffc) as u16
}

/// Power Management: PMC register.
pub const PM_PMC: u16 = 2;
/// PMC: PME support from all states.
pub const PM_CAP_PME_MASK: u16 = 0xf800;
/// Power Management: control/status register.
pub const PM_CTRL: u16 = 4;
/// PMCSR: power state.
pub const PM_CTRL_STATE_MASK: u32 = 0x0003;
/// PMCSR: No_Soft_Reset (the function keeps its state across D3hot -> D0).
pub const PM_CTRL_NO_SOFT_RESET: u32 = 0x0008;
/// PMCSR: PME enable.
pub const PM_CTRL_PME_ENABLE: u32 = 0x0100;
/// PMCSR: PME status.
pub const PM_CTRL_PME_STATUS: u32 = 0x8000;
/// Size of the PM capability.
pub const PM_SIZEOF: u16 = 8;
/// Size of the AGP capability.
pub const AGP_SIZEOF: u16 = 12;

/// VPD: address register (16 bits).
pub const VPD_ADDR: u16 = 2;
/// VPD address: completion flag.
pub const VPD_ADDR_F: u16 = 0x8000;
/// VPD: data register (32 bits).
pub const VPD_DATA: u16 = 4;
/// Size of the VPD capability.
pub const CAP_VPD_SIZEOF: u16 = 8;

/// MSI: message control.
pub const MSI_FLAGS: u16 = 0x02;
/// MSI control: enable.
pub const MSI_FLAGS_ENABLE: u16 = 0x0001;
/// MSI control: multiple message capable.
pub const MSI_FLAGS_QMASK: u16 = 0x000e;
/// MSI control: multiple message enable.
pub const MSI_FLAGS_QSIZE: u16 = 0x0070;
/// MSI control: 64-bit address capable.
pub const MSI_FLAGS_64BIT: u16 = 0x0080;
/// MSI control: per-vector masking capable.
pub const MSI_FLAGS_MASKBIT: u16 = 0x0100;
/// MSI: address, low dword.
pub const MSI_ADDRESS_LO: u16 = 0x04;
/// MSI: address, high dword (64-bit).
pub const MSI_ADDRESS_HI: u16 = 0x08;
/// MSI: data (32-bit layout).
pub const MSI_DATA_32: u16 = 0x08;
/// MSI: mask bits (32-bit layout).
pub const MSI_MASK_32: u16 = 0x0c;
/// MSI: pending bits (32-bit layout).
pub const MSI_PENDING_32: u16 = 0x10;
/// MSI: data (64-bit layout).
pub const MSI_DATA_64: u16 = 0x0c;
/// MSI: mask bits (64-bit layout).
pub const MSI_MASK_64: u16 = 0x10;
/// MSI: pending bits (64-bit layout).
pub const MSI_PENDING_64: u16 = 0x14;
/// Size of the MSI-X capability.
pub const CAP_MSIX_SIZEOF: u16 = 12;

/// AF: capabilities byte.
pub const AF_CAP: u16 = 3;
/// AF cap: transactions pending.
pub const AF_CAP_TP: u8 = 0x01;
/// AF cap: FLR capable.
pub const AF_CAP_FLR: u8 = 0x02;
/// AF: control byte.
pub const AF_CTRL: u16 = 4;
/// AF control: initiate FLR.
pub const AF_CTRL_FLR: u8 = 0x01;
/// Size of the AF capability.
pub const CAP_AF_SIZEOF: u16 = 6;

/// PCI-X: command register.
pub const X_CMD: u16 = 2;
/// PCI-X: ECC control/status.
pub const X_ECC_CSR: u16 = 8;
/// PCI-X command: capability version.
pub const fn x_cmd_version(cmd: u16) -> u16 {
    (cmd >> 12) & 3
}
/// Size of a version 0 PCI-X capability.
pub const CAP_PCIX_SIZEOF_V0: u16 = 8;
/// Size of a version 1/2 PCI-X capability.
pub const CAP_PCIX_SIZEOF_V2: u16 = 24;

/// PCIe flags: capability version.
pub const EXP_FLAGS_VERS: u16 = 0x000f;
/// PCIe flags: device/port type.
pub const EXP_FLAGS_TYPE: u16 = 0x00f0;
/// PCIe type: Root Complex integrated endpoint.
pub const EXP_TYPE_RC_END: u16 = 0x9;
/// PCIe: device capabilities.
pub const EXP_DEVCAP: u16 = 0x04;
/// DEVCAP: function level reset capable.
pub const EXP_DEVCAP_FLR: u32 = 0x1000_0000;
/// PCIe: device control.
pub const EXP_DEVCTL: u16 = 0x08;
/// DEVCTL: max payload size.
pub const EXP_DEVCTL_PAYLOAD: u16 = 0x00e0;
/// DEVCTL: phantom functions enable.
pub const EXP_DEVCTL_PHANTOM: u16 = 0x0200;
/// DEVCTL: max read request size.
pub const EXP_DEVCTL_READRQ: u16 = 0x7000;
/// DEVCTL: bridge configuration retry / initiate FLR.
pub const EXP_DEVCTL_BCR_FLR: u16 = 0x8000;
/// PCIe: device control 2.
pub const EXP_DEVCTL2: u16 = 0x28;
/// DEVCTL2: ARI forwarding.
pub const EXP_DEVCTL2_ARI: u16 = 0x0020;
/// End of a v1 endpoint with a link.
pub const CAP_EXP_ENDPOINT_SIZEOF_V1: u16 = 20;
/// End of a v2 endpoint with a link.
pub const CAP_EXP_ENDPOINT_SIZEOF_V2: u16 = 0x34;

/// AER: uncorrectable error status.
pub const ERR_UNCOR_STATUS: u16 = 0x04;
/// AER: uncorrectable error mask.
pub const ERR_UNCOR_MASK: u16 = 0x08;
/// AER: uncorrectable error severity.
pub const ERR_UNCOR_SEVER: u16 = 0x0c;
/// AER: correctable error status.
pub const ERR_COR_STATUS: u16 = 0x10;
/// AER: correctable error mask.
pub const ERR_COR_MASK: u16 = 0x14;
/// AER: capabilities and control.
pub const ERR_CAP: u16 = 0x18;
/// AER: root error command (upstream's AER length).
pub const ERR_ROOT_COMMAND: u16 = 0x2c;

/// VC: port capability 1.
pub const VC_PORT_CAP1: u16 = 0x04;
/// VC cap 1: extended VC count.
pub const VC_CAP1_EVCC: u32 = 0x7;
/// VC: port capability 2.
pub const VC_PORT_CAP2: u16 = 0x08;
/// VC cap 2: 32-phase arbitration.
pub const VC_CAP2_32_PHASE: u32 = 0x2;
/// VC cap 2: 64-phase arbitration.
pub const VC_CAP2_64_PHASE: u32 = 0x4;
/// VC cap 2: 128-phase arbitration.
pub const VC_CAP2_128_PHASE: u32 = 0x8;
/// VC: size without per-VC registers.
pub const CAP_VC_BASE_SIZEOF: u16 = 0x10;
/// VC: size of each VC's registers.
pub const CAP_VC_PER_VC_SIZEOF: u16 = 0x0c;

/// Power budgeting: data register.
pub const PWR_DATA: u16 = 0x08;
/// Size of the power budgeting capability.
pub const EXT_CAP_PWR_SIZEOF: u16 = 0x10;
/// Size of the DSN capability.
pub const EXT_CAP_DSN_SIZEOF: u16 = 12;
/// Size of the ARI capability.
pub const EXT_CAP_ARI_SIZEOF: u16 = 8;
/// Size of the ATS capability.
pub const EXT_CAP_ATS_SIZEOF: u16 = 8;
/// Size of the SR-IOV capability.
pub const EXT_CAP_SRIOV_SIZEOF: u16 = 0x40;
/// Size of the multicast capability of an endpoint.
pub const EXT_CAP_MCAST_ENDPOINT_SIZEOF: u16 = 40;
/// Size of the PRI capability.
pub const EXT_CAP_PRI_SIZEOF: u16 = 16;
/// Size of the LTR capability.
pub const EXT_CAP_LTR_SIZEOF: u16 = 8;

/// ACS: capability register.
pub const ACS_CAP: u16 = 0x04;
/// ACS cap: P2P egress control.
pub const ACS_EC: u8 = 0x20;
/// ACS: egress control vector size.
pub const ACS_EGRESS_BITS: u16 = 0x05;
/// VSEC: vendor-specific header (length in bits 31:20).
pub const VSEC_HDR: u16 = 4;
/// VSEC header: shift of the length.
pub const VSEC_HDR_LEN_SHIFT: u32 = 20;
/// SATA: registers location.
pub const SATA_REGS: u16 = 4;
/// SATA: location mask.
pub const SATA_REGS_MASK: u8 = 0xf;
/// SATA: registers are inline in config space.
pub const SATA_REGS_INLINE: u8 = 0xf;
/// SATA capability without inline registers.
pub const SATA_SIZEOF_SHORT: u16 = 8;
/// SATA capability with inline registers.
pub const SATA_SIZEOF_LONG: u16 = 16;
/// HyperTransport: 3-bit capability type mask.
pub const HT_3BIT_CAP_MASK: u8 = 0xe0;
/// HyperTransport slave/primary.
pub const HT_CAP_SIZEOF_LONG: u16 = 28;
/// HyperTransport host/secondary.
pub const HT_CAP_SIZEOF_SHORT: u16 = 24;
/// Resizable BAR: control register.
pub const REBAR_CTRL: u16 = 8;
/// Resizable BAR control: number of BARs.
pub const REBAR_CTRL_NBAR_MASK: u8 = 0xe0;
/// Resizable BAR control: shift of the number of BARs.
pub const REBAR_CTRL_NBAR_SHIFT: u32 = 5;
/// DPA: capability register.
pub const DPA_CAP: u16 = 4;
/// DPA cap: number of substates minus one.
pub const DPA_CAP_SUBSTATE_MASK: u8 = 0x1f;
/// DPA: size with zero substates.
pub const DPA_BASE_SIZEOF: u16 = 16;
/// TPH: capability register.
pub const TPH_CAP: u16 = 4;
/// TPH cap: ST table location.
pub const TPH_CAP_LOC_MASK: u32 = 0x600;
/// TPH location: in the capability.
pub const TPH_LOC_CAP: u32 = 0x200;
/// TPH cap: ST table size.
pub const TPH_CAP_ST_MASK: u32 = 0x07ff_0000;
/// TPH cap: shift of the ST table size.
pub const TPH_CAP_ST_SHIFT: u32 = 16;
/// TPH: size without an ST table.
pub const TPH_BASE_SIZEOF: u16 = 0xc;
/// DVSEC: header 1 (length in bits 31:20).
pub const DVSEC_HEADER1: u16 = 0x4;
/// The length field of DVSEC header 1.
pub const fn dvsec_header1_len(x: u32) -> u16 {
    ((x >> 20) & 0xfff) as u16
}
