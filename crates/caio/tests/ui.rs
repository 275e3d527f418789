//! The dashboard at `/ui`, looked at in a real headless Chromium against a
//! real `caio serve` (SQLite store, two model servers on loopback): signing
//! in, the registry with breakers and sparklines, the latest decisions and
//! their "why / why not" drill-down, the embedded scorecard, registering a
//! contract as an admin (with the field path of a bad one shown inline), and
//! proof that the browser asked nothing of any other address.

mod replicas;

use std::time::{Duration, Instant};

use caio_gateway::fixture::{Fault, Upstream};
use replicas::{Replica, chat_contract, root, token};
use serde_json::{Value, json};

const EMBEDDINGS: &str = "id: embedder\nversion: 1.0.0\ncapabilities: [embeddings]\nprivacy: { data_locality: local }\n\
     api: { adapter: openai, endpoint: \"http://127.0.0.1:9/v1\", model: e, timeout_ms: 1000 }\n";

fn js(value: &str) -> String {
    serde_json::to_string(value).unwrap()
}

/// Signs in through the form with `token`.
fn sign_in(browser: &mut caio_testkit::Chromium, base: &str, token: &str) {
    browser.open(&format!("{base}/ui/login")).unwrap();
    browser
        .navigate_by(&format!(
            "document.querySelector('#token').value = {}; document.querySelector('form.login').submit()",
            js(token)
        ))
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_in_chromium_shows_routing_and_explains_each_decision() {
    let Some(mut browser) = caio_testkit::chromium("ui: dashboard") else { return };
    let (primary, backup) = (Upstream::start("primary").await, Upstream::start("backup").await);
    let dir = tempfile::tempdir().unwrap();
    let contracts = dir.path().join("contracts");
    std::fs::create_dir(&contracts).unwrap();
    std::fs::write(contracts.join("primary.yaml"), chat_contract("primary", &primary.openai_base(), 0.0)).unwrap();
    std::fs::write(contracts.join("backup.yaml"), chat_contract("backup", &backup.openai_base(), 1.0)).unwrap();
    std::fs::write(contracts.join("embedder.yaml"), EMBEDDINGS).unwrap();
    let config = dir.path().join("caio.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\nstore = \"caio.db\"\nregistry = \"contracts\"\nauth = \"{}\"\n\
             [gateway.retry]\nretries = 0\n\
             [gateway.breaker]\nminimum_calls = 4\nwindow = {{ count = {{ calls = 10 }} }}\nopen_ms = 600000\n",
            root().join("examples/auth/dev.yaml").display()
        ),
    )
    .unwrap();
    let replica = Replica::start(&config, &dir.path().join("caio.log"));
    let base = replica.url.clone();
    let client = reqwest::Client::new();
    let caller = token("caller", &["chat.basic"]);
    let chat = async |client: &reqwest::Client| {
        let response = client
            .post(format!("{base}/v1/chat/completions"))
            .bearer_auth(&caller)
            .json(&json!({"model": "chat", "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    };
    for _ in 0..5 {
        chat(&client).await;
    }
    primary.always(Some(Fault::ServerError));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        chat(&client).await;
        let view: Value = client
            .get(format!("{base}/v1/services/primary"))
            .bearer_auth(&caller)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if view["breaker"]["state"] == "open" {
            break;
        }
        assert!(Instant::now() < deadline, "the primary's breaker never opened: {view}");
    }
    let routed: Value = client
        .post(format!("{base}/v1/route"))
        .bearer_auth(&caller)
        .json(&json!({"id": "drill-down", "capabilities": ["chat"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let decision_seq = routed["trace"]["seq"].as_u64().unwrap();

    // Not signed in: to the form. A token without a dashboard permission is
    // refused there, with the permission it needs.
    browser.open(&format!("{base}/ui")).unwrap();
    assert_eq!(browser.location().unwrap(), format!("{base}/ui/login"));
    sign_in(&mut browser, &base, &caller);
    let refusal = browser.text("[role=alert]").unwrap();
    assert!(
        refusal.as_deref().is_some_and(|t| t.contains("caio:view")),
        "a caller may not view: {refusal:?} at {}",
        browser.location().unwrap()
    );

    // A viewer: the overview.
    sign_in(&mut browser, &base, &token("operator", &["caio:view"]));
    assert_eq!(browser.location().unwrap(), format!("{base}/ui"));
    let rows =
        browser.eval("[...document.querySelectorAll('#registry tbody tr')].map(r => r.dataset.service)").unwrap();
    assert_eq!(rows, json!(["backup", "embedder", "primary"]));
    assert_eq!(browser.text("tr[data-service=primary] .breaker").unwrap().as_deref(), Some("open"));
    assert_eq!(browser.text("tr[data-service=backup] .breaker").unwrap().as_deref(), Some("closed"));
    let failures =
        browser.eval("document.querySelectorAll('tr[data-service=primary] svg line.failure').length").unwrap();
    assert!(failures.as_u64().unwrap() >= 4, "failed calls are marked on the primary's sparkline: {failures}");
    let label =
        browser.eval("document.querySelector('tr[data-service=backup] svg').getAttribute('aria-label')").unwrap();
    assert!(label.as_str().unwrap().contains("0 failed"), "{label}");
    assert!(browser.text("#chain").unwrap().unwrap().starts_with("✓"), "the chain verifies");
    let committed: Value =
        serde_json::from_str(&std::fs::read_to_string(root().join("scorecard.json")).unwrap()).unwrap();
    assert_eq!(browser.text("#scorecard-decision").unwrap(), committed["decision"].as_str().map(str::to_string));
    let listed = browser.eval("document.querySelectorAll('#decisions tbody a.decision').length").unwrap();
    assert!(listed.as_u64().unwrap() >= 10, "the latest decisions are listed: {listed}");
    assert_eq!(browser.eval("document.querySelector('a[href=\"/ui/services/new\"]')").unwrap(), Value::Null);
    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("ui-overview.png");
    browser.screenshot(&shot).unwrap();
    assert!(std::fs::metadata(&shot).unwrap().len() > 10_000, "a screenshot of the overview");

    // The drill-down: the newest decision is the routed one.
    browser
        .navigate_by(&format!("document.querySelector('a[href=\"/ui/decisions/{decision_seq}\"]').click()"))
        .unwrap();
    assert_eq!(browser.location().unwrap(), format!("{base}/ui/decisions/{decision_seq}"));
    assert_eq!(browser.text("#selected").unwrap(), routed["selected"]["service"].as_str().map(str::to_string));
    let checks =
        browser.eval("[...document.querySelectorAll('#proofs tbody tr td:last-child')].map(c => c.innerText)").unwrap();
    let checks = checks.as_array().unwrap();
    assert_eq!(checks.len(), routed["proofs"].as_array().unwrap().len(), "one row per recorded proof");
    assert!(checks.iter().all(|c| c == "✓ holds"), "every proof re-checks: {checks:?}");
    let alternatives = browser
        .eval("[...document.querySelectorAll('#alternatives tbody tr td:first-child')].map(c => c.innerText)")
        .unwrap();
    let expected: Vec<Value> =
        routed["alternatives"].as_array().unwrap().iter().map(|a| a["service"].clone()).collect();
    assert_eq!(alternatives, Value::Array(expected));
    assert!(browser.text("#not-capable").unwrap().unwrap().contains("embedder"));
    assert_eq!(browser.text("#selected-breaker").unwrap().as_deref(), Some("closed"), "the breaker at decision time");
    let page = browser.eval("document.body.innerText").unwrap();
    let page = page.as_str().unwrap();
    assert!(!page.contains("None"), "absent values are named for people");
    let score = routed["selected"]["score"].as_f64().unwrap();
    assert!(page.contains(&format!("score {score:.3}")), "scores rounded for people (the trace keeps every digit)");
    let opened = browser.eval("const d = document.querySelector('#proofs details'); d.open = true; d.querySelector('pre').innerText.length").unwrap();
    assert!(opened.as_u64().unwrap() > 2, "a proof's evidence unfolds");

    // A viewer sees a contract but no form to change it.
    browser.open(&format!("{base}/ui/services/primary")).unwrap();
    assert!(browser.text("#contract").unwrap().unwrap().contains("\"id\": \"primary\""));
    assert_eq!(browser.eval("document.querySelector('#contract-text')").unwrap(), Value::Null);

    // An admin registers a contract; a bad one comes back with its field.
    browser.navigate_by("document.querySelector('header form').submit()").unwrap();
    assert_eq!(browser.location().unwrap(), format!("{base}/ui/login"));
    sign_in(&mut browser, &base, &token("admin", &["caio:admin"]));
    browser.open(&format!("{base}/ui/services/new")).unwrap();
    let bad = EMBEDDINGS.replace("embedder", "embedder-2").replace("data_locality: local", "data_locality: moon");
    let submit = |text: &str| {
        format!(
            "document.querySelector('#contract-text').value = {}; document.querySelector('form.contract').submit()",
            js(text)
        )
    };
    browser.navigate_by(&submit(&bad)).unwrap();
    assert_eq!(browser.text("#problem-path").unwrap().as_deref(), Some("privacy.data_locality"));
    assert!(
        browser.eval("document.querySelector('#contract-text').value").unwrap().as_str().unwrap().contains("moon"),
        "the draft is kept"
    );
    browser.navigate_by(&submit(&EMBEDDINGS.replace("embedder", "embedder-2"))).unwrap();
    assert_eq!(browser.location().unwrap(), format!("{base}/ui/services/embedder-2"));
    let listed: Value =
        client.get(format!("{base}/v1/services")).bearer_auth(&caller).send().await.unwrap().json().await.unwrap();
    assert!(
        listed.as_array().unwrap().iter().any(|s| s["id"] == "embedder-2"),
        "registered through the store: {listed}"
    );

    // Nothing the pages asked for was anywhere but this caio.
    let elsewhere: Vec<&String> = browser
        .requests()
        .iter()
        .filter(|url| !url.starts_with(&format!("{base}/")) && *url != "about:blank")
        .collect();
    assert!(elsewhere.is_empty(), "requests that left caio: {elsewhere:?}");
    assert!(browser.requests().iter().any(|url| url.ends_with("/ui/assets/caio.css")), "the stylesheet came from caio");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_pages_are_guarded_and_refuse_forms_from_other_sites() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("caio.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\nstore = \"caio.db\"\nregistry = \"{}\"\nviewer_permission = \"ops:look\"\n",
            root().join("examples/contracts").display()
        ),
    )
    .unwrap();
    let replica = Replica::start(&config, &dir.path().join("caio.log"));
    let base = &replica.url;
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let page = client.get(format!("{base}/ui")).send().await.unwrap();
    assert_eq!(page.status(), 303);
    assert_eq!(page.headers()["location"], "/ui/login");
    let csp = page.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.starts_with("default-src 'none'"), "{csp}");
    assert_eq!(page.headers()["x-frame-options"], "DENY");

    // The configured viewer permission lets in, and the cookie is strict.
    // Forms must say where they come from.
    let unsigned =
        client.post(format!("{base}/ui/login")).form(&[("token", token("look", &["ops:look"]))]).send().await.unwrap();
    assert_eq!(unsigned.status(), 403, "no Origin");
    let signed = client
        .post(format!("{base}/ui/login"))
        .header("origin", base.as_str())
        .form(&[("token", token("look", &["ops:look"]))])
        .send()
        .await
        .unwrap();
    assert_eq!(signed.status(), 303);
    let cookie = signed.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict") && cookie.contains("Path=/ui"),
        "{cookie}"
    );
    let cookie = cookie.split(';').next().unwrap().to_string();
    let overview = client.get(format!("{base}/ui")).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(overview.status(), 200);
    assert!(
        !overview.text().await.unwrap().contains(cookie.trim_start_matches("caio_ui=")),
        "the token is never in a page"
    );
    let missing = client.get(format!("{base}/ui/decisions/999999")).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(missing.status(), 404);

    // Registering needs the admin permission, from this site only.
    let form = [("contract", EMBEDDINGS.to_string())];
    let viewer = client
        .post(format!("{base}/ui/services"))
        .header("cookie", &cookie)
        .header("origin", base.as_str())
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(viewer.status(), 403);
    assert!(viewer.text().await.unwrap().contains("caio:admin"), "refused for the permission, not the origin");
    let logout = client.post(format!("{base}/ui/logout")).header("origin", "https://elsewhere.example").send().await.unwrap();
    assert_eq!(logout.status(), 403, "signing out is a form like the others");
    let admin = format!("caio_ui={}", token("admin", &["caio:admin"]));
    let forged = client
        .post(format!("{base}/ui/services"))
        .header("cookie", &admin)
        .header("origin", "https://elsewhere.example")
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    assert!(forged.text().await.unwrap().contains("may not change this caio"));
    let services: Value = client
        .get(format!("{base}/v1/services"))
        .bearer_auth(token("look", &[]))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(!services.as_array().unwrap().iter().any(|s| s["id"] == "embedder"), "nothing was registered");
}
