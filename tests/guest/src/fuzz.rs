// SPDX-License-Identifier: GPL-2.0
//! The concurrent in-guest fuzzer.

use crate::Suite;

impl Suite {
    pub(crate) fn fuzz_checks(&mut self) {}
}
