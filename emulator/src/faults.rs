//! Seeded fault injection per tenant and API: 429 storms, 5xx bursts, latency, malformed JSON,
//! dropped connections and `206 Partial Content` answers. The same seed and the same sequence of
//! requests give the same faults, so a failing chaos run can be replayed.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// Which endpoint family a fault applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FaultTarget {
    /// Graph alerts_v2.
    Graph,
    /// Defender for Endpoint /api/alerts.
    Mde,
    /// Legacy SIEM API.
    Siem,
    /// The token endpoint.
    Identity,
}

/// What goes wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// 429 with the API's throttling body and `Retry-After` (`retry_after` seconds, may be
    /// fractional on Graph; omitted when the tenant's `graph_retry_after` switch is off).
    Throttle,
    /// A 5xx answer (`status`, default 500) with the API's error body.
    ServerError,
    /// The answer is delayed by `latency_ms`, then served normally.
    Latency,
    /// 200 with a body cut short: not valid JSON.
    Malformed,
    /// The connection drops after the headers and part of the body.
    Drop,
    /// Graph: `206 Partial Content` with a `Warning` header and only part of the page.
    Partial,
}

fn one() -> f64 {
    1.0
}

/// One fault rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultRule {
    /// Only this tenant (id); absent: every tenant.
    #[serde(default)]
    pub tenant: Option<String>,
    /// The endpoint family.
    pub api: FaultTarget,
    /// What goes wrong.
    pub kind: FaultKind,
    /// Chance per matching request (0..=1).
    #[serde(default = "one")]
    pub probability: f64,
    /// Fires at most this many times (a burst); absent: unlimited.
    #[serde(default)]
    pub count: Option<u32>,
    /// `Retry-After` seconds for `throttle` (default 1).
    #[serde(default)]
    pub retry_after: Option<f64>,
    /// Delay for `latency` (default 200 ms).
    #[serde(default)]
    pub latency_ms: Option<u64>,
    /// Status for `server_error` (default 500).
    #[serde(default)]
    pub status: Option<u16>,
}

impl FaultRule {
    /// A rule firing on every request to `api` of every tenant, without limit; change fields
    /// with struct-update syntax (`FaultRule { count: Some(2), ..FaultRule::new(…) }`).
    pub fn new(api: FaultTarget, kind: FaultKind) -> Self {
        FaultRule {
            tenant: None,
            api,
            kind,
            probability: 1.0,
            count: None,
            retry_after: None,
            latency_ms: None,
            status: None,
        }
    }
}

/// A fault chosen for one request.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    /// What goes wrong.
    pub kind: FaultKind,
    /// `Retry-After` seconds for throttling.
    pub retry_after: f64,
    /// Status for server errors.
    pub status: StatusCode,
}

/// What a request draws: a delay to apply first, and at most one fault replacing the answer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Drawn {
    /// Injected latency.
    pub delay: Duration,
    /// The fault, if any.
    pub fault: Option<Fault>,
}

/// The active fault rules, their random source and what they served.
#[derive(Debug)]
pub struct FaultPlan {
    seed: u64,
    rng: StdRng,
    rules: Vec<FaultRule>,
    served: BTreeMap<String, u64>,
}

impl Default for FaultPlan {
    fn default() -> Self {
        FaultPlan::new(0, Vec::new())
    }
}

/// The control API's view of the plan.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FaultPlanSpec {
    /// Seed of the random source.
    #[serde(default)]
    pub seed: u64,
    /// Rules, evaluated in order.
    #[serde(default)]
    pub rules: Vec<FaultRule>,
}

impl FaultPlan {
    /// A plan with `rules`, drawing from a generator seeded with `seed`.
    pub fn new(seed: u64, rules: Vec<FaultRule>) -> Self {
        FaultPlan {
            seed,
            rng: StdRng::seed_from_u64(seed),
            rules,
            served: BTreeMap::new(),
        }
    }

    /// Replaces the rules and reseeds, keeping the counts of what was served.
    pub fn replace(&mut self, spec: FaultPlanSpec) {
        self.seed = spec.seed;
        self.rng = StdRng::seed_from_u64(spec.seed);
        self.rules = spec.rules;
    }

    /// The current rules.
    pub fn spec(&self) -> FaultPlanSpec {
        FaultPlanSpec {
            seed: self.seed,
            rules: self.rules.clone(),
        }
    }

    /// How many faults of each kind were served so far.
    pub fn served(&self) -> &BTreeMap<String, u64> {
        &self.served
    }

    /// Draws the faults for one request to `target` on behalf of `tenant`.
    pub fn draw(&mut self, target: FaultTarget, tenant: Option<&str>) -> Drawn {
        let mut drawn = Drawn::default();
        for rule in &mut self.rules {
            if rule.api != target || rule.count == Some(0) {
                continue;
            }
            if let Some(t) = &rule.tenant
                && tenant.is_none_or(|x| !x.eq_ignore_ascii_case(t))
            {
                continue;
            }
            if drawn.fault.is_some() && rule.kind != FaultKind::Latency {
                continue;
            }
            if !self.rng.random_bool(rule.probability.clamp(0.0, 1.0)) {
                continue;
            }
            if let Some(c) = rule.count.as_mut() {
                *c -= 1;
            }
            let name = serde_json::to_value(rule.kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            *self.served.entry(name).or_default() += 1;
            if rule.kind == FaultKind::Latency {
                drawn.delay += Duration::from_millis(rule.latency_ms.unwrap_or(200));
            } else {
                drawn.fault = Some(Fault {
                    kind: rule.kind,
                    retry_after: rule.retry_after.unwrap_or(1.0),
                    status: rule
                        .status
                        .and_then(|s| StatusCode::from_u16(s).ok())
                        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                });
            }
        }
        drawn
    }
}

/// A finished JSON body as the 200 answer, spoiled as the drawn fault says: `malformed` cuts it
/// off ([`malformed`]), `drop` resets the connection midway ([`dropped`]); other kinds (handled
/// before the body is built) and none serve it whole.
pub fn serve_json(body: &serde_json::Value, fault: Option<FaultKind>) -> Response {
    match fault {
        Some(FaultKind::Malformed) => malformed(&serde_json::to_vec(body).unwrap_or_default()),
        Some(FaultKind::Drop) => dropped(&serde_json::to_vec(body).unwrap_or_default()),
        _ => crate::wire::json_response(StatusCode::OK, body),
    }
}

/// A 200 answer whose JSON body is cut off in the middle.
pub fn malformed(full_body: &[u8]) -> Response {
    let cut = (full_body.len() / 2).max(1).min(full_body.len());
    let mut body = full_body[..cut].to_vec();
    body.extend_from_slice(b"\x00<!-- upstream reset -->");
    let mut r = Response::new(Body::from(body));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    r
}

/// An answer whose connection drops after the headers and the first bytes of the body.
pub fn dropped(full_body: &[u8]) -> Response {
    let head = Bytes::copy_from_slice(&full_body[..full_body.len().min(64)]);
    let stream = futures::stream::iter(vec![
        Ok::<Bytes, std::io::Error>(head),
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "injected connection drop",
        )),
    ]);
    let mut r = Response::new(Body::from_stream(stream));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(kind: FaultKind, count: Option<u32>) -> FaultRule {
        FaultRule {
            tenant: Some("t1".into()),
            count,
            ..FaultRule::new(FaultTarget::Graph, kind)
        }
    }

    #[test]
    fn a_burst_fires_count_times_for_its_tenant_only() {
        let mut p = FaultPlan::new(7, vec![rule(FaultKind::ServerError, Some(2))]);
        assert!(p.draw(FaultTarget::Graph, Some("t2")).fault.is_none());
        assert!(p.draw(FaultTarget::Mde, Some("t1")).fault.is_none());
        assert!(p.draw(FaultTarget::Graph, Some("t1")).fault.is_some());
        assert!(p.draw(FaultTarget::Graph, Some("t1")).fault.is_some());
        assert!(p.draw(FaultTarget::Graph, Some("t1")).fault.is_none());
        assert_eq!(p.served().get("server_error"), Some(&2));
    }

    #[test]
    fn the_same_seed_draws_the_same_faults() {
        let mk = || {
            let mut r = rule(FaultKind::Throttle, None);
            r.probability = 0.3;
            FaultPlan::new(42, vec![r])
        };
        let (mut a, mut b) = (mk(), mk());
        let sa: Vec<bool> = (0..100)
            .map(|_| a.draw(FaultTarget::Graph, Some("t1")).fault.is_some())
            .collect();
        let sb: Vec<bool> = (0..100)
            .map(|_| b.draw(FaultTarget::Graph, Some("t1")).fault.is_some())
            .collect();
        assert_eq!(sa, sb);
        assert!(sa.iter().any(|x| *x) && sa.iter().any(|x| !*x));
    }
}
