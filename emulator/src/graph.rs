//! (being written)
use std::sync::Arc;

use axum::Router;

use crate::EmuState;

/// Routes of this API, nested under its prefix.
pub fn router() -> Router<Arc<EmuState>> {
    Router::new()
}
