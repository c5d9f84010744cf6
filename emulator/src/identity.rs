//! (being written)
use std::sync::Arc;

use axum::Router;

use crate::EmuState;

/// Authorization codes, refresh tokens and pending sign-ins.
#[derive(Debug, Default)]
pub struct IdentityState {}

/// Routes of the identity platform, nested under `/login`.
pub fn router() -> Router<Arc<EmuState>> {
    Router::new()
}
