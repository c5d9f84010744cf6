//! Framework-free HTTP types, so the Lambda function and a local server serve exactly the same
//! thing: a handler takes a [`WebRequest`] and answers a [`WebResponse`]; the edges translate
//! their own types.

/// An HTTP request as the handlers see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebRequest {
    /// The method, e.g. `GET`.
    pub method: String,
    /// The path, e.g. `/consent/callback` (no query).
    pub path: String,
    /// The raw query string as received (still percent-encoded, without `?`; empty when none).
    pub query: String,
}

impl WebRequest {
    /// A `GET` of `path` with the raw `query`.
    pub fn get(path: impl Into<String>, query: impl Into<String>) -> Self {
        WebRequest {
            method: "GET".into(),
            path: path.into(),
            query: query.into(),
        }
    }
}

/// An HTTP response from a handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebResponse {
    /// Status code.
    pub status: u16,
    /// Headers, in order (names in lowercase).
    pub headers: Vec<(String, String)>,
    /// The body (HTML).
    pub body: String,
}

impl WebResponse {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// `answer` as an [`http::Response`] with any body built from text (axum's for the local
/// server, a `String` the Lambda puts into its API Gateway answer). A header the `http` crate
/// refuses (never produced by the handlers) turns the answer into a bare 500 instead of failing.
pub fn http_response<B: From<String> + Default>(answer: WebResponse) -> http::Response<B> {
    let mut resp = http::Response::new(B::from(answer.body));
    *resp.status_mut() = http::StatusCode::from_u16(answer.status)
        .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    for (name, value) in answer.headers {
        match (
            http::HeaderName::from_bytes(name.as_bytes()),
            http::HeaderValue::from_str(&value),
        ) {
            (Ok(n), Ok(v)) => {
                resp.headers_mut().append(n, v);
            }
            _ => {
                tracing::error!(header = %name, "unrepresentable response header");
                let mut bare = http::Response::new(B::default());
                *bare.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
                return bare;
            }
        }
    }
    resp
}

/// Escapes `s` for HTML text and attribute values.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_html_makes_markup_inert() {
        assert_eq!(
            escape_html(r#"<script>alert("x&y")</script>'"#),
            "&lt;script&gt;alert(&quot;x&amp;y&quot;)&lt;/script&gt;&#39;"
        );
        assert_eq!(escape_html("plain text"), "plain text");
    }

    #[test]
    fn header_lookup_ignores_case() {
        let r = WebResponse {
            status: 200,
            headers: vec![("content-type".into(), "text/html".into())],
            body: String::new(),
        };
        assert_eq!(r.header("Content-Type"), Some("text/html"));
        assert_eq!(r.header("location"), None);
    }
}
