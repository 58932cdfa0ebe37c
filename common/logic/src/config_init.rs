// SPDX-License-Identifier: GPL-2.0
//! Building the virtual config image when a device is opened: upstream `vfio_config_init`,
//! `vfio_cap_init`, `vfio_ecap_init` and the capability length rules (`vfio_cap_len`,
//! `vfio_ext_cap_len`, `vfio_vc_cap_len`, `vfio_msi_cap_len`).
//!
//! The chain walks are bounded (48 standard, `(cfg_size - 256) / 4` extended capabilities) and
//! every index stays inside the 4 KiB arrays, so a malicious or broken device can neither hang
//! nor overrun us. Capabilities with length 0 (unknown or deliberately hidden) are unlinked by
//! rewriting the previous `next`; a hidden *first* extended capability cannot be unlinked (its
//! position is fixed at 256), so it stays as a placeholder whose ID and version read as 0.

use super::config_space::{ConfigDevice, ConfigSpace, DeviceInfo, Notice, MAP_BASIC, MAP_INVALID};
use super::errno::{Errno, EINVAL};
use super::pci_regs::{self as r, cap_id, ext_cap_id};
use super::perm::{self, VARIABLE};

/// Intel 0x270c: a VF known to report a bogus INTx pin; not worth a warning
/// (`known_bogus_vf_intx_pin`).
const KNOWN_BOGUS_VF_INTX_PIN: [(u16, u16); 1] = [(0x8086, 0x270c)];

const SPACE: u16 = r::CFG_SPACE_EXP_SIZE;

/// Where the image and owner map bytes `init` (and any later access) may write end, for a
/// space of `cfg_size` bytes. A 256-byte space has no extended capabilities (`extended_caps`
/// needs `cfg_size > 256`), and a standard capability starts at a byte offset (< 256) and is
/// at most 255 bytes long (lengths are byte fields or table bytes), so nothing reaches 512;
/// user accesses and overlays stay below `cfg_size`.
const fn written_bound(cfg_size: u16) -> u16 {
    if cfg_size <= r::CFG_SPACE_SIZE {
        2 * r::CFG_SPACE_SIZE
    } else {
        SPACE
    }
}

impl ConfigSpace {
    /// `vfio_config_init`: (re)builds the virtual image and owner map from the device, in
    /// place. On error the space stays unusable (`cfg_size` 0: every access fails) and the
    /// error is the one upstream returns. `cfg_size` must be 256 or 4096.
    pub fn init<D: ConfigDevice>(&mut self, dev: &mut D, info: &DeviceInfo) -> Result<(), Errno> {
        self.cfg_size = 0;
        if info.cfg_size != r::CFG_SPACE_SIZE && info.cfg_size != r::CFG_SPACE_EXP_SIZE {
            return Err(EINVAL);
        }
        self.info = *info;
        // Only what an earlier `init` may have written needs clearing: a 256-byte space is
        // 256 bytes, not 4 KiB, of memset at every open (upstream allocates `cfg_size`).
        let end = self.init_clean_from.max(written_bound(info.cfg_size)) as usize;
        if let Some(v) = self.vconfig.get_mut(..end) {
            v.fill(0);
        }
        if let Some(m) = self.map.get_mut(..end) {
            m.fill(MAP_INVALID);
        }
        self.init_clean_from = written_bound(info.cfg_size);
        if let Some(header) = self.map.get_mut(..r::STD_HEADER_SIZEOF as usize) {
            header.fill(MAP_BASIC);
        }
        self.msi_layout = 0;
        self.n_overlays = 0;
        self.set_bardirty(false);
        self.virq_disabled = false;
        self.rbar = [0; 7];

        self.fill(dev, 0, r::STD_HEADER_SIZEOF)?;
        self.set_bardirty(true);

        // For restoring after a reset behind our back.
        for i in 0..r::STD_NUM_BARS {
            self.rbar[i] = self.vget(r::BASE_ADDRESS_0 + 4 * i as u16, 4);
        }
        self.rbar[6] = self.vget(r::ROM_ADDRESS, 4);

        if info.is_virtfn {
            self.vset(r::VENDOR_ID, 2, info.vendor as u32);
            self.vset(r::DEVICE_ID, 2, info.device as u32);
            // SR-IOV 1.1, 3.4.1.18: a VF's pin is read-only zero; replace a bogus one.
            let pin = self.vbyte(r::INTERRUPT_PIN);
            if pin != 0 && !KNOWN_BOGUS_VF_INTX_PIN.contains(&(info.vendor, info.device)) {
                dev.notice(Notice::BogusVfIntxPin(pin));
            }
            self.vset(r::INTERRUPT_PIN, 1, 0);
        }
        if info.no_command_memory {
            // No memory-enable bit in hardware: show it set, as a PF shows after enable.
            let cmd = self.command() | r::COMMAND_MEMORY;
            self.vset(r::COMMAND, 2, cmd as u32);
        }
        if info.hide_intx_pin || info.nointx {
            self.vset(r::INTERRUPT_PIN, 1, 0);
        }

        self.cap_init(dev)?;
        self.ecap_init(dev)?;
        self.cfg_size = info.cfg_size;
        Ok(())
    }

    /// `vfio_fill_vconfig_bytes`: copy `size` device bytes at `offset` into the image in the
    /// widest aligned pieces.
    fn fill<D: ConfigDevice>(
        &mut self,
        dev: &mut D,
        mut offset: u16,
        mut size: u16,
    ) -> Result<(), Errno> {
        while size > 0 {
            let n = if size >= 4 && offset.is_multiple_of(4) {
                4
            } else if size >= 2 && offset.is_multiple_of(2) {
                2
            } else {
                1
            };
            let v = dev.read_init(offset, n as u8)?;
            self.vset(offset, n as usize, v);
            offset += n;
            size -= n;
        }
        Ok(())
    }

    fn read8<D: ConfigDevice>(dev: &mut D, off: u16) -> Result<u8, Errno> {
        Ok(dev.read_init(off, 1)? as u8)
    }

    /// Whether dword 256 is non-zero, read the way upstream reads it (ignoring the error, so
    /// a failed read shows the all-ones error response).
    fn probe_extended<D: ConfigDevice>(&mut self, dev: &mut D) {
        if self.info.cfg_size > r::CFG_SPACE_SIZE {
            let dword = dev.read_init(r::CFG_SPACE_SIZE, 4).unwrap_or(u32::MAX);
            self.extended_caps = dword != 0;
        }
    }

    /// `vfio_cap_len` (and `vfio_msi_cap_len`): the length of a variable-length standard
    /// capability, 0 to hide it.
    fn cap_len<D: ConfigDevice>(&mut self, dev: &mut D, cap: u8, pos: u16) -> Result<u16, Errno> {
        match cap {
            cap_id::MSI => {
                let flags = dev.read_init(pos + r::MSI_FLAGS, 2)? as u16;
                let mut len = 10;
                if flags & r::MSI_FLAGS_64BIT != 0 {
                    len += 4;
                }
                if flags & r::MSI_FLAGS_MASKBIT != 0 {
                    len += 10;
                }
                // The first MSI capability decides the table for all of them.
                if self.msi_layout == 0 {
                    self.msi_layout = perm::msi_layout(flags);
                }
                Ok(len)
            }
            cap_id::PCIX => {
                let word = dev.read_init(pos + r::X_CMD, 2)? as u16;
                if r::x_cmd_version(word) != 0 {
                    self.probe_extended(dev);
                    Ok(r::CAP_PCIX_SIZEOF_V2)
                } else {
                    Ok(r::CAP_PCIX_SIZEOF_V0)
                }
            }
            cap_id::VNDR => Ok(Self::read8(dev, pos + r::CAP_FLAGS)? as u16),
            cap_id::EXP => {
                self.probe_extended(dev);
                // From the flags the PCI core cached, not from this capability.
                let flags = self.info.pcie_flags;
                let rc_end = (flags & r::EXP_FLAGS_TYPE) >> 4 == r::EXP_TYPE_RC_END;
                Ok(match (flags & r::EXP_FLAGS_VERS == 1, rc_end) {
                    (true, true) => 0xc,
                    (true, false) => r::CAP_EXP_ENDPOINT_SIZEOF_V1,
                    (false, true) => 0x2c,
                    (false, false) => r::CAP_EXP_ENDPOINT_SIZEOF_V2,
                })
            }
            cap_id::HT => {
                let byte = Self::read8(dev, pos + 3)?;
                Ok(if byte & r::HT_3BIT_CAP_MASK != 0 {
                    r::HT_CAP_SIZEOF_SHORT
                } else {
                    r::HT_CAP_SIZEOF_LONG
                })
            }
            cap_id::SATA => {
                let byte = Self::read8(dev, pos + r::SATA_REGS)? & r::SATA_REGS_MASK;
                Ok(if byte == r::SATA_REGS_INLINE {
                    r::SATA_SIZEOF_LONG
                } else {
                    r::SATA_SIZEOF_SHORT
                })
            }
            _ => {
                dev.notice(Notice::UnknownLength {
                    id: cap as u16,
                    pos,
                    extended: false,
                });
                Ok(0)
            }
        }
    }

    /// `vfio_vc_cap_len`: VC, VC9 and MFVC.
    fn vc_cap_len<D: ConfigDevice>(dev: &mut D, pos: u16) -> Result<u16, Errno> {
        let cap1 = dev.read_init(pos + r::VC_PORT_CAP1, 4)?;
        let evcc = (cap1 & r::VC_CAP1_EVCC) as u16;
        let cap2 = dev.read_init(pos + r::VC_PORT_CAP2, 4)?;
        let phases: u16 = if cap2 & r::VC_CAP2_128_PHASE != 0 {
            128
        } else if cap2 & r::VC_CAP2_64_PHASE != 0 {
            64
        } else if cap2 & r::VC_CAP2_32_PHASE != 0 {
            32
        } else {
            0
        };
        let vc_arb = phases * 4;
        // Arbitration tables are never writable, so their exact size does not matter.
        let mut len = r::CAP_VC_BASE_SIZEOF + (1 + evcc) * r::CAP_VC_PER_VC_SIZEOF;
        if vc_arb != 0 {
            len = len.div_ceil(16) * 16;
            len += vc_arb / 8;
        }
        Ok(len)
    }

    /// `vfio_ext_cap_len`: the length of a variable-length extended capability, 0 to hide it.
    fn ext_cap_len<D: ConfigDevice>(dev: &mut D, ecap: u16, epos: u16) -> Result<u32, Errno> {
        use ext_cap_id as e;
        match ecap {
            e::VNDR => Ok(dev.read_init(epos + r::VSEC_HDR, 4)? >> r::VSEC_HDR_LEN_SHIFT),
            e::VC | e::VC9 | e::MFVC => Ok(Self::vc_cap_len(dev, epos)? as u32),
            e::ACS => {
                let cap = Self::read8(dev, epos + r::ACS_CAP)?;
                if cap & r::ACS_EC != 0 {
                    let byte = Self::read8(dev, epos + r::ACS_EGRESS_BITS)? as u32;
                    let bits = if byte != 0 {
                        byte.div_ceil(32) * 32
                    } else {
                        256
                    };
                    Ok(8 + bits / 8)
                } else {
                    Ok(8)
                }
            }
            e::REBAR => {
                let byte = Self::read8(dev, epos + r::REBAR_CTRL)?;
                let nbar = (byte & r::REBAR_CTRL_NBAR_MASK) >> r::REBAR_CTRL_NBAR_SHIFT;
                Ok(4 + nbar as u32 * 8)
            }
            e::DPA => {
                let byte = Self::read8(dev, epos + r::DPA_CAP)? & r::DPA_CAP_SUBSTATE_MASK;
                Ok(r::DPA_BASE_SIZEOF as u32 + byte as u32 + 1)
            }
            e::TPH => {
                let dword = dev.read_init(epos + r::TPH_CAP, 4)?;
                if dword & r::TPH_CAP_LOC_MASK == r::TPH_LOC_CAP {
                    let sts = (dword & r::TPH_CAP_ST_MASK) >> r::TPH_CAP_ST_SHIFT;
                    Ok(r::TPH_BASE_SIZEOF as u32 + sts * 2 + 2)
                } else {
                    Ok(r::TPH_BASE_SIZEOF as u32)
                }
            }
            e::DVSEC => Ok(r::dvsec_header1_len(dev.read_init(epos + r::DVSEC_HEADER1, 4)?) as u32),
            _ => {
                dev.notice(Notice::UnknownLength {
                    id: ecap,
                    pos: epos,
                    extended: true,
                });
                Ok(0)
            }
        }
    }

    /// Claims `len` bytes at `pos` for `id` in the owner map, noting conflicts.
    fn claim<D: ConfigDevice>(&mut self, dev: &mut D, pos: u16, len: u16, id: u16, extended: bool) {
        for p in pos..pos.saturating_add(len).min(SPACE) {
            if let Some(m) = self.map.get_mut(p as usize) {
                if *m != MAP_INVALID {
                    dev.notice(Notice::Conflict {
                        pos: p,
                        was: *m,
                        now: id,
                        extended,
                    });
                }
                // Upstream's map is one byte per position: extended IDs are truncated.
                *m = id as u8;
            }
        }
    }

    /// `vfio_cap_init`: walk the standard capability list, copy the known capabilities into
    /// the image and unlink the hidden ones.
    fn cap_init<D: ConfigDevice>(&mut self, dev: &mut D) -> Result<(), Errno> {
        let status = dev.read_init(r::STATUS, 2)? as u16;
        if status & r::STATUS_CAP_LIST == 0 {
            return Ok(());
        }
        let mut pos = Self::read8(dev, r::CAPABILITY_LIST)? as u16;
        // The image byte holding the pointer to the capability being looked at.
        let mut prev = r::CAPABILITY_LIST;
        let mut caps = 0u32;
        // Capabilities are dword aligned, which bounds their number.
        let mut loops = (r::CFG_SPACE_SIZE - r::STD_HEADER_SIZEOF) / r::CAP_SIZEOF;
        // Like upstream, `pos` is neither masked to a dword nor checked against the header:
        // the device's pointer is used as is (it is a byte, so it stays below 256).
        while pos != 0 && loops > 0 {
            loops -= 1;
            let cap = Self::read8(dev, pos)?;
            let next = Self::read8(dev, pos + r::CAP_LIST_NEXT)?;

            // ID 0 is a NULL capability (and our header's map value): hide it.
            let mut len = 0u16;
            if cap != 0 && cap <= cap_id::MAX {
                len = perm::CAP_LENGTH.get(cap as usize).copied().unwrap_or(0) as u16;
                if len == VARIABLE {
                    len = self.cap_len(dev, cap, pos)?;
                }
            }

            if len == 0 {
                dev.notice(Notice::HidingCap { id: cap, pos });
                self.vset(prev, 1, next as u32);
                pos = next as u16;
                continue;
            }

            self.claim(dev, pos, len, cap as u16, false);
            self.fill(dev, pos, len)?;

            if cap == cap_id::PM {
                // The user cannot handle PME: hide PME support, status and enable.
                let pmc = self.vget(pos + r::PM_PMC, 2) as u16 & !r::PM_CAP_PME_MASK;
                self.vset(pos + r::PM_PMC, 2, pmc as u32);
                let ctrl = self.vget(pos + r::PM_CTRL, 2)
                    & !(r::PM_CTRL_PME_ENABLE | r::PM_CTRL_PME_STATUS);
                self.vset(pos + r::PM_CTRL, 2, ctrl);
            }

            prev = pos + r::CAP_LIST_NEXT;
            pos = next as u16;
            caps += 1;
        }

        if caps == 0 {
            let status = self.vget(r::STATUS, 2) as u16 & !r::STATUS_CAP_LIST;
            self.vset(r::STATUS, 2, status as u32);
        }
        Ok(())
    }

    /// `vfio_ecap_init`: walk the extended capability list from 256.
    fn ecap_init<D: ConfigDevice>(&mut self, dev: &mut D) -> Result<(), Errno> {
        if !self.extended_caps {
            return Ok(());
        }
        let mut epos = r::CFG_SPACE_SIZE;
        let mut prev: Option<u16> = None;
        let mut ecaps = 0u32;
        let mut loops = self.info.cfg_size.saturating_sub(r::CFG_SPACE_SIZE) / r::CAP_SIZEOF;

        while loops > 0 && epos >= r::CFG_SPACE_SIZE {
            loops -= 1;
            let header = dev.read_init(epos, 4)?;
            let ecap = r::ext_cap_id(header);
            let mut len = 0u32;
            let mut hidden = false;

            if ecap <= ext_cap_id::MAX {
                len = perm::EXT_CAP_LENGTH
                    .get(ecap as usize)
                    .copied()
                    .unwrap_or(0) as u32;
                if len == VARIABLE as u32 {
                    len = Self::ext_cap_len(dev, ecap, epos)?;
                }
            }

            if len == 0 {
                dev.notice(Notice::HidingEcap {
                    id: ecap,
                    pos: epos,
                });
                if let Some(p) = prev {
                    // Not the first: skip it by pointing the previous one past it.
                    epos = r::ext_cap_next(header);
                    let v = (self.vget(p, 4) & !(0xffc << 20)) | ((epos as u32) << 20);
                    self.vset(p, 4, v);
                    continue;
                }
                // The first: keep a placeholder to anchor the list; direct reads virtualize
                // its header.
                len = r::CAP_SIZEOF as u32;
                hidden = true;
            }

            // Upstream trusts 12-bit (VSEC, DVSEC) and computed (TPH) lengths up to 4 KiB past
            // the capability and overruns its 4 KiB map and image; we stop at the end.
            let len = len.min((SPACE - epos) as u32) as u16;
            self.claim(dev, epos, len, ecap, true);
            self.fill(dev, epos, len)?;

            if hidden {
                // Only the next pointer survives: ID 0, version 0.
                let v = self.vget(epos, 4) & (0xffc << 20);
                self.vset(epos, 4, v);
            } else {
                ecaps += 1;
            }

            prev = Some(epos);
            epos = r::ext_cap_next(header);
        }

        if ecaps == 0 {
            self.vset(r::CFG_SPACE_SIZE, 4, 0);
        }
        Ok(())
    }
}
