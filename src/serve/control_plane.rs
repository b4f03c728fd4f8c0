//! The control plane, made before EAL: the stop flag, the keys, the socket
//! layer with its listeners open, the event log and the control socket
//! bound. Everything here can fail on bad configuration, or on a server of
//! the same name still running, without touching the NIC.

use super::listen::Listening;
use super::{ServeConfig, ServeError};
use crate::app::LiveApp;
use crate::engine::keys::syncookie::SyncookieKeys;
use crate::engine::keys::Secrets;
use crate::engine::socket::{Stack, StackConfig};
use crate::telemetry::event_log::{EventLog, EventSender};
use crate::telemetry::{ControlListener, MetricsListener};
use std::hash::Hasher as _;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

pub(super) struct ControlPlane {
    /// Set by SIGINT, or once a SIGTERM's drain is over: the workers stop.
    pub stop: Arc<AtomicBool>,
    /// Set by SIGTERM: drain, then stop.
    pub term: Arc<AtomicBool>,
    /// Set by the server when it begins draining: the per-core apps follow.
    pub drain: Arc<AtomicBool>,
    /// Set by SIGHUP: read the `--config` file again.
    pub hup: Arc<AtomicBool>,
    /// The application's settings, changeable while serving.
    pub app: Arc<LiveApp>,
    /// Every worker's engine starts from these.
    pub secrets: Secrets,
    pub stack: Arc<Stack>,
    pub listening: Listening,
    pub event_log: Option<EventLog>,
    pub events: Option<EventSender>,
    /// `--metrics`: bound here, served once the workers run.
    pub metrics: Option<MetricsListener>,
    /// Bound here (a live server of the same name is refused before EAL),
    /// served once the workers run.
    pub control_socket: ControlListener,
}

impl ControlPlane {
    pub fn open(cfg: &ServeConfig) -> Result<ControlPlane, ServeError> {
        if cfg.addrs.is_empty() && cfg.addrs6.is_empty() {
            return Err(ServeError::NoAddress);
        }
        let control_socket =
            ControlListener::bind(&cfg.control_socket).map_err(|e| ServeError::ControlSocket(cfg.control_socket.clone(), e))?;
        if control_socket.replaced_stale() {
            println!(
                "dlisten: removed stale control socket {} (nobody answered on it: left by a server that is gone)",
                cfg.control_socket.display()
            );
        }
        let (stop, term, hup) = stop_on_signal()?;
        let secrets = secrets(cfg)?;
        let stack = Arc::new(Stack::new(StackConfig {
            workers: cfg.workers,
            local_addrs: cfg.addrs.clone(),
            local_addrs6: cfg.addrs6.clone(),
            sysctls: cfg.sysctls,
            seed: ephemeral_port_seed(&secrets),
        }));
        let listening = Listening::open(&stack, cfg)?;
        let (event_log, events) = match &cfg.event_log {
            Some(path) => {
                let (log, sender) = EventLog::open(path).map_err(|e| ServeError::EventLog(path.clone(), e))?;
                (Some(log), Some(sender))
            }
            None => (None, None),
        };
        let metrics = match cfg.metrics {
            Some(addr) => Some(MetricsListener::bind(addr).map_err(|e| ServeError::Metrics(addr, e))?),
            None => None,
        };
        let drain = Arc::new(AtomicBool::new(false));
        let app = LiveApp::new(cfg.app.clone());
        Ok(ControlPlane { stop, term, drain, hup, app, secrets, stack, listening, event_log, events, metrics, control_socket })
    }
}

/// SIGINT sets the stop flag, SIGTERM the drain-then-stop one, SIGHUP the
/// reload one (so that SIGHUP no longer ends the process).
type SignalFlags = (Arc<AtomicBool>, Arc<AtomicBool>, Arc<AtomicBool>);

fn stop_on_signal() -> Result<SignalFlags, ServeError> {
    let stop = Arc::new(AtomicBool::new(false));
    let term = Arc::new(AtomicBool::new(false));
    let hup = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGINT, stop.clone()).map_err(ServeError::Signal)?;
    signal_hook::flag::register(signal_hook::consts::SIGTERM, term.clone()).map_err(ServeError::Signal)?;
    signal_hook::flag::register(signal_hook::consts::SIGHUP, hup.clone()).map_err(ServeError::Signal)?;
    Ok((stop, term, hup))
}

/// Random keys, with the operator's SYN cookie and TFO keys (or a fleet's
/// key file) in their place.
fn secrets(cfg: &ServeConfig) -> Result<Secrets, ServeError> {
    let mut secrets = Secrets::random()?;
    if let Some(k) = cfg.syncookie_key {
        secrets.syncookie = SyncookieKeys::new(k);
    }
    if let Some(k) = &cfg.tfo_key {
        secrets.tfo = *k;
    }
    if let Some((_, keys)) = &cfg.key_file {
        keys.apply(&mut secrets);
    }
    Ok(secrets)
}

/// The socket layer's port-choice seed, keyed by the ISN secret as Linux
/// keys its ephemeral port offsets with `net_secret`; a hash, so the seed
/// does not give the key away.
fn ephemeral_port_seed(secrets: &Secrets) -> u64 {
    let mut h = secrets.isn.sip24();
    h.write(b"ip_local_port_range");
    h.finish()
}
