//! (being written)

/// Request-rate windows per (app, tenant, API).
#[derive(Debug, Default)]
pub struct ThrottleState {}
