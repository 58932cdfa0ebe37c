// SPDX-License-Identifier: GPL-2.0
//! Storms: bind/unbind and open/close cycles.

use crate::Suite;

impl Suite {
    pub(crate) fn storm_checks(&mut self) {}
}
