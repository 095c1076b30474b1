//! Generates the DPDK bindings and builds the C glue.
//!
//! - Compiler flags: *every* flag of `pkg-config --cflags libdpdk`, verbatim,
//!   goes to both bindgen (as clang arguments) and cc. DPDK's flags are not
//!   only include paths: `-include rte_config.h` defines the build's
//!   configuration (RTE_PKTMBUF_HEADROOM, RTE_MAX_LCORE, ...) before any DPDK
//!   header, and `-march=corei7` selects the same code paths in the inline
//!   functions (SSE4.2 CRC, vector copies) as the library was built with. The
//!   `pkg-config` crate only reports include paths and defines, so the flags
//!   come from running pkg-config itself (`$PKG_CONFIG` if set).
//! - Linking: shared, from `pkg-config --libs libdpdk` through the
//!   `pkg-config` crate. Debian's EAL loads every PMD from its plugin
//!   directory at `rte_eal_init`, so no `-d` EAL argument is needed. Two
//!   driver libraries whose functions we call directly are not in libdpdk's
//!   link line and are added by name: `rte_bus_vdev` (`rte_vdev_init`) and
//!   `rte_net_ring` (`rte_eth_from_rings`). They are the same files as the
//!   plugins (symlinks), so the dynamic loader maps each once.
//! - bindgen with `wrap_static_fns`: most of DPDK's fast path (rx/tx burst,
//!   mbuf alloc/free/prepend, ring enqueue/dequeue, `rte_lcore_id`) is
//!   `static inline`; bindgen writes a C file with one exported wrapper per
//!   such function, compiled here with cc into `libferrovs_dpdk_glue.a`
//!   together with `src/shim.c` (`rte_errno`).
//! - An allowlist of exactly what ferrovs calls keeps the bindings (and the
//!   wrappers) small. Types they need come along transitively.

use std::env;
use std::path::PathBuf;
use std::process::Command;

/// Functions ferrovs calls, as regular expressions (bindgen anchors them).
const FUNCTIONS: &[&str] = &[
    // EAL, lcores, threads
    "rte_eal_init",
    "rte_eal_cleanup",
    "rte_eal_remote_launch",
    "rte_eal_mp_wait_lcore",
    "rte_eal_wait_lcore",
    "rte_eal_get_lcore_state",
    "rte_get_next_lcore",
    "rte_get_main_lcore",
    "rte_lcore_id",
    "rte_lcore_count",
    "rte_lcore_to_socket_id",
    "rte_socket_id",
    "rte_thread_register",
    "rte_thread_unregister",
    "rte_strerror",
    // ethdev
    "rte_eth_dev_count_avail",
    "rte_eth_find_next",
    "rte_eth_dev_is_valid_port",
    "rte_eth_dev_get_name_by_port",
    "rte_eth_dev_get_port_by_name",
    "rte_eth_dev_info_get",
    "rte_eth_dev_socket_id",
    "rte_eth_dev_configure",
    "rte_eth_dev_adjust_nb_rx_tx_desc",
    "rte_eth_rx_queue_setup",
    "rte_eth_tx_queue_setup",
    "rte_eth_dev_start",
    "rte_eth_dev_stop",
    "rte_eth_dev_close",
    "rte_eth_rx_burst",
    "rte_eth_tx_burst",
    "rte_eth_link_get_nowait",
    "rte_eth_stats_get",
    "rte_eth_stats_reset",
    "rte_eth_xstats_get",
    "rte_eth_xstats_get_names",
    "rte_eth_macaddr_get",
    "rte_eth_dev_default_mac_addr_set",
    "rte_eth_promiscuous_enable",
    "rte_eth_dev_set_mtu",
    "rte_eth_dev_get_mtu",
    // mbufs and mempools
    "rte_pktmbuf_pool_create",
    "rte_pktmbuf_alloc",
    "rte_pktmbuf_alloc_bulk",
    "rte_pktmbuf_free",
    "rte_pktmbuf_free_bulk",
    "rte_pktmbuf_prepend",
    "rte_pktmbuf_adj",
    "rte_pktmbuf_append",
    "rte_pktmbuf_trim",
    "rte_pktmbuf_linearize",
    "rte_pktmbuf_headroom",
    "rte_pktmbuf_tailroom",
    "rte_mempool_avail_count",
    "rte_mempool_in_use_count",
    "rte_mempool_free",
    // rings and the ring PMD
    "rte_ring_create",
    "rte_ring_free",
    "rte_ring_enqueue_burst",
    "rte_ring_dequeue_burst",
    "rte_ring_count",
    "rte_eth_from_rings",
    // virtual devices
    "rte_vdev_init",
    "rte_vdev_uninit",
    // flow rules
    "rte_flow_validate",
    "rte_flow_create",
    "rte_flow_destroy",
    "rte_flow_flush",
    // shim.c
    "ferrovs_rte_errno",
];

/// Constants and types we name that no allowlisted function drags in.
const VARS: &[&str] = &[
    "RTE_PKTMBUF_HEADROOM",
    "RTE_MBUF_DEFAULT_BUF_SIZE",
    "RTE_MBUF_DEFAULT_DATAROOM",
    "RTE_MAX_LCORE",
    "RTE_MAX_ETHPORTS",
    "RTE_MEMPOOL_CACHE_MAX_SIZE",
    "RTE_ETH_NAME_MAX_LEN",
    "RTE_ETH_XSTATS_NAME_SIZE",
    "RTE_ETH_RSS_.*",
    "RTE_ETH_TX_OFFLOAD_.*",
    "RTE_ETH_RX_OFFLOAD_.*",
    "RTE_ETH_LINK_.*",
    "RTE_ETH_SPEED_NUM_.*",
    "RING_F_.*",
    "SOCKET_ID_ANY",
    "LCORE_ID_ANY",
    "RTE_FLOW_ITEM_TYPE_.*",
    "RTE_FLOW_ACTION_TYPE_.*",
    // errno values DPDK reports (rte_errno and negative returns)
    "EALREADY|ENOTSUP|ENODEV|EINVAL|ENOMEM|EEXIST|ENOSPC|ENOENT|EAGAIN|EBUSY|EIO|EPERM|ENOSYS|E_RTE_.*",
];

const TYPES: &[&str] = &[
    "rte_eth_conf",
    "rte_eth_rxconf",
    "rte_eth_txconf",
    "rte_eth_dev_info",
    "rte_eth_link",
    "rte_eth_stats",
    "rte_eth_xstat",
    "rte_eth_xstat_name",
    "rte_ether_addr",
    "rte_mbuf",
    "rte_mempool",
    "rte_ring",
    "rte_flow_attr",
    "rte_flow_item",
    "rte_flow_item_eth",
    "rte_flow_item_ipv4",
    "rte_flow_item_tcp",
    "rte_flow_item_udp",
    "rte_flow_action",
    "rte_flow_action_queue",
    "rte_flow_error",
    "rte_eth_rx_mq_mode",
    "rte_eth_tx_mq_mode",
    "rte_lcore_state_t",
];

/// Packed structs that bindgen cannot lay out (an aligned member inside a
/// packed struct); we never look inside them.
const OPAQUE: &[&str] = &[
    "rte_arp_hdr",
    "rte_arp_ipv4",
    "rte_l2tpv2_combined_msg_hdr",
    "rte_gtp_psc_generic_hdr",
];

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=src/wrapper.h");
    println!("cargo:rerun-if-changed=src/shim.c");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");

    // Linking (emits cargo:rustc-link-lib/-search lines).
    let lib = pkg_config::Config::new()
        .atleast_version("22.11")
        .probe("libdpdk")
        .unwrap_or_else(|e| {
            panic!("libdpdk not found by pkg-config (apt-get install libdpdk-dev): {e}")
        });
    println!("cargo:rustc-link-lib=dylib=rte_bus_vdev");
    println!("cargo:rustc-link-lib=dylib=rte_net_ring");

    let cflags = dpdk_cflags();
    let out = PathBuf::from(env::var("OUT_DIR").unwrap());
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let header = manifest.join("src/wrapper.h");
    let wrappers = out.join("static_fns");

    let mut b = bindgen::Builder::default()
        .header(header.to_str().unwrap())
        .clang_args(&cflags)
        .wrap_static_fns(true)
        .wrap_static_fns_path(&wrappers)
        .allowlist_recursively(true)
        .layout_tests(true)
        .derive_default(true)
        .prepend_enum_name(false)
        .default_enum_style(bindgen::EnumVariation::Consts)
        // RTE_ETH_RSS_*, RTE_ETH_*_OFFLOAD_* are `RTE_BIT64(n)` expressions,
        // which bindgen's own macro parser cannot evaluate; let clang do it.
        .clang_macro_fallback()
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()));
    for f in FUNCTIONS {
        b = b.allowlist_function(f);
    }
    for v in VARS {
        b = b.allowlist_var(v);
    }
    for t in TYPES {
        b = b.allowlist_type(t);
    }
    for t in OPAQUE {
        b = b.opaque_type(t);
    }
    let bindings = b
        .generate()
        .expect("bindgen failed on the DPDK headers (is libclang-dev installed?)");
    bindings
        .write_to_file(out.join("bindings.rs"))
        .expect("writing bindings.rs");

    // The generated wrappers include wrapper.h by absolute path; they and the
    // shim see exactly the flags the bindings were generated with.
    let mut cc = cc::Build::new();
    cc.file(wrappers.with_extension("c"))
        .file(manifest.join("src/shim.c"))
        .include(manifest.join("src"))
        .warnings(false);
    for f in &cflags {
        cc.flag(f);
    }
    cc.compile("ferrovs_dpdk_glue");

    // Tell dependents (via DEP_DPDK_VERSION) which DPDK they run on.
    println!("cargo:version={}", lib.version);
}

/// `pkg-config --cflags libdpdk`, split on whitespace (DPDK's flags carry no
/// quoted arguments). A flag taking a separate argument, like `-include
/// rte_config.h`, stays two words, which both clang and gcc accept.
fn dpdk_cflags() -> Vec<String> {
    let pc = env::var("PKG_CONFIG").unwrap_or_else(|_| "pkg-config".into());
    let o = Command::new(&pc)
        .args(["--cflags", "libdpdk"])
        .output()
        .unwrap_or_else(|e| panic!("running {pc}: {e}"));
    assert!(
        o.status.success(),
        "{pc} --cflags libdpdk failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout)
        .expect("pkg-config output is UTF-8")
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}
