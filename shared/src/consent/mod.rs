//! The consent endpoint customers' admins open in a browser: the signed `state` (and consent
//! link) format, and the HTTP handler both edges serve — the `consent-callback` Lambda behind API
//! Gateway and `mssp serve` — over framework-free request and response types.

pub mod handler;
pub mod state;
pub mod web;
