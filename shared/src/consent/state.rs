//! The signed, single-use `state` carried through a consent round trip (DESIGN §6 Consent).
//!
//! `state = base64url(payload JSON) "." base64url(HMAC-SHA256(key, payload part))`. The payload
//! binds the tenant, the auth model, a nonce and an expiry; verification is constant-time and
//! checks expiry; single use is enforced by the caller consuming the nonce with a conditional
//! write ([`crate::ports::ConsentNonces`]). The tenant id in the state, never the `tenant` query
//! parameter of a redirect, is the tenant we expect the token to be for.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::{AuthModel, TenantId};
use crate::secret::{ct_eq, hmac_sha256};

/// Longest `state` we accept; anything longer is hostile.
pub const MAX_STATE_LEN: usize = 1024;

/// What a consent `state` binds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentState {
    /// The tenant being onboarded.
    pub tid: TenantId,
    /// The model being consented.
    pub model: AuthModel,
    /// Single-use nonce.
    pub nonce: String,
    /// Expiry (Unix seconds).
    pub exp: i64,
    /// PKCE verifier for v2 delegated consent (the state is signed, so it cannot be swapped; it
    /// is not secret from the user's own browser, which is what PKCE assumes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pkce: Option<String>,
}

/// Why a `state` was refused. Messages are safe to show a person.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    /// Not of the form we issue.
    #[error("the consent link is malformed")]
    Malformed,
    /// The signature does not match: forged or altered.
    #[error("the consent link was not issued by us or was altered")]
    BadSignature,
    /// Past its expiry.
    #[error("the consent link has expired")]
    Expired,
}

impl ConsentState {
    /// A fresh state for `tid`/`model`, valid for `ttl` from `now`, with a random nonce.
    pub fn new(tid: TenantId, model: AuthModel, now: DateTime<Utc>, ttl: Duration) -> Self {
        ConsentState {
            tid,
            model,
            nonce: random_token(18),
            exp: (now + ttl).timestamp(),
            pkce: None,
        }
    }

    /// Expiry as a time.
    pub fn expires_at(&self) -> DateTime<Utc> {
        DateTime::from_timestamp(self.exp, 0).unwrap_or(DateTime::<Utc>::MIN_UTC)
    }

    /// Signs the state with `key`.
    pub fn sign(&self, key: &[u8]) -> String {
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default());
        let sig = URL_SAFE_NO_PAD.encode(hmac_sha256(key, payload.as_bytes()));
        format!("{payload}.{sig}")
    }

    /// Verifies signature (constant time) and expiry at `now`.
    pub fn verify(state: &str, key: &[u8], now: DateTime<Utc>) -> Result<Self, StateError> {
        if state.len() > MAX_STATE_LEN {
            return Err(StateError::Malformed);
        }
        let (payload, sig) = state.split_once('.').ok_or(StateError::Malformed)?;
        let sig = URL_SAFE_NO_PAD
            .decode(sig)
            .map_err(|_| StateError::Malformed)?;
        if !ct_eq(&hmac_sha256(key, payload.as_bytes()), &sig) {
            return Err(StateError::BadSignature);
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| StateError::Malformed)?;
        let st: ConsentState = serde_json::from_slice(&bytes).map_err(|_| StateError::Malformed)?;
        if now.timestamp() >= st.exp {
            return Err(StateError::Expired);
        }
        Ok(st)
    }
}

/// A random URL-safe token of `bytes` random bytes.
pub fn random_token(bytes: usize) -> String {
    use rand::RngCore;
    let mut b = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut b);
    URL_SAFE_NO_PAD.encode(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tid() -> TenantId {
        TenantId::parse("11111111-1111-4111-8111-111111111111").expect("valid")
    }

    #[test]
    fn a_signed_state_verifies_until_it_expires() {
        let now = Utc::now();
        let s = ConsentState::new(tid(), AuthModel::Application, now, Duration::minutes(30));
        let signed = s.sign(b"key-key-key-key-key-key-key-key!");
        let back = ConsentState::verify(&signed, b"key-key-key-key-key-key-key-key!", now)
            .expect("verifies");
        assert_eq!(back, s);
        assert_eq!(
            ConsentState::verify(
                &signed,
                b"key-key-key-key-key-key-key-key!",
                now + Duration::minutes(31)
            ),
            Err(StateError::Expired)
        );
    }

    #[test]
    fn forged_altered_and_garbage_states_are_refused() {
        let now = Utc::now();
        let key = b"key-key-key-key-key-key-key-key!";
        let signed =
            ConsentState::new(tid(), AuthModel::DelegatedV1, now, Duration::minutes(5)).sign(key);
        assert_eq!(
            ConsentState::verify(&signed, b"another-key-another-key-another!", now),
            Err(StateError::BadSignature)
        );
        let mut other = ConsentState::new(tid(), AuthModel::Application, now, Duration::hours(9));
        other.tid = TenantId::parse("22222222-2222-4222-8222-222222222222").expect("valid");
        let (_, sig) = signed.split_once('.').expect("two parts");
        let forged = format!(
            "{}.{sig}",
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&other).expect("json"))
        );
        assert_eq!(
            ConsentState::verify(&forged, key, now),
            Err(StateError::BadSignature)
        );
        for junk in ["", ".", "abc", "a.b.c", "%%%.%%%", &"x".repeat(5000)] {
            assert!(ConsentState::verify(junk, key, now).is_err(), "{junk}");
        }
    }
}
