//! The executor: tries the admitted services in the decision's order, each
//! with retries on transient failures, skipping those whose breaker is open,
//! and records every attempt. A streamed answer is committed to the first
//! service that answers with a success status: its bytes are forwarded as
//! they arrive, and the outcome is recorded when the stream ends.
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

/// One try of one service, as the trace records it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Attempt {
    /// The service.
    pub service: String,
    /// 1 for the first try of this service, 2 for its first retry, ...
    pub attempt: u32,
    /// `ok`, `breaker_open`, `unsupported`, or the failure (`timeout`,
    /// `server_503`, `rate_limited`, `connect`, `malformed`, `cut`, ...).
    pub outcome: String,
    /// The service's HTTP status, if it answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// How long the try took, in ms (to the first byte, for streams).
    pub latency_ms: f64,
    /// When it started, in ms after the first try.
    pub started_ms: f64,
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
/// final record of the serving attempt once the stream has ended.
#[derive(Debug)]
pub struct Streamed {
    /// The service that answers.
    pub service: String,
    /// The events, as they arrive.
    pub events: mpsc::Receiver<Result<Bytes, std::io::Error>>,
    /// The serving attempt, with its final outcome (`ok` or `cut`, ...).
    pub finished: oneshot::Receiver<Attempt>,
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

fn transport(error: &reqwest::Error) -> Failure {
    if error.is_redirect() {
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

impl Gateway {
    /// What must hold before a service is called at all: its URL is on the
    /// allowlist and its key, if it needs one, is set. Returns the key.
    fn preflight(&self, contract: &Contract, prepared: &Prepared) -> Result<Option<String>, TryError> {
        if !self.egress.allows(&prepared.url) {
            self.egress.refuse(Refusal::Undeclared, &prepared.url);
            return Err(TryError::new(Failure::Egress, format!("{} is not on the egress allowlist", prepared.url)));
        }
        let Some(variable) = &contract.api.credentials_env else { return Ok(None) };
        match (self.environment)(variable) {
            Some(key) if !key.is_empty() => Ok(Some(key)),
            _ => Err(TryError::new(Failure::Credentials, format!("the environment variable {variable} is not set"))),
        }
    }

    async fn try_once(
        &self,
        contract: &Contract,
        prepared: &Prepared,
        call: &Call,
        key: Option<&str>,
    ) -> Result<Tried, TryError> {
        let timeout = Duration::from_millis(contract.api.timeout_ms);
        let streamed = call.stream && prepared.framing != Framing::Whole;
        let mut request = self.client.post(prepared.url.clone()).json(&prepared.body);
        if !streamed {
            request = request.timeout(timeout);
        }
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        let response = match tokio::time::timeout(timeout, request.send()).await {
            Err(_) => {
                return Err(TryError::new(Failure::Timeout, format!("no answer within {} ms", timeout.as_millis())));
            }
            Ok(Err(error)) => return Err(TryError::new(transport(&error), chain(&error))),
            Ok(Ok(response)) => response,
        };
        let status = response.status();
        if !status.is_success() {
            let code = status.as_u16();
            let failure = match code {
                429 => Failure::RateLimited {
                    retry_after_ms: retry_after_ms(response.headers().get("retry-after").and_then(|v| v.to_str().ok())),
                },
                408 | 500..=599 => Failure::Server { status: code },
                400 | 413 | 422 => Failure::Rejected { status: code },
                _ => Failure::Misconfigured { status: code },
            };
            let body = response.bytes().await.ok().and_then(|b| serde_json::from_slice(&b).ok());
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
        let mut attempts = Vec::new();
        let mut last: Option<TryError> = None;
        let mut skipped = 0;
        for contract in candidates.iter().take(self.config.max_services) {
            let record =
                |attempts: &mut Vec<Attempt>, attempt, outcome: String, status, latency: Duration, at: Instant| {
                    attempts.push(Attempt {
                        service: contract.id.clone(),
                        attempt,
                        outcome,
                        status,
                        latency_ms: millis(latency),
                        started_ms: millis(at.duration_since(started)),
                    });
                };
            let prepared = match adapter::prepare(contract, call) {
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
                        if call.stream {
                            let streamed =
                                self.replay(contract, call, &body, attempts.last().cloned().expect("just recorded"));
                            return (Ok(Reply::Stream(streamed)), attempts);
                        }
                        return (Ok(Reply::Complete { service: contract.id.clone(), body }), attempts);
                    }
                    Ok(Tried::Stream(response, framing)) => {
                        self.served(contract, candidates);
                        let first = Attempt {
                            service: contract.id.clone(),
                            attempt,
                            outcome: "streaming".into(),
                            status: Some(response.status().as_u16()),
                            latency_ms: millis(at.elapsed()),
                            started_ms: millis(at.duration_since(started)),
                        };
                        attempts.push(first.clone());
                        let streamed = self.pump(contract.clone(), call.clone(), response, framing, at, first);
                        return (Ok(Reply::Stream(streamed)), attempts);
                    }
                    Err(error) => {
                        let took = at.elapsed();
                        let counts = error.failure.counts_against_service();
                        self.finish(contract, false, counts, took);
                        record(&mut attempts, attempt, error.failure.to_string(), error.status, took, at);
                        tracing::info!(target: "caio::gateway", service = %contract.id, attempt, failure = %error.failure, detail = %error.detail, "attempt failed");
                        if !error.failure.falls_back() {
                            let status = error.status.unwrap_or(400);
                            let message =
                                format!("the service `{}` refused the request ({})", contract.id, error.detail);
                            return (
                                Err(Failed { status, code: "upstream_rejected", message, upstream: error.body }),
                                attempts,
                            );
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
        let tried = attempts
            .iter()
            .map(|a| format!("{} #{}: {}", a.service, a.attempt, a.outcome))
            .collect::<Vec<_>>()
            .join(", ");
        let failed = if attempts.is_empty() {
            Failed { status: 502, code: "upstream_failed", message: "no service was tried".into(), upstream: None }
        } else if skipped == attempts.len() {
            Failed {
                status: 503,
                code: "breakers_open",
                message: format!("every admitted service has an open circuit breaker ({tried}); retry later"),
                upstream: None,
            }
        } else {
            let detail = last.map(|e| e.detail).unwrap_or_default();
            Failed {
                status: 502,
                code: "upstream_failed",
                message: format!("no admitted service answered ({tried}); last: {detail}"),
                upstream: None,
            }
        };
        (Err(failed), attempts)
    }

    /// A whole answer sent as a stream.
    fn replay(&self, contract: &Contract, call: &Call, body: &Value, attempt: Attempt) -> Streamed {
        let events = adapter::whole_as_events(call, body);
        let (sender, receiver) = mpsc::channel(events.len());
        for event in events {
            let _ = sender.try_send(Ok(event));
        }
        let (done, finished) = oneshot::channel();
        let _ = done.send(attempt);
        Streamed { service: contract.id.clone(), events: receiver, finished }
    }

    /// Forwards a service's stream as it arrives, translating its framing;
    /// records the outcome when it ends.
    fn pump(
        self: &Arc<Self>,
        contract: Contract,
        call: Call,
        response: reqwest::Response,
        framing: Framing,
        started: Instant,
        mut attempt: Attempt,
    ) -> Streamed {
        let (sender, events) = mpsc::channel::<Result<Bytes, std::io::Error>>(64);
        let (done, finished) = oneshot::channel();
        let gateway = self.clone();
        let service = contract.id.clone();
        let first_byte = started.elapsed();
        tokio::spawn(async move {
            let idle = Duration::from_millis(contract.api.timeout_ms);
            let mut body = response.bytes_stream();
            let mut tail: Vec<u8> = Vec::new();
            let mut complete = false;
            let mut cancelled = false;
            let outcome: Result<(), Failure> = loop {
                let next = match tokio::time::timeout(idle, body.next()).await {
                    Err(_) => break Err(Failure::Timeout),
                    Ok(None) => break if complete { Ok(()) } else { Err(Failure::Cut) },
                    Ok(Some(Err(_))) => break Err(Failure::Cut),
                    Ok(Some(Ok(bytes))) => bytes,
                };
                let out: Vec<Bytes> = match framing {
                    Framing::OpenaiEvents => {
                        tail.extend_from_slice(&next);
                        complete = tail
                            .windows(adapter::DONE.len() - 2)
                            .any(|w| w == &adapter::DONE[..adapter::DONE.len() - 2]);
                        let keep = tail.len().saturating_sub(adapter::DONE.len());
                        tail.drain(..keep);
                        vec![next]
                    }
                    Framing::OllamaLines | Framing::Whole => {
                        tail.extend_from_slice(&next);
                        let mut out = Vec::new();
                        let mut broken = false;
                        while let Some(end) = tail.iter().position(|b| *b == b'\n') {
                            let line: Vec<u8> = tail.drain(..=end).collect();
                            if line.iter().all(u8::is_ascii_whitespace) {
                                continue;
                            }
                            match adapter::ollama_line(&call, &contract, &line) {
                                Ok((events, done)) => {
                                    out.extend(events);
                                    complete |= done;
                                }
                                Err(_) => broken = true,
                            }
                        }
                        if broken {
                            break Err(Failure::Malformed);
                        }
                        out
                    }
                };
                for event in out {
                    if sender.send(Ok(event)).await.is_err() {
                        cancelled = true;
                    }
                }
                if cancelled {
                    break Ok(());
                }
            };
            if let Err(failure) = &outcome {
                let error = json!({"error": {"message": format!("the service `{}` stream ended early: {failure}", contract.id), "type": "upstream_error", "code": failure.to_string()}});
                let _ = sender.send(Ok(adapter::event(&error))).await;
            }
            let success = outcome.is_ok();
            gateway.finish(
                &contract,
                success,
                outcome.as_ref().err().is_none_or(Failure::counts_against_service),
                first_byte,
            );
            attempt.outcome = match &outcome {
                Ok(()) if cancelled => "ok_cancelled".into(),
                Ok(()) => "ok".into(),
                Err(failure) => failure.to_string(),
            };
            let _ = done.send(attempt);
        });
        Streamed { service, events, finished }
    }
}
