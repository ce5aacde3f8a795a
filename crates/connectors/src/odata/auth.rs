//! Signing in to an OData service: a fixed header (basic, bearer), or an
//! OAuth2 access token from the client-credentials grant, fetched on first
//! use and renewed a minute before it expires. Secrets never reach a message.

use crate::{ConnectorError, ErrorKind};
use base64::Engine;
use dualsync_model::config::odata::ODataAuth;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A token is renewed this long before the service would refuse it.
const RENEW_AHEAD: Duration = Duration::from_secs(60);

pub enum SignIn {
    Anonymous,
    Fixed(String),
    ClientCredentials {
        token_url: String,
        client_id: String,
        secret: String,
        scope: Option<String>,
        token: Mutex<Option<(String, Instant)>>,
    },
}

impl SignIn {
    pub fn new(auth: &ODataAuth, secret: Option<&str>) -> Result<SignIn, ConnectorError> {
        let secret = || {
            secret.map(str::to_string).ok_or_else(|| {
                ConnectorError::new(ErrorKind::Unavailable, "the OData app's secret is not set: export the variable its *_env names")
            })
        };
        Ok(match auth {
            ODataAuth::None => SignIn::Anonymous,
            ODataAuth::Basic { user } => {
                SignIn::Fixed(format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{}", secret()?))))
            }
            ODataAuth::Bearer => SignIn::Fixed(format!("Bearer {}", secret()?.trim())),
            ODataAuth::OAuth2 { token_url, client_id, scope } => SignIn::ClientCredentials {
                token_url: token_url.clone(),
                client_id: client_id.clone(),
                secret: secret()?,
                scope: scope.clone(),
                token: Mutex::new(None),
            },
        })
    }

    /// Whether a refused sign-in may succeed with a new token.
    pub fn renews(&self) -> bool {
        matches!(self, SignIn::ClientCredentials { .. })
    }

    pub fn forget(&self) {
        if let SignIn::ClientCredentials { token, .. } = self {
            *token.lock().unwrap_or_else(|p| p.into_inner()) = None;
        }
    }

    /// The `Authorization` header's value, if any.
    pub fn header(&self, agent: &ureq::Agent) -> Result<Option<String>, ConnectorError> {
        match self {
            SignIn::Anonymous => Ok(None),
            SignIn::Fixed(h) => Ok(Some(h.clone())),
            SignIn::ClientCredentials { token_url, client_id, secret, scope, token } => {
                let mut token = token.lock().unwrap_or_else(|p| p.into_inner());
                if let Some((t, until)) = token.as_ref() {
                    if Instant::now() + RENEW_AHEAD < *until {
                        return Ok(Some(format!("Bearer {t}")));
                    }
                }
                let (t, lasts) = fetch_token(agent, token_url, client_id, secret, scope.as_deref())?;
                *token = Some((t.clone(), Instant::now() + lasts));
                Ok(Some(format!("Bearer {t}")))
            }
        }
    }
}

fn fetch_token(
    agent: &ureq::Agent,
    url: &str,
    client_id: &str,
    secret: &str,
    scope: Option<&str>,
) -> Result<(String, Duration), ConnectorError> {
    let form = |s: &str| super::http::encode(s).replace("%20", "+");
    let mut body = format!("grant_type=client_credentials&client_id={}&client_secret={}", form(client_id), form(secret));
    if let Some(scope) = scope {
        body.push_str(&format!("&scope={}", form(scope)));
    }
    let failed = |why: String| {
        ConnectorError::new(
            ErrorKind::Unavailable,
            format!("signing in at {url} as client {client_id:?} (OAuth2 client credentials) failed: {why}"),
        )
    };
    let mut last = String::new();
    for attempt in 0..4 {
        if attempt > 0 {
            std::thread::sleep(Duration::from_millis(300 << attempt));
        }
        let sent = agent
            .post(url)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .header("Accept", "application/json")
            .send(body.as_bytes());
        let mut response = match sent {
            Ok(r) => r,
            Err(e) => {
                last = e.to_string();
                continue;
            }
        };
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap_or_default();
        if status == 429 || status >= 500 {
            last = format!("HTTP {status}");
            continue;
        }
        let json: serde_json::Value = serde_json::from_str(&text).map_err(|_| failed(format!("HTTP {status}, not a JSON answer")))?;
        if !(200..300).contains(&status) {
            // The token service's own words (`invalid_client`, …): they never hold the secret.
            let error = json["error"].as_str().unwrap_or("refused");
            let said = json["error_description"].as_str().unwrap_or("");
            return Err(ConnectorError::new(
                ErrorKind::Database,
                format!(
                    "signing in at {url} as client {client_id:?} was refused (HTTP {status}: {error} {said}); check client_id, the client \
                     secret (client_secret_env or client_secret_file) and scope"
                ),
            ));
        }
        let Some(token) = json["access_token"].as_str() else {
            return Err(failed("the answer holds no access_token".into()));
        };
        let lasts = json["expires_in"].as_u64().or_else(|| json["expires_in"].as_str().and_then(|s| s.parse().ok())).unwrap_or(300);
        return Ok((token.to_string(), Duration::from_secs(lasts)));
    }
    Err(failed(last))
}
