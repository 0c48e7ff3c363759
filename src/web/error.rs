//! Request-level errors of the web server and the HTTP status each one maps to.

use warp::http::StatusCode;

use crate::store::StoreError;

/// Why a request failed. API requests render these as `{"error": "..."}`, UI requests as a page.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("not found: {what}")]
    NotFound { what: String },
    #[error("bad request: {reason}")]
    BadRequest { reason: String },
    #[error("this write needs the token: send `Authorization: Bearer <token>`")]
    Unauthorized,
    #[error("forbidden: {reason}")]
    Forbidden { reason: String },
    #[error("method {method} is not allowed on {path}")]
    MethodNotAllowed { method: String, path: String },
    #[error("request body larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("{reason}")]
    Conflict { reason: String },
    #[error("service unavailable: {reason}")]
    Unavailable { reason: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("internal error while {op}: {reason}")]
    Internal { op: &'static str, reason: String },
}

impl RequestError {
    pub fn not_found(what: impl Into<String>) -> RequestError {
        RequestError::NotFound { what: what.into() }
    }

    pub fn bad_request(reason: impl Into<String>) -> RequestError {
        RequestError::BadRequest { reason: reason.into() }
    }

    pub fn forbidden(reason: impl Into<String>) -> RequestError {
        RequestError::Forbidden { reason: reason.into() }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            RequestError::NotFound { .. } => StatusCode::NOT_FOUND,
            RequestError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            RequestError::Unauthorized => StatusCode::UNAUTHORIZED,
            RequestError::Forbidden { .. } => StatusCode::FORBIDDEN,
            RequestError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            RequestError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            RequestError::Conflict { .. } => StatusCode::CONFLICT,
            RequestError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            RequestError::Store(e) => match e {
                StoreError::NoSuchCrawl { .. }
                | StoreError::NoSuchPage { .. }
                | StoreError::NoCrawls { .. } => StatusCode::NOT_FOUND,
                StoreError::BadTransition { .. } => StatusCode::CONFLICT,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            },
            RequestError::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The message shown to the client (server-side details of internal errors are logged instead).
    pub fn public_message(&self) -> String {
        if self.status().is_server_error() && !matches!(self, RequestError::Unavailable { .. }) {
            tracing::error!(error = %self, "request failed");
            "internal server error (see the daemon log)".to_string()
        } else {
            self.to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        assert_eq!(RequestError::not_found("x").status(), StatusCode::NOT_FOUND);
        assert_eq!(RequestError::Unauthorized.status(), StatusCode::UNAUTHORIZED);
        let bad = StoreError::BadTransition {
            id: 1,
            status: crate::store::CrawlStatus::Running,
            action: "approved",
        };
        assert_eq!(RequestError::from(bad).status(), StatusCode::CONFLICT);
        assert_eq!(RequestError::from(StoreError::NoSuchCrawl { id: 3 }).status(), StatusCode::NOT_FOUND);
        let internal = RequestError::Internal { op: "x", reason: "secret detail".into() };
        assert!(!internal.public_message().contains("secret"));
    }
}
