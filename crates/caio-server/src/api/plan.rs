//! `POST /v1/orchestrate` with a plan: several steps, one after the other
//! or side by side, under one end-to-end promise (docs/plans.md). Every
//! step is routed and one service per step chosen by the calculus
//! (`orchestrate::route_plan`); the steps' decisions and the plan's are
//! recorded in the trace log before any service is called. The steps then
//! run as the tree says (a `parallel` node's parts at once), each through
//! the gateway with the one service the plan chose for it. When that
//! service fails, the step's next service is chosen by planning again with
//! what the finished steps and the failed tries took (`plan::replan`), so a
//! fallback never breaks the end-to-end bounds; when none keeps them, the
//! call fails naming the bound. A step's input may use the text of a step
//! that finished before it: `{{steps.NAME.text}}`.
//!
//! This module must never call a service the plan did not choose for the
//! step, nor a step before the steps it reads.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use caio_calculus::compose::Composite;
use caio_calculus::contract::{Contract, InputError, from_value};
use caio_calculus::guarantee::Guarantees;
use caio_calculus::orchestrate::{PlanDecision, PlanRequest, PlanRouteError, route_plan, step_offers};
use caio_calculus::plan::{Candidate, EndToEnd, Node, PlanError, PlanLimits, Progress, replan};
use caio_calculus::request::Request;
use caio_calculus::route::Inputs;
use caio_gateway::adapter::CallBody;
use caio_gateway::form::FormBody;
use caio_gateway::{Attempt, Call, Failed, Operation, Reply, Streamed};
use futures_util::future::{BoxFuture, FutureExt, try_join_all};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::api::execute::{call_of, execution_body, failed, operation_of, record};
use crate::api::route::{TraceRef, refused};
use crate::error::ApiError;
use crate::state::AppState;

/// A plan to run.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanBody {
    /// The plan's id; each step's request id is `ID/STEP`.
    pub id: String,
    /// The tree: `{"step": NAME}`, `{"sequential": [...]}`, `{"parallel": [...]}`.
    #[schemars(with = "Value")]
    pub plan: Node,
    /// Each step: its routing request, operation and input.
    pub steps: BTreeMap<String, PlanStep>,
    /// What the whole must guarantee: `guarantees`, `max_locality`, `deterministic`.
    #[serde(default)]
    #[schemars(with = "Value")]
    pub end_to_end: EndToEnd,
    /// Limits of the search.
    #[serde(default)]
    #[schemars(with = "Value")]
    pub limits: PlanLimits,
}

/// One step of a plan to run.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanStep {
    /// The step's routing request, as `POST /v1/route` takes it, without
    /// `id` (set to `PLAN/STEP`) and `token` (the bearer token).
    #[schemars(with = "Value")]
    pub request: Value,
    /// `chat`, `embeddings`, `rerank`, `image_generation`, `speech_to_text`
    /// (`input.file`: `{"data": BASE64, "filename", "content_type"}`) or
    /// `text_to_speech` (answered as base64 audio).
    pub operation: String,
    /// The call in the OpenAI format, whose strings may hold
    /// `{{steps.NAME.text}}`.
    #[schemars(with = "Value")]
    pub input: Value,
}

/// What a plan's run answers.
#[derive(Debug, Serialize, JsonSchema)]
pub struct PlanResponse {
    /// The plan's id.
    pub request_id: String,
    /// The plan's decision trace.
    pub trace: TraceRef,
    /// Each step in tree order.
    pub steps: Vec<StepRun>,
    /// What was guaranteed end to end and what was measured.
    pub end_to_end: EndToEndRun,
}

/// One step as it ran.
#[derive(Debug, Serialize, JsonSchema)]
pub struct StepRun {
    /// The step's name.
    pub step: String,
    /// The step's own decision trace.
    pub decision: TraceRef,
    /// The service the plan chose first.
    pub planned: String,
    /// The service that served it.
    pub served_by: String,
    /// Every attempt, in order, fallbacks included.
    #[schemars(with = "Vec<Value>")]
    pub attempts: Vec<Attempt>,
    /// How long the step took, failed tries included, in ms.
    pub latency_ms: f64,
    /// Its answer, in the OpenAI format.
    #[schemars(with = "Value")]
    pub result: Value,
    /// Its `execution` trace.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub execution: Option<TraceRef>,
}

/// The end-to-end promise beside what happened.
#[derive(Debug, Serialize, JsonSchema)]
pub struct EndToEndRun {
    /// What the plan required.
    #[schemars(with = "Value")]
    pub required: Guarantees,
    /// What the chosen services guaranteed together when the plan was made.
    #[schemars(with = "Value")]
    pub guaranteed: Composite,
    /// The time the whole plan took, in ms.
    pub latency_ms: f64,
    /// The cost the plan's prices give for the services that served.
    pub cost_usd: f64,
    /// Fallbacks taken.
    pub fallbacks: usize,
}

/// A step's state while the plan runs.
struct Run {
    /// What happened to each step so far, for planning again.
    progress: BTreeMap<String, Progress>,
    /// The service each step is to use now.
    picks: BTreeMap<String, String>,
    /// The steps running now.
    running: Vec<String>,
    /// The answers of finished steps.
    outputs: BTreeMap<String, Value>,
}

/// What every step's task reads.
struct Plan {
    state: AppState,
    body: PlanBody,
    decision: PlanDecision,
    candidates: BTreeMap<String, Vec<Candidate>>,
    contracts: BTreeMap<String, Contract>,
    /// Each step's routing request.
    requests: BTreeMap<String, Request>,
    plan_trace: TraceRef,
    /// The step whose answer streams to the caller, if any.
    streamed: Option<String>,
    run: Mutex<Run>,
}

/// Reads a plan body (already read strictly as JSON).
pub(crate) fn is_plan(body: &Value) -> bool {
    body.get("plan").is_some()
}

/// The step requests, with their ids and the caller's token, checked as
/// `POST /v1/route` checks a request; errors name the step's field.
fn step_requests(body: &PlanBody, bearer: Option<&str>) -> Result<BTreeMap<String, Request>, ApiError> {
    let mut requests = BTreeMap::new();
    for (name, step) in &body.steps {
        let mut fields = match &step.request {
            Value::Object(fields) => fields.clone(),
            _ => return Err(ApiError::invalid(format!("`steps.{name}.request` must be a JSON object"))),
        };
        for field in ["id", "token"] {
            if fields.contains_key(field) {
                return Err(ApiError::invalid(format!(
                    "`steps.{name}.request.{field}` is set by caio (the plan's id and the bearer token); remove it"
                )));
            }
        }
        fields.insert("id".into(), json!(format!("{}/{name}", body.id)));
        let at = |e: InputError| {
            ApiError::invalid(format!("steps.{name}.request.{e}"))
                .with_details(json!({"path": format!("steps.{name}.request.{}", e.path)}))
        };
        let mut request: Request = from_value(Value::Object(fields), "").map_err(at)?;
        if let Some((path, message)) = request.problems().into_iter().next() {
            return Err(at(InputError::at(path, message)));
        }
        request.token = bearer.unwrap_or_default().to_string();
        requests.insert(name.clone(), request);
    }
    Ok(requests)
}

/// Each step's position in the tree: the index of the part taken at each
/// node on the way down, and whether that node runs its parts in order.
fn positions(node: &Node, path: &mut Vec<(bool, usize)>, out: &mut BTreeMap<String, Vec<(bool, usize)>>) {
    match node {
        Node::Step(name) => {
            out.insert(name.clone(), path.clone());
        }
        Node::Sequential(parts) | Node::Parallel(parts) => {
            let in_order = matches!(node, Node::Sequential(_));
            for (i, part) in parts.iter().enumerate() {
                path.push((in_order, i));
                positions(part, path, out);
                path.pop();
            }
        }
    }
}

/// Whether step `a` finishes before step `b` starts: where their paths
/// part, the node runs its parts in order and `a`'s comes first.
fn runs_before(a: &[(bool, usize)], b: &[(bool, usize)]) -> bool {
    a.iter().zip(b).find(|(x, y)| x.1 != y.1).is_some_and(|(x, y)| x.0 && x.1 < y.1)
}

/// The steps named by `{{steps.NAME.text}}` in `value`'s strings.
fn references(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(text) => {
            let mut rest = text.as_str();
            while let Some(start) = rest.find("{{steps.") {
                let after = &rest[start + 8..];
                let Some(end) = after.find("}}") else { break };
                out.push(after[..end].to_string());
                rest = &after[end + 2..];
            }
        }
        Value::Array(items) => items.iter().for_each(|v| references(v, out)),
        Value::Object(fields) => fields.values().for_each(|v| references(v, out)),
        _ => {}
    }
}

/// Checks every template: `NAME.text` of a step that finishes before.
fn check_templates(body: &PlanBody) -> Result<(), ApiError> {
    let mut at = BTreeMap::new();
    positions(&body.plan, &mut Vec::new(), &mut at);
    for (name, step) in &body.steps {
        let mut named = Vec::new();
        references(&step.input, &mut named);
        for reference in named {
            let Some(source) = reference.strip_suffix(".text") else {
                return Err(ApiError::invalid(format!(
                    "`steps.{name}.input`: `{{{{steps.{reference}}}}}`: a template reads a step's text: `{{{{steps.NAME.text}}}}`"
                )));
            };
            match (at.get(source), at.get(name.as_str())) {
                (Some(a), Some(b)) if runs_before(a, b) => {}
                (Some(_), _) => {
                    return Err(ApiError::invalid(format!(
                        "`steps.{name}.input` reads step `{source}`, which does not finish before it starts; put `{source}` earlier in a `sequential` node"
                    )));
                }
                (None, _) => {
                    return Err(ApiError::invalid(format!(
                        "`steps.{name}.input` reads step `{source}`, which the plan does not have"
                    )));
                }
            }
        }
    }
    Ok(())
}

/// The text of an answer: a chat's first message, or a `text` field.
fn text_of(answer: &Value) -> Option<&str> {
    answer["choices"][0]["message"]["content"].as_str().or_else(|| answer["text"].as_str())
}

/// `value` with every `{{steps.NAME.text}}` replaced by that step's text.
fn filled(value: &Value, outputs: &BTreeMap<String, Value>) -> Result<Value, ApiError> {
    Ok(match value {
        Value::String(text) => {
            let mut out = String::with_capacity(text.len());
            let mut rest = text.as_str();
            while let Some(start) = rest.find("{{steps.") {
                let after = &rest[start + 8..];
                let Some(end) = after.find("}}") else { break };
                let source = after[..end].trim_end_matches(".text");
                let text = outputs.get(source).and_then(text_of).ok_or_else(|| {
                    ApiError::new(
                        StatusCode::BAD_GATEWAY,
                        "upstream_failed",
                        format!("step `{source}` answered no text to fill `{{{{steps.{source}.text}}}}`"),
                    )
                })?;
                out.push_str(&rest[..start]);
                out.push_str(text);
                rest = &after[end + 2..];
            }
            out.push_str(rest);
            Value::String(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(|v| filled(v, outputs)).collect::<Result<_, _>>()?),
        Value::Object(fields) => Value::Object(
            fields.iter().map(|(k, v)| Ok((k.clone(), filled(v, outputs)?))).collect::<Result<_, ApiError>>()?,
        ),
        other => other.clone(),
    })
}

/// The operation a plan's step names: the JSON ones of `/v1/orchestrate`,
/// and the speech ones, whose audio travels in the JSON as base64.
fn step_operation(name: &str, step: &str) -> Result<Operation, ApiError> {
    match name {
        "speech_to_text" => Ok(Operation::Transcription),
        "text_to_speech" => Ok(Operation::Speech),
        "chat" | "embeddings" | "rerank" | "image_generation" => operation_of(name),
        other => Err(ApiError::invalid(format!(
            "`steps.{step}.operation` must be `chat`, `embeddings`, `rerank`, `image_generation`, `speech_to_text` or `text_to_speech`, found `{}`",
            caio_calculus::contract::quoted(other)
        ))),
    }
}

/// The call of a step: its input as the operation's body; for speech to
/// text, a `multipart/form-data` upload of `input.file` (`{"data": BASE64,
/// "filename", "content_type"}`) with the other fields as text parts.
fn step_call(operation: Operation, input: &Value, step: &str, request_id: &str, now: u64) -> Result<Call, ApiError> {
    let at = |what: &str| ApiError::invalid(format!("`steps.{step}.input`: {what}"));
    if operation != Operation::Transcription {
        let text = CallBody::from_value(input).map_err(|e| at(&e.to_string()))?;
        return call_of(operation, input, text, None, request_id, now, false);
    }
    let file = input
        .get("file")
        .ok_or_else(|| at("`file` is required: {\"data\": BASE64, \"filename\", \"content_type\"}"))?;
    let data =
        file.get("data").and_then(Value::as_str).ok_or_else(|| at("`file.data` is required: the audio, base64"))?;
    let audio = BASE64.decode(data).map_err(|e| at(&format!("`file.data` is not base64: {e}")))?;
    let filename = file.get("filename").and_then(Value::as_str).unwrap_or("audio.wav");
    let media_type = file.get("content_type").and_then(Value::as_str).unwrap_or("application/octet-stream");
    if filename.contains(['"', '\r', '\n']) || media_type.contains(['\r', '\n']) {
        return Err(at("`file.filename` and `file.content_type` must be one line without quotes"));
    }
    // A boundary that cannot occur in the audio: a digest of it.
    let digest: String = Sha256::digest(&audio).iter().take(16).map(|b| format!("{b:02x}")).collect();
    let boundary = format!("caio-plan-{digest}");
    let mut form = Vec::with_capacity(audio.len() + 512);
    let fields = input.as_object().into_iter().flatten().filter(|(name, _)| *name != "file");
    for (name, value) in fields {
        let Some(value) = value.as_str() else {
            return Err(at(&format!("`{name}` must be text in a speech-to-text step")));
        };
        if name.contains(['"', '\r', '\n']) {
            return Err(at("a field name must be one line without quotes"));
        }
        form.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n").as_bytes(),
        );
    }
    form.extend_from_slice(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\nContent-Type: {media_type}\r\n\r\n").as_bytes(),
    );
    form.extend_from_slice(&audio);
    form.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let upload =
        FormBody::parse(&format!("multipart/form-data; boundary={boundary}"), form.into()).map_err(|e| at(&e))?;
    let fields = upload.fields();
    let text = CallBody::from_value(&fields).map_err(|e| at(&e.to_string()))?;
    call_of(operation, &fields, text, Some(upload), request_id, now, false)
}

/// A streamed answer read whole: a transcript as the service wrote it
/// (its JSON, or `{"text": ...}`), audio as base64.
async fn read_whole(streamed: Streamed, attempts: &mut Vec<Attempt>, operation: Operation) -> Result<Value, String> {
    let Streamed { media_type, mut events, finished, .. } = streamed;
    let mut bytes = Vec::new();
    let mut broken = None;
    while let Some(event) = events.recv().await {
        match event {
            Ok(chunk) => bytes.extend_from_slice(&chunk),
            Err(e) => {
                broken = Some(e.to_string());
                break;
            }
        }
    }
    attempts.extend(finished.await.unwrap_or_default());
    if let Some(e) = broken {
        return Err(e);
    }
    if operation == Operation::Speech {
        return Ok(json!({"audio": {"media_type": media_type, "bytes": bytes.len(), "base64": BASE64.encode(&bytes)}}));
    }
    let text = String::from_utf8_lossy(&bytes).into_owned();
    Ok(serde_json::from_str::<Value>(&text).ok().filter(Value::is_object).unwrap_or_else(|| json!({"text": text})))
}

/// A step's answer and what it took.
struct StepDone {
    served_by: String,
    attempts: Vec<Attempt>,
    latency_ms: f64,
    result: Value,
    fallbacks: usize,
    /// The answer of the plan's streamed last step, passed on as it comes.
    stream: Option<Streamed>,
}

/// The step that ends the plan alone (last in every chain above it, in no
/// fan-out): the one step whose answer may stream to the caller.
fn last_alone(node: &Node) -> Option<&str> {
    match node {
        Node::Step(name) => Some(name),
        Node::Sequential(parts) => parts.last().and_then(last_alone),
        Node::Parallel(_) => None,
    }
}

/// The step to stream, if the caller asked: `input.stream: true` is taken
/// only on a chat step that ends the plan alone.
fn streamed_step(body: &PlanBody) -> Result<Option<String>, ApiError> {
    let last = last_alone(&body.plan);
    let mut streamed = None;
    for (name, step) in &body.steps {
        match step.input.get("stream") {
            None | Some(Value::Null) | Some(Value::Bool(false)) => {}
            Some(Value::Bool(true)) if Some(name.as_str()) == last && step.operation == "chat" => {
                streamed = Some(name.clone());
            }
            Some(Value::Bool(true)) => {
                return Err(ApiError::invalid(format!(
                    "`steps.{name}.input.stream`: only a chat step that ends the plan (last in its chain, in no `parallel` node) may stream"
                )));
            }
            Some(_) => return Err(ApiError::invalid(format!("`steps.{name}.input.stream` must be true or false"))),
        }
    }
    Ok(streamed)
}

/// Runs the steps of `node` as the tree says.
fn run_node<'a>(plan: &'a Arc<Plan>, node: &'a Node) -> BoxFuture<'a, Result<BTreeMap<String, StepDone>, ApiError>> {
    async move {
        match node {
            Node::Step(name) => Ok(BTreeMap::from([(name.clone(), run_step(plan, name).await?)])),
            Node::Sequential(parts) => {
                let mut done = BTreeMap::new();
                for part in parts {
                    done.extend(run_node(plan, part).await?);
                }
                Ok(done)
            }
            Node::Parallel(parts) => {
                let all = try_join_all(parts.iter().map(|part| run_node(plan, part))).await?;
                Ok(all.into_iter().flatten().collect())
            }
        }
    }
    .boxed()
}

/// Runs one step: its planned service, then, after each failure, the
/// service planning again chooses, while one keeps the plan's bounds.
async fn run_step(plan: &Arc<Plan>, name: &str) -> Result<StepDone, ApiError> {
    let step = &plan.body.steps[name];
    let operation = step_operation(&step.operation, name)?;
    let input = {
        let mut run = plan.run.lock().unwrap_or_else(|e| e.into_inner());
        run.running.push(name.to_string());
        filled(&step.input, &run.outputs)?
    };
    let request_id = format!("{}/{name}", plan.body.id);
    let call = step_call(operation, &input, name, &request_id, plan.state.now())?;
    let started = Instant::now();
    let (mut attempts, mut tried, mut fallbacks) = (Vec::new(), Vec::new(), 0);
    loop {
        let service = plan.run.lock().unwrap_or_else(|e| e.into_inner()).picks[name].clone();
        let contract = plan.contracts[&service].clone();
        let (reply, tries) = plan.state.gateway().execute(std::slice::from_ref(&contract), &call).await;
        attempts.extend(tries);
        let reply = match reply {
            Ok(Reply::Complete { service, body }) => Ok((service, body)),
            Ok(Reply::Stream(streamed)) if plan.streamed.as_deref() == Some(name) => {
                let latency_ms = started.elapsed().as_secs_f64() * 1e3;
                let mut run = plan.run.lock().unwrap_or_else(|e| e.into_inner());
                run.running.retain(|s| s != name);
                let service = streamed.service.clone();
                return Ok(StepDone {
                    served_by: service,
                    attempts,
                    latency_ms,
                    result: Value::Null,
                    fallbacks,
                    stream: Some(streamed),
                });
            }
            Ok(Reply::Stream(streamed)) => {
                let service = streamed.service.clone();
                match read_whole(streamed, &mut attempts, operation).await {
                    Ok(body) => Ok((service, body)),
                    // Cut after it began: what came is not an answer, and
                    // nothing of it has reached the caller.
                    Err(e) => Err(Failed {
                        status: 502,
                        code: "upstream_failed",
                        message: format!("the answer of {service} was cut: {e}"),
                        upstream: None,
                        retry_after_ms: None,
                    }),
                }
            }
            Err(failure) => Err(failure),
        };
        match reply {
            Ok((service, body)) => {
                let latency_ms = started.elapsed().as_secs_f64() * 1e3;
                let cost = step_offers(&contract, &plan.requests[name], &["cost_usd".to_string()].into())
                    .guarantees
                    .get("cost_usd")
                    .and_then(|b| b.max)
                    .unwrap_or(0.0);
                let mut run = plan.run.lock().unwrap_or_else(|e| e.into_inner());
                run.progress
                    .insert(name.to_string(), Progress::Done { service: service.clone(), latency_ms, cost_usd: cost });
                run.running.retain(|s| s != name);
                run.outputs.insert(name.to_string(), body.clone());
                return Ok(StepDone {
                    served_by: service,
                    attempts,
                    latency_ms,
                    result: body,
                    fallbacks,
                    stream: None,
                });
            }
            Err(failure) => {
                tried.push(service.clone());
                let spent = started.elapsed().as_secs_f64() * 1e3;
                let mut run = plan.run.lock().unwrap_or_else(|e| e.into_inner());
                run.progress.insert(
                    name.to_string(),
                    Progress::Failed { tried: tried.clone(), latency_ms: spent, cost_usd: 0.0 },
                );
                // Steps running beside this one keep their service.
                let mut candidates = plan.candidates.clone();
                for other in run.running.iter().filter(|s| *s != name) {
                    let pick = &run.picks[other];
                    if let Some(list) = candidates.get_mut(other) {
                        list.retain(|c| &c.service == pick);
                    }
                }
                match replan(&plan.body.plan, &plan.body.end_to_end, &candidates, &run.progress, &plan.body.limits) {
                    Ok(choice) => {
                        for (step, index) in &choice.picks {
                            if !run.progress.contains_key(step) || step == name {
                                let pick = candidates[step][*index].service.clone();
                                run.picks.insert(step.clone(), pick);
                            }
                        }
                        fallbacks += 1;
                        tracing::info!(target: "caio::plan", step = name, failed = %service, next = %run.picks[name], "fallback keeps the plan's bounds");
                    }
                    Err(error) => {
                        let reason = match error {
                            PlanError::Exhausted(_) => "every service admitted for it has been tried".to_string(),
                            other => format!("no fallback keeps the plan's bounds: {other}"),
                        };
                        let mut error = failed(failure, &attempts);
                        error.message = format!("step `{name}`: {service} failed ({}); {reason}", error.message);
                        error.details = Some(json!({"plan_trace": plan.plan_trace.seq, "step": name}));
                        return Err(error);
                    }
                }
            }
        }
    }
}

/// Routes, records and runs a plan.
pub(crate) async fn run_plan(
    state: AppState,
    body: Value,
    bearer: Option<String>,
    admitted: bool,
) -> Result<Response, ApiError> {
    let body: PlanBody = from_value(body, "").map_err(|e| {
        ApiError::invalid(format!("the plan: {e}; it takes `id`, `plan`, `steps`, `end_to_end` and `limits`"))
            .with_details(json!({"path": e.path}))
    })?;
    let names = body.plan.steps();
    if let Some(name) = names.iter().find(|n| !body.steps.contains_key(**n)) {
        return Err(ApiError::invalid(format!(
            "the plan names step `{name}`, which has no entry under `steps`; add one"
        )));
    }
    for (name, step) in &body.steps {
        step_operation(&step.operation, name)?;
    }
    check_templates(&body)?;
    let streamed = streamed_step(&body)?;
    let requests = step_requests(&body, bearer.as_deref())?;
    // A plan's steps are the caller's: the bearer token let it in.
    if !admitted {
        return Err(ApiError::unauthenticated("a plan needs the caller's token: `Authorization: Bearer <token>`"));
    }
    let request = PlanRequest {
        id: body.id.clone(),
        plan: body.plan.clone(),
        steps: requests.clone(),
        end_to_end: body.end_to_end.clone(),
        limits: body.limits,
    };
    state.absorb_history();
    let health = state.gateway().health();
    let router = state.router();
    let inputs = Inputs {
        registry: router.registry(),
        policy: router.policy(),
        history: router.history(),
        health: &health,
        config: router.config(),
        seed: router.seed(),
        now: state.now(),
        previous: None,
    };
    let decision = route_plan(&request, &inputs).map_err(|e| match e {
        PlanRouteError::Step { step, error } => {
            let mut error = refused(&state, error);
            error.message = format!("step `{step}`: {}", error.message);
            error
        }
        PlanRouteError::Plan(error) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "no_service", error.to_string()),
        other => ApiError::invalid(other.to_string()),
    })?;
    // The steps' decisions, then the plan's, durable before any call.
    let mut step_traces = Vec::new();
    for step in &decision.steps {
        let linked = state.store().append(step.decision.trace.body.clone()).await.map_err(ApiError::store)?;
        step_traces.push(TraceRef { seq: linked.seq, hash: linked.hash });
    }
    let linked = state.store().append(decision.trace.body.clone()).await.map_err(ApiError::store)?;
    let plan_trace = TraceRef { seq: linked.seq, hash: linked.hash };
    let registry = router.registry();
    let mut contracts = BTreeMap::new();
    let mut candidates: BTreeMap<String, Vec<Candidate>> = BTreeMap::new();
    let properties = body.end_to_end.properties();
    for step in &decision.steps {
        let routed = &step.decision;
        let list: Vec<Candidate> = std::iter::once(&routed.selected)
            .chain(&routed.alternatives)
            .filter_map(|ranked| {
                let entry = registry.active(&ranked.service)?;
                contracts.insert(ranked.service.clone(), entry.contract.clone());
                Some(Candidate {
                    service: ranked.service.clone(),
                    score: ranked.score,
                    tie_break: caio_calculus::route::tie_break(router.seed(), &ranked.service),
                    offers: step_offers(&entry.contract, &requests[&step.step], &properties),
                })
            })
            .collect();
        candidates.insert(step.step.clone(), list);
    }
    let picks = decision.steps.iter().map(|s| (s.step.clone(), s.chosen.clone())).collect();
    let plan = Arc::new(Plan {
        state: state.clone(),
        decision,
        candidates,
        contracts,
        plan_trace: plan_trace.clone(),
        streamed,
        run: Mutex::new(Run { progress: BTreeMap::new(), picks, running: Vec::new(), outputs: BTreeMap::new() }),
        requests,
        body,
    });

    let started = Instant::now();
    let mut done = run_node(&plan, &plan.body.plan).await?;
    let latency_ms = started.elapsed().as_secs_f64() * 1e3;
    let mut steps = Vec::new();
    let mut stream_answer = None;
    let mut fallbacks = 0;
    let mut cost_usd = 0.0;
    for (step, decision_trace) in plan.decision.steps.iter().zip(step_traces) {
        let mut ran =
            done.remove(&step.step).ok_or_else(|| ApiError::internal(format!("step `{}` did not run", step.step)))?;
        if let Some(stream) = ran.stream.take() {
            stream_answer = Some((stream, ran.attempts.clone(), step.step.clone()));
            continue;
        }
        let execution = execution_body(
            &plan_trace,
            &format!("{}/{}", plan.body.id, step.step),
            &ran.attempts,
            Some(&ran.served_by),
            None,
        );
        let execution = record(&state, execution).await;
        fallbacks += ran.fallbacks;
        if let Some(Progress::Done { cost_usd: cost, .. }) =
            plan.run.lock().unwrap_or_else(|e| e.into_inner()).progress.get(&step.step)
        {
            cost_usd += cost;
        }
        steps.push(StepRun {
            step: step.step.clone(),
            decision: decision_trace,
            planned: step.chosen.clone(),
            served_by: ran.served_by,
            attempts: ran.attempts,
            latency_ms: ran.latency_ms,
            result: ran.result,
            execution,
        });
    }
    if let Some((streamed, attempts, step)) = stream_answer {
        return Ok(stream_response(&state, &plan, streamed, attempts, &step));
    }
    Ok(Json(PlanResponse {
        request_id: plan.body.id.clone(),
        trace: plan_trace,
        steps,
        end_to_end: EndToEndRun {
            required: plan.body.end_to_end.guarantees.clone(),
            guaranteed: plan.decision.choice.composite.clone(),
            latency_ms,
            cost_usd,
            fallbacks,
        },
    })
    .into_response())
}

/// The answer of a plan whose last step streams: that step's events as
/// they come, the plan's trace in `x-caio-trace`; the step's execution
/// trace is recorded when the stream ends (the other steps' were already).
fn stream_response(
    state: &AppState,
    plan: &Arc<Plan>,
    streamed: Streamed,
    attempts: Vec<Attempt>,
    step: &str,
) -> Response {
    let Streamed { service, events, finished, .. } = streamed;
    let events =
        futures_util::stream::unfold(
            events,
            |mut events| async move { events.recv().await.map(|event| (event, events)) },
        );
    let (recorder, trace, id) = (state.clone(), plan.plan_trace.clone(), format!("{}/{step}", plan.body.id));
    let mut tried = attempts;
    tokio::spawn(async move {
        // The streaming attempt's final outcome, and every attempt to go
        // on with the answer, replace it.
        if let Ok(last) = finished.await {
            tried.pop();
            tried.extend(last);
        }
        let served = tried.iter().rev().find(|a| a.outcome.starts_with("ok")).map(|a| a.service.clone());
        record(&recorder, execution_body(&trace, &id, &tried, served.as_deref(), None)).await;
    });
    let mut response = Response::new(axum::body::Body::from_stream(events));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    for (name, value) in [
        ("x-caio-trace", plan.plan_trace.seq.to_string()),
        ("x-caio-request-id", plan.body.id.clone()),
        ("x-caio-service", service),
    ] {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
    response
}
