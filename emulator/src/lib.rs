//! An emulator of the Microsoft cloud that mssp-alerts talks to: the identity platform (Entra ID v1
//! and v2 authorize, admin consent and token endpoints), Microsoft Graph `security/alerts_v2`, the
//! Defender for Endpoint `/api/alerts` API and the legacy SIEM API, plus a control API for tests
//! (scenario loading, a controllable clock, fault injection and ground truth).
//!
//! Everything is served from one listener on 127.0.0.1 under path prefixes, so each base URL the
//! product reads from configuration points at the emulator:
//!
//! | service | base URL |
//! |---|---|
//! | authority (login.microsoftonline.com) | `http://127.0.0.1:PORT/login` |
//! | Microsoft Graph | `http://127.0.0.1:PORT/graph` |
//! | Defender for Endpoint API | `http://127.0.0.1:PORT/mde` |
//! | legacy SIEM API, as each tenant's own region | `http://127.0.0.1:PORT/siem` |
//! | legacy SIEM API, one region's exporter (`wdatp-alertexporter-{eu,us,uk}`) | `http://127.0.0.1:PORT/siem-eu`, `/siem-us`, `/siem-uk` |
//! | control API | `http://127.0.0.1:PORT/_emulator` |
//!
//! Every request to a Microsoft endpoint (not the control API) first waits the `latency_ms`
//! setting. Tenants are indexed at load, so a request costs the same in a world of three tenants
//! or of ten thousand ([`fleet`] builds such a world).
//!
//! Wire behaviour follows `reference/microsoft-apis.md` (§6 lists the behaviours reproduced).
#![warn(missing_docs)]
#![recursion_limit = "256"]

pub mod clock;
pub mod control;
pub mod faults;
pub mod fleet;
pub mod graph;
pub mod identity;
pub mod jwt;
pub mod mde;
pub mod model;
pub mod odata;
pub mod resource_auth;
pub mod scenario;
pub mod siem;
pub mod throttle;
pub mod wire;
pub mod world;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use scenario::Region;
pub use scenario::Scenario;
use url::Url;

use crate::clock::EmuClock;
use crate::world::World;

/// State shared by every handler.
#[derive(Debug)]
pub struct EmuState {
    /// The emulated clock.
    pub clock: EmuClock,
    world: Mutex<World>,
    /// Key signing access tokens (made at start).
    pub signing_key: Vec<u8>,
    /// `http://127.0.0.1:PORT/`.
    pub base_url: Url,
    /// Base URL of each service.
    pub urls: Urls,
}

impl EmuState {
    /// Builds the state for `scenario` served at `base_url`.
    pub fn new(scenario: &Scenario, base_url: Url) -> anyhow::Result<Self> {
        let (clock, world) = load(scenario)?;
        Ok(EmuState {
            clock,
            world: Mutex::new(world),
            signing_key: uuid::Uuid::new_v4().as_bytes().to_vec(),
            urls: Urls::new(&base_url),
            base_url,
        })
    }

    /// Locks the world. Handlers hold the lock briefly and never across an `.await`.
    pub fn world(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The emulated time now.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Replaces the world with a new scenario and resets the clock to its start.
    pub fn reload(&self, scenario: &Scenario) -> anyhow::Result<()> {
        let (clock, world) = load(scenario)?;
        *self.world() = world;
        self.clock.set(clock.now());
        self.clock.freeze(clock.is_frozen());
        Ok(())
    }
}

fn load(scenario: &Scenario) -> anyhow::Result<(EmuClock, World)> {
    let start = scenario.clock.start.unwrap_or_else(|| {
        let now = Utc::now();
        DateTime::from_timestamp(now.timestamp(), 0).unwrap_or(now)
    });
    let world = World::from_scenario(scenario, start)?;
    Ok((EmuClock::new(start, scenario.clock.frozen), world))
}

/// The emulator's HTTP routes over `state`. Every Microsoft endpoint (not the control API) waits
/// the `latency_ms` setting first.
pub fn router(state: Arc<EmuState>) -> axum::Router {
    let microsoft = axum::Router::new()
        .nest("/login", identity::router())
        .nest("/graph", wire::catch_all(graph::serve))
        .nest("/mde", wire::catch_all(mde::serve))
        .nest("/siem", siem::router(None))
        .nest("/siem-eu", siem::router(Some(Region::Eu)))
        .nest("/siem-us", siem::router(Some(Region::Us)))
        .nest("/siem-uk", siem::router(Some(Region::Uk)))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            wire::latency,
        ));
    microsoft
        .nest("/_emulator", control::router())
        .with_state(state)
}

/// The base URLs of every service the emulator serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Urls {
    /// Identity platform authority: `{authority}/{tenant}/oauth2/v2.0/token` etc.
    pub authority: Url,
    /// Microsoft Graph: `{graph}/v1.0/security/alerts_v2`.
    pub graph: Url,
    /// Defender for Endpoint API: `{mde}/api/alerts`.
    pub mde: Url,
    /// Legacy SIEM API, answering as each tenant's own region: `{siem}/api/alerts`.
    pub siem: Url,
    /// The SIEM exporter of the EU region (`wdatp-alertexporter-eu`).
    pub siem_eu: Url,
    /// The SIEM exporter of the US region (`wdatp-alertexporter-us`).
    pub siem_us: Url,
    /// The SIEM exporter of the UK region (`wdatp-alertexporter-uk`).
    pub siem_uk: Url,
    /// The emulator's control API.
    pub control: Url,
}

impl Urls {
    /// The SIEM exporter of `region`.
    pub fn siem_of(&self, region: Region) -> &Url {
        match region {
            Region::Eu => &self.siem_eu,
            Region::Us => &self.siem_us,
            Region::Uk => &self.siem_uk,
        }
    }

    fn new(base: &Url) -> Self {
        let join = |p: &str| {
            let mut u = base.clone();
            u.set_path(p);
            u
        };
        Urls {
            authority: join("/login"),
            graph: join("/graph"),
            mde: join("/mde"),
            siem: join("/siem"),
            siem_eu: join("/siem-eu"),
            siem_us: join("/siem-us"),
            siem_uk: join("/siem-uk"),
            control: join("/_emulator"),
        }
    }
}

/// An emulator serving on a local port. Dropping it stops the server.
pub struct RunningEmulator {
    base_url: Url,
    urls: Urls,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    state: Arc<EmuState>,
}

impl RunningEmulator {
    /// `http://127.0.0.1:PORT/`.
    pub fn base_url(&self) -> &Url {
        &self.base_url
    }

    /// The base URL of each emulated service.
    pub fn urls(&self) -> &Urls {
        &self.urls
    }

    /// The shared state, for in-process tests (clock, world, ground truth).
    pub fn state(&self) -> &Arc<EmuState> {
        &self.state
    }

    /// Stops the server and waits for it to finish.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for RunningEmulator {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Starts the emulator with `scenario` on `127.0.0.1` on any free port.
pub async fn start(scenario: Scenario) -> anyhow::Result<RunningEmulator> {
    start_on(SocketAddr::from(([127, 0, 0, 1], 0)), scenario).await
}

/// Starts the emulator with `scenario` on `addr` (port 0 picks a free port).
pub async fn start_on(addr: SocketAddr, scenario: Scenario) -> anyhow::Result<RunningEmulator> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let base_url = Url::parse(&format!("http://{local}/"))?;
    let state = Arc::new(EmuState::new(&scenario, base_url.clone())?);
    let app = router(state.clone());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = rx.await;
            })
            .await;
    });
    Ok(RunningEmulator {
        urls: Urls::new(&base_url),
        base_url,
        shutdown: Some(tx),
        task: Some(task),
        state,
    })
}
