//! A login under way lives in the browser, not in the portal: its `state`,
//! `nonce`, PKCE verifier and return path, sealed (AES-256-GCM, a key made
//! at start) in a short-lived cookie named after the `state`. So starting
//! logins costs the portal no memory (a flood of `/login` fills nothing),
//! two tabs may log in at once, and a session is made only when a login
//! succeeds.

use std::time::Duration;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

/// How long a login may take.
pub const LOGIN_TIME: Duration = Duration::from_secs(600);

/// The cookie's name prefix; its name ends with the first characters of
/// the login's `state`.
const PREFIX: &str = "__Host-samverka-login-";

/// A login under way: what the callback must find again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingLogin {
    /// The `state` sent to the provider.
    pub state: String,
    /// The `nonce` the ID token must carry.
    pub nonce: String,
    /// The PKCE verifier.
    pub pkce_verifier: String,
    /// Where to go afterwards (a path on this portal).
    pub return_to: String,
    /// When it began (Unix seconds).
    pub started: i64,
}

/// Seals and opens pending logins.
pub struct Sealer {
    key: LessSafeKey,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer")
    }
}

fn now_s() -> i64 {
    samverka_gateway::time::system_now_ms().div_euclid(1000)
}

/// The cookie name for a login with `state`.
pub fn cookie_name(state: &str) -> String {
    let tag: String = state
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(12)
        .collect();
    format!("{PREFIX}{tag}")
}

impl Sealer {
    /// A sealer with a fresh random key (logins under way when the portal
    /// restarts must start again).
    pub fn new() -> Sealer {
        let mut key = [0u8; 32];
        aws_lc_rs::rand::fill(&mut key).expect("the system's random source works");
        Sealer {
            key: LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &key).expect("a 256-bit key")),
        }
    }

    /// The `Set-Cookie` value that carries `pending`.
    pub fn set_cookie(&self, pending: &PendingLogin) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).expect("the system's random source works");
        let mut sealed = serde_json::to_vec(pending).expect("a pending login serializes");
        let name = cookie_name(&pending.state);
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(name.as_bytes()),
                &mut sealed,
            )
            .expect("sealing a small value");
        let mut value = nonce.to_vec();
        value.extend(sealed);
        format!(
            "{name}={}; Path=/; HttpOnly; Secure; SameSite=Lax; Max-Age={}",
            URL_SAFE_NO_PAD.encode(value),
            LOGIN_TIME.as_secs()
        )
    }

    /// The `Set-Cookie` value that removes the cookie of `state`.
    pub fn clear_cookie(state: &str) -> String {
        format!(
            "{}=; Path=/; HttpOnly; Secure; SameSite=Lax; Max-Age=0",
            cookie_name(state)
        )
    }

    /// The login under way for `state`, from the request's cookie `value`:
    /// only if this portal sealed it, for this state, in the last
    /// [`LOGIN_TIME`].
    pub fn open(&self, state: &str, value: &str) -> Option<PendingLogin> {
        let bytes = URL_SAFE_NO_PAD.decode(value).ok()?;
        if bytes.len() < NONCE_LEN + 16 {
            return None;
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let mut sealed = sealed.to_vec();
        let name = cookie_name(state);
        let plain = self
            .key
            .open_in_place(
                Nonce::try_assume_unique_for_key(nonce).ok()?,
                Aad::from(name.as_bytes()),
                &mut sealed,
            )
            .ok()?;
        let pending: PendingLogin = serde_json::from_slice(plain).ok()?;
        let fresh = (0..LOGIN_TIME.as_secs() as i64).contains(&(now_s() - pending.started));
        (fresh && crate::session::same_secret(&pending.state, state)).then_some(pending)
    }
}

impl Default for Sealer {
    fn default() -> Self {
        Sealer::new()
    }
}

/// When a login began, for [`PendingLogin::started`].
pub fn started_now() -> i64 {
    now_s()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(state: &str, started: i64) -> PendingLogin {
        PendingLogin {
            state: state.into(),
            nonce: "n".into(),
            pkce_verifier: "v".into(),
            return_to: "/consents".into(),
            started,
        }
    }

    fn value(set_cookie: &str) -> &str {
        set_cookie
            .split_once('=')
            .unwrap()
            .1
            .split(';')
            .next()
            .unwrap()
    }

    #[test]
    fn only_this_portals_seal_for_this_state_and_in_time_opens() {
        let sealer = Sealer::new();
        let p = pending("abcdefghijklmnop", now_s());
        let cookie = sealer.set_cookie(&p);
        assert!(
            cookie.starts_with("__Host-samverka-login-abcdefghijkl="),
            "{cookie}"
        );
        assert!(cookie.contains("HttpOnly") && cookie.contains("Secure"));
        assert_eq!(
            sealer.open("abcdefghijklmnop", value(&cookie)),
            Some(p.clone())
        );
        // Another state, another portal's key, a changed byte, too old.
        assert_eq!(sealer.open("abcdefghijklmnoq", value(&cookie)), None);
        assert_eq!(Sealer::new().open("abcdefghijklmnop", value(&cookie)), None);
        let mut bytes = URL_SAFE_NO_PAD.decode(value(&cookie)).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert_eq!(
            sealer.open("abcdefghijklmnop", &URL_SAFE_NO_PAD.encode(bytes)),
            None
        );
        let old = sealer.set_cookie(&pending("abcdefghijklmnop", now_s() - 601));
        assert_eq!(sealer.open("abcdefghijklmnop", value(&old)), None);
        assert_eq!(sealer.open("abcdefghijklmnop", "not base64!"), None);
    }
}
