//! Embeds the kernel object when `cargo xtask build-ebpf` has built it.
//!
//! The object is read from cargo's own output path, so the proxy relinks only when the eBPF
//! program really changed. Without it the binary still builds (for `--no-ebpf`, `validate` and
//! unit tests) and `strait run` asks for `--ebpf-object` or tells how to build it.
use std::{env, path::PathBuf};

fn main() {
    println!("cargo::rustc-check-cfg=cfg(strait_embedded_ebpf)");
    println!("cargo::rerun-if-env-changed=STRAIT_EBPF_OBJECT");
    println!("cargo::rerun-if-env-changed=CARGO_TARGET_DIR");
    let object = env::var_os("STRAIT_EBPF_OBJECT")
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir().join("bpfel-unknown-none/release/strait-ebpf"));
    println!("cargo::rerun-if-changed={}", object.display());
    if object.is_file() {
        println!("cargo::rustc-cfg=strait_embedded_ebpf");
        println!("cargo::rustc-env=STRAIT_EBPF_OBJECT={}", object.display());
    }
}

fn target_dir() -> PathBuf {
    match env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap()).join("../target"),
    }
}
