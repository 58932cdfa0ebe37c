// SPDX-License-Identifier: GPL-2.0
//! What a variant may change in its device's virtual config space while the device is open
//! (through the SDK's device context): an overlay's virtual value, and which capabilities user
//! space can find. Upstream C variants do the same by writing `vdev->vconfig` and
//! `vdev->pci_config_map` directly; here each change goes through one checked method.
//!
//! Never: changes the owner map or the permission of a byte, so a hidden capability's bytes
//! keep the access rules they had (user space just cannot find them by walking the list, as
//! with the capabilities upstream hides itself).

use super::config_space::ConfigSpace;
use super::errno::{Errno, EINVAL, ENOENT};
use super::pci_regs::{self as r, ext_cap_id, ext_cap_next};

impl ConfigSpace {
    /// Sets the virtual value of the overlay starting at `offset` (its low `size` bytes of
    /// `value`). `-EINVAL` if no overlay starts there.
    pub fn set_overlay(&mut self, offset: u16, value: u32) -> Result<(), Errno> {
        let o = *self
            .overlays
            .get(..self.n_overlays as usize)
            .unwrap_or(&[])
            .iter()
            .find(|o| o.offset == offset)
            .ok_or(EINVAL)?;
        self.vset(o.offset, o.size as usize, value);
        Ok(())
    }

    /// Unlinks every standard capability with ID `id` from the virtual capability list (and
    /// clears the capability-list status bit when none is left). `-ENOENT` if the list has
    /// none.
    pub fn hide_cap(&mut self, id: u8) -> Result<(), Errno> {
        if self.cfg_size == 0 {
            return Err(EINVAL);
        }
        let mut prev = r::CAPABILITY_LIST;
        let mut pos = self.vbyte(prev) as u16;
        let mut found = false;
        // The list was built by `init` (no loop), but bound the walk as `init` does.
        let mut loops = (r::CFG_SPACE_SIZE - r::STD_HEADER_SIZEOF) / r::CAP_SIZEOF;
        while pos != 0 && loops > 0 {
            loops -= 1;
            let next = self.vbyte(pos + r::CAP_LIST_NEXT);
            if self.vbyte(pos) == id {
                self.vset(prev, 1, next as u32);
                found = true;
            } else {
                prev = pos + r::CAP_LIST_NEXT;
            }
            pos = next as u16;
        }
        if !found {
            return Err(ENOENT);
        }
        if self.vbyte(r::CAPABILITY_LIST) == 0 {
            let status = self.vget(r::STATUS, 2) as u16 & !r::STATUS_CAP_LIST;
            self.vset(r::STATUS, 2, status as u32);
        }
        Ok(())
    }

    /// Unlinks every extended capability with ID `id` from the virtual list. The one at 256
    /// anchors the list, so it stays as a header with ID 0 and version 0 pointing on (as
    /// `init` does for a hidden first capability). `-ENOENT` if the list has none.
    pub fn hide_ext_cap(&mut self, id: u16) -> Result<(), Errno> {
        if !self.extended_caps || self.cfg_size <= r::CFG_SPACE_SIZE {
            return Err(ENOENT);
        }
        let mut epos = r::CFG_SPACE_SIZE;
        let mut prev: Option<u16> = None;
        let mut found = false;
        let mut loops = (self.cfg_size - r::CFG_SPACE_SIZE) / r::CAP_SIZEOF;
        while loops > 0 && epos >= r::CFG_SPACE_SIZE {
            loops -= 1;
            let header = self.vget(epos, 4);
            let next = ext_cap_next(header);
            if header != 0 && ext_cap_id(header) == id {
                found = true;
                match prev {
                    Some(p) => {
                        let v = (self.vget(p, 4) & !(0xffc << 20)) | ((next as u32) << 20);
                        self.vset(p, 4, v);
                        epos = next;
                        continue;
                    }
                    None => self.vset(epos, 4, header & (0xffc << 20)),
                }
            }
            prev = Some(epos);
            epos = next;
        }
        if found {
            Ok(())
        } else {
            Err(ENOENT)
        }
    }
}
