// SPDX-License-Identifier: GPL-2.0
//! How a `read`/`write` on the config region is cut into config-space accesses.
//!
//! Upstream (`vfio_pci_config_rw` and `vfio_config_do_rw`) loops over the request; each round
//! first checks that the *whole remaining* request fits in config space (else `-EFAULT`, with
//! nothing more transferred), then does the widest naturally aligned access of 4, 2 or 1 bytes
//! that the remaining length allows. We match that exactly, because user space can observe it:
//! a 3-byte read at offset 1 is a byte then a word, and an 8-byte read at `cfg_size - 4` fails
//! before reading anything.

use super::errno::{Errno, EFAULT};

/// The size of the next access for a request of `remaining` bytes at `offset` in a config
/// space of `cfg_size` bytes, or the error that ends the request.
pub fn next_access(offset: u64, remaining: usize, cfg_size: u64) -> Result<usize, Errno> {
    let end = offset.checked_add(remaining as u64).ok_or(EFAULT)?;
    if offset >= cfg_size || end > cfg_size {
        return Err(EFAULT);
    }
    Ok(if remaining >= 4 && offset % 4 == 0 {
        4
    } else if remaining >= 2 && offset % 2 == 0 {
        2
    } else {
        1
    })
}

/// All accesses of a request, in order, as (offset, size); `Err` if the request fails before
/// its first access. Used by host tests and documentation. The kernel's copy loop uses
/// `ConfigSpace::next_access`, which applies the same width rule together with the
/// ownership of each byte (an access never spans two owners).
pub fn plan(
    offset: u64,
    count: usize,
    cfg_size: u64,
) -> impl Iterator<Item = Result<(u64, usize), Errno>> {
    let mut pos = offset;
    let mut left = count;
    let mut failed = false;
    core::iter::from_fn(move || {
        if left == 0 || failed {
            return None;
        }
        match next_access(pos, left, cfg_size) {
            Ok(n) => {
                let item = (pos, n);
                pos += n as u64;
                left -= n;
                Some(Ok(item))
            }
            Err(e) => {
                failed = true;
                Some(Err(e))
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sizes(offset: u64, count: usize) -> [usize; 8] {
        let mut out = [0; 8];
        for (i, a) in plan(offset, count, 256).enumerate() {
            out[i] = a.map(|(_, n)| n).unwrap_or(usize::MAX);
        }
        out
    }

    #[test]
    fn aligned_dword_is_one_access() {
        assert_eq!(sizes(0, 4), [4, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn unaligned_reads_split_like_upstream() {
        assert_eq!(sizes(1, 3), [1, 2, 0, 0, 0, 0, 0, 0]);
        assert_eq!(sizes(2, 4), [2, 2, 0, 0, 0, 0, 0, 0]);
        assert_eq!(sizes(3, 6), [1, 4, 1, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn request_past_the_end_fails_before_any_access() {
        assert_eq!(next_access(252, 8, 256), Err(EFAULT));
        assert_eq!(next_access(256, 1, 256), Err(EFAULT));
        assert_eq!(next_access(u64::MAX, 2, 256), Err(EFAULT));
    }

    #[test]
    fn last_byte_is_reachable() {
        assert_eq!(next_access(255, 1, 256), Ok(1));
        assert_eq!(next_access(4092, 4, 4096), Ok(4));
    }

    #[test]
    fn every_request_covers_exactly_its_bytes() {
        for off in 0..260u64 {
            for count in 0..12usize {
                let mut covered = 0usize;
                let mut expect = off;
                let mut ok = true;
                for a in plan(off, count, 256) {
                    match a {
                        Ok((o, n)) => {
                            assert_eq!(o, expect);
                            assert!(n == 1 || n == 2 || n == 4);
                            assert_eq!(o % n as u64, 0, "access must be naturally aligned");
                            expect += n as u64;
                            covered += n;
                        }
                        Err(_) => ok = false,
                    }
                }
                if count == 0 || (off < 256 && off + count as u64 <= 256) {
                    assert!(ok);
                    assert_eq!(covered, count);
                } else {
                    assert!(!ok);
                    assert_eq!(covered, 0);
                }
            }
        }
    }
}
