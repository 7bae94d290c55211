//! The checks of a read, one module per step, in the order
//! [`crate::service::exchange`] runs them:
//!
//! 1. (TLS, in [`crate::net::tls`]: the handshake and the certificate);
//! 2. [`identity`]: the calling agency, read from its verified
//!    certificate, and [`rate`]: the caller's rate;
//! 3. [`validate`]: the request's person, record types, purpose and
//!    sources (every service uses the same checks), then [`access`]: may
//!    this agency read these types for this purpose? (an
//!    [`access::AccessPermit`]);
//! 4. [`consent`]: does the person hold a consent in force for it? Gives a
//!    [`consent::ConsentPermit`], without which nothing reaches an adapter;
//! 5. [`routing`]: the fan-out to the adapters holding the types, each
//!    source behind a circuit [`breaker`]; what comes back passes only
//!    with a [`payload`] of its record type's message; the consent's
//!    [`terms`] (its period, its count of reads) hold around the fetch.
//!
//! Step 6, the audit entry of the decision ([`crate::audit`]), is written
//! by the service, whatever step answered.

pub mod access;
pub mod breaker;
pub mod consent;
pub mod identity;
pub mod payload;
pub mod rate;
pub mod routing;
pub mod terms;
pub mod validate;
