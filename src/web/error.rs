//! Request-level errors of the web server and the HTTP status each one maps to. Causes stay
//! attached as sources: clients see the chain of a client error, server errors are logged with
//! theirs and shown as a generic message.

use std::error::Error as StdError;
use std::sync::Arc;

use warp::http::StatusCode;

use crate::rescore::RescoreError;
use crate::review::{ReviewError, ReviewErrorKind};
use crate::store::StoreError;
use crate::upload::UploadError;

/// Why a request failed. API requests render these as `{"error": "..."}`, UI requests as a page.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("not found: {what}")]
    NotFound { what: String },
    #[error("bad request: {reason}")]
    BadRequest { reason: String },
    #[error("bad request: cannot read the body")]
    Body {
        #[source]
        source: Arc<warp::Error>,
    },
    #[error("bad request: send multipart/form-data (one PNG per part)")]
    NotMultipart {
        #[source]
        source: multer::Error,
    },
    #[error("bad request: not a readable multipart body")]
    Multipart {
        #[source]
        source: multer::Error,
    },
    #[error("bad request: cannot read the part {part}")]
    MultipartPart {
        part: String,
        #[source]
        source: multer::Error,
    },
    #[error("this write needs the token: send `Authorization: Bearer <token>`")]
    Unauthorized,
    #[error("forbidden: {reason}")]
    Forbidden { reason: String },
    #[error("method {method} is not allowed on {path}")]
    MethodNotAllowed { method: String, path: String },
    #[error("request body larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("request body too large: the part {part} is larger than {limit} bytes")]
    PartTooLarge { part: String, limit: usize },
    #[error("request body not received within {} s", after.as_secs_f64())]
    BodyTimeout { after: std::time::Duration },
    #[error("too many wrong tokens from your address: try again in {retry_after} s")]
    TooManyAttempts { retry_after: u64 },
    #[error(transparent)]
    Review(#[from] ReviewError),
    #[error(transparent)]
    Upload(#[from] UploadError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Rescore(#[from] RescoreError),
    #[error("internal error while {op}")]
    Internal {
        op: &'static str,
        #[source]
        source: Box<dyn StdError + Send + Sync>,
    },
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

    pub fn internal(op: &'static str, source: impl Into<Box<dyn StdError + Send + Sync>>) -> RequestError {
        RequestError::Internal { op, source: source.into() }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            RequestError::NotFound { .. } => StatusCode::NOT_FOUND,
            RequestError::BadRequest { .. }
            | RequestError::Body { .. }
            | RequestError::NotMultipart { .. }
            | RequestError::Multipart { .. }
            | RequestError::MultipartPart { .. } => StatusCode::BAD_REQUEST,
            RequestError::Unauthorized => StatusCode::UNAUTHORIZED,
            RequestError::Forbidden { .. } => StatusCode::FORBIDDEN,
            RequestError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            RequestError::PayloadTooLarge { .. } | RequestError::PartTooLarge { .. } => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            RequestError::BodyTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            RequestError::TooManyAttempts { .. } => StatusCode::TOO_MANY_REQUESTS,
            RequestError::Review(e) => match e.kind() {
                ReviewErrorKind::NotFound => StatusCode::NOT_FOUND,
                ReviewErrorKind::Conflict => StatusCode::CONFLICT,
                ReviewErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
                ReviewErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            },
            RequestError::Upload(e) if e.is_client_error() => StatusCode::BAD_REQUEST,
            RequestError::Upload(_) => StatusCode::INTERNAL_SERVER_ERROR,
            RequestError::Store(e) => match e {
                StoreError::NoSuchCrawl { .. }
                | StoreError::NoSuchPage { .. }
                | StoreError::NoCrawls { .. } => StatusCode::NOT_FOUND,
                StoreError::BadTransition { .. }
                | StoreError::OlderThanApproved { .. }
                | StoreError::OlderThanBaseline { .. } => StatusCode::CONFLICT,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            },
            RequestError::Rescore(e) => match e {
                RescoreError::NoSuchCrawl { .. } => StatusCode::NOT_FOUND,
                RescoreError::OtherSite { .. }
                | RescoreError::NotFinished { .. }
                | RescoreError::Pair { .. } => StatusCode::CONFLICT,
                RescoreError::Store { .. } => StatusCode::INTERNAL_SERVER_ERROR,
            },
            RequestError::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The message shown to the client: the error and its causes for client errors (and 503); for
    /// other server errors a generic text, the details (with every cause) go to the log instead.
    pub fn public_message(&self) -> String {
        let status = self.status();
        if status.is_server_error() && status != StatusCode::SERVICE_UNAVAILABLE {
            tracing::error!(error = %chain(self), "request failed");
            "internal server error (see the daemon log)".to_string()
        } else {
            chain(self)
        }
    }
}

pub use crate::errors::chain;

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
        let busy = ReviewError::AlreadyRunning { site: "docs".into() };
        assert_eq!(RequestError::from(busy).status(), StatusCode::CONFLICT);
    }

    #[test]
    fn client_errors_show_their_cause_server_errors_do_not() {
        let e = RequestError::from(ReviewError::Verdict {
            crawl: 7,
            verdict: crate::review::Verdict::Approve,
            source: StoreError::NoSuchCrawl { id: 7 },
        });
        assert_eq!(e.status(), StatusCode::NOT_FOUND);
        assert_eq!(e.public_message(), "cannot approve crawl 7: no crawl with id 7");
        let io = std::io::Error::other("secret detail");
        let internal = RequestError::internal("doing x", io);
        assert_eq!(internal.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!internal.public_message().contains("secret"));
        assert_eq!(chain(&internal), "internal error while doing x: secret detail");
    }

    #[test]
    fn chain_skips_causes_already_in_the_message() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer: {source}")]
        struct Outer {
            #[source]
            source: std::io::Error,
        }
        let e = Outer { source: std::io::Error::other("disk full") };
        assert_eq!(chain(&e), "outer: disk full");
    }
}
