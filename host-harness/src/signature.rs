//! Verifies that a webhook really comes from Lago (lago.md §5.1).
//!
//! - `hmac`: `X-Lago-Signature` is Base64(HMAC-SHA256(organization HMAC key, raw body)).
//! - `jwt`: `X-Lago-Signature` is an RS256 JWT whose `data` claim is the body and `iss` the Lago
//!   API URL, checked with Lago's public key. The `data` claim must equal the body we received,
//!   so a valid token cannot be replayed with another body.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use http::HeaderMap;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use sha2::Sha256;

use crate::secret::Secret;

pub const SIGNATURE_HEADER: &str = "x-lago-signature";
pub const ALGORITHM_HEADER: &str = "x-lago-signature-algorithm";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    #[error("missing X-Lago-Signature header")]
    Missing,
    #[error("unknown X-Lago-Signature-Algorithm {0:?} (expected hmac or jwt)")]
    UnknownAlgorithm(String),
    #[error("the webhook is signed with {0}, but no {0} key is configured")]
    NotConfigured(&'static str),
    #[error("the signature does not match the body")]
    Mismatch,
    #[error("invalid JWT: {0}")]
    InvalidJwt(String),
}

/// How webhooks are authenticated. Verification can only be switched off explicitly.
pub struct WebhookAuth {
    hmac_key: Option<Secret>,
    jwt: Option<(DecodingKey, String)>,
    disabled: bool,
}

#[derive(Deserialize)]
struct LagoClaims {
    data: String,
}

impl WebhookAuth {
    pub fn new(hmac_key: Option<Secret>) -> Self {
        WebhookAuth {
            hmac_key,
            jwt: None,
            disabled: false,
        }
    }

    /// Adds JWT verification with Lago's RSA public key (PEM, or PEM in Base64 as Lago shows it).
    pub fn with_jwt(mut self, public_key: &str, issuer: &str) -> anyhow::Result<Self> {
        let pem = if public_key.contains("-----BEGIN") {
            public_key.as_bytes().to_vec()
        } else {
            BASE64.decode(public_key.trim())?
        };
        let key = DecodingKey::from_rsa_pem(&pem)
            .map_err(|e| anyhow::anyhow!("Lago's public key is not an RSA PEM key: {e}"))?;
        self.jwt = Some((key, issuer.to_owned()));
        Ok(self)
    }

    /// Accepts unsigned webhooks. Only for trusted networks; callers log a warning.
    pub fn disabled() -> Self {
        WebhookAuth {
            hmac_key: None,
            jwt: None,
            disabled: true,
        }
    }

    pub fn is_disabled(&self) -> bool {
        self.disabled
    }

    pub fn verify(&self, headers: &HeaderMap, body: &[u8]) -> Result<(), SignatureError> {
        if self.disabled {
            return Ok(());
        }
        let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let signature = text(SIGNATURE_HEADER).ok_or(SignatureError::Missing)?;
        match text(ALGORITHM_HEADER).unwrap_or("hmac") {
            "hmac" => {
                let key = self
                    .hmac_key
                    .as_ref()
                    .ok_or(SignatureError::NotConfigured("hmac"))?;
                let expected = BASE64
                    .decode(signature.trim())
                    .map_err(|_| SignatureError::Mismatch)?;
                let mut mac = Hmac::<Sha256>::new_from_slice(key.expose().as_bytes())
                    .map_err(|_| SignatureError::NotConfigured("hmac"))?;
                mac.update(body);
                // Constant-time comparison.
                mac.verify_slice(&expected)
                    .map_err(|_| SignatureError::Mismatch)
            }
            "jwt" => {
                let (key, issuer) = self
                    .jwt
                    .as_ref()
                    .ok_or(SignatureError::NotConfigured("jwt"))?;
                let mut validation = Validation::new(Algorithm::RS256);
                // Lago's tokens carry no expiry; the unique key dedupe handles replays.
                validation.required_spec_claims.clear();
                validation.validate_exp = false;
                validation.set_issuer(&[issuer]);
                let claims = jsonwebtoken::decode::<LagoClaims>(signature.trim(), key, &validation)
                    .map_err(|e| SignatureError::InvalidJwt(e.to_string()))?
                    .claims;
                if claims.data.as_bytes() == body {
                    Ok(())
                } else {
                    Err(SignatureError::Mismatch)
                }
            }
            other => Err(SignatureError::UnknownAlgorithm(other.to_owned())),
        }
    }
}

/// Signs a body the way Lago does with `hmac` (for tests, benchmarks and the demo sender).
pub fn hmac_signature(key: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("HMAC takes any key");
    mac.update(body);
    BASE64.encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(signature: &str, algorithm: &str) -> HeaderMap {
        let mut map = HeaderMap::new();
        map.insert(SIGNATURE_HEADER, signature.parse().unwrap());
        map.insert(ALGORITHM_HEADER, algorithm.parse().unwrap());
        map
    }

    #[test]
    fn hmac_accepts_the_right_body_only() {
        let auth = WebhookAuth::new(Some(Secret::new("org-key")));
        let body = br#"{"webhook_type":"customer.created"}"#;
        let good = hmac_signature("org-key", body);
        assert_eq!(auth.verify(&headers(&good, "hmac"), body), Ok(()));
        assert_eq!(
            auth.verify(&headers(&good, "hmac"), b"{}"),
            Err(SignatureError::Mismatch)
        );
        let forged = hmac_signature("other-key", body);
        assert_eq!(
            auth.verify(&headers(&forged, "hmac"), body),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            auth.verify(&HeaderMap::new(), body),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            auth.verify(&headers(&good, "jwt"), body),
            Err(SignatureError::NotConfigured("jwt"))
        );
    }

    const PRIVATE: &str = include_str!("../../tests/fixtures/lago-webhook-test-private.pem");
    const PUBLIC: &str = include_str!("../../tests/fixtures/lago-webhook-test-public.pem");

    fn jwt(data: &str, issuer: &str) -> String {
        let claims = serde_json::json!({"data": data, "iss": issuer});
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(PRIVATE.as_bytes()).unwrap();
        jsonwebtoken::encode(&jsonwebtoken::Header::new(Algorithm::RS256), &claims, &key).unwrap()
    }

    #[test]
    fn jwt_checks_key_issuer_and_that_data_is_this_body() {
        let auth = WebhookAuth::new(None)
            .with_jwt(PUBLIC, "https://lago.example.com")
            .unwrap();
        let body = r#"{"webhook_type":"invoice.created"}"#;
        let token = jwt(body, "https://lago.example.com");
        assert_eq!(
            auth.verify(&headers(&token, "jwt"), body.as_bytes()),
            Ok(())
        );
        // A valid token replayed with another body.
        assert_eq!(
            auth.verify(&headers(&token, "jwt"), b"{}"),
            Err(SignatureError::Mismatch)
        );
        let other_issuer = jwt(body, "https://evil.example.com");
        assert!(matches!(
            auth.verify(&headers(&other_issuer, "jwt"), body.as_bytes()),
            Err(SignatureError::InvalidJwt(_))
        ));
        // Lago shows its public key Base64-encoded; both forms work.
        let b64 = BASE64.encode(PUBLIC);
        let auth = WebhookAuth::new(None)
            .with_jwt(&b64, "https://lago.example.com")
            .unwrap();
        assert_eq!(
            auth.verify(&headers(&token, "jwt"), body.as_bytes()),
            Ok(())
        );
    }

    #[test]
    fn disabled_verification_accepts_anything() {
        assert_eq!(
            WebhookAuth::disabled().verify(&HeaderMap::new(), b"x"),
            Ok(())
        );
    }
}
