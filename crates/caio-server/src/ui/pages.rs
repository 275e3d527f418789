//! The dashboard's handlers: each reads what its page shows (through
//! [`super::views`]) and renders its template.

use askama::Template;
use axum::Form;
use axum::extract::rejection::FormRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use caio_calculus::contract::{Format, parse_contracts};
use caio_store::ServiceRecord;
use serde::Deserialize;

use super::scorecard::{self, Scorecard};
use super::session::{self, Viewer};
use super::views::{self, ChainStatus, DecisionDetail, DecisionRow, ServiceRow};
use crate::api::blocking;
use crate::error::ApiError;
use crate::state::AppState;

/// What every page shows around its content.
pub struct Frame {
    pub title: String,
    pub viewer: Option<Viewer>,
    pub version: &'static str,
    pub store: String,
}

fn frame(state: &AppState, title: impl Into<String>, viewer: Option<Viewer>) -> Frame {
    Frame { title: title.into(), viewer, version: env!("CARGO_PKG_VERSION"), store: state.store().location() }
}

/// Why a page cannot be shown: to the sign-in form, or a problem page.
pub enum Refusal {
    SignIn,
    Problem(Frame, ApiError),
}

#[derive(Template)]
#[template(path = "ui/problem.html")]
struct ProblemPage {
    frame: Frame,
    message: String,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::SignIn => Redirect::to("/ui/login").into_response(),
            Refusal::Problem(mut frame, error) => {
                frame.title = match error.status {
                    StatusCode::FORBIDDEN => "Not allowed".into(),
                    StatusCode::NOT_FOUND => "Not found".into(),
                    StatusCode::TOO_MANY_REQUESTS => "Too many requests".into(),
                    _ => "Something went wrong".into(),
                };
                (error.status, render(&ProblemPage { frame, message: error.message })).into_response()
            }
        }
    }
}

fn render(page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("the page could not be drawn: {e}")).into_response(),
    }
}

/// The signed-in person, or the way to the sign-in form.
async fn signed_in(state: &AppState, headers: &HeaderMap) -> Result<Viewer, Refusal> {
    let Some(token) = session::token(headers) else { return Err(Refusal::SignIn) };
    match session::viewer(state, &token).await {
        Ok((viewer, _)) => Ok(viewer),
        Err(e) if e.code == "unauthenticated" => Err(Refusal::SignIn),
        Err(e) => Err(Refusal::Problem(frame(state, "", None), e)),
    }
}

async fn read<T: Send + 'static>(
    state: &AppState,
    viewer: &Viewer,
    operation: &'static str,
    f: impl FnOnce(&dyn caio_store::Store) -> Result<T, caio_store::StoreError> + Send + 'static,
) -> Result<T, Refusal> {
    blocking(state, operation, f).await.map_err(|e| {
        Refusal::Problem(frame(state, "", Some(Viewer { subject: viewer.subject.clone(), admin: viewer.admin })), e)
    })
}

#[derive(Template)]
#[template(path = "ui/overview.html")]
struct Overview {
    frame: Frame,
    scorecard: Result<Scorecard, String>,
    failing: usize,
    chain: ChainStatus,
    shared: String,
    services: Vec<ServiceRow>,
    admin: bool,
    decisions: Vec<DecisionRow>,
}

/// `GET /ui`.
pub async fn overview(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, Refusal> {
    let viewer = signed_in(&state, &headers).await?;
    let records = read(&state, &viewer, "services", |store| store.services()).await?;
    let (verified, now) = (state.0.verified_up_to.clone(), state.now());
    let (traces, chain) = read(&state, &viewer, "dashboard", move |store| {
        let traces = views::latest(store)?;
        let chain = views::chain(store, traces.first(), &verified, now);
        Ok((traces, chain))
    })
    .await?;
    let scorecard = scorecard::embedded();
    let failing = scorecard.as_ref().map_or(0, |card| card.invariants.iter().map(|i| i.failing().len()).sum());
    let shared = match state.shared().map(|s| s.status()) {
        None => "not shared: breakers and rate limits are this replica's own".into(),
        Some(status) if status.connected => format!("shared through {} at {}", status.backend, status.location),
        Some(status) => format!(
            "{} at {} is unreachable: serving on in-memory state ({} fallbacks)",
            status.backend, status.location, status.fallbacks
        ),
    };
    let admin = viewer.admin;
    Ok(render(&Overview {
        services: views::services(&state, &records),
        decisions: traces.iter().map(views::decision_row).collect(),
        frame: frame(&state, "Overview", Some(viewer)),
        scorecard,
        failing,
        chain,
        shared,
        admin,
    }))
}

#[derive(Template)]
#[template(path = "ui/decision.html")]
struct DecisionPage {
    frame: Frame,
    d: DecisionDetail,
}

#[derive(Template)]
#[template(path = "ui/plan.html")]
struct PlanPage {
    frame: Frame,
    p: views::PlanDetail,
}

#[derive(Template)]
#[template(path = "ui/trace.html")]
struct TracePage {
    frame: Frame,
    seq: u64,
    hash: String,
    raw: String,
}

/// `GET /ui/decisions/{seq}`: why this service, why not the others.
pub async fn decision(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(seq): Path<String>,
) -> Result<Response, Refusal> {
    let viewer = signed_in(&state, &headers).await?;
    let Ok(seq) = seq.parse::<u64>() else {
        return Err(Refusal::Problem(
            frame(&state, "", Some(viewer)),
            ApiError::not_found("a decision is named by its trace's sequence number, such as /ui/decisions/42"),
        ));
    };
    let trace = read(&state, &viewer, "trace", move |store| store.trace(seq)).await?;
    let Some(trace) = trace else {
        return Err(Refusal::Problem(
            frame(&state, "", Some(viewer)),
            ApiError::not_found(format!("no trace {seq} in the log")),
        ));
    };
    let digests = views::plan_step_digests(&trace);
    if !digests.is_empty() {
        // The step decisions were appended just before the plan's, perhaps
        // among other calls' traces: looked for among the 256 before it.
        let first = seq.saturating_sub(256);
        let before = read(&state, &viewer, "trace", move |store| {
            (first..seq).filter_map(|s| store.trace(s).transpose()).collect::<Result<Vec<_>, _>>()
        })
        .await?;
        let found = before
            .iter()
            .map(|t| (caio_calculus::trace::canonical_digest(&t.body.to_value()), t.seq))
            .filter(|(digest, _)| digests.contains(digest))
            .collect();
        if let Some(p) = views::plan(&trace, &found) {
            return Ok(render(&PlanPage { frame: frame(&state, format!("Plan #{seq}"), Some(viewer)), p }));
        }
    }
    Ok(match views::decision(&trace) {
        Some(d) => render(&DecisionPage { frame: frame(&state, format!("Decision #{seq}"), Some(viewer)), d }),
        None => render(&TracePage {
            frame: frame(&state, format!("Trace #{seq}"), Some(viewer)),
            seq,
            hash: trace.hash,
            raw: serde_json::to_string_pretty(&trace.body).unwrap_or_default(),
        }),
    })
}

/// A contract that did not register, shown beside the form.
pub struct Problem {
    pub message: String,
    pub path: String,
}

#[derive(Template)]
#[template(path = "ui/service.html")]
struct ServicePage {
    frame: Frame,
    service: Option<ServiceRow>,
    versions: Vec<(String, String, u64)>,
    contract: String,
    admin: bool,
    problem: Option<Problem>,
    draft: String,
}

fn service_page(
    state: &AppState,
    viewer: Viewer,
    record: Option<&ServiceRecord>,
    problem: Option<Problem>,
    draft: Option<String>,
) -> ServicePage {
    let contract = record
        .and_then(|r| r.active())
        .map(|v| serde_json::to_string_pretty(&v.contract).unwrap_or_default())
        .unwrap_or_default();
    let title = record.map_or_else(|| "Register a service".to_string(), |r| r.id.clone());
    ServicePage {
        service: record.and_then(|r| views::services(state, std::slice::from_ref(r)).pop()),
        versions: record
            .map(|r| r.versions.iter().map(|v| (v.version.clone(), v.digest.clone(), v.registered_at)).collect())
            .unwrap_or_default(),
        draft: draft.unwrap_or_else(|| contract.clone()),
        contract,
        admin: viewer.admin,
        problem,
        frame: frame(state, title, Some(viewer)),
    }
}

/// `GET /ui/services/{id}`.
pub async fn service(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, Refusal> {
    let viewer = signed_in(&state, &headers).await?;
    let lookup = id.clone();
    let Some(record) = read(&state, &viewer, "service", move |store| store.service(&lookup)).await? else {
        return Err(Refusal::Problem(
            frame(&state, "", Some(viewer)),
            ApiError::not_found(format!("no service `{}` is registered", caio_calculus::contract::quoted(&id))),
        ));
    };
    Ok(render(&service_page(&state, viewer, Some(&record), None, None)))
}

/// `GET /ui/services/new`: the form for a first contract (admins).
pub async fn new_service(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, Refusal> {
    let viewer = admin(&state, &headers).await?;
    Ok(render(&service_page(&state, viewer, None, None, None)))
}

async fn admin(state: &AppState, headers: &HeaderMap) -> Result<Viewer, Refusal> {
    let viewer = signed_in(state, headers).await?;
    if viewer.admin {
        Ok(viewer)
    } else {
        let permission = state.0.config.admin_permission.clone();
        Err(Refusal::Problem(frame(state, "", Some(viewer)), ApiError::forbidden(&permission)))
    }
}

/// The registration form.
#[derive(Deserialize)]
pub struct ContractForm {
    contract: String,
}

/// `POST /ui/services`: registers the contract of the form (admins); a
/// contract that does not parse or register comes back with its field path.
pub async fn register(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<ContractForm>, FormRejection>,
) -> Result<Response, Refusal> {
    let viewer = admin(&state, &headers).await?;
    let forbidden = |state: &AppState, viewer: Viewer, e: ApiError| Refusal::Problem(frame(state, "", Some(viewer)), e);
    if let Err(e) = session::same_origin(&headers, state.0.config.public_origin.as_deref()) {
        return Err(forbidden(&state, viewer, e));
    }
    let draft = match form {
        Ok(Form(form)) => form.contract,
        Err(e) => return Err(forbidden(&state, viewer, ApiError::invalid(format!("the form: {}", e.body_text())))),
    };
    let format = if draft.trim_start().starts_with('{') { Format::Json } else { Format::Yaml };
    let unregistered = |state: &AppState, viewer: Viewer, message: String, path: String, draft: String| {
        let page = service_page(state, viewer, None, Some(Problem { message, path }), Some(draft));
        (StatusCode::UNPROCESSABLE_ENTITY, render(&page)).into_response()
    };
    let mut contracts = match parse_contracts(&draft, format) {
        Ok(contracts) => contracts,
        Err(e) => return Ok(unregistered(&state, viewer, format!("the contract: {e}"), e.path.clone(), draft)),
    };
    if contracts.len() != 1 {
        let message = format!("send one contract, not {}", contracts.len());
        return Ok(unregistered(&state, viewer, message, String::new(), draft));
    }
    let contract = contracts.remove(0);
    if let Some(problem) = state.gateway().endpoint_problem(&contract) {
        return Ok(unregistered(
            &state,
            viewer,
            format!("the contract: api.endpoint: {problem}"),
            "api.endpoint".into(),
            draft,
        ));
    }
    let id = contract.id.clone();
    let at = state.now();
    let by = viewer.subject.clone();
    match blocking(&state, "register", move |store| store.register(contract, at, &by)).await {
        Ok(_) => {}
        Err(e) => return Ok(unregistered(&state, viewer, e.message, String::new(), draft)),
    }
    if let Err(e) = crate::api::services::refresh(&state).await {
        return Err(forbidden(&state, viewer, e));
    }
    tracing::info!(target: "caio", service = %id, by = %viewer.subject, "registered a contract from the dashboard");
    Ok(Redirect::to(&format!("/ui/services/{id}")).into_response())
}

#[derive(Template)]
#[template(path = "ui/scorecard.html")]
struct ScorecardPage {
    frame: Frame,
    scorecard: Result<Scorecard, String>,
}

/// `GET /ui/scorecard`: the embedded scorecard in full.
pub async fn scorecard(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, Refusal> {
    let viewer = signed_in(&state, &headers).await?;
    Ok(render(&ScorecardPage { frame: frame(&state, "Scorecard", Some(viewer)), scorecard: scorecard::embedded() }))
}

#[derive(Template)]
#[template(path = "ui/login.html")]
struct LoginPage {
    frame: Frame,
    viewer_permission: String,
    problem: Option<String>,
}

fn login_page(state: &AppState, problem: Option<String>) -> LoginPage {
    LoginPage {
        frame: frame(state, "Sign in", None),
        viewer_permission: state.0.config.viewer_permission.clone(),
        problem,
    }
}

/// `GET /ui/login`.
pub async fn login_form(State(state): State<AppState>) -> Response {
    render(&login_page(&state, None))
}

/// The sign-in form.
#[derive(Deserialize)]
pub struct LoginForm {
    token: String,
}

/// `POST /ui/login`: checks the token, keeps it in the cookie.
pub async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Response {
    let refused = |state: &AppState, status: StatusCode, message: String| {
        (status, render(&login_page(state, Some(message)))).into_response()
    };
    if let Err(e) = session::same_origin(&headers, state.0.config.public_origin.as_deref()) {
        return refused(&state, e.status, e.message);
    }
    let token = match form {
        Ok(Form(form)) => form.token.trim().to_string(),
        Err(e) => return refused(&state, StatusCode::BAD_REQUEST, format!("the form: {}", e.body_text())),
    };
    match session::viewer(&state, &token).await {
        Ok((_, caller)) => {
            let mut response = Redirect::to("/ui").into_response();
            response.headers_mut().insert(
                header::SET_COOKIE,
                session::keep(&token, state.now(), caller.claims.exp, state.0.config.public_origin.as_deref()),
            );
            response
        }
        Err(e) => refused(&state, e.status, e.message),
    }
}

/// `POST /ui/logout`: from the dashboard only, as every form.
pub async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let public_origin = state.0.config.public_origin.as_deref();
    if let Err(e) = session::same_origin(&headers, public_origin) {
        return e.into_response();
    }
    let mut response = Redirect::to("/ui/login").into_response();
    response.headers_mut().insert(header::SET_COOKIE, session::forget(public_origin));
    response
}

/// `GET /ui/assets/caio.css`.
pub async fn stylesheet() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, "public, max-age=3600")],
        include_str!("../../assets/caio.css"),
    )
        .into_response()
}
