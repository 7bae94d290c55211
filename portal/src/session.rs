//! Sessions: kept in this process's memory, named by a random id in an
//! HttpOnly, Secure, SameSite=Lax cookie, made only when a login succeeds
//! (a login under way is in a sealed cookie: [`crate::login_cookie`]). A
//! session ends at logout, when unused for `session_idle_minutes`, or
//! eight hours after it began; logging in again gives it a new id (no
//! fixation). Each holds a CSRF token that every form carries back.
//!
//! One portal process keeps its own sessions: replicas behind a load
//! balancer need it to keep a person on one replica.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;

/// The session cookie. The `__Host-` prefix makes browsers refuse it
/// unless Secure, without Domain, and for path `/`.
pub const COOKIE: &str = "__Host-samverka-portal";

/// The longest a session lives, used or not.
const MAX_AGE: Duration = Duration::from_secs(8 * 3600);

/// How long a session lives with no one logged in (a login begun and not
/// finished).
const ANONYMOUS_IDLE: Duration = Duration::from_secs(600);

/// The most sessions held at once: beyond it, new logins wait until some
/// end (each is small, but someone could start logins without end).
pub const MAX_SESSIONS: usize = 100_000;

/// How many receipts a session keeps for download.
const RECEIPTS_KEPT: usize = 20;

/// A random, URL-safe token of 256 bits.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes).expect("the system's random source works");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Compares secrets in time independent of where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && aws_lc_rs::constant_time::verify_slices_are_equal(a.as_bytes(), b.as_bytes()).is_ok()
}

/// The person's login, as the provider's ID token told it.
#[derive(Clone)]
pub struct Login {
    /// Personal identity or coordination number.
    pub person: String,
    /// The ID token, the evidence of each call's person assertion.
    pub id_token: String,
    /// When the person authenticated (Unix seconds).
    pub auth_time: i64,
    /// When the ID token expires (Unix seconds).
    pub expires: i64,
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the number or the token: they must not reach a log.
        f.debug_struct("Login")
            .field("auth_time", &self.auth_time)
            .finish_non_exhaustive()
    }
}

/// A signed receipt the person may download.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Receipt {
    /// Its number in this session (the download URL's).
    pub number: u64,
    /// The consent.
    pub consent_id: String,
    /// "approved", "rejected", ...
    pub event: String,
    /// The compact JWS.
    pub jws: String,
}

/// One session.
#[derive(Debug)]
pub struct Session {
    /// Every form's hidden `csrf` field must equal this.
    pub csrf: String,
    /// The logged-in person, if any.
    pub login: Option<Login>,
    /// The receipts of this session's actions, newest last.
    pub receipts: Vec<Receipt>,
    /// The last passport fetched: the signed credential and its holder
    /// salt.
    pub passport: Option<(String, String)>,
    next_receipt: u64,
    began: Instant,
    last_used: Instant,
}

impl Session {
    fn new() -> Session {
        let now = Instant::now();
        Session {
            csrf: random_token(),
            login: None,
            receipts: Vec::new(),
            passport: None,
            next_receipt: 1,
            began: now,
            last_used: now,
        }
    }

    /// Keeps `jws` for download; returns its number.
    pub fn keep_receipt(&mut self, consent_id: &str, event: &str, jws: &str) -> u64 {
        let number = self.next_receipt;
        self.next_receipt += 1;
        self.receipts.push(Receipt {
            number,
            consent_id: consent_id.to_owned(),
            event: event.to_owned(),
            jws: jws.to_owned(),
        });
        if self.receipts.len() > RECEIPTS_KEPT {
            self.receipts.remove(0);
        }
        number
    }
}

/// All sessions of this process.
#[derive(Debug)]
pub struct Sessions {
    map: Mutex<HashMap<String, Session>>,
    idle: Duration,
}

impl Sessions {
    /// Sessions that end after `idle` unused.
    pub fn new(idle: Duration) -> Sessions {
        Sessions {
            map: Mutex::new(HashMap::new()),
            idle,
        }
    }

    fn live(&self, s: &Session, now: Instant) -> bool {
        let idle = if s.login.is_some() {
            self.idle
        } else {
            self.idle.min(ANONYMOUS_IDLE)
        };
        now.duration_since(s.last_used) < idle && now.duration_since(s.began) < MAX_AGE
    }

    /// A new, empty session; returns its id, or `None` when
    /// [`MAX_SESSIONS`] are held even after forgetting the ended ones.
    pub fn create(&self) -> Option<String> {
        let id = random_token();
        let now = Instant::now();
        let mut map = self.map.lock().expect("sessions lock");
        if map.len() >= MAX_SESSIONS {
            map.retain(|_, s| self.live(s, now));
            if map.len() >= MAX_SESSIONS {
                return None;
            }
        }
        map.insert(id.clone(), Session::new());
        Some(id)
    }

    /// Runs `f` on session `id` if it exists and has not idled out (marking
    /// it used); `None` otherwise. An expired session is removed.
    pub fn with<R>(&self, id: &str, f: impl FnOnce(&mut Session) -> R) -> Option<R> {
        let now = Instant::now();
        let mut map = self.map.lock().expect("sessions lock");
        let live = map.get(id).map(|s| self.live(s, now))?;
        if !live {
            map.remove(id);
            return None;
        }
        let s = map.get_mut(id)?;
        s.last_used = now;
        Some(f(s))
    }

    /// Gives session `id` a new id (after login), keeping its content but a
    /// new CSRF token; returns the new id.
    pub fn renew(&self, id: &str) -> Option<String> {
        let mut map = self.map.lock().expect("sessions lock");
        let mut s = map.remove(id)?;
        s.csrf = random_token();
        let new = random_token();
        map.insert(new.clone(), s);
        Some(new)
    }

    /// Ends session `id`.
    pub fn end(&self, id: &str) {
        self.map.lock().expect("sessions lock").remove(id);
    }

    /// Forgets every session that has idled out.
    pub fn sweep(&self) {
        let now = Instant::now();
        self.map
            .lock()
            .expect("sessions lock")
            .retain(|_, s| self.live(s, now));
    }

    /// How many sessions are held.
    pub fn len(&self) -> usize {
        self.map.lock().expect("sessions lock").len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_idles_out_and_renewal_changes_id_and_csrf() {
        let sessions = Sessions::new(Duration::from_millis(50));
        let id = sessions.create().unwrap();
        let csrf = sessions.with(&id, |s| s.csrf.clone()).unwrap();
        let new = sessions.renew(&id).unwrap();
        assert_ne!(new, id);
        assert!(sessions.with(&id, |_| ()).is_none(), "the old id is gone");
        assert_ne!(sessions.with(&new, |s| s.csrf.clone()).unwrap(), csrf);
        std::thread::sleep(Duration::from_millis(80));
        assert!(sessions.with(&new, |_| ()).is_none(), "idled out");
        assert!(sessions.is_empty());
    }

    #[test]
    fn receipts_are_bounded_and_numbered() {
        let sessions = Sessions::new(Duration::from_secs(60));
        let id = sessions.create().unwrap();
        sessions.with(&id, |s| {
            for i in 0..25 {
                assert_eq!(s.keep_receipt("c", "approved", &format!("jws{i}")), i + 1);
            }
            assert_eq!(s.receipts.len(), RECEIPTS_KEPT);
            assert_eq!(s.receipts[0].number, 6);
        });
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "abcd"));
    }
}
