//! Everything that speaks to Microsoft: the identity platform client (Entra ID v1/v2), the claims
//! of the tokens it issues, the HTTP budget and retry policy every API call shares, and the three
//! alert sources (Graph `alerts_v2`, Defender for Endpoint `/api/alerts`, the legacy SIEM API).
//! Wire details follow `reference/microsoft-apis.md`.

pub mod alerts;
pub mod claims;
pub mod http;
pub mod identity;
