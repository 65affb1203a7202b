// SPDX-License-Identifier: MIT
//! Userspace access to Ferrite GPUs: finding render nodes and talking to
//! the driver through its ioctls.

pub mod device;
pub mod drm;

pub use device::Device;
