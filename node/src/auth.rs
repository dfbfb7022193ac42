//! Bearer-key authentication (API.md): switched on by a keys file (`--auth-keys FILE`);
//! without one the API is open.
//!
//! The file has one key per line, `ROLE KEY [CUSTOMER_ID]`, with `#` comments and blank
//! lines ignored:
//!
//! ```text
//! # role     key                       customer
//! customer   web-frontend-7f3a9c0b11aa
//! customer   app-of-alice-93c1d0e2f4   alice
//! admin      inventory-tool-2b81aa0e
//! operator   ops-console-90d1c4e2ff
//! monitor    prometheus-5e7a21b0cc
//! ```
//!
//! Roles: `operator` may do everything, `admin` everything but cluster operations and
//! metrics, `customer` reads and booking only, `monitor` reads `/metrics` and
//! `/cluster/status` only. A `customer` key with a customer id acts only for that customer
//! (see [`Caller`]); one without is a trusted front end that acts for any. `/healthz`,
//! `/readyz` and `/openapi.json` are always open. A missing or unknown key is
//! `401 UNAUTHENTICATED`; a key whose role may not do what it asks is `403 FORBIDDEN`.
//!
//! Keys are kept and compared only as their SHA-256 digests: a lookup takes the same time
//! whatever prefix of a key a caller guessed, and no key is ever logged or shown. Each key
//! has a *scope*, the first 8 bytes of its digest in hex, that scopes its idempotency keys
//! (two callers cannot meet each other's keys) and names it in logs.

use holdfast_statemachine::ErrorCode;
use std::collections::HashMap;
use std::path::Path;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::app::AppState;
use crate::error::ApiError;

/// Keys a file may hold at most.
pub const AUTH_KEYS_MAX: usize = 10_000;
/// Shortest accepted key, in bytes: shorter ones are guessable.
pub const AUTH_KEY_BYTES_MIN: usize = 16;

/// What a key may do ([`Role::may`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Reads `/metrics` and `/cluster/status`, nothing else (a Prometheus scraper).
    Monitor,
    /// Reads and booking.
    Customer,
    /// Reads, booking and inventory.
    Admin,
    /// Everything.
    Operator,
}

impl Role {
    /// The name used in the keys file.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Monitor => "monitor",
            Role::Customer => "customer",
            Role::Admin => "admin",
            Role::Operator => "operator",
        }
    }

    fn parse(text: &str) -> Option<Role> {
        Some(match text {
            "monitor" => Role::Monitor,
            "customer" => Role::Customer,
            "admin" => Role::Admin,
            "operator" => Role::Operator,
            _ => return None,
        })
    }

    /// Whether a key of this role may do what needs `needed`: `operator` everything,
    /// `admin` what needs `admin` or `customer`, `customer` what needs `customer`, and
    /// `monitor` only what needs `monitor`.
    pub fn may(self, needed: Role) -> bool {
        match self {
            Role::Operator => true,
            Role::Admin => matches!(needed, Role::Admin | Role::Customer),
            Role::Customer => needed == Role::Customer,
            Role::Monitor => needed == Role::Monitor,
        }
    }
}

/// Who is calling, as the key they sent says: the role, the customer a bound `customer`
/// key acts for, and the key's scope. The default is an anonymous caller of an open API
/// (no keys configured), who may do anything for anyone.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Caller {
    /// The key's role; `None` when the API is open.
    pub role: Option<Role>,
    /// The only customer this caller may act for, when its key is bound to one.
    pub customer: Option<String>,
    /// The key's scope (16 hex digits of its digest); `None` when the API is open.
    pub scope: Option<String>,
    /// The client's address, when the edge knows it (limits count by it without a key).
    pub address: Option<std::net::IpAddr>,
}

impl Caller {
    /// `Ok` when this caller may act for `customer_id`; `403 FORBIDDEN` when its key is
    /// bound to another customer.
    pub fn may_act_for(&self, customer_id: &str) -> Result<(), ApiError> {
        match &self.customer {
            Some(bound) if bound != customer_id => Err(ApiError::new(
                ErrorCode::Forbidden,
                "this key acts for another customer",
            )),
            _ => Ok(()),
        }
    }
}

/// Axum extractor: the [`Caller`] that [`authorize`] found, or the anonymous caller on an
/// open API and on open paths.
impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Caller, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<Caller>()
            .cloned()
            .unwrap_or_default())
    }
}

/// What one key of a keys file grants.
#[derive(Clone, Debug)]
struct Grant {
    role: Role,
    customer: Option<String>,
}

/// A key's digest, the only form in which keys are kept.
type KeyDigest = [u8; 32];

fn digest(key: &str) -> KeyDigest {
    Sha256::digest(key.as_bytes()).into()
}

fn scope_of(digest: &KeyDigest) -> String {
    digest[..8]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// A keys file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum AuthKeysError {
    /// The file could not be read (missing, unreadable, or not UTF-8).
    #[error("cannot read the keys file {path}: {source}")]
    Read {
        /// The path as given, for the message.
        path: String,
        /// Why reading failed.
        source: std::io::Error,
    },
    /// The file was read but a line (or the whole file) is not acceptable; nothing of it is
    /// used.
    #[error("keys file line {line}: {reason}")]
    Invalid {
        /// The 1-based line at fault; 0 when the file as a whole is (it lists no key).
        line: usize,
        /// What is wrong, in words for the operator.
        reason: String,
    },
}

/// The keys of a keys file, by digest.
#[derive(Clone, Default)]
pub struct AuthKeys {
    grants: HashMap<KeyDigest, Grant>,
}

/// Shows how many keys, never the keys themselves (configs get logged).
impl std::fmt::Debug for AuthKeys {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "AuthKeys({} keys)", self.grants.len())
    }
}

impl AuthKeys {
    /// Reads a keys file.
    pub fn load(path: &Path) -> Result<AuthKeys, AuthKeysError> {
        let text = std::fs::read_to_string(path).map_err(|source| AuthKeysError::Read {
            path: path.display().to_string(),
            source,
        })?;
        AuthKeys::parse(&text)
    }

    /// Parses the text of a keys file.
    pub fn parse(text: &str) -> Result<AuthKeys, AuthKeysError> {
        let mut grants = HashMap::new();
        for (number, line) in text.lines().enumerate() {
            let line_number = number + 1;
            let invalid = |reason: &str| AuthKeysError::Invalid {
                line: line_number,
                reason: reason.to_string(),
            };
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let mut words = line.split_whitespace();
            let (Some(role), Some(key), customer, None) =
                (words.next(), words.next(), words.next(), words.next())
            else {
                return Err(invalid("expected `ROLE KEY [CUSTOMER_ID]`"));
            };
            let role = Role::parse(role)
                .ok_or_else(|| invalid("the role must be customer, admin, operator or monitor"))?;
            if key.len() < AUTH_KEY_BYTES_MIN {
                return Err(invalid(&format!(
                    "keys must be at least {AUTH_KEY_BYTES_MIN} bytes"
                )));
            }
            if let Some(customer) = customer {
                if role != Role::Customer {
                    return Err(invalid("only a customer key can be bound to a customer id"));
                }
                crate::validate::id("customer_id", customer)
                    .map_err(|error| invalid(&format!("customer id: {}", error.message)))?;
            }
            let grant = Grant {
                role,
                customer: customer.map(str::to_string),
            };
            if grants.insert(digest(key), grant).is_some() {
                return Err(invalid("the key is listed twice"));
            }
            if grants.len() > AUTH_KEYS_MAX {
                return Err(invalid(&format!("more than {AUTH_KEYS_MAX} keys")));
            }
        }
        if grants.is_empty() {
            return Err(AuthKeysError::Invalid {
                line: 0,
                reason: "the file lists no key".into(),
            });
        }
        Ok(AuthKeys { grants })
    }

    /// The caller that `key` stands for, if it is known.
    pub fn caller(&self, key: &str) -> Option<Caller> {
        let digest = digest(key);
        let grant = self.grants.get(&digest)?;
        Some(Caller {
            role: Some(grant.role),
            customer: grant.customer.clone(),
            scope: Some(scope_of(&digest)),
            address: None,
        })
    }

    /// The role of `key`, if it is known.
    pub fn role(&self, key: &str) -> Option<Role> {
        self.grants.get(&digest(key)).map(|grant| grant.role)
    }

    /// Keys known.
    pub fn len(&self) -> usize {
        self.grants.len()
    }

    /// Whether no key is known.
    pub fn is_empty(&self) -> bool {
        self.grants.is_empty()
    }
}

/// The role a path needs, or `None` for open paths.
pub fn required_role(path: &str) -> Option<Role> {
    match path {
        "/healthz" | "/readyz" | "/openapi.json" => None,
        "/metrics" | "/cluster/status" => Some(Role::Monitor),
        "/refunds" | "/changes" => Some(Role::Admin),
        _ if path.starts_with("/cluster/") => Some(Role::Operator),
        _ if path.starts_with("/admin/") => Some(Role::Admin),
        _ => Some(Role::Customer),
    }
}

/// The key of an `Authorization: Bearer <key>` header value (HTTP header or gRPC
/// `authorization` metadata).
pub fn bearer_key(authorization: Option<&str>) -> Option<&str> {
    let (scheme, key) = authorization?.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| key.trim())
        .filter(|key| !key.is_empty())
}

/// The caller whose `authorization` is given, if it may do what needs `needed`: the
/// anonymous caller when no keys are configured; `401 UNAUTHENTICATED` for a missing or
/// unknown key, `403 FORBIDDEN` for a role that may not. Both edges decide with this one
/// function.
pub fn check(
    keys: Option<&AuthKeys>,
    authorization: Option<&str>,
    needed: Role,
) -> Result<Caller, ApiError> {
    let Some(keys) = keys else {
        return Ok(Caller::default());
    };
    let Some(caller) = bearer_key(authorization).and_then(|key| keys.caller(key)) else {
        return Err(ApiError::new(
            ErrorCode::Unauthenticated,
            "send a known key as `Authorization: Bearer <key>`",
        ));
    };
    let role = caller.role.expect("a key has a role");
    if role.may(needed) {
        Ok(caller)
    } else {
        Err(ApiError::new(
            ErrorCode::Forbidden,
            format!(
                "the {} role may not do this; it needs {}",
                role.as_str(),
                needed.as_str()
            ),
        )
        .with_details(json!({"role": role.as_str(), "required_role": needed.as_str()})))
    }
}

/// The HTTP middleware: [`check`] against the role the path needs ([`required_role`]); the
/// [`Caller`] goes into the request's extensions for the handlers.
pub async fn authorize(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let Some(needed) = required_role(request.uri().path()) else {
        return next.run(request).await;
    };
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok());
    match check(state.config.auth_keys.as_deref(), authorization, needed) {
        Ok(mut caller) => {
            caller.address = request
                .extensions()
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|info| info.0.ip());
            request.extensions_mut().insert(caller);
            crate::rate::admit(&state, request, next).await
        }
        Err(error) => {
            let unauthenticated = error.status == StatusCode::UNAUTHORIZED;
            let mut response = error.into_response();
            if unauthenticated {
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"holdfast\""),
                );
            }
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_files_are_parsed_strictly() {
        let keys = AuthKeys::parse(
            "# comment\n\ncustomer  cust-key-0123456789\noperator ops-key-0123456789 # trailing\n\
             customer alice-key-0123456789 alice\nmonitor scrape-key-0123456789\n",
        )
        .unwrap();
        assert_eq!(keys.len(), 4);
        assert_eq!(keys.role("cust-key-0123456789"), Some(Role::Customer));
        assert_eq!(keys.role("ops-key-0123456789"), Some(Role::Operator));
        assert_eq!(keys.role("scrape-key-0123456789"), Some(Role::Monitor));
        assert_eq!(keys.role("nope"), None);
        let alice = keys.caller("alice-key-0123456789").unwrap();
        assert_eq!(alice.customer.as_deref(), Some("alice"));
        assert_eq!(keys.caller("cust-key-0123456789").unwrap().customer, None);
        assert!(AuthKeys::parse("root some-key-0123456789").is_err());
        assert!(AuthKeys::parse("admin short").is_err());
        assert!(AuthKeys::parse("admin a-key-0123456789 alice").is_err());
        assert!(AuthKeys::parse("customer a-key-0123456789 alice extra").is_err());
        assert!(AuthKeys::parse("customer a-key-0123456789 al/ice").is_err());
        assert!(AuthKeys::parse("admin a-key-0123456789\nadmin a-key-0123456789").is_err());
        assert!(AuthKeys::parse("# nothing\n").is_err());
    }

    #[test]
    fn keys_are_kept_as_digests_and_scoped_apart() {
        let keys =
            AuthKeys::parse("customer key-one-0123456789\ncustomer key-two-0123456789\n").unwrap();
        let debug = format!("{keys:?}");
        assert!(!debug.contains("key-one"), "{debug}");
        let one = keys.caller("key-one-0123456789").unwrap().scope.unwrap();
        let two = keys.caller("key-two-0123456789").unwrap().scope.unwrap();
        assert_eq!(one.len(), 16);
        assert_ne!(one, two);
        assert_eq!(
            keys.caller("key-one-0123456789").unwrap().scope.unwrap(),
            one,
            "a key's scope is stable"
        );
    }

    #[test]
    fn paths_need_roles() {
        assert_eq!(required_role("/healthz"), None);
        assert_eq!(required_role("/availability"), Some(Role::Customer));
        assert_eq!(required_role("/booking/hold"), Some(Role::Customer));
        assert_eq!(required_role("/admin/events"), Some(Role::Admin));
        assert_eq!(required_role("/cluster/status"), Some(Role::Monitor));
        assert_eq!(required_role("/metrics"), Some(Role::Monitor));
        assert_eq!(required_role("/cluster/membership"), Some(Role::Operator));
        assert!(Role::Operator.may(Role::Monitor) && Role::Operator.may(Role::Admin));
        assert!(Role::Admin.may(Role::Customer) && !Role::Admin.may(Role::Monitor));
        assert!(!Role::Customer.may(Role::Admin) && !Role::Customer.may(Role::Monitor));
        assert!(Role::Monitor.may(Role::Monitor) && !Role::Monitor.may(Role::Customer));
    }

    #[test]
    fn a_bound_key_acts_for_its_customer_only() {
        let bound = Caller {
            role: Some(Role::Customer),
            customer: Some("alice".into()),
            scope: Some("00".into()),
            address: None,
        };
        assert!(bound.may_act_for("alice").is_ok());
        assert_eq!(bound.may_act_for("bob").unwrap_err().code, "FORBIDDEN");
        assert!(Caller::default().may_act_for("bob").is_ok());
    }
}
