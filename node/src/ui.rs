//! The dashboard: `/ui` (the cluster and the event list) and `/ui/events/{event_id}` (one
//! event's live seat map, with hold, confirm and cancel buttons for demos).
//!
//! The pages are plain HTML, CSS and JavaScript from `node/ui/`, compiled into the binary
//! with `include_str!`: no front-end build step, nothing to install beside the node. They
//! hold no data: the browser reads and writes through the JSON API of API.md with the key
//! the user gives (kept in `sessionStorage`), so the API's keys and roles apply to the
//! dashboard exactly as to any client. That is why these routes are served without a key,
//! outside [`crate::auth::authorize`], and why the only data rendered on the server — an
//! event's name and counters on its page, for readers without JavaScript — is rendered
//! only when the node has no keys (an open API shows the same to anyone).
//!
//! Every page carries a strict Content-Security-Policy: scripts, styles and images only
//! from this node's `/ui/assets/`, no inline code, and connections only to this node and
//! the HTTP addresses of the cluster's members (the cluster view asks each member for its
//! own `/cluster/status`). [`member_cors`] lets a member's page read those answers.

use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;

use crate::app::AppState;
use crate::replica;

/// Members whose HTTP addresses a page's policy lists at most (the cluster view shows
/// this many members; a larger cluster is still served, its extra members unlisted).
pub const POLICY_MEMBERS_MAX: usize = 64;

/// One embedded file: its name under `/ui/assets/`, content type and bytes.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const ASSETS: &[Asset] = &[
    Asset {
        name: "app.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("../ui/app.css"),
    },
    Asset {
        name: "common.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../ui/common.js"),
    },
    Asset {
        name: "cluster.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../ui/cluster.js"),
    },
    Asset {
        name: "event.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../ui/event.js"),
    },
    Asset {
        name: "icon.svg",
        content_type: "image/svg+xml",
        body: include_str!("../ui/icon.svg"),
    },
];

const INDEX_HTML: &str = include_str!("../ui/index.html");
const EVENT_HTML: &str = include_str!("../ui/event.html");
const NOT_FOUND_HTML: &str = include_str!("../ui/not-found.html");

/// The dashboard's routes. They need no key: merge them outside the authorisation layer.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/ui", get(index))
        .route("/ui/", get(|| async { Redirect::permanent("/ui") }))
        .route("/ui/events/{event_id}", get(event_page))
        .route("/ui/assets/{name}", get(asset))
        .route("/ui/{*rest}", get(not_found))
}

async fn index(State(state): State<AppState>) -> Response {
    page(&state, StatusCode::OK, INDEX_HTML.to_string())
}

async fn not_found(State(state): State<AppState>) -> Response {
    page(&state, StatusCode::NOT_FOUND, NOT_FOUND_HTML.to_string())
}

/// The seat map page. The event id travels to the script in the address itself; the
/// server fills in the event's name and counters only when the API is open.
async fn event_page(State(state): State<AppState>, Path(event_id): Path<String>) -> Response {
    if crate::validate::id("event_id", &event_id).is_err() {
        return page(&state, StatusCode::NOT_FOUND, NOT_FOUND_HTML.to_string());
    }
    let rendered = if state.config.auth_keys.is_none() {
        let (info, _) = replica::read_now(&*state.replica, |machine| machine.event(&event_id));
        info.map(|info| RenderedEvent {
            name: info.name,
            available: info.summary.seats_available,
            held: info.summary.seats_held,
            booked: info.summary.seats_booked,
            total: info.summary.seats_total,
        })
    } else {
        None
    };
    page(&state, StatusCode::OK, render_event(&event_id, rendered))
}

/// What the server knows of an event when it may show it.
struct RenderedEvent {
    name: String,
    available: u64,
    held: u64,
    booked: u64,
    total: u64,
}

fn render_event(event_id: &str, event: Option<RenderedEvent>) -> String {
    let dash = || "–".to_string();
    let (name, available, held, booked, total) = match event {
        Some(event) => (
            escape_html(&event.name),
            event.available.to_string(),
            event.held.to_string(),
            event.booked.to_string(),
            event.total.to_string(),
        ),
        None => (escape_html(event_id), dash(), dash(), dash(), dash()),
    };
    EVENT_HTML
        .replace("{{event_id}}", &escape_html(event_id))
        .replace("{{event_name}}", &name)
        .replace("{{available}}", &available)
        .replace("{{held}}", &held)
        .replace("{{booked}}", &booked)
        .replace("{{total}}", &total)
}

/// Escapes text for an HTML element or a double-quoted attribute.
fn escape_html(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            other => escaped.push(other),
        }
    }
    escaped
}

async fn asset(Path(name): Path<String>) -> Response {
    let Some(asset) = ASSETS.iter().find(|asset| asset.name == name) else {
        return (StatusCode::NOT_FOUND, "no such asset").into_response();
    };
    let mut response = asset.body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    // The files change only with the binary; revalidating each load keeps an upgraded
    // node's pages consistent with its scripts.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    common_headers(headers);
    response
}

fn page(state: &AppState, status: StatusCode, html: String) -> Response {
    let mut response = (status, html).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(policy) = HeaderValue::from_str(&content_security_policy(&member_origins(state))) {
        headers.insert(header::CONTENT_SECURITY_POLICY, policy);
    }
    common_headers(headers);
    response
}

fn common_headers(headers: &mut HeaderMap) {
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
}

/// The page policy: everything from this node's own assets, nothing inline, connections to
/// this node and to `members` (origins such as `http://10.0.0.2:7001`).
pub fn content_security_policy(members: &[String]) -> String {
    let mut connect = String::from("'self'");
    for origin in members {
        connect.push(' ');
        connect.push_str(origin);
    }
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
         connect-src {connect}; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
}

/// `http://{http_addr}` of each member whose address is a plain `host:port` (anything
/// else could not be a member's address and must not reach a header).
fn member_origins(state: &AppState) -> Vec<String> {
    state
        .replica
        .status()
        .members
        .iter()
        .take(POLICY_MEMBERS_MAX)
        .filter(|member| is_host_port(&member.http_addr))
        .map(|member| format!("http://{}", member.http_addr))
        .collect()
}

fn is_host_port(address: &str) -> bool {
    !address.is_empty()
        && address.len() <= 256
        && address
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b".-:[]_".contains(&byte))
}

/// The paths another member's dashboard may read from this node.
fn shared_with_members(path: &str) -> bool {
    matches!(path, "/cluster/status" | "/healthz" | "/readyz")
}

/// Run by the request-context middleware (`app.rs`), around everything else: lets a
/// dashboard served by another member of the cluster read this node's
/// `/cluster/status`, `/healthz` and `/readyz` (CORS for exactly those paths and for
/// exactly the members' origins; everything else stays same-origin). Preflights are
/// answered here, before authorisation, because browsers send them without the key; the
/// `GET` that follows still needs one when the node has keys.
pub async fn member_cors(state: &AppState, request: Request, next: Next) -> Response {
    let origin = request
        .headers()
        .get(header::ORIGIN)
        .and_then(|value| value.to_str().ok())
        .map(str::to_string);
    let Some(origin) = origin.filter(|_| shared_with_members(request.uri().path())) else {
        return next.run(request).await;
    };
    if !member_origins(state).contains(&origin) {
        return next.run(request).await;
    }
    let Ok(allowed) = HeaderValue::from_str(&origin) else {
        return next.run(request).await;
    };
    let mut response = if request.method() == Method::OPTIONS {
        let mut preflight = StatusCode::NO_CONTENT.into_response();
        let headers = preflight.headers_mut();
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET"),
        );
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("authorization"),
        );
        headers.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("600"),
        );
        preflight
    } else {
        next.run(request).await
    };
    let headers = response.headers_mut();
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allowed);
    headers.append(header::VARY, HeaderValue::from_static("origin"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_pages_escape_what_they_show() {
        let html = render_event(
            "e<1>",
            Some(RenderedEvent {
                name: "<script>alert(1)</script> & \"more\"".into(),
                available: 371,
                held: 9,
                booked: 20,
                total: 400,
            }),
        );
        assert!(!html.contains("<script>alert"));
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;more&quot;"));
        assert!(html.contains("e&lt;1&gt;"));
        assert!(html.contains(">371<"));
        assert!(!html.contains("{{"));
    }

    #[test]
    fn unknown_events_show_dashes_until_the_script_reads_them() {
        let html = render_event("cinema-dune", None);
        assert!(html.contains("cinema-dune"));
        assert!(!html.contains("{{"));
    }

    #[test]
    fn the_policy_allows_no_inline_code_and_only_member_connections() {
        let policy = content_security_policy(&["http://127.0.0.1:7002".to_string()]);
        assert!(policy.contains("default-src 'none'"));
        assert!(policy.contains("script-src 'self';"));
        assert!(!policy.contains("unsafe"));
        assert!(policy.contains("connect-src 'self' http://127.0.0.1:7002;"));
    }

    #[test]
    fn only_plain_addresses_reach_the_policy() {
        assert!(is_host_port("127.0.0.1:7001"));
        assert!(is_host_port("holdfast-0.holdfast.default.svc:7001"));
        assert!(is_host_port("[::1]:7001"));
        assert!(!is_host_port("a:1; script-src *"));
        assert!(!is_host_port(""));
        assert!(!is_host_port("a\r\nb"));
    }

    #[test]
    fn every_page_names_only_assets_that_exist() {
        for html in [INDEX_HTML, EVENT_HTML, NOT_FOUND_HTML] {
            for (position, _) in html.match_indices("/ui/assets/") {
                let rest = &html[position + "/ui/assets/".len()..];
                let name = &rest[..rest.find('"').expect("quoted asset")];
                assert!(
                    ASSETS.iter().any(|asset| asset.name == name),
                    "{name} is not embedded"
                );
            }
            assert!(!html.contains("style="), "inline styles break the policy");
            assert!(
                !html.contains("<script>"),
                "inline scripts break the policy"
            );
        }
    }
}
