//! Secrets as types: redacted `Debug`, no `Display`, explicit [`Secret::expose_secret`].
//!
//! Serialization is transparent because the token stores must persist the real value; never
//! serialize a secret into a log line or a response.

use std::fmt;

use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

/// A value that must not leak through `Debug`, tracing fields or error messages.
///
/// There is deliberately no `Display` and no `PartialEq`: reading the value takes an explicit
/// [`Secret::expose_secret`], and comparing secret bytes goes through [`ct_eq`].
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    /// Wraps `value`.
    pub fn new(value: T) -> Self {
        Self(value)
    }

    /// The wrapped value. Call it only where the value is actually sent or stored.
    pub fn expose_secret(&self) -> &T {
        &self.0
    }

    /// Unwraps the value, for handing it to an API that takes ownership.
    pub fn into_exposed(self) -> T {
        self.0
    }
}

impl<T> From<T> for Secret<T> {
    fn from(value: T) -> Self {
        Self(value)
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([REDACTED])")
    }
}

/// Compares two byte strings in time independent of their contents (the length is not hidden).
/// Use it for signed `state` values, MACs and any other secret comparison.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// HMAC-SHA256 of `data` under `key`: the one MAC of the crate (consent state signatures, and
/// keys derived from the app's state key for one purpose each).
pub fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    use hmac::{Hmac, Mac};
    // HMAC takes keys of any length, so building it cannot fail; the fallback is never taken.
    let Ok(mut mac) = Hmac::<sha2::Sha256>::new_from_slice(key) else {
        return [0; 32];
    };
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// The app registration's client secret.
pub type ClientSecret = Secret<String>;
/// An Entra refresh token (rotated by Microsoft on every use).
pub type RefreshToken = Secret<String>;
/// An Entra access token (bearer).
pub type AccessToken = Secret<String>;
/// An OAuth authorization code from the consent redirect.
pub type AuthCode = Secret<String>;
/// Key material for signing consent `state` (HMAC).
pub type SigningKey = Secret<Vec<u8>>;

#[cfg(test)]
mod tests {
    use super::*;

    const VALUE: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOi-super-secret";

    #[test]
    fn debug_never_shows_the_value() {
        let secret: RefreshToken = Secret::new(VALUE.to_owned());
        assert_eq!(format!("{secret:?}"), "Secret([REDACTED])");
        assert!(!format!("{secret:#?}").contains(VALUE));
    }

    #[test]
    fn debug_of_a_containing_struct_never_shows_the_value() {
        #[derive(Debug)]
        #[allow(dead_code)]
        struct TokenSet {
            access: AccessToken,
            refresh: Option<RefreshToken>,
            key: SigningKey,
        }
        let set = TokenSet {
            access: VALUE.to_owned().into(),
            refresh: Some(VALUE.to_owned().into()),
            key: Secret::new(VALUE.as_bytes().to_vec()),
        };
        let shown = format!("{set:?}");
        assert!(!shown.contains(VALUE), "{shown}");
        assert!(!shown.contains("101"), "no byte values either: {shown}");
    }

    #[test]
    fn expose_secret_gives_the_value() {
        let secret: ClientSecret = Secret::new(VALUE.to_owned());
        assert_eq!(secret.expose_secret(), VALUE);
        assert_eq!(secret.clone().into_exposed(), VALUE);
    }

    #[test]
    fn serde_is_transparent_so_stores_can_persist() {
        let secret: AuthCode = Secret::new("code-123".to_owned());
        let json = serde_json::to_string(&secret).unwrap();
        assert_eq!(json, "\"code-123\"");
        let back: AuthCode = serde_json::from_str(&json).unwrap();
        assert_eq!(back.expose_secret(), "code-123");
    }

    #[test]
    fn ct_eq_compares_bytes() {
        assert!(ct_eq(b"state-mac", b"state-mac"));
        assert!(!ct_eq(b"state-mac", b"state-mad"));
        assert!(!ct_eq(b"state-mac", b"state-ma"));
        assert!(ct_eq(b"", b""));
    }
}
