//! The identity platform's HTML: the sign-in and consent page, the error page, and the
//! `response_mode=form_post` page. Self-contained (inline CSS, no external assets); every
//! interpolated text is HTML-escaped.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};

use super::errors::AadError;
use super::html_escape as esc;

const STYLE: &str = "body{font-family:'Segoe UI',Helvetica,Arial,sans-serif;background:#f2f2f2;\
margin:0;color:#1b1b1b}main{max-width:460px;margin:48px auto;background:#fff;padding:40px 44px;\
box-shadow:0 2px 6px rgba(0,0,0,.2)}.brand{font-weight:600;color:#737373;margin-bottom:16px}\
h1{font-size:24px;font-weight:600;margin:0 0 16px}ul{padding-left:20px}label{display:block;\
margin:16px 0 4px}select{width:100%;padding:6px}.buttons{margin-top:24px;text-align:right}\
button{padding:6px 24px;margin-left:8px;border:1px solid #8c8c8c;background:#ccc;cursor:pointer}\
#accept{background:#0067b8;color:#fff;border-color:#0067b8}.note{color:#605e5c;font-size:13px}\
.error{color:#a80000}dt{font-weight:600;font-size:13px}dd{margin:0 0 8px;font-size:13px}";

/// One entry of the account list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct UserOption {
    /// Posted back as `user`.
    pub value: String,
    /// Shown.
    pub label: String,
    /// Preselected (the `login_hint`).
    pub selected: bool,
}

/// What the sign-in and consent page shows.
#[derive(Debug, Clone)]
pub(super) struct ConsentView<'a> {
    /// Where the form posts.
    pub action: &'a str,
    /// The pending request's opaque id.
    pub request_id: &'a str,
    /// The app's display name.
    pub app_name: &'a str,
    /// The app's client id.
    pub client_id: &'a str,
    /// The tenant's name, or "any organization" for `common`.
    pub tenant_label: &'a str,
    /// Only an administrator may accept.
    pub admin_only: bool,
    /// The permissions accepting grants.
    pub permissions: Vec<String>,
    /// Accounts to choose from.
    pub users: Vec<UserOption>,
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><style>{STYLE}</style></head>\n<body><main>\n\
         <div class=\"brand\">Microsoft (emulated)</div>\n{body}</main></body></html>\n",
        esc(title)
    )
}

/// The sign-in and consent page.
pub(super) fn consent(v: &ConsentView<'_>) -> String {
    let mut body = String::new();
    body.push_str(&format!(
        "<h1>Permissions requested</h1>\n<p><strong id=\"app\">{}</strong> \
         <span class=\"note\">({})</span> wants to sign you in to <strong id=\"tenant\">{}</strong>",
        esc(v.app_name),
        esc(v.client_id),
        esc(v.tenant_label)
    ));
    if v.permissions.is_empty() {
        body.push_str(".</p>\n");
    } else {
        body.push_str(" and to:</p>\n<ul id=\"permissions\">\n");
        for p in &v.permissions {
            body.push_str(&format!("<li>{}</li>\n", esc(p)));
        }
        body.push_str("</ul>\n");
    }
    if v.admin_only {
        body.push_str(
            "<p class=\"note\" id=\"admin-only\">This app requires an administrator's consent \
             for your whole organization. Only an administrator can accept.</p>\n",
        );
    }
    body.push_str(&format!(
        "<form method=\"post\" action=\"{}\">\n\
         <input type=\"hidden\" name=\"request\" value=\"{}\">\n\
         <label for=\"user\">Sign in as</label>\n<select name=\"user\" id=\"user\">\n",
        esc(v.action),
        esc(v.request_id)
    ));
    for u in &v.users {
        body.push_str(&format!(
            "<option value=\"{}\"{}>{}</option>\n",
            esc(&u.value),
            if u.selected { " selected" } else { "" },
            esc(&u.label)
        ));
    }
    body.push_str(
        "</select>\n<div class=\"buttons\">\
         <button type=\"submit\" name=\"decision\" value=\"deny\" id=\"deny\">Cancel</button>\
         <button type=\"submit\" name=\"decision\" value=\"accept\" id=\"accept\">Accept</button>\
         </div>\n</form>\n",
    );
    page("Sign in to your account", &body)
}

/// The page Entra shows when it cannot send the browser back to the app (unknown app, redirect
/// URI not registered, unknown tenant…).
pub(super) fn error(e: &AadError, now: DateTime<Utc>) -> String {
    let body = format!(
        "<h1>Sign in</h1>\n<p>Sorry, but we\u{2019}re having trouble signing you in.</p>\n\
         <p class=\"error\" id=\"error\">{}</p>\n<dl>\
         <dt>Request Id</dt><dd>{}</dd><dt>Correlation Id</dt><dd>{}</dd>\
         <dt>Timestamp</dt><dd>{}</dd></dl>\n",
        esc(&e.headline()),
        uuid::Uuid::new_v4(),
        uuid::Uuid::new_v4(),
        now.format("%Y-%m-%dT%H:%M:%SZ")
    );
    page("Sign in to your account", &body)
}

/// `response_mode=form_post`: a page that posts the answer to the app.
pub(super) fn form_post(action: &str, params: &[(&str, String)]) -> String {
    let mut body = format!(
        "<form method=\"post\" action=\"{}\" id=\"response\">\n",
        esc(action)
    );
    for (k, v) in params {
        body.push_str(&format!(
            "<input type=\"hidden\" name=\"{}\" value=\"{}\">\n",
            esc(k),
            esc(v)
        ));
    }
    body.push_str(
        "<noscript><button type=\"submit\">Continue</button></noscript>\n</form>\n\
         <script>document.getElementById('response').submit();</script>\n",
    );
    page("Working...", &body)
}

/// An HTML answer that no cache keeps.
pub(super) fn html_response(status: StatusCode, html: String) -> Response {
    let mut r = (status, html).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-store, no-cache"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_consent_page_escapes_everything_it_shows() {
        let html = consent(&ConsentView {
            action: "/login/_decide",
            request_id: "r\"1",
            app_name: "<script>alert(1)</script>",
            client_id: "c",
            tenant_label: "A & B",
            admin_only: true,
            permissions: vec!["x<y".into()],
            users: vec![UserOption {
                value: "t:o".into(),
                label: "Bob \"the admin\"".into(),
                selected: true,
            }],
        });
        assert!(!html.contains("<script>alert"));
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(html.contains("A &amp; B"));
        assert!(html.contains("value=\"r&quot;1\""));
        assert!(html.contains("<option value=\"t:o\" selected>Bob &quot;the admin&quot;</option>"));
        assert!(html.contains("<form method=\"post\" action=\"/login/_decide\">"));
        assert!(html.contains("id=\"accept\">Accept</button>"));
        assert!(html.contains("id=\"deny\">Cancel</button>"));
        assert!(html.contains("x&lt;y"));
    }
}
