//! HTTP basic auth: a read credential and, optionally, a separate write credential.
//!
//! Credentials are compared in constant time: the presented user and password are hashed
//! (SHA-256) and the digests compared with [`subtle::ConstantTimeEq`], so neither the content nor
//! the length of a secret shows in how long a refusal takes. With a write credential, requests
//! that change the registry (registering, `PUT`, `DELETE`) need it, and the read credential gets
//! 403; the write credential reads too. Look-ups (`POST /subjects/{s}`) and compatibility checks
//! (`POST /compatibility/...`) change nothing and are reads.

use axum::extract::{Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};

use crate::BasicAuth;
use crate::error::RegistryError;

/// A credential kept as the digests of its user and password.
#[derive(Debug, Clone)]
struct CredentialDigest {
    username: [u8; 32],
    password: [u8; 32],
}

impl CredentialDigest {
    fn of(username: &str, password: &str) -> Self {
        Self {
            username: Sha256::digest(username.as_bytes()).into(),
            password: Sha256::digest(password.as_bytes()).into(),
        }
    }

    /// Whether `presented` is this credential, in time that does not depend on either.
    fn matches(&self, presented: &Self) -> bool {
        let same: Choice =
            self.username.ct_eq(&presented.username) & self.password.ct_eq(&presented.password);
        same.into()
    }
}

/// The credentials a registry asks for.
#[derive(Debug, Clone, Default)]
pub(crate) struct AccessRules {
    read: Option<CredentialDigest>,
    write: Option<CredentialDigest>,
}

/// What a request may do, by the credential it presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Granted {
    Nothing,
    Read,
    Write,
}

impl AccessRules {
    pub(crate) fn new(read: Option<&BasicAuth>, write: Option<&BasicAuth>) -> Self {
        let digest =
            |auth: &BasicAuth| CredentialDigest::of(&auth.username, auth.password.expose());
        Self {
            read: read.map(digest),
            write: write.map(digest),
        }
    }

    /// What the presented credential (if any) grants. Both credentials are always compared.
    fn granted(&self, presented: Option<&CredentialDigest>) -> Granted {
        let Some(presented) = presented else {
            return Granted::Nothing;
        };
        let is_write = self.write.as_ref().is_some_and(|w| w.matches(presented));
        let is_read = self.read.as_ref().is_some_and(|r| r.matches(presented));
        if is_write {
            Granted::Write
        } else if is_read {
            Granted::Read
        } else {
            Granted::Nothing
        }
    }

    /// `None` when the request may go on, else the refusal.
    fn refusal(
        &self,
        changes_registry: bool,
        presented: Option<&CredentialDigest>,
    ) -> Option<RegistryError> {
        let granted = self.granted(presented);
        match (changes_registry, &self.write) {
            // A change, and a write credential is configured: only it will do.
            (true, Some(_)) => match granted {
                Granted::Write => None,
                Granted::Read => Some(RegistryError::write_forbidden()),
                Granted::Nothing => Some(RegistryError::unauthorized()),
            },
            // A read, or a change without a write credential: the read credential (or the
            // write one) when a read credential is configured, else anyone.
            _ => match (&self.read, granted) {
                (None, _) | (Some(_), Granted::Read | Granted::Write) => None,
                (Some(_), Granted::Nothing) => Some(RegistryError::unauthorized()),
            },
        }
    }
}

/// Whether `request` changes the registry: registering (`POST /subjects/{s}/versions`), and
/// every method but `GET`, `HEAD` and the read-only `POST`s (look-ups, compatibility checks).
fn changes_registry(request: &Request) -> bool {
    let method = request.method();
    if method == Method::GET || method == Method::HEAD {
        return false;
    }
    if method != Method::POST {
        return true;
    }
    let segments: Vec<&str> = request.uri().path().split('/').collect();
    matches!(segments.as_slice(), ["", "subjects", _, "versions"])
}

/// The user and password of a `Basic` authorization header, digested.
fn presented_credential(request: &Request) -> Option<CredentialDigest> {
    let header = request
        .headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, encoded) = header.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    // The user may not contain ':', the password may.
    let (username, password) = text.split_once(':')?;
    Some(CredentialDigest::of(username, password))
}

/// Middleware: lets a request through, or answers 401 / 403 in Confluent's shape.
pub(crate) async fn require_auth(
    State(rules): State<std::sync::Arc<AccessRules>>,
    request: Request,
    next: Next,
) -> Response {
    if rules.read.is_none() && rules.write.is_none() {
        return next.run(request).await;
    }
    let presented = presented_credential(&request);
    match rules.refusal(changes_registry(&request), presented.as_ref()) {
        None => next.run(request).await,
        Some(refusal) => refusal.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use auction_process::Secret;

    fn auth(user: &str, password: &str) -> BasicAuth {
        BasicAuth {
            username: user.into(),
            password: Secret::new(password),
        }
    }

    fn presented(user: &str, password: &str) -> Option<CredentialDigest> {
        Some(CredentialDigest::of(user, password))
    }

    #[test]
    fn only_the_exact_user_and_password_match() {
        let rules = AccessRules::new(Some(&auth("key", "s3cret")), None);
        assert_eq!(
            rules.granted(presented("key", "s3cret").as_ref()),
            Granted::Read
        );
        for (user, password) in [
            ("key", "s3cre"),
            ("key", "s3cret "),
            ("key", ""),
            ("ke", "s3cret"),
            ("", ""),
            ("key:s3cret", ""),
        ] {
            assert_eq!(
                rules.granted(presented(user, password).as_ref()),
                Granted::Nothing,
                "{user:?} / {password:?}"
            );
        }
        assert_eq!(rules.granted(None), Granted::Nothing);
    }

    #[test]
    fn the_write_credential_is_needed_for_changes_once_configured() {
        let rules = AccessRules::new(Some(&auth("reader", "r")), Some(&auth("writer", "w")));
        let reader = presented("reader", "r");
        let writer = presented("writer", "w");
        assert!(rules.refusal(false, reader.as_ref()).is_none());
        assert!(rules.refusal(false, writer.as_ref()).is_none());
        assert!(rules.refusal(true, writer.as_ref()).is_none());
        assert_eq!(
            rules.refusal(true, reader.as_ref()).map(|e| e.error_code),
            Some(40301)
        );
        assert_eq!(rules.refusal(true, None).map(|e| e.error_code), Some(401));
        assert_eq!(rules.refusal(false, None).map(|e| e.error_code), Some(401));

        // Writes protected, reads open.
        let rules = AccessRules::new(None, Some(&auth("writer", "w")));
        assert!(rules.refusal(false, None).is_none());
        assert_eq!(rules.refusal(true, None).map(|e| e.error_code), Some(401));
        assert!(rules.refusal(true, writer.as_ref()).is_none());
    }
}
