//! Credentials (HubSpot tokens, Lago keys, HMAC keys): never printed, wiped from memory when
//! dropped (`secrecy`).

use std::fmt;

use secrecy::{ExposeSecret, SecretString};

/// A secret string. `Debug` prints `Secret(…)`; [`Secret::expose`] is the only way to the value.
#[derive(Clone)]
pub struct Secret(SecretString);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(SecretString::from(value.into()))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(…)")
    }
}
