// SPDX-License-Identifier: MIT
//! Files: reopening the second file and closing descriptors.

use super::*;

impl Worker<'_> {
    /// Close file 1 (once nothing uses it) and open a new one, maybe on
    /// another device.
    pub(super) fn op_reopen_peer(&mut self) {
        if self.env.files.len() < 2 {
            return;
        }
        let dev = self.rng.index(self.env.devs.len());
        match FileCtx::open(&self.env.devs, dev) {
            Ok(nf) => {
                let old = {
                    let mut w = self.env.files[1].write().unwrap_or_else(|e| e.into_inner());
                    std::mem::replace(&mut *w, Arc::new(nf))
                };
                drop(old);
            }
            Err(e) => self.finding(
                &format!("cannot reopen {}: {e}", self.env.devs[dev].path.display()),
                "",
            ),
        }
    }

    pub(super) fn op_close_fd(&mut self) {
        let mut fds = self.env.fds();
        if !fds.is_empty() {
            let i = self.rng.index(fds.len());
            fds.swap_remove(i);
        }
    }
}
