// SPDX-License-Identifier: GPL-2.0
//! The robustness checks: what `cargo xtask test` runs on the debug kernel (KASAN, lockdep,
//! UBSAN, kmemleak, hung-task detection), and the full suite runs after its other checks.
//!
//! - regressions of the defects fixed in the common module (`regress.rs`, `sriov.rs`);
//! - the seeded, multi-threaded ioctl/region fuzzer, against upstream and ours (`fuzz.rs`);
//! - faults: surprise removal, module unload, killed processes, failing resets (`faults.rs`);
//! - storms: bind/unbind and open/close cycles with slab accounting (`storms.rs`);
//! - a kmemleak scan over the whole run, where the kernel has kmemleak.
//!
//! Kernel reports themselves (KASAN, lockdep, ...) are caught twice: by the `dmesg-clean`
//! check at the end and by the host, which reads every console line.

use crate::Suite;

const KMEMLEAK: &str = "/sys/kernel/debug/kmemleak";

/// Mounts debugfs (once) and says whether this kernel has kmemleak.
fn kmemleak_available() -> bool {
    if !std::path::Path::new("/sys/kernel/debug/kmemleak").exists() {
        let _ = std::process::Command::new("mount")
            .args(["-t", "debugfs", "debugfs", "/sys/kernel/debug"])
            .status();
    }
    std::path::Path::new(KMEMLEAK).exists()
}

fn kmemleak(cmd: &str) -> Result<(), String> {
    std::fs::write(KMEMLEAK, cmd).map_err(|e| format!("echo {cmd} > {KMEMLEAK}: {e}"))
}

impl Suite {
    /// Every robustness check, in an order where each leaves the devices unbound.
    pub(crate) fn robust_checks(&mut self) {
        self.regression_checks();
        self.sriov_checks();
        self.fuzz_checks();
        self.fault_checks();
        self.storm_checks();
        self.migration_checks();
    }

    /// Forgets what kmemleak suspects so far (boot-time objects are not ours).
    pub(crate) fn leak_check_start(&mut self) {
        if kmemleak_available() {
            if let Err(e) = kmemleak("clear") {
                self.r.info(format!("kmemleak: {e}"));
            }
        }
    }

    /// Scans for leaks (twice: kmemleak reports an object only once it stayed unreferenced
    /// across scans) and fails on any suspect, printing kmemleak's records.
    pub(crate) fn leak_check_end(&mut self) {
        if !kmemleak_available() {
            self.r.info("no kmemleak in this kernel: no leak scan");
            return;
        }
        self.r.check("kmemleak-clean", || {
            for _ in 0..2 {
                kmemleak("scan")?;
            }
            let report =
                std::fs::read_to_string(KMEMLEAK).map_err(|e| format!("{KMEMLEAK}: {e}"))?;
            if report.trim().is_empty() {
                Ok(())
            } else {
                Err(format!("kmemleak suspects: {}", report.trim()))
            }
        });
    }
}

/// An `INFO` line with how many loop steps a robustness check made.
pub(crate) fn progress_info(check: &str, steps: u64) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(format!("INFO {check}: {steps} steps\n").as_bytes());
    let _ = out.flush();
}

/// Whether this kernel runs KASAN (its quarantine holds freed objects, so slab usage does not
/// return to its level after churn: leak checks use kmemleak there). The host says so on the
/// kernel command line (`vfiotest.kernel=debug`); the boot log is only a fallback, since a
/// long run can rotate its first lines out of the buffer.
pub(crate) fn kasan_kernel() -> bool {
    static KASAN: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *KASAN.get_or_init(|| {
        let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
        cmdline
            .split_whitespace()
            .any(|w| w == "vfiotest.kernel=debug")
            || crate::kmod::kmsg()
                .map(|l| {
                    l.iter()
                        .any(|l| l.contains("KernelAddressSanitizer initialized"))
                })
                .unwrap_or(false)
    })
}
