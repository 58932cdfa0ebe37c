// SPDX-License-Identifier: GPL-2.0
//! Kernel modules (load, unload, `.modinfo`), the kernel log, and the isa-debug-exit port.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

/// `finit_module(fd, "", 0)`.
pub fn load(path: &Path) -> io::Result<()> {
    let f = File::open(path)?;
    let params = CString::default();
    // SAFETY: a valid open fd and a NUL-terminated (empty) parameter string.
    let r = unsafe { libc::syscall(libc::SYS_finit_module, f.as_raw_fd(), params.as_ptr(), 0) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `delete_module(name, O_NONBLOCK)`: fails at once (EWOULDBLOCK/EBUSY) while the module is in use.
pub fn unload(name: &str) -> io::Result<()> {
    let n = CString::new(name).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    // SAFETY: a NUL-terminated module name and plain flags.
    let r = unsafe { libc::syscall(libc::SYS_delete_module, n.as_ptr(), libc::O_NONBLOCK) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Whether a module is loaded (`/sys/module/<name>` with a `refcnt`, which built-ins lack).
pub fn loaded(name: &str) -> bool {
    Path::new("/sys/module").join(name).join("refcnt").exists()
}

/// The `.modinfo` section of a `.ko` as `key=value` pairs (the shared reader in `pcibind`).
pub fn modinfo(path: &Path) -> Result<Vec<(String, String)>, String> {
    pcibind::modinfo::modinfo(path).map_err(|e| e.to_string())
}

/// All records currently in the kernel log (`/dev/kmsg`, non-blocking), message text only.
pub fn kmsg() -> io::Result<Vec<String>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open("/dev/kmsg")?;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 8192];
    loop {
        match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let rec = String::from_utf8_lossy(&buf[..n]);
                // "prio,seq,usec,flags;text\n continuation lines"
                let text = rec.split_once(';').map(|(_, t)| t).unwrap_or(&rec);
                out.push(text.lines().next().unwrap_or("").to_string());
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.raw_os_error() == Some(libc::EPIPE) => continue, // overwritten records
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// Lines of the kernel log that mean something went wrong in the kernel.
pub fn bad_kernel_lines(log: &[String]) -> Vec<String> {
    pcibind::kernel_log::reports(log)
}

/// Writes `value` to QEMU's isa-debug-exit port (0xf4) through `/dev/port`; QEMU exits with
/// `(value << 1) | 1`.
pub fn debug_exit(value: u8) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new().write(true).open("/dev/port")?;
    f.write_at(&[value], 0xf4)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn bad_lines() {
        let l = vec![
            "ok".to_string(),
            "WARNING: CPU: 0 PID: 1 at x".into(),
            "BUG: KASAN".into(),
        ];
        assert_eq!(super::bad_kernel_lines(&l).len(), 2);
    }
}
