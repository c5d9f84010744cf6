//! Request-rate limits: sliding windows per (client id, tenant id, API) on the real monotonic
//! clock, because clients wait real time on `Retry-After`.
//!
//! - Graph security API: 150 requests per minute per app per tenant (reference §3.4, §6 item 21).
//! - Defender for Endpoint API: 100 calls per minute and 1,500 per hour (§2.3, §6 item 16); the
//!   documented text does not say per what, so the emulator applies it per app per tenant like
//!   Graph (**UNCONFIRMED**, §7).
//!
//! A refused request does not count against the window, so a client that retries early keeps
//! getting 429 until the window has room, and one that waits `Retry-After` gets through.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::scenario::{Api, Settings};

/// At most `max` requests within any `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// Length of the sliding window.
    pub window: Duration,
    /// Requests admitted within it.
    pub max: u32,
}

impl Limit {
    /// The limits of `api` under `settings` (the SIEM API documents none).
    pub fn for_api(api: Api, settings: &Settings) -> Vec<Limit> {
        match api {
            Api::Graph => vec![Limit {
                window: Duration::from_secs(60),
                max: settings.graph_per_minute,
            }],
            Api::Mde => vec![
                Limit {
                    window: Duration::from_secs(60),
                    max: settings.mde_per_minute,
                },
                Limit {
                    window: Duration::from_secs(3600),
                    max: settings.mde_per_hour,
                },
            ],
            Api::Siem => Vec::new(),
        }
    }
}

/// Request-rate windows per (app, tenant, API): the admission instants still inside the longest
/// window, oldest first.
#[derive(Debug, Default)]
pub struct ThrottleState {
    windows: HashMap<(String, String, Api), VecDeque<Instant>>,
}

impl ThrottleState {
    /// Admits a request made at `now` by `client` against `tenant`'s `api`, or answers how long
    /// until the request would be admitted (the time until enough counted requests leave their
    /// window). `now` is `Instant::now()` in the handlers and any instant in tests.
    pub fn admit(
        &mut self,
        client: &str,
        tenant: &str,
        api: Api,
        limits: &[Limit],
        now: Instant,
    ) -> Result<(), Duration> {
        let longest = limits.iter().map(|l| l.window).max().unwrap_or_default();
        let key = (
            client.to_ascii_lowercase(),
            tenant.to_ascii_lowercase(),
            api,
        );
        let admitted = self.windows.entry(key).or_default();
        while admitted
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= longest)
        {
            admitted.pop_front();
        }
        let mut wait = Duration::ZERO;
        for limit in limits {
            // Requests admitted less than `window` ago are inside the window.
            let first_inside =
                admitted.partition_point(|t| now.saturating_duration_since(*t) >= limit.window);
            let inside = admitted.len() - first_inside;
            let max = limit.max as usize;
            if inside >= max {
                // Room appears when the max-th most recent request leaves the window.
                let until = match admitted
                    .len()
                    .checked_sub(max)
                    .and_then(|i| admitted.get(i))
                {
                    Some(t) => limit
                        .window
                        .saturating_sub(now.saturating_duration_since(*t)),
                    None => limit.window,
                };
                wait = wait.max(until);
            }
        }
        if wait > Duration::ZERO || limits.iter().any(|l| l.max == 0) {
            return Err(wait.max(Duration::from_millis(1)));
        }
        if !limits.is_empty() {
            admitted.push_back(now);
        }
        Ok(())
    }
}

/// Graph's `Retry-After`: seconds with three decimals, like the documented `2.128` (§3.4).
pub fn graph_retry_after(wait: Duration) -> String {
    format!("{:.3}", wait.as_secs_f64().max(0.001))
}

/// Defender for Endpoint's `Retry-After`: whole seconds, rounded up, at least 1 (§2.6 says "in
/// seconds"; whether fractions occur is **UNCONFIRMED**).
pub fn whole_seconds_retry_after(wait: Duration) -> String {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minute(max: u32) -> Vec<Limit> {
        vec![Limit {
            window: Duration::from_secs(60),
            max,
        }]
    }

    #[test]
    fn the_request_past_the_budget_waits_for_the_oldest_to_leave_the_window() {
        let mut th = ThrottleState::default();
        let t0 = Instant::now();
        let limits = minute(3);
        for i in 0..3 {
            let at = t0 + Duration::from_secs(i * 10);
            assert_eq!(th.admit("app", "t", Api::Graph, &limits, at), Ok(()));
        }
        // At 25 s the oldest (0 s) leaves at 60 s: wait 35 s.
        let at = t0 + Duration::from_secs(25);
        assert_eq!(
            th.admit("app", "t", Api::Graph, &limits, at),
            Err(Duration::from_secs(35))
        );
        // Refused requests did not count: at 60 s exactly one slot is free again.
        let at = t0 + Duration::from_secs(60);
        assert_eq!(th.admit("app", "t", Api::Graph, &limits, at), Ok(()));
        assert_eq!(
            th.admit("app", "t", Api::Graph, &limits, at),
            Err(Duration::from_secs(10))
        );
    }

    #[test]
    fn windows_are_kept_per_app_tenant_and_api() {
        let mut th = ThrottleState::default();
        let now = Instant::now();
        let limits = minute(1);
        assert!(th.admit("app", "t1", Api::Graph, &limits, now).is_ok());
        assert!(th.admit("app", "t1", Api::Graph, &limits, now).is_err());
        assert!(th.admit("app", "t2", Api::Graph, &limits, now).is_ok());
        assert!(th.admit("other", "t1", Api::Graph, &limits, now).is_ok());
        assert!(th.admit("app", "t1", Api::Mde, &limits, now).is_ok());
    }

    #[test]
    fn the_hourly_mde_budget_binds_after_the_minute_one_is_spread_out() {
        let settings = Settings {
            mde_per_minute: 2,
            mde_per_hour: 3,
            ..Settings::default()
        };
        let limits = Limit::for_api(Api::Mde, &settings);
        let mut th = ThrottleState::default();
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        assert!(th.admit("a", "t", Api::Mde, &limits, at(0)).is_ok());
        assert!(th.admit("a", "t", Api::Mde, &limits, at(1)).is_ok());
        assert_eq!(
            th.admit("a", "t", Api::Mde, &limits, at(2)),
            Err(Duration::from_secs(58))
        );
        assert!(th.admit("a", "t", Api::Mde, &limits, at(120)).is_ok());
        // Three in the hour: the next waits until the first leaves the hour.
        assert_eq!(
            th.admit("a", "t", Api::Mde, &limits, at(200)),
            Err(Duration::from_secs(3400))
        );
        assert!(th.admit("a", "t", Api::Mde, &limits, at(3600)).is_ok());
    }

    #[test]
    fn retry_after_is_fractional_on_graph_and_whole_elsewhere() {
        assert_eq!(graph_retry_after(Duration::from_millis(2128)), "2.128");
        assert_eq!(graph_retry_after(Duration::ZERO), "0.001");
        assert_eq!(whole_seconds_retry_after(Duration::from_millis(2128)), "3");
        assert_eq!(whole_seconds_retry_after(Duration::from_secs(2)), "2");
        assert_eq!(whole_seconds_retry_after(Duration::ZERO), "1");
    }

    #[test]
    fn a_zero_budget_refuses_everything_and_no_limits_admit_everything() {
        let mut th = ThrottleState::default();
        let now = Instant::now();
        assert!(th.admit("a", "t", Api::Graph, &minute(0), now).is_err());
        for _ in 0..1000 {
            assert!(th.admit("a", "t", Api::Siem, &[], now).is_ok());
        }
    }
}
