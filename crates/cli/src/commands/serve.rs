//! `dualsync serve` (live sync plus the HTTP service) and `dualsync token`.

use crate::cli::{Cli, LogFormat, ServeArgs, TokenCommand};
use crate::exit::{usage, CliError, CliResult, OK};
use crate::output::{is_json, print_json, Table};
use dualsync_model::Config;
use dualsync_serve::auth::{create_token, Role};
use dualsync_serve::{ServeError, ServeOptions};
use dualsync_state::StateStore;
use serde_json::json;
use std::time::Duration;

pub fn serve(config: &Config, args: &ServeArgs) -> CliResult {
    dualsync_serve::init_logs(args.log_format == LogFormat::Json);
    super::live::stop_on_signals();
    let options = ServeOptions {
        listen: args.listen,
        insecure_listen: args.insecure_listen,
        tls: args.tls_cert.clone().zip(args.tls_key.clone()).map(|(cert, key)| dualsync_serve::tls::TlsFiles { cert, key }),
        poll: Duration::from_millis(args.live.poll_ms),
        batch: args.live.batch,
        auth_failures_per_minute: args.auth_failures_per_minute,
        history_every: Duration::from_secs(args.history_every_seconds),
    };
    let listening = |at, scheme: &str| println!("listening on {scheme}://{at} (the API under /api/v1); stop with Ctrl-C or SIGTERM");
    match dualsync_serve::serve(config.clone(), &options, &super::live::STOP, listening) {
        Ok(()) => Ok(OK),
        Err(ServeError::Engine(e)) => Err(e.into()),
        Err(e @ (ServeError::NeedsTls(_) | ServeError::Tls(_))) => Err(usage(e.to_string())),
        Err(e) => Err(anyhow::Error::from(e).into()),
    }
}

pub fn token(cli: &Cli, config: &Config, command: &TokenCommand) -> CliResult {
    let store = StateStore::open(&config.state)?;
    let actor = format!("cli ({})", std::env::var("USER").unwrap_or_else(|_| "unknown user".into()));
    match command {
        TokenCommand::Create { name, role, expires } => {
            let role = Role::parse(role).ok_or_else(|| usage(format!("--role {role:?}: pick viewer, operator or admin")))?;
            let expires_at = expires.as_deref().map(|t| super::days_in("--expires", t)).transpose()?.map(dualsync_state::days_from_now);
            let (secret, token) = create_token(&store, name, role, expires_at).map_err(|e| match e {
                dualsync_serve::auth::TokenError::State(dualsync_state::StateError::Refused(m)) => usage(m),
                dualsync_serve::auth::TokenError::BadName => usage(e.to_string()),
                e => CliError::from(anyhow::Error::from(e)),
            })?;
            store.record_activity(&actor, "create token", &format!("token {name} ({})", role.as_str()), "created")?;
            if is_json(cli.format) {
                print_json(&json!({ "token": secret, "name": token.name, "role": token.role, "expires_at": token.expires_at }));
            } else {
                println!("{secret}");
                eprintln!(
                    "token {name} ({}{}): shown this once, stored only as its SHA-256. Send it as `Authorization: Bearer TOKEN`.",
                    token.role,
                    token.expires_at.as_deref().map(|at| format!(", expires {at}")).unwrap_or_default()
                );
            }
        }
        TokenCommand::List => {
            let tokens = store.tokens()?;
            if is_json(cli.format) {
                print_json(&json!(tokens
                    .iter()
                    .map(|t| json!({
                        "name": t.name, "role": t.role, "created_at": t.created_at, "expires_at": t.expires_at,
                        "revoked_at": t.revoked_at, "last_used": t.last_used, "usable": t.usable(),
                    }))
                    .collect::<Vec<_>>()));
            } else if tokens.is_empty() {
                println!("no tokens; make one with `dualsync token create --name NAME --role viewer|operator|admin`");
            } else {
                let mut t = Table::new(&["name", "role", "created", "expires", "last used", "state"]);
                let or_dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "—".into());
                for k in &tokens {
                    let state = match (&k.revoked_at, k.usable()) {
                        (Some(at), _) => format!("revoked {at}"),
                        (None, true) => "usable".into(),
                        (None, false) => "expired".into(),
                    };
                    t.row(vec![k.name.clone(), k.role.clone(), k.created_at.clone(), or_dash(&k.expires_at), or_dash(&k.last_used), state]);
                }
                print!("{}", t.render());
            }
        }
        TokenCommand::Revoke { name } => {
            if !store.revoke_token(name)? {
                return Err(usage(format!("no usable token is named {name:?}; `dualsync token list` shows them")));
            }
            store.record_activity(&actor, "revoke token", &format!("token {name}"), "revoked")?;
            println!("token {name} is revoked: it is refused from now on");
        }
    }
    Ok(OK)
}
