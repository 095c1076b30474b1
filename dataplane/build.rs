//! Builds the AF_XDP backend's XDP program (bpf/xdp_steer.c) with Debian's
//! clang and libbpf headers (`apt-get install clang libbpf-dev`). C and
//! clang rather than a Rust eBPF toolchain: that needs a nightly compiler and
//! bpf-linker, which a Debian machine with one stable toolchain does not
//! have, while clang -target bpf is a package away and is what the kernel's
//! own samples and xdp-tools use.
//!
//! Without clang the crate still builds: the program is left out (cfg
//! `ferrovs_no_xdp_prog`) and the AF_XDP backend reports at open that it was
//! built without it, so the appliance falls back to AF_PACKET.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=bpf/xdp_steer.c");
    println!("cargo:rerun-if-env-changed=CLANG");
    println!("cargo:rustc-check-cfg=cfg(ferrovs_no_xdp_prog)");
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("xdp_steer.o");
    let clang = std::env::var("CLANG").unwrap_or_else(|_| "clang".into());
    // asm/types.h lives under the multiarch include directory, which
    // clang -target bpf does not search by itself.
    let multiarch = Command::new("gcc")
        .arg("-dumpmachine")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| format!("/usr/include/{}", s.trim()))
        .unwrap_or_else(|| "/usr/include/x86_64-linux-gnu".into());
    let built = Command::new(&clang)
        .args(["-O2", "-g", "-Wall", "-Werror", "-target", "bpf", "-c"])
        .arg("bpf/xdp_steer.c")
        .arg(format!("-idirafter{multiarch}"))
        .arg("-o")
        .arg(&out)
        .output();
    let why = match built {
        Ok(o) if o.status.success() => return,
        Ok(o) => format!(
            "{clang} failed ({}): {}",
            o.status,
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => format!("no {clang} ({e})"),
    };
    for line in why.lines() {
        println!("cargo:warning={line}");
    }
    println!(
        "cargo:warning=the AF_XDP backend is built without its XDP program: apt-get install clang libbpf-dev"
    );
    println!("cargo:rustc-cfg=ferrovs_no_xdp_prog");
}
