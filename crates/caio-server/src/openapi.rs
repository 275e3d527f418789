//! The OpenAPI 3.1 document of the API, generated from the handlers' own
//! request and response types (their JSON Schemas, by schemars, are
//! OpenAPI 3.1's dialect), so it cannot drift from what the handlers take
//! and give. Served at `GET /openapi.json`.

use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, SchemaGenerator};
use serde_json::{Map, Value, json};

use crate::api::execute::{OrchestrateRequest, OrchestrateResponse};
use crate::api::health::Health;
use crate::api::plan::{PlanBody, PlanResponse};
use crate::api::route::RouteResponse;
use crate::api::services::{ServiceSummary, ServiceView};
use crate::api::traces::{TraceView, VerifyReport};
use crate::api::transparency::{ConsistencyView, InclusionView};
use crate::error::ErrorBody;

/// Who may call an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone.
    Open,
    /// Any authenticated caller.
    Caller,
    /// Callers with the admin permission.
    Admin,
    /// Callers with the audit or admin permission.
    Auditor,
}

/// One operation of the API.
pub struct Operation {
    /// The HTTP method, lowercase.
    pub method: &'static str,
    /// The path, with `{parameters}`.
    pub path: &'static str,
    /// What it does.
    pub summary: &'static str,
    /// Who may call it.
    pub access: Access,
}

/// Every operation `app()` serves (a test checks that each one is routed).
pub const OPERATIONS: &[Operation] = &[
    Operation {
        method: "post",
        path: "/v1/route",
        summary: "Route a request: the decision, its proofs and its durable trace",
        access: Access::Caller,
    },
    Operation {
        method: "post",
        path: "/v1/chat/completions",
        summary: "A chat completion in the OpenAI format: routed, executed with retries and fallback, streamed as server-sent events with stream: true",
        access: Access::Caller,
    },
    Operation {
        method: "post",
        path: "/v1/embeddings",
        summary: "Embeddings in the OpenAI format: routed and executed",
        access: Access::Caller,
    },
    Operation {
        method: "post",
        path: "/v1/rerank",
        summary: "Rerank documents for a query (the shape vLLM and Infinity serve): routed and executed",
        access: Access::Caller,
    },
    Operation {
        method: "post",
        path: "/v1/images/generations",
        summary: "Image generation in the OpenAI format: routed and executed",
        access: Access::Caller,
    },
    Operation {
        method: "post",
        path: "/v1/audio/speech",
        summary: "Text to speech in the OpenAI format: routed and executed, the audio streamed as it comes",
        access: Access::Caller,
    },
    Operation {
        method: "post",
        path: "/v1/audio/transcriptions",
        summary: "Speech to text in the OpenAI format (multipart upload): routed and executed, the transcript passed on as the service wrote it",
        access: Access::Caller,
    },
    Operation {
        method: "post",
        path: "/v1/audio/translations",
        summary: "Speech to English text in the OpenAI format (multipart upload): routed and executed",
        access: Access::Caller,
    },
    Operation {
        method: "post",
        path: "/v1/orchestrate",
        summary: "caio's own call: route a request (or a plan of several steps under end-to-end bounds), execute it, and return the result with the decisions, the attempts and the traces",
        access: Access::Caller,
    },
    Operation {
        method: "get",
        path: "/v1/services",
        summary: "List the services of the registry",
        access: Access::Caller,
    },
    Operation {
        method: "post",
        path: "/v1/services",
        summary: "Register a new version of a contract (JSON, or YAML with Content-Type: application/yaml)",
        access: Access::Admin,
    },
    Operation {
        method: "get",
        path: "/v1/services/{id}",
        summary: "A service with every version",
        access: Access::Caller,
    },
    Operation {
        method: "delete",
        path: "/v1/services/{id}",
        summary: "Deprecate a service: withdrawn from routing, its versions kept",
        access: Access::Admin,
    },
    Operation { method: "get", path: "/v1/traces/{seq}", summary: "One trace of the log", access: Access::Auditor },
    Operation {
        method: "get",
        path: "/v1/traces/verify",
        summary: "Verify the hash chain of the log, or of a range (from, to)",
        access: Access::Auditor,
    },
    Operation {
        method: "get",
        path: "/v1/traces/{seq}/proof",
        summary: "The proof that a trace is in the log's Merkle tree (of `size` entries; default the latest checkpoint's)",
        access: Access::Open,
    },
    Operation {
        method: "get",
        path: "/v1/checkpoint",
        summary: "The latest signed checkpoint of the log (C2SP signed note: origin, size, root, signature)",
        access: Access::Open,
    },
    Operation {
        method: "get",
        path: "/v1/checkpoints/consistency",
        summary: "The proof that the log of `from` entries is a prefix of the log of `to` entries",
        access: Access::Open,
    },
    Operation { method: "get", path: "/healthz", summary: "Liveness", access: Access::Open },
    Operation { method: "get", path: "/readyz", summary: "Readiness: the store answers", access: Access::Open },
    Operation { method: "get", path: "/metrics", summary: "Prometheus metrics (text format)", access: Access::Open },
    Operation { method: "get", path: "/openapi.json", summary: "This document", access: Access::Open },
];

fn schema<T: JsonSchema>(generator: &mut SchemaGenerator) -> Value {
    generator.subschema_for::<T>().to_value()
}

/// A body in the OpenAI wire format, which OpenAI's own specification defines.
fn openai(what: &str) -> Value {
    json!({"type": "object", "description": format!("An OpenAI {what}, as in OpenAI's API reference")})
}

fn content(schema: Value) -> Value {
    content_as("application/json", schema)
}

fn content_as(media_type: &str, schema: Value) -> Value {
    json!({media_type: {"schema": schema}})
}

/// The media types of an operation's body and of its answer, where they
/// are not JSON.
fn media_types(path: &str) -> (&'static str, &'static str) {
    match path {
        "/v1/audio/transcriptions" | "/v1/audio/translations" => ("multipart/form-data", "application/json"),
        "/v1/audio/speech" => ("application/json", "audio/*"),
        "/metrics" | "/v1/checkpoint" => ("application/json", "text/plain"),
        _ => ("application/json", "application/json"),
    }
}

/// The document.
pub fn document() -> Value {
    let mut generator =
        SchemaSettings::draft2020_12().with(|s| s.definitions_path = "/components/schemas".into()).into_generator();
    let error = schema::<ErrorBody>(&mut generator);
    let request = schema::<caio_calculus::request::Request>(&mut generator);
    let contract = schema::<caio_calculus::contract::Contract>(&mut generator);
    let bodies: Vec<(&str, &str, Option<Value>, Value)> = vec![
        ("post", "/v1/route", Some(request), schema::<RouteResponse>(&mut generator)),
        (
            "post",
            "/v1/chat/completions",
            Some(openai("chat completion request (model, messages, stream, ...)")),
            openai("chat completion, or chat.completion.chunk events"),
        ),
        ("post", "/v1/embeddings", Some(openai("embeddings request (model, input)")), openai("list of embeddings")),
        (
            "post",
            "/v1/rerank",
            Some(openai("rerank request (model, query, documents, top_n)")),
            openai("results of index and relevance_score"),
        ),
        (
            "post",
            "/v1/images/generations",
            Some(openai("image generation request (model, prompt, n, size, response_format)")),
            openai("images as url or b64_json"),
        ),
        (
            "post",
            "/v1/audio/speech",
            Some(openai("speech request (model, input, voice, response_format, speed)")),
            openai("audio bytes in the requested format"),
        ),
        (
            "post",
            "/v1/audio/transcriptions",
            Some(openai("multipart/form-data: file, model, language, prompt, response_format, temperature")),
            openai("the transcript: json, text, srt, vtt or verbose_json"),
        ),
        (
            "post",
            "/v1/audio/translations",
            Some(openai("multipart/form-data: file, model, prompt, response_format, temperature")),
            openai("the English transcript: json, text, srt, vtt or verbose_json"),
        ),
        (
            "post",
            "/v1/orchestrate",
            // One step, or a plan of several (docs/plans.md).
            Some(json!({"oneOf": [schema::<OrchestrateRequest>(&mut generator), schema::<PlanBody>(&mut generator)]})),
            json!({"oneOf": [schema::<OrchestrateResponse>(&mut generator), schema::<PlanResponse>(&mut generator)]}),
        ),
        ("get", "/v1/services", None, schema::<Vec<ServiceSummary>>(&mut generator)),
        ("post", "/v1/services", Some(contract), schema::<ServiceView>(&mut generator)),
        ("get", "/v1/services/{id}", None, schema::<ServiceView>(&mut generator)),
        ("delete", "/v1/services/{id}", None, schema::<ServiceView>(&mut generator)),
        ("get", "/v1/traces/{seq}", None, schema::<TraceView>(&mut generator)),
        ("get", "/v1/traces/verify", None, schema::<VerifyReport>(&mut generator)),
        ("get", "/v1/traces/{seq}/proof", None, schema::<InclusionView>(&mut generator)),
        ("get", "/v1/checkpoint", None, json!({"type": "string"})),
        ("get", "/v1/checkpoints/consistency", None, schema::<ConsistencyView>(&mut generator)),
        ("get", "/healthz", None, json!({"type": "object"})),
        ("get", "/readyz", None, schema::<Health>(&mut generator)),
        ("get", "/metrics", None, json!({"type": "string"})),
        ("get", "/openapi.json", None, json!({"type": "object"})),
    ];
    let mut paths: Map<String, Value> = Map::new();
    for operation in OPERATIONS {
        let (_, _, body, response) = bodies
            .iter()
            .find(|(m, p, _, _)| *m == operation.method && *p == operation.path)
            .expect("every operation has its types");
        let status = if operation.method == "post" && operation.path == "/v1/services" { "201" } else { "200" };
        let mut responses = Map::new();
        let (request_type, response_type) = media_types(operation.path);
        responses.insert(
            status.into(),
            json!({"description": "Success", "content": content_as(response_type, response.clone())}),
        );
        responses.insert(
            "default".into(),
            json!({"description": "An error, with a stable code", "content": content(error.clone())}),
        );
        let mut entry = json!({
            "summary": operation.summary,
            "operationId": format!("{}{}", operation.method, operation.path.replace(['/', '{', '}', '.'], "_")),
            "responses": responses,
        });
        if operation.access != Access::Open {
            entry["security"] = json!([{"bearer": []}]);
        }
        if let Some(body) = body {
            entry["requestBody"] = json!({"required": true, "content": content_as(request_type, body.clone())});
        }
        let parameters: Vec<Value> = operation
            .path
            .split('/')
            .filter_map(|segment| segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        if !parameters.is_empty() {
            entry["parameters"] = Value::Array(parameters);
        }
        paths.entry(operation.path).or_insert_with(|| json!({}))[operation.method] = entry;
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "caio", "version": env!("CARGO_PKG_VERSION"), "description": "Routes AI requests to services and proves every decision."},
        "paths": paths,
        "components": {
            "schemas": generator.take_definitions(true),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        },
    })
}
