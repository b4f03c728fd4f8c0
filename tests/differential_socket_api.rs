//! The socket-API half of the kernel differential suite: one sequence of
//! socket calls (tests/differential/socket_api.json) runs on the Linux
//! kernel, through Python's socket module in a namespace this test creates
//! (owning 198.18.0.1), and on `engine::socket::Stack`; every step's answer
//! (ok, an errno name, or what the step observed: `ss -lnt`'s Send-Q,
//! getsockname) must be the same. Steps marked with a deviation are the
//! README's "Where dlisten differs from Linux" rows: only the kernel runs
//! them, and the kernel's answer is shown.

mod common;
use common::*;
use dlisten::engine::errno::Errno;
use dlisten::engine::listen::Family;
use dlisten::engine::socket::{Fd, SockType, Stack, StackConfig};
use dlisten::engine::sysctl::Sysctls;
use serde_json::Value;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::path::Path;

const OWNED: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const OWNED6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 1);

fn errno_name(e: Errno) -> String {
    // Errno's message starts with the name ("EINVAL: ...").
    e.to_string().split(':').next().unwrap_or_default().to_string()
}

fn answer(r: Result<(), Errno>) -> String {
    r.map_or_else(errno_name, |()| "ok".into())
}

fn sockaddr(v: &Value) -> SocketAddr {
    v.as_str().and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("bad addr {v}"))
}

/// One step on the Stack, answered as socket_api.py answers it on the kernel.
fn run_step(st: &Stack, socks: &mut HashMap<String, Fd>, s: &Value) -> String {
    let op = s["op"].as_str().unwrap();
    let fd = || socks[s["sock"].as_str().unwrap()];
    match op {
        "socket" => {
            let kind = if s["type"] == "stream" { SockType::Stream } else { SockType::Dgram };
            let family = if s["family"] == "inet6" { Family::Inet6 } else { Family::Inet };
            match st.socket_in(family, kind) {
                Ok(fd) => {
                    // Linux hands out the lowest free number: a closed socket's name no longer owns it.
                    socks.retain(|_, f| *f != fd);
                    socks.insert(s["sock"].as_str().unwrap().into(), fd);
                    "ok".into()
                }
                Err(e) => errno_name(e),
            }
        }
        "somaxconn" => {
            st.set_sysctls(Sysctls { somaxconn: s["value"].as_u64().unwrap() as u32, ..*st.sysctls() });
            "ok".into()
        }
        "send_q" => {
            // Named as ss prints it (`*:80` is a dual-stack `[::]:80`).
            let addr = s["addr"].as_str().unwrap();
            st.listeners().iter().find(|l| l.ss_local() == addr).map_or("absent".into(), |l| l.send_q.to_string())
        }
        "lookup" => {
            // The listener a SYN reaches, named by the socket that owns it.
            let to = sockaddr(&s["addr"]);
            match st.lookup(0, to.ip(), to.port(), 0) {
                None => "ECONNREFUSED".into(),
                Some(l) => socks
                    .iter()
                    .find(|(_, fd)| st.listener(**fd).is_ok_and(|m| Arc::ptr_eq(&m, &l)))
                    .map_or("none".into(), |(name, _)| name.clone()),
            }
        }
        "v6only" => answer(st.set_v6only(fd(), s["value"] == 1)),
        "listen" => answer(st.listen(fd(), s["backlog"].as_i64().unwrap() as i32)),
        "bind" => answer(st.bind(fd(), sockaddr(&s["addr"]))),
        "accept" => answer(st.accept(fd()).map(|_| ())),
        "reuseaddr" => answer(st.set_reuseaddr(fd(), true)),
        "reuseport" => answer(st.set_reuseport(fd(), true)),
        "fastopen" => answer(st.set_fastopen(fd(), s["qlen"].as_u64().unwrap() as u32)),
        "getsockname" => match st.getsockname(fd()) {
            Ok(a) => {
                let (low, high) = st.sysctls().ip_local_port_range;
                if (low..=high).contains(&a.port()) {
                    match a.ip() {
                        IpAddr::V4(ip) => format!("{ip}:ephemeral"),
                        IpAddr::V6(ip) => format!("[{ip}]:ephemeral"),
                    }
                } else {
                    a.to_string()
                }
            }
            Err(e) => errno_name(e),
        },
        "close" => answer(st.close(fd())),
        _ => panic!("unknown op {op}"),
    }
}

fn kernel_answers(spec: &Path) -> Vec<String> {
    let ns = Netns::new("sock");
    // A veth (the dummy module may be missing) gives the namespace its address.
    ns.ok(&["ip", "link", "add", "d0", "type", "veth", "peer", "name", "d1"]);
    ns.ok(&["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=0", "net.ipv6.conf.default.disable_ipv6=0"]);
    ns.ok(&["ip", "addr", "add", "198.18.0.1/24", "dev", "d0"]);
    ns.ok(&["ip", "link", "set", "d0", "up"]);
    ns.ok(&["ip", "link", "set", "d1", "up"]);
    ns.ok(&["sysctl", "-qw", "net.ipv6.conf.d0.disable_ipv6=0"]);
    ns.ok(&["ip", "-6", "addr", "add", "2001:2::1/64", "dev", "d0", "nodad"]);
    // The defaults Stack is built with.
    ns.ok(&["sysctl", "-qw", "net.core.somaxconn=4096", "net.ipv4.ip_local_port_range=32768 60999"]);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/differential/socket_api.py");
    let out = ns.ok(&["/usr/bin/python3", script.to_str().unwrap(), spec.to_str().unwrap()]);
    serde_json::from_slice(&out.stdout).expect("socket_api.py prints a JSON list of strings")
}

#[test]
fn socket_calls_answer_as_the_kernel_does() {
    require_root();
    let _serial = serial();
    let spec_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/differential/socket_api.json");
    let spec: Value = serde_json::from_str(&std::fs::read_to_string(&spec_path).unwrap()).unwrap();
    let steps = spec["steps"].as_array().unwrap();
    let kernel = kernel_answers(&spec_path);
    assert_eq!(kernel.len(), steps.len(), "socket_api.py answered every step");

    let sysctls = Sysctls { somaxconn: 4096, ip_local_port_range: (32768, 60999), ..Sysctls::DEFAULT };
    let st = Stack::new(StackConfig { workers: 1, local_addrs: vec![OWNED], local_addrs6: vec![OWNED6], sysctls, seed: 7 });
    let mut socks = HashMap::new();
    let mut differ = Vec::new();
    let (mut same, mut deviations) = (0, 0);
    for (i, (s, k)) in steps.iter().zip(&kernel).enumerate() {
        let args: Vec<String> =
            s.as_object().unwrap().iter().filter(|(n, _)| *n != "op" && *n != "deviation").map(|(n, v)| format!("{n}={v}")).collect();
        let what = format!("{i:3} {:12} {:40}", s["op"].as_str().unwrap(), args.join(" "));
        if let Some(dev) = s["deviation"].as_str() {
            deviations += 1;
            println!("{what} kernel {k:22} dlisten -  deviation: {dev} (README)");
            continue;
        }
        let d = run_step(&st, &mut socks, s);
        if &d == k {
            same += 1;
            println!("{what} kernel {k:22} dlisten {d:22} match");
        } else {
            println!("{what} kernel {k:22} dlisten {d:22} DIFFERS");
            differ.push(format!("step {i} ({what}): kernel {k}, dlisten {d}"));
        }
    }
    println!("{} steps: {same} match, {} differ, {deviations} deviations", steps.len(), differ.len());
    assert!(differ.is_empty(), "socket API differs from Linux:\n{}", differ.join("\n"));
}
