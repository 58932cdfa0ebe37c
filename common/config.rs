// SPDX-License-Identifier: GPL-2.0
//! Config-region access from user space (`read`/`write` on the device fd at the config
//! region's offset).
//!
//! This skeleton passes reads through to the device, cut into accesses exactly as upstream
//! cuts them (`logic::config_rw`). Writes are refused until config-space emulation (with its
//! permission tables) exists: a pass-through write would let user space move BARs or retarget
//! MSI, which the host owns.

use crate::device::DeviceState;
use crate::logic::{config_rw, errno::Errno, region};
use kernel::error::{code::*, Error, Result};
use kernel::uaccess::UserSlice;

fn errno(e: Errno) -> Error {
    Error::from_errno(-e.0)
}

/// `read` on the device fd: dispatches on the region index encoded in `pos`.
pub(crate) fn rw_read(dev: &DeviceState, buf: usize, count: usize, pos: i64) -> Result<usize> {
    if count == 0 {
        return Ok(0);
    }
    let (index, offset) = region::split_offset(pos as u64);
    if index >= region::NUM_REGIONS {
        return Err(EINVAL);
    }
    if index != region::index::CONFIG {
        // BAR, ROM and VGA access come with the regions work; until then nothing is readable.
        return Err(EINVAL);
    }
    let cfg_size = dev.pdev.cfg_size();
    let mut out = UserSlice::new(buf, count).writer();
    let mut done = 0usize;
    while done < count {
        let at = offset + done as u64;
        let n = config_rw::next_access(at, count - done, cfg_size).map_err(errno)?;
        let v = dev.pdev.read_config(at, n)?;
        // Config space is little-endian; user space gets the bytes in device order.
        out.write_slice(&v.to_le_bytes()[..n])?;
        done += n;
    }
    Ok(done)
}

/// `write` on the device fd.
pub(crate) fn rw_write(count: usize, pos: i64) -> Result<usize> {
    if count == 0 {
        return Ok(0);
    }
    let (index, _) = region::split_offset(pos as u64);
    if index >= region::NUM_REGIONS {
        return Err(EINVAL);
    }
    Err(EINVAL)
}
