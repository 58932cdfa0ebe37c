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

/// The `.modinfo` section of an ELF64 little-endian `.ko` as `key=value` pairs.
pub fn modinfo(path: &Path) -> Result<Vec<(String, String)>, String> {
    let data = std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    modinfo_of(&data)
}

pub fn modinfo_of(data: &[u8]) -> Result<Vec<(String, String)>, String> {
    let u16at = |o: usize| data.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]) as usize);
    let u32at = |o: usize| data.get(o..o + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize);
    let u64at = |o: usize| {
        data.get(o..o + 8).map(|b| {
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            u64::from_le_bytes(a) as usize
        })
    };
    if data.get(0..4) != Some(b"\x7fELF") || data.get(4) != Some(&2) || data.get(5) != Some(&1) {
        return Err("not an ELF64 little-endian file".into());
    }
    let bad = || "truncated ELF header".to_string();
    let shoff = u64at(0x28).ok_or_else(bad)?;
    let shentsize = u16at(0x3a).ok_or_else(bad)?;
    let shnum = u16at(0x3c).ok_or_else(bad)?;
    let shstrndx = u16at(0x3e).ok_or_else(bad)?;
    let sh = |i: usize| -> Option<(usize, usize, usize)> {
        let b = shoff.checked_add(i.checked_mul(shentsize)?)?;
        Some((u32at(b)?, u64at(b + 0x18)?, u64at(b + 0x20)?))
    };
    let (_, stroff, strsize) = sh(shstrndx).ok_or_else(|| "bad section header table".to_string())?;
    let strtab = data.get(stroff..stroff + strsize).ok_or_else(|| "bad .shstrtab".to_string())?;
    for i in 0..shnum {
        let Some((name, off, size)) = sh(i) else { continue };
        let n = strtab.get(name..).unwrap_or(&[]);
        let n = &n[..n.iter().position(|&c| c == 0).unwrap_or(n.len())];
        if n == b".modinfo" {
            let sec = data.get(off..off + size).ok_or_else(|| ".modinfo out of bounds".to_string())?;
            return Ok(sec
                .split(|&c| c == 0)
                .filter(|s| !s.is_empty())
                .filter_map(|s| {
                    let s = String::from_utf8_lossy(s);
                    s.split_once('=').map(|(k, v)| (k.to_string(), v.to_string()))
                })
                .collect());
        }
    }
    Err("no .modinfo section".into())
}

/// All records currently in the kernel log (`/dev/kmsg`, non-blocking), message text only.
pub fn kmsg() -> io::Result<Vec<String>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open("/dev/kmsg")?;
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
    const PATTERNS: &[&str] =
        &["WARNING:", "BUG:", "Oops", "general protection fault", "Kernel panic", "UBSAN:", "kernel BUG"];
    log.iter().filter(|l| PATTERNS.iter().any(|p| l.contains(p))).cloned().collect()
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
    fn modinfo_of_a_real_object() {
        // Any ELF64 relocatable with a .modinfo section will do: make one with the C compiler
        // when available; skip otherwise.
        let dir = std::env::temp_dir().join(format!("modinfo-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let c = dir.join("m.c");
        std::fs::write(
            &c,
            "__attribute__((section(\".modinfo\"), used)) static const char a[] = \"alias=vfio_pci:v*d*sv*sd*bc*sc*i*\";\n\
             __attribute__((section(\".modinfo\"), used)) static const char d[] = \"depends=vfio_pci_common\";\n",
        )
        .unwrap();
        let o = dir.join("m.o");
        let ok = std::process::Command::new("cc").arg("-c").arg(&c).arg("-o").arg(&o).status();
        if !matches!(ok, Ok(s) if s.success()) {
            return;
        }
        let mi = super::modinfo(&o).unwrap();
        assert!(mi.contains(&("alias".into(), "vfio_pci:v*d*sv*sd*bc*sc*i*".into())));
        assert!(mi.contains(&("depends".into(), "vfio_pci_common".into())));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bad_lines() {
        let l = vec!["ok".to_string(), "WARNING: CPU: 0 PID: 1 at x".into(), "BUG: KASAN".into()];
        assert_eq!(super::bad_kernel_lines(&l).len(), 2);
    }
}
