//! A site's extra headers and basic-auth credentials for its own origin only: the answers to the
//! DevTools `Fetch` events of a page (every request paused, headers added only when the request's
//! origin — scheme, host, port — is the site's; auth challenges answered with the credentials only
//! when the site's origin asks). A third-party image, script, stylesheet or redirect target sees
//! none of them. Pure functions of the event parameters; the page's DevTools connection sends them.

use std::collections::HashSet;
use std::sync::Mutex;

use serde_json::{json, Value};
use url::{Origin, Url};

/// Most request ids remembered as answered with the credentials. Past it the set is emptied: a
/// request then gets at most one more attempt with credentials its origin already refused.
const MAX_ANSWERED: usize = 4096;

/// What a site sends, and to whom: its origin, extra headers and basic-auth credentials.
pub struct SiteRequests {
    origin: Origin,
    headers: Vec<(String, String)>,
    credentials: Option<(String, String)>,
    /// Requests already answered with the credentials: a second challenge on one means they were
    /// refused, and is cancelled rather than answered again (a loop otherwise).
    answered: Mutex<HashSet<String>>,
}

impl std::fmt::Debug for SiteRequests {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SiteRequests")
            .field("origin", &self.origin.ascii_serialization())
            .field("headers", &self.headers.iter().map(|(k, _)| k).collect::<Vec<_>>())
            .field("user", &self.credentials.as_ref().map(|(u, _)| u))
            .finish_non_exhaustive()
    }
}

impl SiteRequests {
    /// `headers` and `credentials` (user, password) for requests to `origin` only.
    pub fn new(
        origin: Origin,
        headers: Vec<(String, String)>,
        credentials: Option<(String, String)>,
    ) -> SiteRequests {
        SiteRequests { origin, headers, credentials, answered: Mutex::new(HashSet::new()) }
    }

    /// The `Fetch.enable` parameters: every request paused at its request stage (a subresource or
    /// a redirect to any origin has to be seen to be kept clean), auth challenges handled when
    /// there are credentials (else the browser's default: no credentials).
    pub fn enable_params(&self) -> Value {
        json!({
            "patterns": [{ "urlPattern": "*", "requestStage": "Request" }],
            "handleAuthRequests": self.credentials.is_some(),
        })
    }

    /// Whether `url` is on the site's origin.
    fn owns(&self, url: &str) -> bool {
        Url::parse(url).is_ok_and(|u| u.origin() == self.origin)
    }

    /// The `Fetch.continueRequest` parameters for a `Fetch.requestPaused` event: the site's headers
    /// added on its own origin; elsewhere the request goes on as the page made it, less any of the
    /// site's headers a redirect from the site carried over.
    pub fn continue_request(&self, params: &Value) -> Value {
        let id = request_id(params);
        let url = params.pointer("/request/url").and_then(Value::as_str).unwrap_or_default();
        let sent: Vec<(&str, &str)> = params
            .pointer("/request/headers")
            .and_then(Value::as_object)
            .map(|h| h.iter().filter_map(|(k, v)| Some((k.as_str(), v.as_str()?))).collect())
            .unwrap_or_default();
        let ours = |name: &str| self.headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name));
        let headers: Vec<(&str, &str)> = if self.owns(url) {
            let kept = sent.into_iter().filter(|(k, _)| !ours(k));
            kept.chain(self.headers.iter().map(|(k, v)| (k.as_str(), v.as_str()))).collect()
        } else {
            let is_ours =
                |(k, v): &(&str, &str)| self.headers.iter().any(|(n, w)| n.eq_ignore_ascii_case(k) && w == v);
            if !sent.iter().any(is_ours) {
                return json!({ "requestId": id });
            }
            sent.into_iter().filter(|h| !is_ours(h)).collect()
        };
        let headers: Vec<Value> =
            headers.into_iter().map(|(name, value)| json!({ "name": name, "value": value })).collect();
        json!({ "requestId": id, "headers": headers })
    }

    /// The `Fetch.continueWithAuth` parameters for a `Fetch.authRequired` event: the credentials
    /// for the first challenge of a request to the site's origin by that origin; a proxy's
    /// challenge is left to the browser; anything else is cancelled (the page shows the 401).
    pub fn continue_with_auth(&self, params: &Value) -> Value {
        let id = request_id(params);
        if params.pointer("/authChallenge/source").and_then(Value::as_str) == Some("Proxy") {
            return auth_answer(id, json!({ "response": "Default" }));
        }
        let url = params.pointer("/request/url").and_then(Value::as_str).unwrap_or_default();
        let challenger = params.pointer("/authChallenge/origin").and_then(Value::as_str).unwrap_or_default();
        match &self.credentials {
            Some((user, password)) if self.owns(url) && self.owns(challenger) && self.first_answer(id) => {
                auth_answer(
                    id,
                    json!({ "response": "ProvideCredentials", "username": user, "password": password }),
                )
            }
            _ => auth_answer(id, json!({ "response": "CancelAuth" })),
        }
    }

    /// Whether request `id` is answered with the credentials for the first time.
    fn first_answer(&self, id: &str) -> bool {
        let mut answered = super::lock(&self.answered);
        if answered.len() >= MAX_ANSWERED {
            answered.clear();
        }
        answered.insert(id.to_string())
    }
}

/// `Fetch.continueRequest` parameters for a request paused with no site set (a race with turning
/// interception off): the request goes on unchanged.
pub fn continue_unchanged(params: &Value) -> Value {
    json!({ "requestId": request_id(params) })
}

/// `Fetch.continueWithAuth` parameters for a challenge with no site set: the browser's default.
pub fn default_auth(params: &Value) -> Value {
    auth_answer(request_id(params), json!({ "response": "Default" }))
}

fn request_id(params: &Value) -> &str {
    params.get("requestId").and_then(Value::as_str).unwrap_or_default()
}

fn auth_answer(id: &str, response: Value) -> Value {
    json!({ "requestId": id, "authChallengeResponse": response })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site() -> SiteRequests {
        let origin = Url::parse("http://127.0.0.1:8000/docs/").unwrap().origin();
        SiteRequests::new(
            origin,
            vec![("X-Env".into(), "staging".into())],
            Some(("me".into(), "s3cret".into())),
        )
    }

    fn paused(url: &str, headers: Value) -> Value {
        json!({ "requestId": "r1", "request": { "url": url, "method": "GET", "headers": headers } })
    }

    fn names(v: &Value) -> Vec<(String, String)> {
        v["headers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| (h["name"].as_str().unwrap().to_string(), h["value"].as_str().unwrap().to_string()))
            .collect()
    }

    #[test]
    fn headers_are_added_on_the_sites_origin_only() {
        let s = site();
        let own = s.continue_request(&paused("http://127.0.0.1:8000/img/a.png", json!({"Accept": "*/*"})));
        assert_eq!(own["requestId"], "r1");
        assert_eq!(
            names(&own),
            [("Accept".into(), "*/*".into()), ("X-Env".into(), "staging".into())],
            "the page's headers are kept"
        );
        // The page's own value of the header is replaced, not doubled.
        let own = s.continue_request(&paused("http://127.0.0.1:8000/", json!({"x-env": "prod"})));
        assert_eq!(names(&own), [("X-Env".into(), "staging".into())]);
        for other in [
            "http://127.0.0.1:8001/docs/a.png",
            "https://127.0.0.1:8000/docs/",
            "http://localhost:8000/docs/",
            "http://evil.example/?u=http://127.0.0.1:8000/",
            "data:image/png;base64,AA==",
            "not a url",
        ] {
            let v = s.continue_request(&paused(other, json!({"Accept": "*/*"})));
            assert_eq!(v, json!({"requestId": "r1"}), "{other}");
        }
    }

    #[test]
    fn a_header_carried_over_by_a_redirect_is_stripped_off_the_site() {
        let s = site();
        let v = s.continue_request(&paused(
            "http://third.example/p.png",
            json!({"X-Env": "staging", "Accept": "*/*", "X-Other": "staging"}),
        ));
        assert_eq!(names(&v), [("Accept".into(), "*/*".into()), ("X-Other".into(), "staging".into())]);
        // The same name with the page's own value is the page's business.
        let v = s.continue_request(&paused("http://third.example/", json!({"X-Env": "theirs"})));
        assert_eq!(v, json!({"requestId": "r1"}));
    }

    fn challenge(url: &str, origin: &str, source: &str, id: &str) -> Value {
        json!({
            "requestId": id,
            "request": { "url": url, "method": "GET", "headers": {} },
            "authChallenge": { "source": source, "origin": origin, "scheme": "basic", "realm": "r" },
        })
    }

    #[test]
    fn credentials_answer_the_sites_first_challenge_only() {
        let s = site();
        let own = "http://127.0.0.1:8000";
        let v = s.continue_with_auth(&challenge("http://127.0.0.1:8000/docs/", own, "Server", "a"));
        assert_eq!(
            v["authChallengeResponse"],
            json!({"response": "ProvideCredentials", "username": "me", "password": "s3cret"})
        );
        let again = s.continue_with_auth(&challenge("http://127.0.0.1:8000/docs/", own, "Server", "a"));
        assert_eq!(again["authChallengeResponse"]["response"], "CancelAuth", "refused credentials: no loop");
        let third = "http://127.0.0.1:9000";
        let v = s.continue_with_auth(&challenge("http://127.0.0.1:9000/x.png", third, "Server", "b"));
        assert_eq!(v["authChallengeResponse"], json!({"response": "CancelAuth"}));
        let v = s.continue_with_auth(&challenge("http://127.0.0.1:8000/docs/", third, "Server", "c"));
        assert_eq!(v["authChallengeResponse"]["response"], "CancelAuth", "the challenger is not the site");
        let v = s.continue_with_auth(&challenge(
            "http://127.0.0.1:8000/docs/",
            "http://proxy:3128",
            "Proxy",
            "d",
        ));
        assert_eq!(v["authChallengeResponse"]["response"], "Default");
        let no_auth = SiteRequests::new(Url::parse(own).unwrap().origin(), vec![], None);
        assert_eq!(no_auth.enable_params()["handleAuthRequests"], false);
        let v = no_auth.continue_with_auth(&challenge("http://127.0.0.1:8000/", own, "Server", "e"));
        assert_eq!(v["authChallengeResponse"]["response"], "CancelAuth");
        assert!(!format!("{s:?}").contains("s3cret"), "{s:?}");
    }

    #[test]
    fn without_a_site_requests_go_on_unchanged() {
        let p = paused("http://a/", json!({}));
        assert_eq!(continue_unchanged(&p), json!({"requestId": "r1"}));
        let c = challenge("http://a/", "http://a", "Server", "z");
        assert_eq!(
            default_auth(&c),
            json!({"requestId": "z", "authChallengeResponse": {"response": "Default"}})
        );
    }
}
