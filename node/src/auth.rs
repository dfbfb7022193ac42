//! Bearer-key authentication (API.md): switched on by a keys file (`--auth-keys FILE`);
//! without one the API is open.
//!
//! The file has one key per line, `ROLE KEY`, with `#` comments and blank lines ignored:
//!
//! ```text
//! # role     key
//! customer   web-frontend-7f3a9c
//! admin      inventory-tool-2b81
//! operator   ops-console-90d1
//! ```
//!
//! Roles nest: `operator` may do everything, `admin` everything but cluster operations and
//! metrics, `customer` reads and booking only. `/healthz`, `/readyz` and `/openapi.json`
//! are always open. A missing or unknown key is `401 UNAUTHENTICATED`; a key whose role is
//! too low is `403 FORBIDDEN`.

use holdfast_statemachine::ErrorCode;
use std::collections::HashMap;
use std::path::Path;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::app::AppState;
use crate::error::ApiError;

/// Keys a file may hold at most.
pub const AUTH_KEYS_MAX: usize = 10_000;
/// Shortest accepted key, in bytes: shorter ones are guessable.
pub const AUTH_KEY_BYTES_MIN: usize = 16;

/// What a key may do. Ordered: each role may do what the ones below it may.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Customer,
    Admin,
    Operator,
}

impl Role {
    /// The name used in the keys file.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Customer => "customer",
            Role::Admin => "admin",
            Role::Operator => "operator",
        }
    }

    fn parse(text: &str) -> Option<Role> {
        Some(match text {
            "customer" => Role::Customer,
            "admin" => Role::Admin,
            "operator" => Role::Operator,
            _ => return None,
        })
    }
}

/// A keys file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum AuthKeysError {
    #[error("cannot read the keys file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("keys file line {line}: {reason}")]
    Invalid { line: usize, reason: String },
}

/// The keys of a keys file.
#[derive(Clone, Default)]
pub struct AuthKeys {
    roles: HashMap<String, Role>,
}

/// Shows how many keys, never the keys themselves (configs get logged).
impl std::fmt::Debug for AuthKeys {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "AuthKeys({} keys)", self.roles.len())
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
        let mut roles = HashMap::new();
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
            let (Some(role), Some(key), None) = (words.next(), words.next(), words.next()) else {
                return Err(invalid("expected `ROLE KEY`"));
            };
            let role = Role::parse(role)
                .ok_or_else(|| invalid("the role must be customer, admin or operator"))?;
            if key.len() < AUTH_KEY_BYTES_MIN {
                return Err(invalid(&format!(
                    "keys must be at least {AUTH_KEY_BYTES_MIN} bytes"
                )));
            }
            if roles.insert(key.to_string(), role).is_some() {
                return Err(invalid("the key is listed twice"));
            }
            if roles.len() > AUTH_KEYS_MAX {
                return Err(invalid(&format!("more than {AUTH_KEYS_MAX} keys")));
            }
        }
        if roles.is_empty() {
            return Err(AuthKeysError::Invalid {
                line: 0,
                reason: "the file lists no key".into(),
            });
        }
        Ok(AuthKeys { roles })
    }

    /// The role of `key`, if it is known.
    pub fn role(&self, key: &str) -> Option<Role> {
        self.roles.get(key).copied()
    }

    /// Keys known.
    pub fn len(&self) -> usize {
        self.roles.len()
    }

    /// Whether no key is known.
    pub fn is_empty(&self) -> bool {
        self.roles.is_empty()
    }
}

/// The role a path needs, or `None` for open paths.
pub fn required_role(path: &str) -> Option<Role> {
    match path {
        "/healthz" | "/readyz" | "/openapi.json" => None,
        "/metrics" => Some(Role::Operator),
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

/// Whether the caller whose `authorization` is given may act as `needed`: always when no
/// keys are configured; `401 UNAUTHENTICATED` for a missing or unknown key, `403 FORBIDDEN`
/// for a role below `needed`. Both edges decide with this one function.
pub fn check(
    keys: Option<&AuthKeys>,
    authorization: Option<&str>,
    needed: Role,
) -> Result<(), ApiError> {
    let Some(keys) = keys else {
        return Ok(());
    };
    match bearer_key(authorization).and_then(|key| keys.role(key)) {
        Some(role) if role >= needed => Ok(()),
        Some(role) => Err(ApiError::new(
            ErrorCode::Forbidden,
            format!(
                "the {} role may not do this; it needs {}",
                role.as_str(),
                needed.as_str()
            ),
        )
        .with_details(json!({"role": role.as_str(), "required_role": needed.as_str()}))),
        None => Err(ApiError::new(
            ErrorCode::Unauthenticated,
            "send a known key as `Authorization: Bearer <key>`",
        )),
    }
}

/// The HTTP middleware: [`check`] against the role the path needs ([`required_role`]).
pub async fn authorize(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(needed) = required_role(request.uri().path()) else {
        return next.run(request).await;
    };
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok());
    match check(state.config.auth_keys.as_deref(), authorization, needed) {
        Ok(()) => next.run(request).await,
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
            "# comment\n\ncustomer  cust-key-0123456789\noperator ops-key-0123456789 # trailing\n",
        )
        .unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(keys.role("cust-key-0123456789"), Some(Role::Customer));
        assert_eq!(keys.role("ops-key-0123456789"), Some(Role::Operator));
        assert_eq!(keys.role("nope"), None);
        assert!(AuthKeys::parse("root some-key-0123456789").is_err());
        assert!(AuthKeys::parse("admin short").is_err());
        assert!(AuthKeys::parse("admin a-key-0123456789 extra").is_err());
        assert!(AuthKeys::parse("admin a-key-0123456789\nadmin a-key-0123456789").is_err());
        assert!(AuthKeys::parse("# nothing\n").is_err());
    }

    #[test]
    fn paths_need_nested_roles() {
        assert_eq!(required_role("/healthz"), None);
        assert_eq!(required_role("/availability"), Some(Role::Customer));
        assert_eq!(required_role("/booking/hold"), Some(Role::Customer));
        assert_eq!(required_role("/admin/events"), Some(Role::Admin));
        assert_eq!(required_role("/cluster/status"), Some(Role::Operator));
        assert!(Role::Operator > Role::Admin && Role::Admin > Role::Customer);
    }
}
