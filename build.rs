//! Binds the distribution's DPDK 22.11 LTS: bindgen over `csrc/dpdk.h` with an
//! allowlist, plus `csrc/shim.c` (non-inline wrappers for DPDK's static-inline
//! fast path) compiled with `cc`. No panics: a missing dependency ends the
//! build with one sentence that says what to install.

use std::env;
use std::path::PathBuf;
use std::process::{exit, Command};

const INSTALL_HINT: &str =
    "dlisten needs DPDK 22.11: apt-get install libdpdk-dev dpdk pkg-config (and libclang-dev for bindgen)";

/// Functions bindgen declares. Keep in step with src/dpdk: every entry is used.
const FUNCTIONS: &[&str] = &[
    "rte_eal_init",
    "rte_eal_cleanup",
    "rte_strerror",
    "rte_version",
    "rte_socket_id",
    "rte_thread_register",
    "rte_thread_unregister",
    "rte_eth_find_next_owned_by",
    "rte_eth_dev_socket_id",
    "rte_eth_dev_info_get",
    "rte_eth_dev_configure",
    "rte_eth_dev_adjust_nb_rx_tx_desc",
    "rte_eth_rx_queue_setup",
    "rte_eth_tx_queue_setup",
    "rte_eth_dev_start",
    "rte_eth_dev_stop",
    "rte_eth_dev_close",
    "rte_eth_promiscuous_enable",
    "rte_eth_dev_set_mc_addr_list",
    "rte_eth_allmulticast_enable",
    "rte_eth_macaddr_get",
    "rte_eth_link_get_nowait",
    "rte_eth_stats_get",
    "rte_pktmbuf_pool_create",
    "rte_mempool_free",
    "rte_mempool_avail_count",
    "rte_mempool_in_use_count",
    "rte_pktmbuf_free_bulk",
    "rte_get_tsc_hz",
    "rte_telemetry_register_cmd",
    "rte_tel_data_alloc",
    "rte_tel_data_free",
    "rte_tel_data_start_dict",
    "rte_tel_data_add_dict_u64",
    "rte_tel_data_add_dict_string",
    "rte_tel_data_add_dict_container",
    "dl_.*",
];

/// Types reached only through pointers stay opaque: Rust never reads their fields.
const OPAQUE_TYPES: &[&str] = &["rte_mbuf", "rte_mempool", "rte_device", "rte_arp_hdr"];

fn fail(message: &str) -> ! {
    println!("cargo:warning={message}");
    eprintln!("{message}");
    exit(1);
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=csrc");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG");

    let dpdk = match pkg_config::Config::new()
        .atleast_version("22.11")
        .cargo_metadata(false)
        .probe("libdpdk")
    {
        Ok(lib) => lib,
        Err(e) => {
            println!(
                "cargo:warning=pkg-config libdpdk: {}",
                e.to_string().replace('\n', " ")
            );
            fail(INSTALL_HINT);
        }
    };

    let shim_flags = machine_flags();
    // The shim first, then DPDK's libraries: the static shim needs them, and
    // linkers resolve left to right.
    compile_shim(&dpdk, &shim_flags);
    emit_link_lines(&dpdk);
    generate_bindings(&dpdk);
}

/// Link DPDK as libdpdk.pc says: shared libraries, as Debian ships them.
fn emit_link_lines(dpdk: &pkg_config::Library) {
    for path in &dpdk.link_paths {
        println!("cargo:rustc-link-search=native={}", path.display());
    }
    for lib in &dpdk.libs {
        println!("cargo:rustc-link-lib={lib}");
    }
    for args in &dpdk.ld_args {
        println!("cargo:rustc-link-arg=-Wl,{}", args.join(","));
    }
}

/// The instruction-set flags of libdpdk.pc (Debian: `-march=corei7`). DPDK's
/// inline code (rte_memcpy via the mempool cache) needs at least SSSE3. The
/// pkg-config crate keeps only -I/-L/-l/-D, so these are read with
/// `--cflags-only-other`. `-march=native` is dropped: the binary must run on
/// other machines than the builder.
fn machine_flags() -> Vec<String> {
    let pkg_config = env::var("PKG_CONFIG").unwrap_or_else(|_| "pkg-config".to_string());
    let output = match Command::new(pkg_config)
        .args(["--cflags-only-other", "libdpdk"])
        .output()
    {
        Ok(out) if out.status.success() => out.stdout,
        _ => fail(INSTALL_HINT),
    };
    let text = String::from_utf8_lossy(&output);
    let mut flags = Vec::new();
    for flag in text.split_whitespace() {
        if flag == "-march=native" || flag == "-mtune=native" {
            println!("cargo:warning=ignoring {flag} from libdpdk.pc");
            continue;
        }
        if flag.starts_with("-march=") || flag.starts_with("-mtune=") || is_isa_flag(flag) {
            flags.push(flag.to_string());
        }
    }
    flags
}

/// `-msse4.2`, `-mavx2`, ... (not `-mcmodel=` and other ABI-changing flags).
fn is_isa_flag(flag: &str) -> bool {
    [
        "-msse", "-mssse", "-mavx", "-mpclmul", "-maes", "-mpopcnt", "-mrtm", "-mbmi",
    ]
    .iter()
    .any(|p| flag.starts_with(p))
}

fn compile_shim(dpdk: &pkg_config::Library, flags: &[String]) {
    let mut build = cc::Build::new();
    build
        .file("csrc/shim.c")
        .include("csrc")
        .opt_level(2)
        .warnings(true)
        // DPDK's headers use GNU C (typeof, statement expressions).
        .flag_if_supported("-std=gnu11");
    for path in &dpdk.include_paths {
        build.include(path);
    }
    for (name, value) in &dpdk.defines {
        build.define(name, value.as_deref());
    }
    for flag in flags {
        build.flag(flag);
    }
    if let Err(e) = build.try_compile("dlisten_dpdk_shim") {
        println!("cargo:warning=compiling csrc/shim.c failed: {e}");
        fail(INSTALL_HINT);
    }
}

fn generate_bindings(dpdk: &pkg_config::Library) {
    let mut builder = bindgen::Builder::default()
        .header("csrc/dpdk.h")
        // DPDK's doc comments would otherwise become (failing) doc-tests.
        .generate_comments(false)
        .layout_tests(true)
        .derive_default(true)
        .derive_debug(false)
        .prepend_enum_name(false)
        .default_enum_style(bindgen::EnumVariation::Consts)
        .size_t_is_usize(true)
        .allowlist_recursively(true)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .clang_arg("-Icsrc");
    for path in &dpdk.include_paths {
        builder = builder.clang_arg(format!("-I{}", path.display()));
    }
    for f in FUNCTIONS {
        builder = builder.allowlist_function(f);
    }
    builder = builder
        .allowlist_type("rte_eth_dev_info")
        .allowlist_type("rte_eth_conf")
        .allowlist_type("rte_eth_rxconf")
        .allowlist_type("rte_eth_txconf")
        .allowlist_type("rte_eth_link")
        .allowlist_type("rte_eth_stats")
        .allowlist_type("rte_ether_addr")
        .allowlist_type("rte_eth_rx_mq_mode")
        .allowlist_type("rte_eth_tx_mq_mode")
        // mbuf flags are plain shifts, which bindgen evaluates.
        .allowlist_var("RTE_MBUF_F_(RX|TX)_.*")
        .allowlist_var("RTE_MAX_ETHPORTS")
        .allowlist_var("RTE_ETH_DEV_NO_OWNER")
        .allowlist_var("RTE_ETH_LINK_(UP|FULL_DUPLEX)")
        .allowlist_var("RTE_ETH_SPEED_NUM_(NONE|UNKNOWN)")
        .allowlist_var("RTE_PKTMBUF_HEADROOM")
        .allowlist_var("RTE_MBUF_DEFAULT_BUF_SIZE")
        .allowlist_var("SOCKET_ID_ANY")
        .allowlist_var("LCORE_ID_ANY")
        .allowlist_var("RTE_VERSION.*");
    for t in OPAQUE_TYPES {
        builder = builder.opaque_type(t);
    }
    let bindings = match builder.generate() {
        Ok(b) => b,
        Err(e) => {
            println!("cargo:warning=bindgen over csrc/dpdk.h failed: {e}");
            fail(INSTALL_HINT);
        }
    };
    let Some(out_dir) = env::var_os("OUT_DIR").map(PathBuf::from) else {
        fail("OUT_DIR is not set: build.rs must run under cargo");
    };
    if let Err(e) = bindings.write_to_file(out_dir.join("dpdk_bindings.rs")) {
        fail(&format!("writing the DPDK bindings to OUT_DIR failed: {e}"));
    }
}
