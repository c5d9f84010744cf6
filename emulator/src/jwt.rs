//! Access tokens: JWTs carrying the claims a resource and a client check (`tid`, `aud`, `iss`,
//! `roles` or `scp`, `appid`/`azp`, `iat`/`nbf`/`exp`; reference §4.11). Entra signs with RS256;
//! the emulator signs with HS256 under a key made at start, because only the emulator itself
//! verifies signatures and clients must treat tokens as opaque (reading claims is all they do).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// The claims of an emulated access token.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Audience: the resource's App ID URI.
    pub aud: String,
    /// Issuer: `https://sts.windows.net/{tid}/` (v1) or `{authority}/{tid}/v2.0` (v2).
    pub iss: String,
    /// Tenant the token is for.
    pub tid: String,
    /// Client id (v1 tokens).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub appid: Option<String>,
    /// Client id (v2 tokens).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub azp: Option<String>,
    /// Application permissions (app-only tokens); absent when none were granted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<String>>,
    /// Delegated scopes, space separated (user tokens).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scp: Option<String>,
    /// Issued at (Unix seconds).
    pub iat: i64,
    /// Not before.
    pub nbf: i64,
    /// Expiry.
    pub exp: i64,
    /// Token version, `1.0` or `2.0`.
    pub ver: String,
    /// Principal object id (the user's, or the app's service principal's).
    pub oid: String,
    /// Subject.
    pub sub: String,
    /// The user's UPN (user tokens).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upn: Option<String>,
    /// Unique token id.
    pub uti: String,
}

impl Claims {
    /// The calling client id, whichever claim carries it.
    pub fn client_id(&self) -> &str {
        self.appid
            .as_deref()
            .or(self.azp.as_deref())
            .unwrap_or_default()
    }
}

/// Why a token was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JwtError {
    /// Not three base64url parts of JSON.
    #[error("the token is malformed")]
    Malformed,
    /// The signature does not match.
    #[error("the token signature is invalid")]
    BadSignature,
}

type HmacSha256 = Hmac<Sha256>;

fn mac(key: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length.
    HmacSha256::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC takes any key length"))
}

/// Signs `claims` into a compact JWS.
pub fn sign(key: &[u8], claims: &Claims) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"typ":"JWT","alg":"HS256","kid":"emulator"}"#);
    let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap_or_default());
    let signing_input = format!("{header}.{body}");
    let mut m = mac(key);
    m.update(signing_input.as_bytes());
    let sig = URL_SAFE_NO_PAD.encode(m.finalize().into_bytes());
    format!("{signing_input}.{sig}")
}

/// Verifies the signature and returns the claims; time checks are the caller's (it owns the clock).
pub fn verify(key: &[u8], token: &str) -> Result<Claims, JwtError> {
    let mut parts = token.split('.');
    let (Some(h), Some(b), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Malformed);
    };
    let sig = URL_SAFE_NO_PAD.decode(s).map_err(|_| JwtError::Malformed)?;
    let mut m = mac(key);
    m.update(h.as_bytes());
    m.update(b".");
    m.update(b.as_bytes());
    m.verify_slice(&sig).map_err(|_| JwtError::BadSignature)?;
    let body = URL_SAFE_NO_PAD.decode(b).map_err(|_| JwtError::Malformed)?;
    serde_json::from_slice(&body).map_err(|_| JwtError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_token_verifies_and_a_tampered_one_does_not() {
        let claims = Claims {
            aud: "https://graph.microsoft.com".into(),
            tid: "t".into(),
            roles: Some(vec!["SecurityAlert.Read.All".into()]),
            ..Claims::default()
        };
        let tok = sign(b"k", &claims);
        assert_eq!(verify(b"k", &tok), Ok(claims));
        assert_eq!(verify(b"other", &tok), Err(JwtError::BadSignature));
        assert_eq!(verify(b"k", "a.b"), Err(JwtError::Malformed));
    }
}
