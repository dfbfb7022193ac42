//! Request extractors whose every failure is an [`ApiError`] in API.md's shape (axum's own
//! extractors answer `422` or plain text): JSON bodies with a size limit, path segments,
//! query strings and the `Idempotency-Key` header.

use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::{header, Version};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// Largest booking request body (API.md: 64 KiB).
pub const BOOKING_BODY_BYTES_MAX: usize = 64 * 1024;
/// Largest admin inventory request body (API.md: 4 MiB).
pub const ADMIN_BODY_BYTES_MAX: usize = 4 * 1024 * 1024;
/// Longest `Idempotency-Key`, in characters.
pub const IDEMPOTENCY_KEY_CHARS_MAX: usize = 128;

/// The body size limit of a group of routes, inserted as a request extension by the
/// router (`Extension(BodyLimit(n))`). Without one, [`BOOKING_BODY_BYTES_MAX`] applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BodyLimit(pub usize);

/// A JSON body: `413 BODY_TOO_LARGE` past the route's [`BodyLimit`], `400 INVALID_JSON` for
/// malformed JSON, `400 INVALID_FIELD` (naming the field) for wrong types and missing
/// fields. The `Content-Type` is not checked: clients that forget it still get served.
#[derive(Clone, Debug)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let ApiBytes(bytes) = ApiBytes::from_request(request, state).await?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// A body of any kind, read whole within the route's [`BodyLimit`] (`413 BODY_TOO_LARGE`
/// past it, the same as [`ApiJson`]).
#[derive(Clone, Debug)]
pub struct ApiBytes(pub axum::body::Bytes);

impl<S: Send + Sync> FromRequest<S> for ApiBytes {
    type Rejection = ApiError;

    async fn from_request(request: Request, _state: &S) -> Result<Self, ApiError> {
        let limit = request
            .extensions()
            .get::<BodyLimit>()
            .map_or(BOOKING_BODY_BYTES_MAX, |limit| limit.0);
        // An HTTP/1 connection whose request body is left unread is closed by hyper after
        // the answer; `Connection: close` tells the client not to send the next request on
        // it. (HTTP/2 resets only the stream, and forbids the header.)
        let http1 = request.version() <= Version::HTTP_11;
        let too_large = || {
            let error = ApiError::body_too_large(limit);
            if http1 {
                error.closing_connection()
            } else {
                error
            }
        };
        let declared_length = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse::<u64>().ok());
        if declared_length.is_some_and(|length| length > limit as u64) {
            return Err(too_large());
        }
        match Limited::new(request.into_body(), limit).collect().await {
            Ok(collected) => Ok(ApiBytes(collected.to_bytes())),
            Err(error) if error.downcast_ref::<LengthLimitError>().is_some() => Err(too_large()),
            Err(error) => Err(ApiError::invalid_json(format!(
                "could not read the body: {error}"
            ))),
        }
    }
}

/// Parses a JSON document into `T`, classifying failures as API errors.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let Some(&first) = bytes.iter().find(|byte| !byte.is_ascii_whitespace()) else {
        return Err(ApiError::invalid_json("the body is empty"));
    };
    // serde accepts an array for a struct (by position); the API takes objects only.
    if first != b'{' {
        return Err(ApiError::invalid_json("the body must be a JSON object"));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = match serde_path_to_error::deserialize::<_, T>(&mut deserializer) {
        Ok(value) => value,
        Err(error)
            if error
                .inner()
                .to_string()
                .starts_with("invalid type: floating point") =>
        {
            // `2.0` is the integer 2 to JSON (and to JSON Schema); serde's integer types
            // refuse it. Off the hot path: only a body that failed this way is read again.
            return parse_integral_floats(bytes).unwrap_or_else(|| {
                let path = error.path().to_string();
                Err(classify_json_error(&path, error.into_inner()))
            });
        }
        Err(error) => {
            let path = error.path().to_string();
            return Err(classify_json_error(&path, error.into_inner()));
        }
    };
    deserializer
        .end()
        .map_err(|error| ApiError::invalid_json(error.to_string()))?;
    Ok(value)
}

/// `bytes` read again with every number that is a whole float (`2.0`, `1e3`) turned into
/// an integer; `None` when that changes nothing (the refusal stands as it was).
fn parse_integral_floats<T: DeserializeOwned>(bytes: &[u8]) -> Option<Result<T, ApiError>> {
    fn normalize(value: &mut serde_json::Value) -> bool {
        match value {
            serde_json::Value::Number(number) if number.is_f64() => {
                let float = number.as_f64().unwrap_or(f64::NAN);
                let whole = float.fract() == 0.0;
                if whole && (0.0..18_446_744_073_709_551_616.0).contains(&float) {
                    *value = serde_json::Value::from(float as u64);
                    true
                } else if whole && (-9_223_372_036_854_775_808.0..0.0).contains(&float) {
                    *value = serde_json::Value::from(float as i64);
                    true
                } else {
                    false
                }
            }
            serde_json::Value::Array(items) => items
                .iter_mut()
                .fold(false, |changed, item| normalize(item) | changed),
            serde_json::Value::Object(fields) => fields
                .values_mut()
                .fold(false, |changed, field| normalize(field) | changed),
            _ => false,
        }
    }
    let mut value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    if !normalize(&mut value) {
        return None;
    }
    Some(
        serde_path_to_error::deserialize::<_, T>(value).map_err(|error| {
            let path = error.path().to_string();
            classify_json_error(&path, error.into_inner())
        }),
    )
}

fn classify_json_error(path: &str, error: serde_json::Error) -> ApiError {
    use serde_json::error::Category;
    match error.classify() {
        Category::Syntax | Category::Eof | Category::Io => {
            ApiError::invalid_json(error.to_string())
        }
        Category::Data => {
            let message = strip_position(&error.to_string());
            let root = path.is_empty() || path == ".";
            if let Some(missing) = missing_field_name(&message) {
                let field = if root {
                    missing.to_string()
                } else {
                    format!("{path}.{missing}")
                };
                return ApiError::invalid_field(&field, "is required");
            }
            if root {
                return ApiError::invalid_json(format!(
                    "the body must be a JSON object: {message}"
                ));
            }
            ApiError::invalid_field(path, message)
        }
    }
}

/// serde_json appends " at line L column C"; the field name is more useful to clients.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_string(),
        None => message.to_string(),
    }
}

fn missing_field_name(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("missing field `")?;
    rest.split('`').next()
}

/// Path parameters; a segment that does not parse is `400 INVALID_FIELD`.
#[derive(Clone, Debug)]
pub struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(ApiPath(value)),
            Err(rejection) => Err(ApiError::invalid_field("path", rejection.body_text())),
        }
    }
}

/// The query string as name/value pairs; a malformed one is `400 INVALID_FIELD`.
#[derive(Clone, Debug, Default)]
pub struct ApiQuery(pub Vec<(String, String)>);

impl ApiQuery {
    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// The first value of `name` as an unsigned integer.
    pub fn get_u64(&self, name: &str) -> Result<Option<u64>, ApiError> {
        self.get(name)
            .map(|value| {
                value
                    .parse::<u64>()
                    .map_err(|_| ApiError::invalid_field(name, "must be a non-negative integer"))
            })
            .transpose()
    }

    /// A required value.
    pub fn require(&self, name: &str) -> Result<&str, ApiError> {
        match self.get(name) {
            Some(value) if !value.is_empty() => Ok(value),
            _ => Err(ApiError::invalid_field(name, "is required")),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ApiQuery {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or("");
        serde_urlencoded::from_str::<Vec<(String, String)>>(query)
            .map(ApiQuery)
            .map_err(|error| ApiError::invalid_field("query", error.to_string()))
    }
}

/// The `Idempotency-Key` header: 1–128 printable ASCII characters, or absent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IdempotencyKey(pub Option<String>);

impl IdempotencyKey {
    /// A key given as `field` (the header, or a batch operation's `idempotency_key`):
    /// 1–128 printable ASCII characters.
    pub fn parse(field: &str, key: &str) -> Result<IdempotencyKey, ApiError> {
        let printable = key.bytes().all(|byte| (0x20..0x7f).contains(&byte));
        if key.is_empty() || key.len() > IDEMPOTENCY_KEY_CHARS_MAX || !printable {
            return Err(IdempotencyKey::invalid(field));
        }
        Ok(IdempotencyKey(Some(key.to_string())))
    }

    fn invalid(field: &str) -> ApiError {
        ApiError::invalid_field(
            field,
            format!("must be 1 to {IDEMPOTENCY_KEY_CHARS_MAX} printable ASCII characters"),
        )
    }

    /// This key as `caller`'s: prefixed with the caller's key scope when authentication
    /// is on, so that two callers' equal keys are different requests (one caller can
    /// neither replay nor poison another's). Unchanged on an open API.
    pub fn scoped(self, caller: &crate::auth::Caller) -> IdempotencyKey {
        match (self.0, &caller.scope) {
            (Some(key), Some(scope)) => IdempotencyKey(Some(format!("{scope}/{key}"))),
            (key, _) => IdempotencyKey(key),
        }
    }

    /// The request id for the state machine: `"<route>:<key>"`, scoping keys per route.
    pub fn request_id(&self, route: &str) -> Option<String> {
        self.0.as_ref().map(|key| format!("{route}:{key}"))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let Some(value) = parts.headers.get("idempotency-key") else {
            return Ok(IdempotencyKey(None));
        };
        let key = value
            .to_str()
            .map_err(|_| IdempotencyKey::invalid("Idempotency-Key"))?;
        let caller = parts.extensions.get::<crate::auth::Caller>();
        let key = IdempotencyKey::parse("Idempotency-Key", key)?;
        Ok(match caller {
            Some(caller) => key.scoped(caller),
            None => key,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[allow(dead_code)]
    #[derive(Debug, Deserialize)]
    struct Inner {
        quantity: u32,
    }

    #[allow(dead_code)]
    #[derive(Debug, Deserialize)]
    struct Outer {
        name: String,
        pools: Vec<Inner>,
    }

    #[test]
    fn json_errors_are_classified() {
        let error = parse_json::<Outer>(b"{\"name\": ").unwrap_err();
        assert_eq!(error.code, "INVALID_JSON");
        let error = parse_json::<Outer>(b"").unwrap_err();
        assert_eq!(error.code, "INVALID_JSON");
        let error = parse_json::<Outer>(b"[1]").unwrap_err();
        assert_eq!(error.code, "INVALID_JSON", "{error:?}");
        let error =
            parse_json::<Outer>(br#"{"name": "x", "pools": [{"quantity": "two"}]}"#).unwrap_err();
        assert_eq!(error.code, "INVALID_FIELD");
        assert_eq!(error.details["field"], "pools[0].quantity");
        let error = parse_json::<Outer>(br#"{"pools": []}"#).unwrap_err();
        assert_eq!(error.code, "INVALID_FIELD");
        assert_eq!(error.details["field"], "name");
        let error = parse_json::<Outer>(br#"{"name": "x", "pools": [{}]}"#).unwrap_err();
        assert_eq!(error.details["field"], "pools[0].quantity");
        let error = parse_json::<Outer>(br#"{"name": "x", "pools": []} trailing"#).unwrap_err();
        assert_eq!(error.code, "INVALID_JSON");
    }
}
