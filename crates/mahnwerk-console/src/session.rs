//! Sign-in sessions: a random 256-bit id in an `HttpOnly; SameSite=Strict` cookie, kept in
//! memory with the signed-in API key (the services record its key id as the actor), its tenant
//! and the session's CSRF token, which every form carries back.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const COOKIE: &str = "mw_session";
/// The login form's CSRF cookie (double submit: no session exists yet).
pub const LOGIN_COOKIE: &str = "mw_login";
pub const LANG_COOKIE: &str = "mw_lang";

/// How long a session lives without use.
const IDLE: Duration = Duration::from_secs(8 * 3600);

#[derive(Clone)]
pub struct Session {
    /// The bearer token the console calls the services with.
    pub token: String,
    pub key_id: String,
    pub tenant: String,
    pub csrf: String,
    last_seen: Instant,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("key_id", &self.key_id)
            .field("tenant", &self.tenant)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// The actor the services record for this user's actions.
    pub fn actor(&self) -> String {
        format!("apikey:{}", self.key_id)
    }
}

#[derive(Default)]
pub struct Sessions {
    map: Mutex<HashMap<String, Session>>,
}

/// 32 random bytes as hex.
pub fn random_token() -> String {
    let bytes: [u8; 32] = rand::random();
    hex::encode(bytes)
}

impl Sessions {
    /// Start a session; returns its id (the cookie value).
    pub fn create(&self, token: String, key_id: String, tenant: String) -> String {
        let id = random_token();
        let s = Session {
            token,
            key_id,
            tenant,
            csrf: random_token(),
            last_seen: Instant::now(),
        };
        let mut map = self
            .map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.retain(|_, s| s.last_seen.elapsed() < IDLE);
        map.insert(id.clone(), s);
        id
    }

    pub fn get(&self, id: &str) -> Option<Session> {
        let mut map = self
            .map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let s = map.get_mut(id)?;
        if s.last_seen.elapsed() >= IDLE {
            map.remove(id);
            return None;
        }
        s.last_seen = Instant::now();
        Some(s.clone())
    }

    pub fn remove(&self, id: &str) {
        let mut map = self
            .map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.remove(id);
    }
}

/// The value of cookie `name` in a `Cookie` header.
pub fn cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|kv| {
        let (k, v) = kv.trim().split_once('=')?;
        (k == name).then_some(v)
    })
}

/// A `Set-Cookie` value for a session-scoped, script-invisible cookie.
pub fn set_cookie(name: &str, value: &str, max_age: Option<u64>) -> String {
    let age = max_age
        .map(|a| format!("; Max-Age={a}"))
        .unwrap_or_default();
    format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict{age}")
}

/// Compare two tokens in constant time.
pub fn same(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_and_cookies() {
        let s = Sessions::default();
        let id = s.create("mwk_x".into(), "k1".into(), "acme".into());
        let got = s.get(&id).unwrap();
        assert_eq!(
            (got.tenant.as_str(), got.actor()),
            ("acme", "apikey:k1".to_owned())
        );
        assert_ne!(got.csrf, id);
        assert!(s.get("nope").is_none());
        s.remove(&id);
        assert!(s.get(&id).is_none());
        assert_eq!(cookie("a=1; mw_session=abc; b=2", COOKIE), Some("abc"));
        assert_eq!(cookie("mw_sessionx=abc", COOKIE), None);
        assert!(set_cookie(COOKIE, "v", None).contains("HttpOnly; SameSite=Strict"));
        assert!(same("abc", "abc") && !same("abc", "abd") && !same("abc", "ab"));
    }
}
