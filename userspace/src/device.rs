// SPDX-License-Identifier: MIT
//! Finding and opening Ferrite GPUs.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use crate::drm;

/// Driver name the Ferrite kernel driver reports.
pub const DRIVER_NAME: &str = "ferrite";

/// An open Ferrite render node.
pub struct Device {
    file: File,
    path: PathBuf,
}

impl Device {
    /// Open the `index`'th Ferrite render node.
    pub fn open(index: usize) -> io::Result<Device> {
        Self::all()?.into_iter().nth(index).ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotFound, format!("no Ferrite GPU #{index}"))
        })
    }

    /// Every Ferrite render node, in minor order.
    pub fn all() -> io::Result<Vec<Device>> {
        let mut out = Vec::new();
        for minor in 128..192 {
            let path = PathBuf::from(format!("/dev/dri/renderD{minor}"));
            let Ok(file) = OpenOptions::new().read(true).write(true).open(&path) else {
                continue;
            };
            if drm::version(file.as_raw_fd()).is_ok_and(|v| v.name == DRIVER_NAME) {
                out.push(Device { file, path });
            }
        }
        Ok(out)
    }

    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    pub fn fd(&self) -> std::os::fd::RawFd {
        self.file.as_raw_fd()
    }

    pub fn version(&self) -> io::Result<drm::Version> {
        drm::version(self.fd())
    }

    /// The sysfs directory of the PCI function behind this node.
    pub fn sysfs_dir(&self) -> io::Result<PathBuf> {
        let rdev = self.file.metadata()?.rdev();
        let (maj, min) = (libc::major(rdev), libc::minor(rdev));
        std::fs::canonicalize(format!("/sys/dev/char/{maj}:{min}/device"))
    }

    /// The PCI address (domain:bus:dev.fn) of the GPU.
    pub fn pci_address(&self) -> io::Result<String> {
        Ok(self
            .sysfs_dir()?
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default())
    }
}
