//! The executor: tries the admitted services in the decision's order, each
//! with retries on transient failures, skipping those whose breaker is open,
//! and records every attempt. A streamed answer is committed to the first
//! service that answers with a success status; its events are forwarded
//! whole as they arrive. If that stream is cut, stalls or breaks before it
//! is complete, the answer goes on with the next admitted service: from
//! where it stopped on a service whose contract takes a partial answer
//! (`api.prefill`), from the start when nothing was sent yet or the caller
//! allowed a restart (and is told), otherwise it ends with an error event.
//!
//! This module must never try a service that is not in the list it is
//! given: the list is the decision's, and only the calculus admits.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use caio_calculus::breaker::Outcome;
use caio_calculus::contract::Contract;
use futures_util::StreamExt;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

use crate::Gateway;
use crate::adapter::{self, Call, Framing, Prepared};
use crate::egress::Refusal;
use crate::resilience::{Failure, retry_after_ms};
use crate::stream::{Broken, Reader};

/// One try of one service, as the trace records it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Attempt {
    /// The service.
    pub service: String,
    /// 1 for the first try of this service, 2 for its first retry, ...
    pub attempt: u32,
    /// `ok`, `breaker_open`, `unsupported`, `context_too_short`, or the
    /// failure (`timeout`, `server_503`, `rate_limited`, `connect`,
    /// `malformed`, `cut`, `stalled`, `context_length_exceeded`, ...).
    pub outcome: String,
    /// The service's HTTP status, if it answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// How long the try took, in ms (to the first byte, for streams).
    pub latency_ms: f64,
    /// When it started, in ms after the first try.
    pub started_ms: f64,
    /// How a stream went on from this try: `continued` (from where it
    /// stopped) or `restarted` (from the start).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<&'static str>,
    /// The usage the service reported for an answer it served.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Value>,
}

/// A successful call.
#[derive(Debug)]
pub enum Reply {
    /// The whole answer, in the OpenAI format.
    Complete {
        /// The service that answered.
        service: String,
        /// The answer.
        body: Value,
    },
    /// A streamed answer.
    Stream(Streamed),
}

/// A streamed answer: server-sent events in the OpenAI format, then the
/// final record of the streaming attempts once the stream has ended.
#[derive(Debug)]
pub struct Streamed {
    /// The service that started the answer.
    pub service: String,
    /// The media type of a stream of bytes that are not events (audio), as
    /// the service gave it; `None` for server-sent events.
    pub media_type: Option<String>,
    /// The events, as they arrive.
    pub events: mpsc::Receiver<Result<Bytes, std::io::Error>>,
    /// The streaming attempt with its final outcome (`ok`, `cut`, ...),
    /// then every attempt made to go on with the answer.
    pub finished: oneshot::Receiver<Vec<Attempt>>,
}

/// A call that no service served.
#[derive(Debug, Clone, PartialEq)]
pub struct Failed {
    /// The HTTP status to answer with.
    pub status: u16,
    /// A stable error code.
    pub code: &'static str,
    /// What happened, for people.
    pub message: String,
    /// The service's own error body, when it refused the request.
    pub upstream: Option<Value>,
    /// How long the caller should wait, when the services asked it to.
    pub retry_after_ms: Option<u64>,
}

/// The end of one try.
enum Tried {
    Complete(Value),
    Stream(reqwest::Response, Framing),
}

struct TryError {
    failure: Failure,
    status: Option<u16>,
    detail: String,
    body: Option<Value>,
}

impl TryError {
    fn new(failure: Failure, detail: impl Into<String>) -> TryError {
        TryError { failure, status: None, detail: detail.into(), body: None }
    }
}

/// Redirects of one call followed at most.
const MAX_REDIRECTS: usize = 5;

/// Longest error body read from a service: enough for any error message,
/// and a service that sends more is not read further.
const MAX_ERROR_BODY: usize = 64 * 1024;

fn transport(error: &reqwest::Error) -> Failure {
    if chain(error).contains(crate::deny::DENIED) || error.is_redirect() {
        Failure::Egress
    } else if error.is_timeout() {
        Failure::Timeout
    } else if error.is_connect() {
        Failure::Connect
    } else {
        Failure::Transport
    }
}

/// The error chain of `error`, for the log (never holds the key: reqwest
/// does not print headers).
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// At most `limit` bytes of a response's body.
async fn bounded_body(mut response: reqwest::Response, limit: usize) -> Vec<u8> {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        body.extend_from_slice(&chunk[..chunk.len().min(limit - body.len())]);
        if body.len() >= limit {
            break;
        }
    }
    body
}

/// Whether `contract` takes longer inputs than a service that declared
/// `refused_at` (its `max_input_tokens`, if any) and refused the input as
/// too long: only a declared, larger limit does.
fn takes_longer_input(contract: &Contract, refused_at: Option<u64>) -> bool {
    match (contract.constraints.max_input_tokens, refused_at) {
        (Some(limit), Some(refused)) => limit > refused,
        (Some(_), None) => true,
        (None, _) => false,
    }
}

/// What the caller has been sent of a streamed answer so far.
#[derive(Debug, Default)]
struct Relayed {
    /// The answer's text, from the services whose streams ended.
    text: String,
    /// Events sent.
    events: usize,
}

impl Gateway {
    /// What must hold before a service is called at all: its URL is on the
    /// allowlist and its key, if it needs one, is set. Returns the key.
    fn preflight(&self, contract: &Contract, prepared: &Prepared) -> Result<Option<String>, TryError> {
        if !self.egress.allows(&prepared.url) {
            self.egress.refuse(Refusal::Undeclared, &prepared.url);
            return Err(TryError::new(Failure::Egress, format!("{} is not on the egress allowlist", prepared.url)));
        }
        self.denied_literal(&prepared.url)?;
        let Some(variable) = &contract.api.credentials_env else { return Ok(None) };
        match (self.environment)(variable) {
            Some(key) if !key.is_empty() => Ok(Some(key)),
            _ => Err(TryError::new(Failure::Credentials, format!("the environment variable {variable} is not set"))),
        }
    }

    /// Refuses a URL whose host is an IP literal in a denied class (names
    /// are checked when they resolve, by `deny::Resolver`).
    fn denied_literal(&self, url: &url::Url) -> Result<(), TryError> {
        let ip = match url.host() {
            Some(url::Host::Ipv4(v4)) => std::net::IpAddr::V4(v4),
            Some(url::Host::Ipv6(v6)) => std::net::IpAddr::V6(v6),
            _ => return Ok(()),
        };
        match crate::deny::denied(ip, &self.config.deny) {
            Some(class) => Err(TryError::new(
                Failure::Egress,
                format!("{url} is {} ({}); see gateway.deny", crate::deny::DENIED, class.name()),
            )),
            None => Ok(()),
        }
    }

    async fn try_once(
        &self,
        contract: &Contract,
        prepared: &Prepared,
        call: &Call,
        key: Option<&str>,
    ) -> Result<Tried, TryError> {
        let streamed = call.stream && prepared.framing != Framing::Whole;
        // A stream's head counts towards its first token: many servers send
        // it with the first chunk.
        let (limit, late) = match (streamed, contract.api.first_token_ms) {
            (true, Some(first)) => (first, Failure::FirstToken),
            _ => (contract.api.timeout_ms, Failure::Timeout),
        };
        let limit = Duration::from_millis(limit);
        // The pieces are sent as they are, with their total length declared.
        // The client does not replay such a body on a redirect: a 307 or 308
        // is followed here, within the allowlist, at most `MAX_REDIRECTS`
        // times (a redirect that would turn the call into a GET is the
        // service's misconfiguration, answered as its status).
        let length: usize = prepared.body.iter().map(Bytes::len).sum();
        let mut url = prepared.url.clone();
        let mut hops = 0;
        let response = loop {
            let pieces = futures_util::stream::iter(prepared.body.clone().into_iter().map(Ok::<Bytes, std::io::Error>));
            let mut request = self
                .client
                .post(url.clone())
                .header(reqwest::header::CONTENT_TYPE, &prepared.media_type)
                .header(reqwest::header::CONTENT_LENGTH, length)
                .body(reqwest::Body::wrap_stream(pieces));
            if !streamed {
                request = request.timeout(limit);
            }
            if let Some(key) = key {
                request = request.bearer_auth(key);
            }
            for (name, value) in &prepared.headers {
                request = request.header(*name, *value);
            }
            let response = match tokio::time::timeout(limit, request.send()).await {
                Err(_) => return Err(TryError::new(late, format!("no answer within {} ms", limit.as_millis()))),
                Ok(Err(error)) => return Err(TryError::new(transport(&error), chain(&error))),
                Ok(Ok(response)) => response,
            };
            let location = matches!(response.status().as_u16(), 307 | 308)
                .then(|| response.headers().get(reqwest::header::LOCATION)?.to_str().ok().and_then(|l| url.join(l).ok()))
                .flatten();
            let Some(next) = location else { break response };
            if hops == MAX_REDIRECTS {
                return Err(TryError::new(Failure::Egress, format!("more than {MAX_REDIRECTS} redirects")));
            }
            self.denied_literal(&next)?;
            if !self.egress.allows(&next) {
                self.egress.refuse(Refusal::Redirect, &next);
                return Err(TryError::new(
                    Failure::Egress,
                    format!("refused a redirect to {next}: no registered contract declares it"),
                ));
            }
            url = next;
            hops += 1;
        };
        let status = response.status();
        if !status.is_success() {
            let code = status.as_u16();
            let retry_after = retry_after_ms(response.headers().get("retry-after").and_then(|v| v.to_str().ok()));
            let body: Option<Value> = serde_json::from_slice(&bounded_body(response, MAX_ERROR_BODY).await).ok();
            let failure = match code {
                429 => Failure::RateLimited { retry_after_ms: retry_after },
                408 | 500..=599 => Failure::Server { status: code },
                400 | 413 | 422 => Failure::refusal(code, body.as_ref()),
                _ => Failure::Misconfigured { status: code },
            };
            return Err(TryError { failure, status: Some(code), detail: format!("answered {status}"), body });
        }
        if streamed {
            return Ok(Tried::Stream(response, prepared.framing));
        }
        let bytes = response.bytes().await.map_err(|e| TryError::new(transport(&e), chain(&e)))?;
        let reply: Value = serde_json::from_slice(&bytes).map_err(|e| TryError {
            status: Some(status.as_u16()),
            ..TryError::new(Failure::Malformed, format!("the reply is not JSON: {e}"))
        })?;
        adapter::answer(contract, call, reply)
            .map(Tried::Complete)
            .map_err(|e| TryError { status: Some(status.as_u16()), ..TryError::new(Failure::Malformed, e) })
    }

    fn finish(&self, contract: &Contract, success: bool, counts: bool, took: Duration) {
        let duration_ms = took.as_millis() as u64;
        let outcome = Outcome { success: success || !counts, duration_ms };
        if let Some(state) = self.breakers.record(&contract.id, outcome) {
            tracing::warn!(target: "caio::breaker", service = %contract.id, state, "breaker changed state");
        }
        if counts || success {
            self.observed.record(contract, success, millis(took), self.clock.now_ms());
        }
    }

    /// Counts a call served by another service than the selected one.
    fn served(&self, contract: &Contract, candidates: &[Contract]) {
        if candidates.first().is_some_and(|selected| selected.id != contract.id) {
            self.fallbacks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Executes `call` on the first of `candidates` that serves it, in
    /// order: the decision's selected service, then its alternatives.
    /// Returns the reply or why nothing served, and every attempt made.
    pub async fn execute(
        self: &Arc<Self>,
        candidates: &[Contract],
        call: &Call,
    ) -> (Result<Reply, Failed>, Vec<Attempt>) {
        let started = Instant::now();
        let candidates = &candidates[..candidates.len().min(self.config.max_services)];
        let mut attempts = Vec::new();
        let mut last: Option<TryError> = None;
        let mut skipped = 0;
        // After a refusal for a context too long: the refusing service's
        // declared limit, and its refusal (the caller's answer if no service
        // that takes longer inputs serves).
        let mut too_long: Option<(Option<u64>, TryError)> = None;
        for (index, contract) in candidates.iter().enumerate() {
            let record =
                |attempts: &mut Vec<Attempt>, attempt, outcome: String, status, latency: Duration, at: Instant| {
                    attempts.push(Attempt {
                        service: contract.id.clone(),
                        attempt,
                        outcome,
                        status,
                        latency_ms: millis(latency),
                        started_ms: millis(at.duration_since(started)),
                        stream: None,
                        usage: None,
                    });
                };
            if let Some((refused_at, _)) = &too_long
                && !takes_longer_input(contract, *refused_at)
            {
                record(&mut attempts, 1, "context_too_short".into(), None, Duration::ZERO, Instant::now());
                continue;
            }
            let prepared = match adapter::takes(contract, call).and_then(|()| adapter::prepare(contract, call)) {
                Ok(prepared) => prepared,
                Err(why) => {
                    record(&mut attempts, 1, "unsupported".into(), None, Duration::ZERO, Instant::now());
                    last = Some(TryError::new(Failure::Malformed, format!("{}: {why}", contract.id)));
                    continue;
                }
            };
            // Never called, so neither its breaker nor its history hears of it.
            let key = match self.preflight(contract, &prepared) {
                Ok(key) => key,
                Err(error) => {
                    record(&mut attempts, 1, error.failure.to_string(), None, Duration::ZERO, Instant::now());
                    tracing::warn!(target: "caio::gateway", service = %contract.id, detail = %error.detail, "not called");
                    last = Some(error);
                    continue;
                }
            };
            let mut attempt = 0;
            loop {
                attempt += 1;
                if self.breakers.acquire(&contract.id).is_err() {
                    record(&mut attempts, attempt, "breaker_open".into(), None, Duration::ZERO, Instant::now());
                    skipped += 1;
                    break;
                }
                let at = Instant::now();
                match self.try_once(contract, &prepared, call, key.as_deref()).await {
                    Ok(Tried::Complete(body)) => {
                        self.served(contract, candidates);
                        let took = at.elapsed();
                        self.finish(contract, true, true, took);
                        record(&mut attempts, attempt, "ok".into(), Some(200), took, at);
                        if let Some(done) = attempts.last_mut() {
                            done.usage = body.get("usage").filter(|u| !u.is_null()).cloned();
                        }
                        if call.stream {
                            let streamed =
                                self.replay(contract, call, &body, attempts.last().cloned().expect("just recorded"));
                            return (Ok(Reply::Stream(streamed)), attempts);
                        }
                        return (Ok(Reply::Complete { service: contract.id.clone(), body }), attempts);
                    }
                    Ok(Tried::Stream(response, framing)) => {
                        self.served(contract, candidates);
                        record(&mut attempts, attempt, "streaming".into(), Some(response.status().as_u16()), at.elapsed(), at);
                        let first = attempts.last().cloned().expect("just recorded");
                        let rest = candidates[index + 1..].to_vec();
                        let streamed = self.pump(contract.clone(), rest, call.clone(), response, framing, at, started, first);
                        return (Ok(Reply::Stream(streamed)), attempts);
                    }
                    Err(error) => {
                        let took = at.elapsed();
                        let counts = error.failure.counts_against_service();
                        self.finish(contract, false, counts, took);
                        record(&mut attempts, attempt, error.failure.to_string(), error.status, took, at);
                        tracing::info!(target: "caio::gateway", service = %contract.id, attempt, failure = %error.failure, detail = %error.detail, "attempt failed");
                        if let Failure::ContextLength { .. } = error.failure {
                            too_long = Some((contract.constraints.max_input_tokens, error));
                            break;
                        }
                        if !error.failure.falls_back() {
                            return (Err(refused(contract, error)), attempts);
                        }
                        let wait = self.config.retry.backoff(attempt, &error.failure, &self.jitter);
                        last = Some(error);
                        match wait {
                            Some(wait) => tokio::time::sleep(wait).await,
                            None => break,
                        }
                    }
                }
            }
        }
        if let Some((_, refusal)) = too_long {
            let service = attempts.iter().find(|a| a.outcome == "context_length_exceeded").map(|a| a.service.clone());
            let mut failed = refused_by(service.as_deref().unwrap_or_default(), refusal);
            failed.message.push_str("; no admitted service takes a longer input");
            return (Err(failed), attempts);
        }
        (Err(nothing_served(&attempts, skipped, last)), attempts)
    }

    /// A whole answer sent as a stream.
    fn replay(&self, contract: &Contract, call: &Call, body: &Value, attempt: Attempt) -> Streamed {
        let events = adapter::whole_as_events(call, body);
        let (sender, receiver) = mpsc::channel(events.len());
        for event in events {
            let _ = sender.try_send(Ok(event));
        }
        let (done, finished) = oneshot::channel();
        let _ = done.send(vec![attempt]);
        Streamed { service: contract.id.clone(), media_type: None, events: receiver, finished }
    }

    /// Forwards a service's stream as it arrives, whole event by whole
    /// event, and goes on with the next candidates if it breaks; records
    /// every outcome when it ends.
    #[allow(clippy::too_many_arguments)]
    fn pump(
        self: &Arc<Self>,
        contract: Contract,
        rest: Vec<Contract>,
        call: Call,
        response: reqwest::Response,
        framing: Framing,
        at: Instant,
        started: Instant,
        first: Attempt,
    ) -> Streamed {
        let (sender, events) = mpsc::channel::<Result<Bytes, std::io::Error>>(64);
        let (done, finished) = oneshot::channel();
        let gateway = self.clone();
        let service = contract.id.clone();
        let raw = framing == Framing::Raw;
        let media_type = raw.then(|| {
            response
                .headers()
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("application/octet-stream")
                .to_string()
        });
        tokio::spawn(async move {
            let mut attempts = Vec::new();
            let mut relayed = Relayed::default();
            let mut rest = rest.into_iter();
            let mut segment = Some((contract, response, framing, at, first));
            let mut ending: Result<(), Failure> = Ok(());
            while let Some((contract, response, framing, at, mut attempt)) = segment.take() {
                let first_byte = at.elapsed();
                let continuation = relayed.events > 0;
                let (outcome, reader) = gateway.relay(&contract, &call, response, framing, at, continuation, &mut relayed, &sender).await;
                let success = matches!(outcome, Relay::Complete | Relay::Cancelled);
                let counts = match &outcome {
                    Relay::Broke(failure) => failure.counts_against_service(),
                    _ => true,
                };
                gateway.finish(&contract, success, counts, first_byte);
                attempt.outcome = match &outcome {
                    Relay::Complete => "ok".into(),
                    Relay::Cancelled => "ok_cancelled".into(),
                    Relay::Broke(failure) => failure.to_string(),
                };
                attempt.usage = reader.usage().cloned();
                relayed.text.push_str(reader.text());
                attempts.push(attempt);
                let Relay::Broke(failure) = outcome else {
                    ending = Ok(());
                    break;
                };
                tracing::info!(target: "caio::gateway", service = %contract.id, %failure, sent = relayed.text.len(), "stream broke");
                ending = Err(failure.clone());
                // Go on with the next service that can: from where the
                // answer stopped, or from the start.
                segment = gateway.resume(&call, &mut rest, &relayed, &failure, started, &mut attempts, &sender).await;
                if let Some((.., resumed)) = &segment {
                    if resumed.stream == Some("restarted") {
                        relayed.text.clear();
                    }
                    ending = Ok(());
                }
            }
            match ending {
                // Bytes end with the body; a broken one is cut short for the
                // caller too (an error event would corrupt the audio).
                Ok(()) if raw => {}
                Err(failure) if raw => {
                    let _ = sender.send(Err(std::io::Error::other(format!("the audio stream broke ({failure})")))).await;
                }
                Ok(()) => {
                    let _ = sender.send(Ok(Bytes::from_static(adapter::DONE))).await;
                }
                Err(failure) => {
                    let error = json!({"error": {
                        "message": format!("the stream from `{service}` ended early ({failure}) and no admitted service could go on with it", service = attempts.last().map_or("", |a: &Attempt| a.service.as_str())),
                        "type": "server_error", "param": null, "code": failure.to_string()}});
                    let _ = sender.send(Ok(adapter::event(&error))).await;
                }
            }
            let _ = done.send(attempts);
        });
        Streamed { service, media_type, events, finished }
    }

    /// Relays one service's stream to the caller until it completes,
    /// breaks, or the caller goes away.
    #[allow(clippy::too_many_arguments)]
    async fn relay(
        &self,
        contract: &Contract,
        call: &Call,
        response: reqwest::Response,
        framing: Framing,
        at: Instant,
        continuation: bool,
        relayed: &mut Relayed,
        sender: &mpsc::Sender<Result<Bytes, std::io::Error>>,
    ) -> (Relay, Reader) {
        let api = &contract.api;
        let first_token = Duration::from_millis(api.first_token_ms.unwrap_or(api.timeout_ms));
        let gap = Duration::from_millis(api.stream_gap_ms.unwrap_or(api.timeout_ms));
        let mut reader = Reader::new(framing, continuation);
        let mut body = response.bytes_stream();
        let mut got_any = false;
        loop {
            let wait = if got_any { gap } else { first_token.saturating_sub(at.elapsed()).max(Duration::from_millis(1)) };
            let bytes = match tokio::time::timeout(wait, body.next()).await {
                Err(_) => return (Relay::Broke(if got_any { Failure::Stalled } else { Failure::FirstToken }), reader),
                Ok(None) => return (if reader.complete() { Relay::Complete } else { Relay::Broke(Failure::Cut) }, reader),
                Ok(Some(Err(_))) => return (Relay::Broke(Failure::Cut), reader),
                Ok(Some(Ok(bytes))) => bytes,
            };
            got_any = true;
            let events = match reader.feed_chunk(bytes, call, contract) {
                Ok(events) => events,
                Err(Broken::Malformed(why)) => {
                    tracing::info!(target: "caio::gateway", service = %contract.id, %why, "malformed stream");
                    return (Relay::Broke(Failure::Malformed), reader);
                }
                Err(Broken::Error(error)) => {
                    tracing::info!(target: "caio::gateway", service = %contract.id, %error, "error in the stream");
                    return (Relay::Broke(Failure::Cut), reader);
                }
            };
            for event in events {
                if sender.send(Ok(event)).await.is_err() {
                    return (Relay::Cancelled, reader);
                }
                relayed.events += 1;
            }
        }
    }

    /// Finds the next candidate that can go on with a broken stream and
    /// starts its stream: a continuation (prefill) when the caller already
    /// has part of the answer, a fresh start when it has nothing or allowed
    /// a restart (then it is told in the stream).
    #[allow(clippy::too_many_arguments)]
    async fn resume(
        &self,
        call: &Call,
        rest: &mut std::vec::IntoIter<Contract>,
        relayed: &Relayed,
        failure: &Failure,
        started: Instant,
        attempts: &mut Vec<Attempt>,
        sender: &mpsc::Sender<Result<Bytes, std::io::Error>>,
    ) -> Option<(Contract, reqwest::Response, Framing, Instant, Attempt)> {
        let fresh = relayed.events == 0;
        let chat = call.operation == adapter::Operation::Chat;
        // Bytes (audio) already played cannot be continued by another
        // service, nor started over without the caller hearing them twice.
        if !fresh && !chat {
            return None;
        }
        for contract in rest.by_ref() {
            // How this service may go on: from the start when nothing was
            // sent; else from where the answer stopped if its contract takes
            // a partial answer, and from the start if the caller allowed it
            // (also after a refused continuation).
            let mut ways: Vec<Option<&'static str>> = Vec::new();
            if fresh {
                ways.push(None);
            } else {
                if contract.api.prefill && chat {
                    ways.push(Some("continued"));
                }
                if call.restart {
                    ways.push(Some("restarted"));
                }
            }
            let attempt = |outcome: &str, how: Option<&'static str>| Attempt {
                service: contract.id.clone(),
                attempt: 1,
                outcome: outcome.to_string(),
                status: None,
                latency_ms: 0.0,
                started_ms: millis(started.elapsed()),
                stream: how,
                usage: None,
            };
            if ways.is_empty() {
                attempts.push(attempt("no_prefill", None));
                continue;
            }
            for how in ways {
                let resumed = if how == Some("continued") { call.continuing(&relayed.text) } else { call.clone() };
                let prepared = match adapter::prepare(&contract, &resumed) {
                    Ok(prepared) if prepared.framing != Framing::Whole => prepared,
                    _ => {
                        attempts.push(attempt("unsupported", how));
                        break;
                    }
                };
                let key = match self.preflight(&contract, &prepared) {
                    Ok(key) => key,
                    Err(error) => {
                        attempts.push(attempt(&error.failure.to_string(), how));
                        break;
                    }
                };
                if self.breakers.acquire(&contract.id).is_err() {
                    attempts.push(attempt("breaker_open", how));
                    break;
                }
                let at = Instant::now();
                match self.try_once(&contract, &prepared, &resumed, key.as_deref()).await {
                    Ok(Tried::Stream(response, framing)) => {
                        let mut started_attempt = attempt("streaming", how);
                        started_attempt.status = Some(response.status().as_u16());
                        started_attempt.latency_ms = millis(at.elapsed());
                        if how == Some("restarted") {
                            let notice = json!({"id": call.id, "object": "chat.completion.chunk", "created": call.created,
                                "model": contract.api.model, "choices": [],
                                "caio": {"restarted": {"service": contract.id, "after": failure.to_string()}}});
                            let _ = sender.send(Ok(adapter::event(&notice))).await;
                        }
                        return Some((contract, response, framing, at, started_attempt));
                    }
                    Ok(Tried::Complete(_)) => attempts.push(attempt("unsupported", how)),
                    Err(error) => {
                        let took = at.elapsed();
                        self.finish(&contract, false, error.failure.counts_against_service(), took);
                        let mut failed = attempt(&error.failure.to_string(), how);
                        failed.status = error.status;
                        failed.latency_ms = millis(took);
                        attempts.push(failed);
                    }
                }
            }
        }
        None
    }
}

/// How relaying one service's stream ended.
enum Relay {
    /// The stream said it was finished and ended.
    Complete,
    /// The caller went away.
    Cancelled,
    /// It broke before it was complete.
    Broke(Failure),
}

/// The answer to a refusal that is not worth sending elsewhere.
fn refused(contract: &Contract, error: TryError) -> Failed {
    refused_by(&contract.id, error)
}

fn refused_by(service: &str, error: TryError) -> Failed {
    Failed {
        status: error.status.unwrap_or(400),
        code: "upstream_rejected",
        message: format!("the service `{service}` refused the request ({})", error.detail),
        upstream: error.body,
        retry_after_ms: None,
    }
}

/// The answer when no service served.
fn nothing_served(attempts: &[Attempt], skipped: usize, last: Option<TryError>) -> Failed {
    let tried = attempts.iter().map(|a| format!("{} #{}: {}", a.service, a.attempt, a.outcome)).collect::<Vec<_>>().join(", ");
    let called: Vec<&Attempt> = attempts.iter().filter(|a| a.status.is_some() || a.latency_ms > 0.0).collect();
    if attempts.is_empty() {
        return Failed {
            status: 502,
            code: "upstream_failed",
            message: "no service was tried".into(),
            upstream: None,
            retry_after_ms: None,
        };
    }
    if skipped == attempts.len() {
        return Failed {
            status: 503,
            code: "breakers_open",
            message: format!("every admitted service has an open circuit breaker ({tried}); retry later"),
            upstream: None,
            retry_after_ms: None,
        };
    }
    // Every service that answered asked to slow down: so must the caller.
    if !called.is_empty() && called.iter().all(|a| a.outcome == "rate_limited") {
        let retry_after_ms = match last.as_ref().map(|e| &e.failure) {
            Some(Failure::RateLimited { retry_after_ms }) => *retry_after_ms,
            _ => None,
        };
        return Failed {
            status: 429,
            code: "rate_limit_exceeded",
            message: format!("every admitted service is rate limiting ({tried}); retry later"),
            upstream: last.and_then(|e| e.body),
            retry_after_ms,
        };
    }
    let detail = last.map(|e| e.detail).unwrap_or_default();
    Failed {
        status: 502,
        code: "upstream_failed",
        message: format!("no admitted service answered ({tried}); last: {detail}"),
        upstream: None,
        retry_after_ms: None,
    }
}
