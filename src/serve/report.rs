//! The exit report: what the server did, taken once everything stopped.

use crate::dpdk::{DpdkError, PortStats};
use crate::stats::{Counter, CounterSnapshot, Metric, RuntimeSnapshot};
use crate::telemetry::text::format_runtime;
use crate::telemetry::latency::LatencyHub;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

pub(super) struct Report {
    /// `ss -lnt` at stop, before the listeners closed.
    pub listening: String,
    pub port_id: u16,
    /// Why stopping the port failed, if it did.
    pub port_stop_error: Option<DpdkError>,
    pub per_worker: Vec<CounterSnapshot>,
    /// The socket layer's own counters.
    pub control: CounterSnapshot,
    pub port: PortStats,
    pub latency_table: String,
    /// Each worker's cycles per stage over the whole run.
    pub runtime: Vec<RuntimeSnapshot>,
    pub hgrms: Option<Hgrms>,
    pub event_log_error: Option<io::Error>,
    /// After a SIGTERM drain: connections that finished, and that were cut.
    pub drain: Option<(u64, u64)>,
}

impl Report {
    /// Print the report, and write the .hgrm files it names.
    pub fn print(self) {
        print!("{}", self.listening);
        if let Some(e) = &self.port_stop_error {
            eprintln!("dlisten: stopping port {}: {e}", self.port_id);
        }
        print_counters(&self.per_worker, &self.control);
        if let Some((finished, cut)) = self.drain {
            println!("drain: {finished} connections finished, {cut} cut");
        }
        let s = &self.port;
        println!(
            "port {} ipackets {} opackets {} imissed {} ierrors {} oerrors {} rx_nombuf {}",
            self.port_id, s.ipackets, s.opackets, s.imissed, s.ierrors, s.oerrors, s.rx_nombuf
        );
        println!("latency (microseconds):");
        print!("{}", self.latency_table);
        print!("{}", format_runtime(&self.runtime, "whole run"));
        if let Some(h) = self.hgrms {
            h.write();
        }
        if let Some(e) = &self.event_log_error {
            eprintln!("dlisten: event log: {e}");
        }
    }
}

/// One line per worker, then the summed counters (nstat style).
fn print_counters(per_worker: &[CounterSnapshot], control: &CounterSnapshot) {
    for (w, s) in per_worker.iter().enumerate() {
        println!(
            "worker {w} rx_frames {} tx_frames {} tx_drops {} tx_no_mbuf {} passive_opens {}",
            s.get(Counter::RxFrames),
            s.get(Counter::TxFrames),
            s.get(Counter::TxDrops),
            s.get(Counter::TxNoMbuf),
            s.get(Counter::TcpPassiveOpens)
        );
    }
    println!("counters:");
    let total = CounterSnapshot::sum(per_worker.iter().chain(std::iter::once(control)));
    for (name, v) in total.nonzero() {
        println!("  {name:<32} {v}");
    }
}

/// The latency histograms as HdrHistogram .hgrm files, rendered at stop.
pub(super) struct Hgrms {
    dir: PathBuf,
    files: Vec<(PathBuf, io::Result<Vec<u8>>)>,
}

impl Hgrms {
    /// One `<metric>.hgrm` per metric, over every listener.
    pub fn render(hub: &LatencyHub, dir: &Path) -> Hgrms {
        let files = Metric::ALL
            .into_iter()
            .map(|m| {
                let mut text = Vec::new();
                let rendered = hub.write_hgrm(m, None, &mut text).map(|()| text);
                (dir.join(format!("{}.hgrm", m.file_stem())), rendered)
            })
            .collect();
        Hgrms { dir: dir.to_path_buf(), files }
    }

    /// The files are extra: failing to write one is reported, not fatal.
    fn write(self) {
        if let Err(e) = std::fs::create_dir_all(&self.dir) {
            eprintln!("dlisten: {}: {e}", self.dir.display());
            return;
        }
        for (path, rendered) in self.files {
            let written = std::fs::File::create(&path).and_then(|mut f| f.write_all(&rendered?));
            match written {
                Ok(()) => println!("dlisten: wrote {}", path.display()),
                Err(e) => eprintln!("dlisten: {}: {e}", path.display()),
            }
        }
    }
}
