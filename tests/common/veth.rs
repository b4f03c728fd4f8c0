//! A veth pair between two namespaces, and `dlisten serve` on a driver bound
//! to its server end (net_af_packet0, net_af_xdp0).

use super::*;
use std::time::Instant;

/// `server_if` in `server` (no address: dlisten owns it), `client_if` in
/// `client` with CLIENT_IP/24. The namespaces, and the veth with them, go
/// on drop.
pub struct VethPair {
    pub client: Netns,
    pub server: Netns,
    pub client_if: String,
    pub server_if: String,
}

impl VethPair {
    pub fn new(tag: &str) -> VethPair {
        let client = Netns::new(&format!("{tag}c"));
        let server = Netns::new(&format!("{tag}s"));
        let client_if = unique("dvc");
        let server_if = unique("dvs");
        run_ok(Command::new("ip").args([
            "link", "add", &client_if, "netns", &client.name, "type", "veth", "peer", "name", &server_if, "netns",
            &server.name,
        ]));
        client.ok(&["ip", "addr", "add", &format!("{CLIENT_IP}/24"), "dev", &client_if]);
        client.ok(&["ip", "link", "set", &client_if, "up"]);
        server.ok(&["ip", "link", "set", &server_if, "up"]);
        VethPair { client, server, client_if, server_if }
    }

    /// `ethtool -K <client_if> tx on|off`: the client's transmit checksum
    /// offload (on, a veth's default, the server sees partial checksums).
    pub fn client_tx_offload(&self, on: bool) {
        self.client.ok(&["ethtool", "-K", &self.client_if, "tx", if on { "on" } else { "off" }]);
    }
}

/// `dlisten serve` on `driver` over the server end; killed on drop unless stopped.
pub struct VethServer {
    captured: Captured,
    stopped: bool,
}

impl VethServer {
    pub fn start_on(link: &VethPair, driver: &str, prefix: &str, serve_args: &[&str]) -> VethServer {
        let vdev = format!("{driver},iface={}", link.server_if);
        let bin = dlisten_bin().display().to_string();
        let mut argv = vec![bin.as_str(), "serve", "--addr", SERVER_IP, "--idle-sleep-us", "20"];
        argv.extend_from_slice(serve_args);
        argv.extend_from_slice(&[
            "--", "--no-huge", "-m", "512", "--no-pci", "--no-shconf", "--file-prefix", prefix, "--vdev", &vdev,
            "--log-level", "lib.eal:error",
        ]);
        let mut captured = spawn_captured(link.server.cmd(&argv).env("RUST_BACKTRACE", "1"));
        if captured.ready.recv_timeout(Duration::from_secs(30)).is_err() {
            let _ = captured.child.kill();
            let _ = captured.child.wait();
            panic!("dlisten on {driver} did not become ready in 30 s:\n{}", captured.output.lock().unwrap());
        }
        VethServer { captured, stopped: false }
    }

    pub fn output(&self) -> String {
        self.captured.output.lock().unwrap().clone()
    }

    /// Wait at most 5 s for a line containing `text`.
    pub fn wait_for(&self, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !self.output().contains(text) {
            assert!(Instant::now() < deadline, "no {text:?} within 5 s:\n{}", self.output());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL; returns what it printed.
    pub fn kill9(&mut self) -> String {
        self.stopped = true;
        let pid = self.captured.child.id().to_string();
        let _ = Command::new("kill").args(["-KILL", &pid]).status();
        let _ = self.captured.child.wait();
        for r in self.captured.readers.drain(..) {
            let _ = r.join();
        }
        self.output()
    }

    pub fn alive(&mut self) -> bool {
        matches!(self.captured.child.try_wait(), Ok(None))
    }

    /// SIGINT, wait at most 15 s, return everything it printed.
    pub fn stop(&mut self) -> String {
        self.stopped = true;
        let pid = self.captured.child.id().to_string();
        let _ = Command::new("kill").args(["-INT", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            match self.captured.child.try_wait() {
                Ok(Some(status)) => {
                    for r in self.captured.readers.drain(..) {
                        let _ = r.join();
                    }
                    let out = self.output();
                    assert!(status.success(), "dlisten exited with {status}:\n{out}");
                    return out;
                }
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
                _ => {
                    let _ = self.captured.child.kill();
                    let _ = self.captured.child.wait();
                    panic!("dlisten did not stop within 15 s of SIGINT:\n{}", self.output());
                }
            }
        }
    }
}

impl Drop for VethServer {
    fn drop(&mut self) {
        if !self.stopped {
            let _ = self.captured.child.kill();
            let _ = self.captured.child.wait();
        }
    }
}
