//! `caio health`: asks a running caio whether it is alive (`GET /healthz`)
//! and exits 0 only on `200`. It is the container's `HEALTHCHECK`, which
//! has no shell or curl to run in a distroless image.
//!
//! It speaks plain HTTP/1.1 over one TCP connection to the address it is
//! given and must never follow a redirect or reach another host.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::Outcome;

/// Arguments of `caio health`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The liveness endpoint (plain HTTP).
    #[arg(long, default_value = "http://127.0.0.1:8080/healthz")]
    url: String,
    /// How long to wait for the whole answer, in milliseconds.
    #[arg(long, default_value_t = 2000)]
    timeout_ms: u64,
}

/// `host:port` and the path of an `http://` URL.
fn split(url: &str) -> Result<(String, String)> {
    let Some(rest) = url.strip_prefix("http://") else {
        bail!("`{url}`: the health check speaks plain HTTP; give an http:// URL such as http://127.0.0.1:8080/healthz")
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    if authority.is_empty() {
        bail!("`{url}` names no host");
    }
    let authority = if authority.contains(':') { authority.to_string() } else { format!("{authority}:80") };
    Ok((authority, if path.is_empty() { "/".into() } else { path.to_string() }))
}

/// Runs `caio health`.
pub fn run(args: Args) -> Result<Outcome> {
    let (authority, path) = split(&args.url)?;
    let timeout = Duration::from_millis(args.timeout_ms.max(1));
    let address = authority
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve `{authority}`"))?
        .next()
        .with_context(|| format!("`{authority}` resolves to no address"))?;
    let answer = (|| -> std::io::Result<String> {
        let mut stream = TcpStream::connect_timeout(&address, timeout)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\nUser-Agent: caio-health\r\n\r\n"
        )?;
        let mut head = Vec::new();
        stream.take(4096).read_to_end(&mut head)?;
        Ok(String::from_utf8_lossy(&head).into_owned())
    })();
    let answer = match answer {
        Ok(answer) => answer,
        Err(e) => {
            eprintln!("unhealthy: {} does not answer: {e}", args.url);
            return Ok(Outcome::Problems);
        }
    };
    let status = answer.lines().next().unwrap_or_default();
    if status.split_whitespace().nth(1) == Some("200") {
        println!("healthy: {} answered {status}", args.url);
        Ok(Outcome::Done)
    } else {
        eprintln!("unhealthy: {} answered {status:?}", args.url);
        Ok(Outcome::Problems)
    }
}

#[cfg(test)]
mod tests {
    use super::split;

    #[test]
    fn urls_split_into_address_and_path() {
        assert_eq!(split("http://127.0.0.1:8080/healthz").unwrap(), ("127.0.0.1:8080".into(), "/healthz".into()));
        assert_eq!(split("http://caio").unwrap(), ("caio:80".into(), "/".into()));
        assert!(split("https://caio/healthz").unwrap_err().to_string().contains("plain HTTP"));
        assert!(split("http:///healthz").is_err());
    }
}
