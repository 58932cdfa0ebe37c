// SPDX-License-Identifier: GPL-2.0
//! Fault injection: surprise removal, unload, killed processes, failing resets.

use crate::Suite;

impl Suite {
    pub(crate) fn fault_checks(&mut self) {}
}
