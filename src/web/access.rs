//! Who may write, decided once at start-up, failing closed: a configured `server.token_env`
//! whose variable is unset or empty stops `serve`; without `token_env`, writes are open only when
//! `server.allow_anonymous_writes = true` says so explicitly. A leaf: it uses nothing else of `web`.

use std::net::SocketAddr;

use crate::config::ServerConfig;

/// How writes (approve, reject, crawl now, uploads) are protected.
#[derive(Clone, PartialEq, Eq)]
pub enum WriteAccess {
    /// Every write needs this token.
    Token(String),
    /// Anyone who reaches the listener may write (`allow_anonymous_writes = true`).
    Anonymous {
        /// The listener is not on a loopback address: anyone on the network may write.
        exposed: bool,
    },
}

impl std::fmt::Debug for WriteAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WriteAccess::Token(_) => f.write_str("Token(<redacted>)"),
            WriteAccess::Anonymous { exposed } => {
                f.debug_struct("Anonymous").field("exposed", exposed).finish()
            }
        }
    }
}

/// Why `serve` refuses to start.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error(
        "server.token_env names the environment variable {var}, but it is unset or empty, and sitediff \
         does not serve with writes open by accident. Set it to a secret (e.g. `export {var}=$(openssl rand -hex 32)`), \
         or remove server.token_env and set server.allow_anonymous_writes = true to let anyone who can \
         reach {listen} approve, reject, crawl and upload"
    )]
    TokenUnset { var: String, listen: SocketAddr },
    #[error(
        "{}: set server.token_env to the name of an environment variable holding a secret token (writes \
         then need `Authorization: Bearer <token>`; the review UI asks for it once), or set \
         server.allow_anonymous_writes = true to let anyone who can reach {listen} approve, reject, crawl and upload",
        if *exposed {
            format!("refusing to listen on {listen}, which is not a loopback address, with writes open to everyone")
        } else {
            "writes are not protected".to_string()
        }
    )]
    Unprotected { listen: SocketAddr, exposed: bool },
}

impl WriteAccess {
    /// The write access `server` asks for, its token read from the environment.
    pub fn from_config(server: &ServerConfig) -> Result<WriteAccess, AccessError> {
        let value = server.token_env.as_deref().and_then(|v| std::env::var(v).ok());
        WriteAccess::decide(server, value)
    }

    /// The write access `server` asks for, given the value of its `token_env` variable.
    pub fn decide(server: &ServerConfig, token_value: Option<String>) -> Result<WriteAccess, AccessError> {
        let listen = server.listen;
        let exposed = !listen.ip().is_loopback();
        match &server.token_env {
            Some(var) => match token_value.filter(|t| !t.trim().is_empty()) {
                Some(t) => Ok(WriteAccess::Token(t)),
                None => Err(AccessError::TokenUnset { var: var.clone(), listen }),
            },
            None if server.allow_anonymous_writes => Ok(WriteAccess::Anonymous { exposed }),
            None => Err(AccessError::Unprotected { listen, exposed }),
        }
    }

    /// The write token, if writes need one.
    pub fn token(&self) -> Option<String> {
        match self {
            WriteAccess::Token(t) => Some(t.clone()),
            WriteAccess::Anonymous { .. } => None,
        }
    }

    /// Say how writes are protected (loudly when they are open to a network).
    pub fn log(&self, listen: SocketAddr) {
        match self {
            WriteAccess::Token(_) => tracing::info!("writes need the token (server.token_env)"),
            WriteAccess::Anonymous { exposed: true } => tracing::warn!(
                %listen,
                "WRITES ARE OPEN TO EVERYONE who can reach {listen} (server.allow_anonymous_writes = true on a \
                 non-loopback address): anyone may approve, reject, crawl and upload. Set server.token_env instead."
            ),
            WriteAccess::Anonymous { exposed: false } => tracing::warn!(
                %listen,
                "writes are open to every local user and program (server.allow_anonymous_writes = true)"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn server(text: &str) -> ServerConfig {
        let text = format!("{text}\n[[sites]]\nname = \"a\"\nstart = \"http://127.0.0.1:1/\"\n");
        Config::parse(&text, std::path::Path::new("/tmp/x/sitediff.toml")).unwrap().server
    }

    #[test]
    fn fails_closed() {
        let with_var = server("[server]\ntoken_env = \"SITEDIFF_T\"");
        assert_eq!(
            WriteAccess::decide(&with_var, Some("s3cret".into())).unwrap(),
            WriteAccess::Token("s3cret".into())
        );
        for missing in [None, Some(String::new()), Some("  ".into())] {
            let e = WriteAccess::decide(&with_var, missing).unwrap_err().to_string();
            assert!(e.contains("SITEDIFF_T") && e.contains("unset or empty"), "{e}");
        }
        let e = WriteAccess::decide(&server(""), None).unwrap_err().to_string();
        assert!(e.starts_with("writes are not protected"), "{e}");
        assert!(e.contains("server.token_env") && e.contains("server.allow_anonymous_writes = true"), "{e}");
        let open = server("[server]\nallow_anonymous_writes = true");
        assert_eq!(WriteAccess::decide(&open, None).unwrap(), WriteAccess::Anonymous { exposed: false });
        assert_eq!(WriteAccess::decide(&open, None).unwrap().token(), None);
    }

    #[test]
    fn a_network_listener_with_open_writes_needs_the_explicit_key() {
        let e = WriteAccess::decide(&server("[server]\nlisten = \"0.0.0.0:8080\""), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("refusing to listen on 0.0.0.0:8080"), "{e}");
        assert!(e.contains("server.allow_anonymous_writes = true"), "{e}");
        let open = server("[server]\nlisten = \"[::]:8080\"\nallow_anonymous_writes = true");
        assert_eq!(WriteAccess::decide(&open, None).unwrap(), WriteAccess::Anonymous { exposed: true });
        let loopback6 = server("[server]\nlisten = \"[::1]:8080\"\nallow_anonymous_writes = true");
        assert_eq!(WriteAccess::decide(&loopback6, None).unwrap(), WriteAccess::Anonymous { exposed: false });
    }

    #[test]
    fn the_token_never_shows_in_debug_output() {
        assert_eq!(format!("{:?}", WriteAccess::Token("s3cret".into())), "Token(<redacted>)");
    }
}
