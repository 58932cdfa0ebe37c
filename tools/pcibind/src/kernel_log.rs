// SPDX-License-Identifier: GPL-2.0
//! Which kernel log lines are reports of a kernel problem: read by the guest tests from
//! `/dev/kmsg` and by `cargo xtask test` from the guest's console, so both fail on the same
//! lines.

/// The first line of every report the test kernels can print: oopses and `WARN`s, KASAN,
/// KFENCE, UBSAN, SLUB debug, lockdep, sleeping in atomic context, hung tasks, soft lockups,
/// RCU stalls and kmemleak.
const PATTERNS: &[&str] = &[
    "WARNING:",
    "BUG:",
    "Oops",
    "general protection fault",
    "Kernel panic",
    "kernel BUG",
    "UBSAN:",
    "KASAN:",
    "KFENCE:",
    "kmemleak:",
    "unreferenced object",
    "possible circular locking",
    "inconsistent lock state",
    "possible recursive locking",
    "suspicious RCU usage",
    "sleeping function called from invalid context",
    "blocked for more than",
    "soft lockup",
    "hard LOCKUP",
    "rcu_preempt detected stalls",
    "rcu_sched detected stalls",
    "self-detected stall",
    "Redzone overwritten",
    "Poison overwritten",
    "Object padding overwritten",
    "Freepointer corrupt",
    "list_add corruption",
    "list_del corruption",
];

/// Lines that match a pattern but are not reports (boot messages about the checkers).
const BENIGN: &[&str] = &[
    "kmemleak: Kernel memory leak detector initialized",
    "kmemleak: Automatic memory scanning thread",
    "KASAN: vmalloc",
];

/// Whether `line` starts (or is part of) a kernel report.
pub fn is_report(line: &str) -> bool {
    PATTERNS.iter().any(|p| line.contains(p)) && !BENIGN.iter().any(|b| line.contains(b))
}

/// The report lines of a log.
pub fn reports(log: &[String]) -> Vec<String> {
    log.iter().filter(|l| is_report(l)).cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_and_boot_noise() {
        for l in [
            "[   12.3] BUG: KASAN: slab-use-after-free in write_thread+0x1c/0x90 [vfio_pci_common]",
            "[    4.1] WARNING: possible circular locking dependency detected",
            "[   60.0] INFO: task vfio-guest-test:88 blocked for more than 20 seconds.",
            "[    9.9] UBSAN: array-index-out-of-bounds in drivers/x.c:12:3",
            "kmemleak: 2 new suspected memory leaks (see /sys/kernel/debug/kmemleak)",
            "unreferenced object 0xffff888003c4e000 (size 64):",
            "[    1.0] WARNING: CPU: 0 PID: 1 at drivers/vfio/x.c:1 f+0x1/0x2",
        ] {
            assert!(is_report(l), "{l}");
        }
        for l in [
            "[    0.5] kmemleak: Kernel memory leak detector initialized (mem pool available: 15)",
            "[    0.1] pci 0000:00:03.0: [1234:11e8] type 00 class 0x00ff00",
            "PASS edu-open-vfio-pci (3 ms)",
        ] {
            assert!(!is_report(l), "{l}");
        }
    }
}
