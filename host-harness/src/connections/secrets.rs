//! Tokens at rest: sealed with XChaCha20-Poly1305 under a key from the environment when one is
//! given, and bound to their connection code (associated data), so a sealed value copied to
//! another connection's row does not open.

use anyhow::Context as _;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use rand::Rng as _;

/// The environment variable holding the key: 32 random bytes, Base64 (`openssl rand -base64 32`).
pub const SECRET_KEY_ENV: &str = "LAGO_HUBSPOT_SECRET_KEY";

const SEALED: &str = "xchacha20poly1305:";
const PLAIN: &str = "plain:";

/// The AEAD key for tokens at rest. Never printed.
#[derive(Clone)]
pub struct SecretKey(Key);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(…)")
    }
}

impl SecretKey {
    /// 32 bytes, Base64 or hex.
    pub fn parse(text: &str) -> anyhow::Result<SecretKey> {
        let text = text.trim();
        let bytes = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            (0..32)
                .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16))
                .collect::<Result<Vec<u8>, _>>()?
        } else {
            STANDARD
                .decode(text)
                .context("the secret key is neither Base64 nor hex")?
        };
        anyhow::ensure!(
            bytes.len() == 32,
            "the secret key must be 32 bytes (e.g. `openssl rand -base64 32`), got {}",
            bytes.len()
        );
        Ok(SecretKey(*Key::from_slice(&bytes)))
    }

    /// The key from `LAGO_HUBSPOT_SECRET_KEY`, if set.
    pub fn from_env() -> anyhow::Result<Option<SecretKey>> {
        match std::env::var(SECRET_KEY_ENV) {
            Ok(text) if !text.trim().is_empty() => SecretKey::parse(&text)
                .with_context(|| format!("invalid {SECRET_KEY_ENV}"))
                .map(Some),
            _ => Ok(None),
        }
    }
}

/// Seals `plaintext` for the connection `code`; without a key it is stored as is (the state file
/// is owner-only either way).
pub fn seal(key: Option<&SecretKey>, code: &str, plaintext: &str) -> anyhow::Result<String> {
    let Some(key) = key else {
        return Ok(format!("{PLAIN}{plaintext}"));
    };
    let mut nonce = [0u8; 24];
    rand::rng().fill(&mut nonce);
    let sealed = XChaCha20Poly1305::new(&key.0)
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: plaintext.as_bytes(),
                aad: code.as_bytes(),
            },
        )
        .map_err(|_| anyhow::anyhow!("cannot seal the tokens"))?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&sealed);
    Ok(format!("{SEALED}{}", STANDARD.encode(out)))
}

/// Opens what [`seal`] stored.
pub fn open(key: Option<&SecretKey>, code: &str, stored: &str) -> anyhow::Result<String> {
    if let Some(plain) = stored.strip_prefix(PLAIN) {
        return Ok(plain.to_owned());
    }
    let Some(sealed) = stored.strip_prefix(SEALED) else {
        anyhow::bail!("the stored tokens of connection {code} are in an unknown format");
    };
    let Some(key) = key else {
        anyhow::bail!(
            "the tokens of connection {code} are encrypted: set {SECRET_KEY_ENV} to the key they were sealed with"
        );
    };
    let bytes = STANDARD
        .decode(sealed)
        .context("the stored tokens are corrupt")?;
    anyhow::ensure!(bytes.len() > 24, "the stored tokens are corrupt");
    let (nonce, ciphertext) = bytes.split_at(24);
    let plain = XChaCha20Poly1305::new(&key.0)
        .decrypt(
            XNonce::from_slice(nonce),
            Payload {
                msg: ciphertext,
                aad: code.as_bytes(),
            },
        )
        .map_err(|_| {
            anyhow::anyhow!(
                "cannot decrypt the tokens of connection {code}: wrong {SECRET_KEY_ENV}, or the state was tampered with"
            )
        })?;
    String::from_utf8(plain).context("the stored tokens are corrupt")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_tokens_open_only_with_their_key_and_code() {
        let key = SecretKey::parse(&STANDARD.encode([7u8; 32])).unwrap();
        let other = SecretKey::parse(&"ab".repeat(32)).unwrap();
        let sealed = seal(Some(&key), "hs-prod", "{\"token\":\"pat-na1-x\"}").unwrap();
        assert!(!sealed.contains("pat-na1"));
        assert_eq!(
            open(Some(&key), "hs-prod", &sealed).unwrap(),
            "{\"token\":\"pat-na1-x\"}"
        );
        assert!(open(Some(&other), "hs-prod", &sealed).is_err());
        assert!(open(Some(&key), "hs-other", &sealed).is_err());
        assert!(open(None, "hs-prod", &sealed).is_err());
        // Without a key the value is kept as is, and still opens once a key is set.
        let plain = seal(None, "hs-prod", "x").unwrap();
        assert_eq!(open(Some(&key), "hs-prod", &plain).unwrap(), "x");
        assert!(SecretKey::parse("short").is_err());
    }
}
