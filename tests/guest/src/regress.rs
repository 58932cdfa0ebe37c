// SPDX-License-Identifier: GPL-2.0
//! Regression tests for the defects fixed in the common module.

use crate::Suite;

impl Suite {
    pub(crate) fn regression_checks(&mut self) {}
}
