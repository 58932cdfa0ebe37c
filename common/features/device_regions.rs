// SPDX-License-Identifier: GPL-2.0
//! Device-specific regions (index 9 and up): described by the variant at every open
//! (`VariantOps::regions`), reported by `GET_INFO`/`GET_REGION_INFO` (in `device_info.rs`), and read or
//! written here through the variant's `region_rw` hook.
//!
//! The common module enforces the bounds (`-EINVAL` at or past the end, short at the end) and
//! the read-only flag, and copies through a kernel bounce buffer, so the variant only ever sees
//! an in-range kernel slice. The hook runs without the state mutex held.

use crate::logic::{bar_rw, uapi};
use crate::state::DeviceState;
use kernel::error::{code::*, Error, Result};
use kernel::prelude::*;
use kernel::uaccess::UserSlice;

/// Largest piece handed to the variant at a time.
const CHUNK: usize = 4096;

/// `read`/`write` of device-specific region `index` (0-based) at `pos` inside it.
pub(crate) fn rw(
    dev: &DeviceState,
    index: usize,
    buf: usize,
    count: usize,
    pos: u64,
    is_write: bool,
) -> Result<usize> {
    let desc = *dev.inner.lock().region(index).ok_or(EINVAL)?;
    let Some(hook) = dev.variant_ops().region_rw else {
        return Err(EINVAL);
    };
    let writable = desc.flags & uapi::REGION_FLAG_WRITE != 0;
    let readable = desc.flags & uapi::REGION_FLAG_READ != 0;
    if (is_write && !writable) || (!is_write && !readable) {
        return Err(EINVAL);
    }
    let count = bar_rw::clip(pos, count, desc.size).map_err(|e| Error::from_errno(-e.0))?;
    let mut bounce = KVec::from_elem(0u8, count.min(CHUNK), GFP_KERNEL)?;
    let (mut reader, mut writer) = UserSlice::new(buf, count).reader_writer();
    let mut done = 0usize;
    while done < count {
        let n = (count - done).min(CHUNK);
        let chunk = bounce.get_mut(..n).ok_or(EINVAL)?;
        if is_write {
            reader.read_slice(chunk)?;
        }
        // SAFETY: the variant data is live while the device is registered; `chunk` is a kernel
        // buffer of `n` bytes and `pos + done + n` is inside the region (clipped above).
        let ret = unsafe {
            hook(
                dev.variant_data(),
                dev.handle(),
                index as u32,
                pos + done as u64,
                chunk.as_mut_ptr(),
                n,
                is_write,
            )
        };
        if ret < 0 {
            return Err(Error::from_errno(ret as i32));
        }
        let got = (ret as usize).min(n);
        if !is_write {
            writer.write_slice(chunk.get(..got).ok_or(EINVAL)?)?;
        }
        done += got;
        if got < n {
            break;
        }
    }
    Ok(done)
}
