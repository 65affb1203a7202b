// SPDX-License-Identifier: MIT
//! Generate the UAPI bindings from include/uapi/drm/ferrite_drm.h, so the
//! library and the header cannot drift apart.

use std::path::PathBuf;

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("..");
    let header = root.join("include/uapi/drm/ferrite_drm.h");
    println!("cargo:rerun-if-changed={}", header.display());
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("uapi.rs");
    bindgen::Builder::default()
        .header(header.to_string_lossy())
        // "drm.h" comes from libdrm-dev.
        .clang_arg("-I/usr/include/libdrm")
        .clang_arg(format!("-I{}", root.join("include/uapi/drm").display()))
        .allowlist_type("drm_ferrite_.*")
        .allowlist_var("DRM_FERRITE_.*")
        .allowlist_var("DRM_IOCTL_FERRITE_.*")
        .allowlist_var("DRM_COMMAND_BASE")
        .allowlist_var("DRM_IOCTL_BASE")
        .derive_default(true)
        .layout_tests(true)
        .generate()
        .expect("bindgen failed on ferrite_drm.h")
        .write_to_file(out)
        .expect("cannot write the UAPI bindings");
}
