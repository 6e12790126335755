//! Cookies the gateway signs (the CSRF token and the one-shot message after a form post) and the
//! security headers of every response.
//!
//! CSRF protection is a signed double-submit token: a random token lives in an `HttpOnly` cookie
//! signed with the gateway's key, and every form carries the same token in a hidden field. A post
//! is accepted only when the cookie's signature is valid and the field equals the cookie's token
//! (compared in constant time). Another site can make a browser send the cookie, but it can
//! neither read it nor plant one of its own that verifies, so it cannot fill in the field.

use axum::http::header::{CONTENT_SECURITY_POLICY, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS};
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// The cookie that holds the signed CSRF token.
pub(crate) const CSRF_COOKIE: &str = "auction_csrf";
/// The cookie that carries a form's outcome across the redirect that follows the post.
pub(crate) const FLASH_COOKIE: &str = "auction_flash";

/// Scripts, styles and connections only from the gateway itself; no inline script or style, no
/// plugins, no framing, forms only to the gateway.
pub(crate) const CONTENT_SECURITY_POLICY_VALUE: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; \
     frame-ancestors 'none'";

/// The key that signs cookies.
#[derive(Clone)]
pub(crate) struct CookieKey([u8; 32]);

impl std::fmt::Debug for CookieKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CookieKey([redacted])")
    }
}

impl CookieKey {
    /// A key derived from a configured secret, so that every replica and restart agrees.
    pub(crate) fn from_secret(secret: &str) -> Self {
        Self(Sha256::digest(secret.as_bytes()).into())
    }

    /// A fresh random key.
    pub(crate) fn random() -> Self {
        let mut key = [0; 32];
        rand::rng().fill_bytes(&mut key);
        Self(key)
    }

    fn mac(&self, purpose: &str, value: &[u8]) -> HmacSha256 {
        // A 32-byte key is always a valid HMAC key.
        let mut mac = HmacSha256::new_from_slice(&self.0).unwrap_or_else(|_| unreachable!());
        // The purpose keeps a signed flash from ever passing as a CSRF token and vice versa.
        mac.update(purpose.as_bytes());
        mac.update(&[0]);
        mac.update(value);
        mac
    }

    /// `value.signature`, both base64url.
    fn sign(&self, purpose: &str, value: &[u8]) -> String {
        let tag = self.mac(purpose, value).finalize().into_bytes();
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(value),
            URL_SAFE_NO_PAD.encode(tag)
        )
    }

    /// The value of a `value.signature` string whose signature is valid (checked in constant time).
    fn verify(&self, purpose: &str, signed: &str) -> Option<Vec<u8>> {
        let (value, tag) = signed.split_once('.')?;
        let value = URL_SAFE_NO_PAD.decode(value).ok()?;
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        self.mac(purpose, &value).verify_slice(&tag).ok()?;
        Some(value)
    }
}

/// The value of cookie `name` in the request, if it has one.
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|line| line.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// A `Set-Cookie` value: `HttpOnly`, `SameSite=Lax`, path `/`; `max_age` in seconds (`None`: until
/// the browser closes, `Some(0)`: delete).
pub(crate) fn set_cookie(
    name: &str,
    value: &str,
    max_age: Option<u64>,
    secure: bool,
) -> HeaderValue {
    let mut cookie = format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax");
    if let Some(seconds) = max_age {
        cookie.push_str(&format!("; Max-Age={seconds}"));
    }
    if secure {
        cookie.push_str("; Secure");
    }
    // Names are constants and values are base64url with '.', so the header is always valid.
    HeaderValue::from_str(&cookie).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// A CSRF token and the signed cookie value that goes with it.
#[derive(Debug, Clone)]
pub(crate) struct CsrfToken {
    /// What the form's hidden field carries.
    pub token: String,
    /// What the cookie carries.
    pub cookie_value: String,
    /// True when the request had no valid token yet, so the response must set the cookie.
    pub is_new: bool,
}

const CSRF_PURPOSE: &str = "csrf";
const FLASH_PURPOSE: &str = "flash";

/// The request's CSRF token when its cookie is valid, else a fresh one.
pub(crate) fn csrf_token(key: &CookieKey, headers: &HeaderMap) -> CsrfToken {
    if let Some(cookie_value) = cookie(headers, CSRF_COOKIE)
        && let Some(token) = key.verify(CSRF_PURPOSE, cookie_value)
    {
        return CsrfToken {
            token: URL_SAFE_NO_PAD.encode(token),
            cookie_value: cookie_value.to_owned(),
            is_new: false,
        };
    }
    let mut token = [0; 32];
    rand::rng().fill_bytes(&mut token);
    CsrfToken {
        token: URL_SAFE_NO_PAD.encode(token),
        cookie_value: key.sign(CSRF_PURPOSE, &token),
        is_new: true,
    }
}

/// Whether `submitted` (the form's hidden field) matches the request's signed CSRF cookie.
pub(crate) fn csrf_matches(key: &CookieKey, headers: &HeaderMap, submitted: &str) -> bool {
    let Some(expected) = cookie(headers, CSRF_COOKIE).and_then(|c| key.verify(CSRF_PURPOSE, c))
    else {
        return false;
    };
    let Ok(submitted) = URL_SAFE_NO_PAD.decode(submitted.trim()) else {
        return false;
    };
    // Slices of different lengths compare unequal; equal lengths compare in constant time.
    bool::from(expected.ct_eq(&submitted))
}

/// How a form post ended, shown once on the page the browser is redirected to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Flash {
    /// The auction the post was for; the message shows only on that auction's page.
    pub auction_id: String,
    /// Whether the bid was accepted.
    pub accepted: bool,
    /// The sentence to show.
    pub message: String,
    /// What the user typed into the name field, to fill it in again.
    pub name: String,
    /// What the user typed into the price field, to fill it in again (empty: start afresh).
    pub price: String,
    /// What the user typed into the maximum field, likewise.
    #[serde(default)]
    pub max_price: String,
    /// The request id to submit again, so that a retry cannot bid twice.
    pub request_id: Option<String>,
}

/// Longest typed value carried back in the message cookie; browsers cap a cookie near 4 KiB.
const MAX_KEPT_CHARS: usize = 200;

impl Flash {
    /// The signed cookie value.
    pub(crate) fn to_cookie_value(&self, key: &CookieKey) -> String {
        let mut kept = self.clone();
        kept.name = kept.name.chars().take(MAX_KEPT_CHARS).collect();
        kept.price = kept.price.chars().take(MAX_KEPT_CHARS).collect();
        kept.max_price = kept.max_price.chars().take(MAX_KEPT_CHARS).collect();
        kept.message = kept.message.chars().take(4 * MAX_KEPT_CHARS).collect();
        let json = serde_json::to_vec(&kept).unwrap_or_default();
        key.sign(FLASH_PURPOSE, &json)
    }

    /// The message in the request's cookie, when it is there and signed by `key`.
    pub(crate) fn from_request(key: &CookieKey, headers: &HeaderMap) -> Option<Self> {
        let value = key.verify(FLASH_PURPOSE, cookie(headers, FLASH_COOKIE)?)?;
        serde_json::from_slice(&value).ok()
    }
}

/// Adds the security headers to every response (a `map_response` middleware).
pub(crate) async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY_VALUE),
    );
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    headers.insert(
        HeaderName::from_static("x-frame-options"),
        HeaderValue::from_static("DENY"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_cookie(line: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            axum::http::header::COOKIE,
            HeaderValue::from_str(line).expect("header"),
        );
        headers
    }

    #[test]
    fn a_token_matches_its_own_cookie_only() {
        let key = CookieKey::random();
        let issued = csrf_token(&key, &HeaderMap::new());
        assert!(issued.is_new);
        let headers = with_cookie(&format!("other=1; {CSRF_COOKIE}={}", issued.cookie_value));
        assert!(csrf_matches(&key, &headers, &issued.token));
        assert!(!csrf_matches(&key, &headers, ""));
        assert!(!csrf_matches(&key, &headers, "AAAA"));
        assert!(!csrf_matches(&key, &HeaderMap::new(), &issued.token));
        // The same cookie is reused rather than replaced.
        let again = csrf_token(&key, &headers);
        assert!(!again.is_new);
        assert_eq!(again.token, issued.token);
    }

    #[test]
    fn a_cookie_signed_by_another_key_is_refused() {
        let ours = CookieKey::from_secret("ours");
        let theirs = CookieKey::from_secret("theirs");
        let planted = csrf_token(&theirs, &HeaderMap::new());
        let headers = with_cookie(&format!("{CSRF_COOKIE}={}", planted.cookie_value));
        assert!(!csrf_matches(&ours, &headers, &planted.token));
        assert!(csrf_token(&ours, &headers).is_new);
    }

    #[test]
    fn a_flash_cookie_cannot_pass_as_a_csrf_cookie() {
        let key = CookieKey::random();
        let flash = Flash {
            auction_id: "a".into(),
            accepted: true,
            message: "m".into(),
            name: String::new(),
            price: String::new(),
            max_price: String::new(),
            request_id: None,
        };
        let value = flash.to_cookie_value(&key);
        let headers = with_cookie(&format!("{FLASH_COOKIE}={value}; {CSRF_COOKIE}={value}"));
        assert_eq!(Flash::from_request(&key, &headers), Some(flash));
        assert!(csrf_token(&key, &headers).is_new);
    }

    #[test]
    fn a_tampered_flash_is_ignored() {
        let key = CookieKey::random();
        let headers = with_cookie(&format!("{FLASH_COOKIE}=eyJ4IjoxfQ.AAAA"));
        assert_eq!(Flash::from_request(&key, &headers), None);
        assert_eq!(Flash::from_request(&key, &with_cookie("x=1; =; ;")), None);
    }
}
