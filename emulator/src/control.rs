//! (being written)
use std::sync::Arc;

use axum::Router;
use axum::routing::get;

use crate::EmuState;

/// Routes of the control API, nested under `/_emulator`.
pub fn router() -> Router<Arc<EmuState>> {
    Router::new().route("/health", get(|| async { "ok" }))
}
