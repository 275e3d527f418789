//! `caio token`: a development token, signed with the published HS256 key
//! of `examples/auth/dev.yaml`, so the README's curl example works. Such a
//! token is worthless outside local trials: anyone can sign one.

use anyhow::{Context, Result};
use caio_calculus::contract::Format;
use caio_calculus::security::{Audience, Claims, KeyAlgorithm, SigningKey, parse_auth_config, sign};

use crate::Outcome;
use crate::config::DEV_AUTH;

/// Sign a development token.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The caller (`sub`).
    #[arg(long)]
    sub: String,
    /// A permission the caller holds (repeat for several), such as `chat.basic` or `caio:admin`.
    #[arg(long = "permission")]
    permissions: Vec<String>,
    /// The caller's trust level.
    #[arg(long, default_value_t = 0)]
    trust_level: u8,
    /// The caller's tenant.
    #[arg(long, default_value = "local")]
    tenant: String,
    /// Seconds the token is valid for.
    #[arg(long, default_value_t = 3600)]
    ttl: u64,
}

/// Signs `claims`-to-be with the development key.
pub fn development_token(sub: &str, permissions: &[String], trust_level: u8, tenant: &str, ttl: u64) -> Result<String> {
    let auth = parse_auth_config(DEV_AUTH, Format::Yaml).expect("the development keys are valid");
    let key = auth
        .keys
        .iter()
        .find(|k| k.algorithm == KeyAlgorithm::Hs256)
        .context("the development keys hold no HS256 key")?;
    let claims = Claims {
        sub: sub.to_string(),
        iss: auth.issuer.clone(),
        aud: Audience::One(auth.audience.clone()),
        exp: super::now().saturating_add(ttl),
        nbf: None,
        permissions: permissions.iter().cloned().collect(),
        trust_level,
        tenant: tenant.to_string(),
    };
    let signing = SigningKey { kid: key.kid.clone(), algorithm: KeyAlgorithm::Hs256, key: key.key.clone() };
    Ok(sign(&claims, &signing)?)
}

/// Prints the token on stdout, the warning on stderr.
pub fn run(args: Args) -> Result<Outcome> {
    let token = development_token(&args.sub, &args.permissions, args.trust_level, &args.tenant, args.ttl)?;
    eprintln!(
        "caio: a DEVELOPMENT token, signed with the published key of examples/auth/dev.yaml: for local trials only"
    );
    println!("{token}");
    Ok(Outcome::Done)
}
