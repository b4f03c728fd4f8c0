//! dlisten's commands on DPDK's telemetry socket, next to EAL's and
//! ethdev's (`/ethdev/stats,0`):
//!
//! | command | answer |
//! | --- | --- |
//! | `/dlisten/info` | version, uptime, workers, listeners, serving (as `/health`) |
//! | `/dlisten/counters` | every counter, summed over workers and control plane |
//! | `/dlisten/workers` | per worker: frames, drops, passive opens, busy and idle cycles |
//! | `/dlisten/worker,N` | every counter of worker N |
//! | `/dlisten/listeners` | per listening socket: address, queues (`ss -lnt`) |
//! | `/dlisten/latency` | per listener and metric: count and percentiles in ns |
//!
//! The main thread publishes a [`StatsSnapshot`] every [`REFRESH`]; EAL's
//! telemetry thread answers from the last one, so a value is at most that
//! old and no worker is asked anything.

use crate::dpdk::telemetry::{TelCommand, TelReply, TelScalar, TelValue, TelemetrySource};
use crate::stats::{Counter, CounterSnapshot};
use crate::telemetry::control::StatsSnapshot;
use crate::telemetry::Health;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often the main thread publishes a snapshot.
pub(super) const REFRESH: Duration = Duration::from_millis(500);

pub(super) const COMMANDS: &[TelCommand] = &[
    TelCommand { name: c"/dlisten/info", help: c"dlisten: version, uptime, workers, listeners, serving. No parameters" },
    TelCommand { name: c"/dlisten/counters", help: c"dlisten: every counter (nstat names), summed. No parameters" },
    TelCommand { name: c"/dlisten/workers", help: c"dlisten: per worker frames, drops, passive opens, cycles. No parameters" },
    TelCommand { name: c"/dlisten/worker", help: c"dlisten: every counter of one worker. Parameter: worker id" },
    TelCommand { name: c"/dlisten/listeners", help: c"dlisten: listening sockets and their queues. No parameters" },
    TelCommand { name: c"/dlisten/latency", help: c"dlisten: latency percentiles (ns) per listener and metric. No parameters" },
];

/// The last published snapshot and the health flag.
pub(super) struct TelemetryView {
    snapshot: Mutex<Option<Arc<StatsSnapshot>>>,
    health: Health,
}

impl TelemetryView {
    pub fn new(health: Health) -> TelemetryView {
        TelemetryView { snapshot: Mutex::new(None), health }
    }

    pub fn publish(&self, snapshot: StatsSnapshot) {
        *crate::sync::lock(&self.snapshot) = Some(Arc::new(snapshot));
    }
}

impl TelemetrySource for TelemetryView {
    fn answer(&self, cmd: &str, params: &str) -> Option<TelReply> {
        let snap = crate::sync::lock(&self.snapshot).clone()?;
        reply(cmd, params, &snap, self.health.is_serving())
    }
}

fn u64v(x: u64) -> TelValue {
    TelValue::Scalar(TelScalar::U64(x))
}

fn all_counters(c: &CounterSnapshot) -> TelReply {
    Counter::ALL.iter().map(|k| (k.name().to_string(), u64v(c.get(*k)))).collect()
}

/// The answer to `cmd` from `snap`.
pub(super) fn reply(cmd: &str, params: &str, snap: &StatsSnapshot, serving: bool) -> Option<TelReply> {
    Some(match cmd {
        "/dlisten/info" => vec![
            ("version".into(), TelValue::Scalar(TelScalar::Str(env!("CARGO_PKG_VERSION").into()))),
            ("uptime_ms".into(), u64v(snap.uptime.as_millis() as u64)),
            ("workers".into(), u64v(snap.per_worker.len() as u64)),
            ("listeners".into(), u64v(snap.listeners.len() as u64)),
            ("serving".into(), u64v(u64::from(serving))),
        ],
        "/dlisten/counters" => all_counters(&snap.total()),
        "/dlisten/worker" => all_counters(snap.per_worker.get(params.trim().parse::<usize>().ok()?)?),
        "/dlisten/workers" => snap
            .per_worker
            .iter()
            .enumerate()
            .map(|(w, c)| {
                let mut d: Vec<(String, TelScalar)> = [
                    ("rx_frames", Counter::RxFrames),
                    ("tx_frames", Counter::TxFrames),
                    ("tx_drops", Counter::TxDrops),
                    ("tx_no_mbuf", Counter::TxNoMbuf),
                    ("passive_opens", Counter::TcpPassiveOpens),
                ]
                .iter()
                .map(|(n, k)| (n.to_string(), TelScalar::U64(c.get(*k))))
                .collect();
                if let Some(r) = snap.runtime.get(w) {
                    d.push(("busy_cycles".into(), TelScalar::U64(r.busy_cycles)));
                    d.push(("idle_cycles".into(), TelScalar::U64(r.idle_cycles)));
                }
                (w.to_string(), TelValue::Dict(d))
            })
            .collect(),
        "/dlisten/listeners" => snap
            .listeners
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let mut d = vec![
                    ("local".to_string(), TelScalar::Str(l.local.to_string())),
                    ("state".into(), TelScalar::Str(l.state.into())),
                    ("recv_q".into(), TelScalar::U64(l.recv_q.into())),
                    ("send_q".into(), TelScalar::U64(l.send_q.into())),
                    ("syn_qlen".into(), TelScalar::U64(l.syn_qlen.into())),
                    ("reuseport_group".into(), TelScalar::U64(l.reuseport_group)),
                    ("members".into(), TelScalar::U64(l.group_size as u64)),
                ];
                if let Some(cpu) = l.incoming_cpu {
                    d.push(("incoming_cpu".into(), TelScalar::U64(cpu.into())));
                }
                (i.to_string(), TelValue::Dict(d))
            })
            .collect(),
        // DPDK 22.11 has no floating-point values: nanoseconds.
        "/dlisten/latency" => snap
            .latency
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let ns = |us: f64| TelScalar::U64((us * 1000.0).round() as u64);
                let d = vec![
                    ("listener".to_string(), TelScalar::Str(r.listener.clone())),
                    ("metric".into(), TelScalar::Str(r.metric.name().into())),
                    ("count".into(), TelScalar::U64(r.count)),
                    ("p50_ns".into(), ns(r.p50_us)),
                    ("p90_ns".into(), ns(r.p90_us)),
                    ("p99_ns".into(), ns(r.p99_us)),
                    ("p999_ns".into(), ns(r.p999_us)),
                    ("max_ns".into(), ns(r.max_us)),
                ];
                (i.to_string(), TelValue::Dict(d))
            })
            .collect(),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dpdk::telemetry::{valid_name, MAX_DICT_ENTRIES};
    use crate::engine::socket::ListenerInfo;
    use crate::stats::{Counters, Metric};
    use crate::telemetry::latency::LatencyRow;
    use std::net::{Ipv4Addr, SocketAddrV4};

    fn snapshot() -> StatsSnapshot {
        let (a, b) = (Counters::new(), Counters::new());
        a.add(Counter::TcpPassiveOpens, 3);
        b.add(Counter::TcpPassiveOpens, 4);
        b.add(Counter::RxFrames, 9);
        StatsSnapshot {
            uptime: Duration::from_millis(2500),
            per_worker: vec![a.snapshot(), b.snapshot()],
            listeners: vec![ListenerInfo {
                id: 1,
                state: "LISTEN",
                recv_q: 2,
                send_q: 128,
                local: SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 1), 80).into(),
                v6only: false,
                reuseport_group: 0,
                group_size: 1,
                syn_qlen: 5,
                fastopen_max_qlen: 0,
                incoming_cpu: None,
            }],
            latency: vec![LatencyRow {
                listener: "198.18.0.1:80".into(),
                metric: Metric::SynToSynAck,
                count: 3,
                p50_us: 12.5,
                p90_us: 20.0,
                p99_us: 31.0,
                p999_us: 31.0,
                max_us: 31.25,
            }],
            ..StatsSnapshot::default()
        }
    }

    fn get<'a>(r: &'a TelReply, name: &str) -> &'a TelValue {
        &r.iter().find(|(n, _)| n == name).unwrap_or_else(|| panic!("no {name} in {r:?}")).1
    }

    fn inner(v: &TelValue, name: &str) -> TelScalar {
        let TelValue::Dict(d) = v else { panic!("{v:?} is not a dict") };
        d.iter().find(|(n, _)| n == name).unwrap_or_else(|| panic!("no {name} in {d:?}")).1.clone()
    }

    #[test]
    fn counters_are_summed_and_per_worker() {
        let s = snapshot();
        let total = reply("/dlisten/counters", "", &s, true).unwrap();
        assert_eq!(get(&total, "TcpPassiveOpens"), &u64v(7));
        assert_eq!(total.len(), Counter::ALL.len());
        let w1 = reply("/dlisten/worker", "1", &s, true).unwrap();
        assert_eq!((get(&w1, "TcpPassiveOpens"), get(&w1, "DlRxFrames")), (&u64v(4), &u64v(9)));
        assert_eq!(reply("/dlisten/worker", "2", &s, true), None);
        assert_eq!(reply("/dlisten/worker", "x", &s, true), None);
        let ws = reply("/dlisten/workers", "", &s, true).unwrap();
        assert_eq!(inner(get(&ws, "0"), "passive_opens"), TelScalar::U64(3));
        assert_eq!(inner(get(&ws, "1"), "rx_frames"), TelScalar::U64(9));
    }

    #[test]
    fn info_and_listeners() {
        let s = snapshot();
        let info = reply("/dlisten/info", "", &s, false).unwrap();
        assert_eq!((get(&info, "uptime_ms"), get(&info, "serving"), get(&info, "workers")), (&u64v(2500), &u64v(0), &u64v(2)));
        let l = reply("/dlisten/listeners", "", &s, true).unwrap();
        assert_eq!(inner(get(&l, "0"), "local"), TelScalar::Str("198.18.0.1:80".into()));
        assert_eq!(inner(get(&l, "0"), "syn_qlen"), TelScalar::U64(5));
        assert_eq!(reply("/dlisten/nope", "", &s, true), None);
        let lat = reply("/dlisten/latency", "", &s, true).unwrap();
        assert_eq!(inner(get(&lat, "0"), "metric"), TelScalar::Str(Metric::SynToSynAck.name().into()));
        assert_eq!((inner(get(&lat, "0"), "p50_ns"), inner(get(&lat, "0"), "max_ns")), (TelScalar::U64(12_500), TelScalar::U64(31_250)));
    }

    /// Every name and command fits DPDK's rules, or DPDK would drop it.
    #[test]
    fn every_name_is_one_dpdk_takes() {
        let s = snapshot();
        for c in COMMANDS {
            let name = c.name.to_str().unwrap();
            assert!(name.starts_with("/dlisten/") && valid_name(name), "{name}");
            let r = reply(name, "0", &s, true).unwrap_or_else(|| panic!("{name}"));
            assert!(r.len() <= MAX_DICT_ENTRIES, "{name}");
            for (n, v) in &r {
                assert!(valid_name(n), "{name}: {n}");
                if let TelValue::Dict(d) = v {
                    assert!(d.iter().all(|(n, _)| valid_name(n)), "{name}: {d:?}");
                }
            }
        }
    }
}
