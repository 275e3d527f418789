//! The front doors beyond chat and embeddings, over real HTTP on 127.0.0.1:
//! rerank and image generation routed, executed, failed over and traced;
//! a chat with images routed only to services that see them.

mod support;

use caio_calculus::contract::{Contract, Format, parse_contracts};
use caio_calculus::rules::Policy;
use caio_gateway::fixture::{Fault, Upstream};
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{Server, execution_of, outcomes, token};

/// A service of `capabilities` at `endpoint`; the lower `price` is preferred.
fn service(id: &str, capabilities: &str, endpoint: &str, price: f64, adapter: &str) -> Contract {
    service_with(id, capabilities, endpoint, price, adapter, "")
}

/// The same, with `api` fields added (`, "audio": {...}`).
fn service_with(id: &str, capabilities: &str, endpoint: &str, price: f64, adapter: &str, api: &str) -> Contract {
    let text = format!(
        r#"{{"id": "{id}", "version": "1.0.0", "capabilities": {capabilities}, "cost": {{"per_request": {price}}},
            "privacy": {{"data_locality": "local"}}, "security": {{"required_permissions": ["chat.basic"]}},
            "api": {{"adapter": "{adapter}", "endpoint": "{endpoint}", "model": "m-{id}", "timeout_ms": 5000{api}}}}}"#
    );
    parse_contracts(&text, Format::Json).unwrap().remove(0)
}

/// caio over `services`, with the default policy and configuration.
async fn serve(services: Vec<Contract>) -> Server {
    Server::start_with(services, Policy::default(), |_| {}).await
}

async fn post(server: &Server, path: &str, body: Value) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let response = reqwest::Client::new()
        .post(format!("{}{path}", server.url))
        .bearer_auth(token("alice", &["chat.basic"]))
        .json(&body)
        .send()
        .await
        .unwrap();
    let (status, headers) = (response.status(), response.headers().clone());
    (status, headers, response.json().await.unwrap_or(Value::Null))
}

fn header<'a>(headers: &'a reqwest::header::HeaderMap, name: &str) -> &'a str {
    headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default()
}

#[tokio::test]
async fn rerank_is_routed_executed_traced_and_falls_back() {
    let (first, second) = (Upstream::start("first").await, Upstream::start("second").await);
    let server = serve(vec![
        service("rerank-a", r#"["rerank"]"#, &first.openai_base(), 0.001, "openai"),
        service("rerank-b", r#"["rerank"]"#, &second.openai_base(), 0.002, "openai"),
    ])
    .await;
    let body = json!({
        "model": "rerank",
        "query": "rust routing",
        "documents": ["a poem", "routing in rust", "rust never sleeps"],
        "top_n": 2,
    });
    let (status, headers, answer) = post(&server, "/v1/rerank", body.clone()).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(header(&headers, "x-caio-service"), "rerank-a");
    let ranked: Vec<(u64, f64)> = answer["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["index"].as_u64().unwrap(), r["relevance_score"].as_f64().unwrap()))
        .collect();
    assert_eq!(ranked, vec![(1, 1.0), (2, 0.5)], "{answer}");
    let (path, _, sent) = first.seen().pop().unwrap();
    assert_eq!(path, "/v1/rerank");
    assert_eq!(sent["model"], "m-rerank-a", "the contract's model is sent");
    assert_eq!(sent["documents"], body["documents"]);
    // The preferred service fails: the next admitted one answers.
    first.always(Some(Fault::ServerError));
    let (status, headers, answer) = post(&server, "/v1/rerank", body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(header(&headers, "x-caio-service"), "rerank-b");
    let decision: u64 = header(&headers, "x-caio-trace").parse().unwrap();
    let execution = execution_of(&server, decision).await;
    let tried = outcomes(&execution);
    assert_eq!(tried.first().map(String::as_str), Some("rerank-a:server_500"), "{tried:?}");
    assert_eq!(tried.last().map(String::as_str), Some("rerank-b:ok"), "{tried:?}");
    // A rerank without documents is refused before anything is called.
    let hits = second.hits();
    let (status, _, error) = post(&server, "/v1/rerank", json!({"model": "rerank", "query": "q"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error["error"]["message"].as_str().unwrap().starts_with("`documents`"), "{error}");
    assert_eq!(second.hits(), hits);
}

#[tokio::test]
async fn an_adapter_without_the_operation_is_passed_over() {
    let (ollama, openai) = (Upstream::start("ollama").await, Upstream::start("openai").await);
    let server = serve(vec![
        service("cheap-ollama", r#"["rerank"]"#, &ollama.base(), 0.001, "ollama"),
        service("openai-rerank", r#"["rerank"]"#, &openai.openai_base(), 0.002, "openai"),
    ])
    .await;
    let body = json!({"model": "rerank", "query": "q", "documents": ["q"]});
    let (status, headers, answer) = post(&server, "/v1/rerank", body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(header(&headers, "x-caio-service"), "openai-rerank");
    assert_eq!(ollama.hits(), 0, "Ollama serves no rerank API: it is not called");
}

#[tokio::test]
async fn images_are_generated_as_urls_or_base64() {
    let up = Upstream::start("painter").await;
    let server = serve(vec![service("painter", r#"["image_generation"]"#, &up.openai_base(), 0.01, "openai")]).await;
    let (status, _, answer) =
        post(&server, "/v1/images/generations", json!({"model": "image_generation", "prompt": "a red fox", "n": 2}))
            .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["data"][1]["url"], "https://images.example/painter/1.png");
    let body = json!({"model": "image_generation", "prompt": "a red fox", "response_format": "b64_json"});
    let (status, _, answer) = post(&server, "/v1/images/generations", body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert!(answer["data"][0]["b64_json"].is_string(), "{answer}");
    assert_eq!(up.seen().last().unwrap().0, "/v1/images/generations");
    let (status, _, error) = post(&server, "/v1/images/generations", json!({"model": "image_generation"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error["error"]["message"].as_str().unwrap().starts_with("`prompt`"), "{error}");
    // caio's own call takes the same operation.
    let body = json!({
        "request": {"id": "img-1", "capabilities": ["image_generation"]},
        "operation": "image_generation",
        "input": {"prompt": "a blue fox"},
    });
    let (status, _, answer) = post(&server, "/v1/orchestrate", body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["served_by"], "painter");
    assert!(answer["result"]["data"].is_array(), "{answer}");
}

#[tokio::test]
async fn a_chat_with_images_goes_only_to_services_that_see_them() {
    let (text, eyes) = (Upstream::start("text").await, Upstream::start("eyes").await);
    let server = serve(vec![
        service("text-only", r#"["chat"]"#, &text.openai_base(), 0.001, "openai"),
        service("sees", r#"["chat", "vision"]"#, &eyes.openai_base(), 0.01, "openai"),
    ])
    .await;
    let plain = json!({"model": "chat", "messages": [{"role": "user", "content": "hi"}]});
    let (status, headers, answer) = post(&server, "/v1/chat/completions", plain).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(header(&headers, "x-caio-service"), "text-only", "the cheaper service, without images");
    let picture = json!({"model": "chat", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
    ]}]});
    let (status, headers, answer) = post(&server, "/v1/chat/completions", picture).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(header(&headers, "x-caio-service"), "sees");
    assert_eq!(text.hits(), 1, "the text-only service never saw the image");
}

/// Posts a speech request; answers the status, headers, the body's chunks
/// as they arrived and whether the body ended cleanly.
async fn speak(server: &Server, body: Value) -> (StatusCode, reqwest::header::HeaderMap, Vec<Vec<u8>>, bool) {
    use futures_util::StreamExt;
    let response = reqwest::Client::new()
        .post(format!("{}/v1/audio/speech", server.url))
        .bearer_auth(token("alice", &["chat.basic"]))
        .json(&body)
        .send()
        .await
        .unwrap();
    let (status, headers) = (response.status(), response.headers().clone());
    let mut chunks = Vec::new();
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        match chunk {
            Ok(bytes) => chunks.push(bytes.to_vec()),
            Err(_) => return (status, headers, chunks, false),
        }
    }
    (status, headers, chunks, true)
}

#[tokio::test]
async fn speech_streams_audio_as_it_comes_and_falls_back_before_the_first_byte() {
    let (first, second) = (Upstream::start("first").await, Upstream::start("second").await);
    for up in [&first, &second] {
        up.chunk_gap(std::time::Duration::from_millis(150));
    }
    let server = serve(vec![
        service("voice-a", r#"["text_to_speech"]"#, &first.openai_base(), 0.001, "openai"),
        service("voice-b", r#"["text_to_speech"]"#, &second.openai_base(), 0.002, "openai"),
    ])
    .await;
    let request =
        json!({"model": "text_to_speech", "input": "Hello there", "voice": "alloy", "response_format": "wav"});
    let (status, headers, chunks, clean) = speak(&server, request.clone()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(clean);
    assert_eq!(header(&headers, "content-type"), "audio/wav");
    assert_eq!(header(&headers, "x-caio-service"), "voice-a");
    assert_eq!(
        String::from_utf8(chunks.concat()).unwrap(),
        "audio 1/4 from first audio 2/4 from first audio 3/4 from first audio 4/4 from first "
    );
    assert!(chunks.len() > 1, "passed on as it came, not gathered first: {} chunk(s)", chunks.len());
    let (path, _, sent) = first.seen().pop().unwrap();
    assert_eq!(
        (path.as_str(), &sent["model"], &sent["voice"]),
        ("/v1/audio/speech", &json!("m-voice-a"), &json!("alloy"))
    );
    let decision: u64 = header(&headers, "x-caio-trace").parse().unwrap();
    assert_eq!(outcomes(&execution_of(&server, decision).await), ["voice-a:ok"]);
    // The preferred voice fails before its first byte: the next one speaks.
    first.push([Fault::ServerError, Fault::ServerError, Fault::ServerError]);
    let (status, headers, chunks, clean) = speak(&server, request.clone()).await;
    assert_eq!((status, clean), (StatusCode::OK, true));
    assert_eq!(header(&headers, "x-caio-service"), "voice-b");
    assert!(String::from_utf8(chunks.concat()).unwrap().ends_with("audio 4/4 from second "));
    // Cut after two chunks: the caller's body is cut too (an error event
    // would corrupt the audio), and nothing starts over elsewhere.
    let before = second.hits();
    first.push([Fault::CutAfter(2)]);
    let (status, headers, chunks, clean) = speak(&server, request).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!clean, "the body ends in an error");
    assert_eq!(String::from_utf8(chunks.concat()).unwrap(), "audio 1/4 from first audio 2/4 from first ");
    assert_eq!(second.hits(), before, "audio is not restarted on another voice");
    let decision: u64 = header(&headers, "x-caio-trace").parse().unwrap();
    assert_eq!(outcomes(&execution_of(&server, decision).await), ["voice-a:cut"]);
    let (status, _, error) = post(&server, "/v1/audio/speech", json!({"model": "text_to_speech"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error["error"]["message"].as_str().unwrap().starts_with("`input`"), "{error}");
}

/// A WAV recording of `samples` 16-bit samples of silence at 16 kHz.
fn wav(samples: usize) -> Vec<u8> {
    let data = (samples * 2) as u32;
    let mut bytes = Vec::new();
    bytes.extend_from_slice(b"RIFF");
    bytes.extend_from_slice(&(36 + data).to_le_bytes());
    bytes.extend_from_slice(b"WAVEfmt ");
    bytes.extend_from_slice(&16u32.to_le_bytes());
    bytes.extend_from_slice(&1u16.to_le_bytes()); // PCM
    bytes.extend_from_slice(&1u16.to_le_bytes()); // mono
    bytes.extend_from_slice(&16_000u32.to_le_bytes());
    bytes.extend_from_slice(&32_000u32.to_le_bytes());
    bytes.extend_from_slice(&2u16.to_le_bytes());
    bytes.extend_from_slice(&16u16.to_le_bytes());
    bytes.extend_from_slice(b"data");
    bytes.extend_from_slice(&data.to_le_bytes());
    bytes.resize(44 + samples * 2, 0);
    bytes
}

const BOUNDARY: &str = "caio-test-7f3a";

/// A `multipart/form-data` body of `fields` and, when given, `file`.
fn form(fields: &[(&str, &str)], file: Option<&[u8]>) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n").as_bytes(),
        );
    }
    if let Some(file) = file {
        body.extend_from_slice(
            format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"hello.wav\"\r\nContent-Type: audio/wav\r\n\r\n")
                .as_bytes(),
        );
        body.extend_from_slice(file);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

async fn upload(
    server: &Server,
    path: &str,
    body: Vec<u8>,
    media_type: &str,
) -> (StatusCode, reqwest::header::HeaderMap, String) {
    let response = reqwest::Client::new()
        .post(format!("{}{path}", server.url))
        .bearer_auth(token("alice", &["chat.basic"]))
        .header("content-type", media_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let (status, headers) = (response.status(), response.headers().clone());
    (status, headers, response.text().await.unwrap())
}

#[tokio::test]
async fn an_uploaded_recording_is_transcribed_traced_by_its_digest_and_failed_over() {
    use sha2::Digest;
    let (first, second) = (Upstream::start("first").await, Upstream::start("second").await);
    let server = Server::start_with(
        vec![
            service("stt-a", r#"["speech_to_text"]"#, &first.openai_base(), 0.001, "openai"),
            service("stt-b", r#"["speech_to_text"]"#, &second.openai_base(), 0.002, "openai"),
        ],
        Policy::default(),
        |config| config.limits.upload_bytes = 64 << 10,
    )
    .await;
    let media_type = format!("multipart/form-data; boundary={BOUNDARY}");
    let recording = wav(8_000);
    let fields = [("model", "speech_to_text"), ("language", "en")];
    let (status, headers, text) =
        upload(&server, "/v1/audio/transcriptions", form(&fields, Some(&recording)), &media_type).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert_eq!(header(&headers, "x-caio-service"), "stt-a");
    let answer: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(answer["text"], format!("heard {} bytes (first)", recording.len()));
    let (path, _, seen) = first.seen().pop().unwrap();
    assert_eq!(path, "/v1/audio/transcriptions");
    assert_eq!(seen["model"], "m-stt-a", "the contract's model replaces the caller's");
    assert_eq!(seen["language"], "en");
    assert_eq!(seen["file_bytes"], recording.len(), "the recording passes whole");
    let decision: u64 = header(&headers, "x-caio-trace").parse().unwrap();
    let execution = execution_of(&server, decision).await;
    let digest: String = sha2::Sha256::digest(&recording).iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        execution["input"]["file"],
        json!({"sha256": digest, "bytes": recording.len(), "media_type": "audio/wav"})
    );
    // The format asked for comes back as the service wrote it.
    let fields = [("model", "speech_to_text"), ("response_format", "srt")];
    let (status, headers, text) =
        upload(&server, "/v1/audio/transcriptions", form(&fields, Some(&recording)), &media_type).await;
    assert_eq!(status, StatusCode::OK);
    assert!(header(&headers, "content-type").starts_with("text/plain"));
    assert!(text.starts_with("1\n00:00:00,000 --> "), "{text}");
    // Translation, and a failed first service.
    first.push([Fault::ServerError, Fault::ServerError, Fault::ServerError]);
    let (status, headers, text) =
        upload(&server, "/v1/audio/translations", form(&[("model", "speech_to_text")], Some(&recording)), &media_type)
            .await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert_eq!(header(&headers, "x-caio-service"), "stt-b");
    assert_eq!(second.seen().pop().unwrap().0, "/v1/audio/translations");
    // Refused before anything is called: too large, no file, not a form.
    let hits = first.hits() + second.hits();
    let (status, _, text) = upload(
        &server,
        "/v1/audio/transcriptions",
        form(&[("model", "speech_to_text")], Some(&wav(40_000))),
        &media_type,
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{text}");
    assert!(text.contains("65536"), "{text}");
    let (status, _, text) =
        upload(&server, "/v1/audio/transcriptions", form(&[("model", "speech_to_text")], None), &media_type).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(text.contains("`file` is required"), "{text}");
    let (status, _, text) = upload(&server, "/v1/audio/transcriptions", b"{}".to_vec(), "application/json").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(text.contains("multipart/form-data"), "{text}");
    let twice = form(&[("model", "speech_to_text"), ("model", "other")], Some(&recording));
    let (status, _, text) = upload(&server, "/v1/audio/transcriptions", twice, &media_type).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(text.contains("`model` appears twice"), "{text}");
    assert_eq!(first.hits() + second.hits(), hits);
}

#[tokio::test]
async fn a_speech_service_gets_only_the_calls_its_contract_takes() {
    let (a, b) = (Upstream::start("a").await, Upstream::start("b").await);
    let server = serve(vec![
        service_with(
            "voice-a",
            r#"["text_to_speech"]"#,
            &a.openai_base(),
            0.001,
            "openai",
            r#", "audio": {"voices": ["alloy"], "output_formats": ["mp3", "wav"]}"#,
        ),
        service_with(
            "voice-b",
            r#"["text_to_speech"]"#,
            &b.openai_base(),
            0.002,
            "openai",
            r#", "audio": {"voices": ["nova"]}"#,
        ),
        service_with(
            "stt-a",
            r#"["speech_to_text"]"#,
            &a.openai_base(),
            0.001,
            "openai",
            r#", "audio": {"max_upload_bytes": 1000}"#,
        ),
        service_with(
            "stt-b",
            r#"["speech_to_text"]"#,
            &b.openai_base(),
            0.002,
            "openai",
            r#", "audio": {"input_formats": ["wav", "flac"]}"#,
        ),
    ])
    .await;
    // The cheaper voice does not speak `nova`: it is passed over, never called.
    let (status, headers, _, _) =
        speak(&server, json!({"model": "text_to_speech", "input": "hi", "voice": "nova"})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header(&headers, "x-caio-service"), "voice-b");
    let decision: u64 = header(&headers, "x-caio-trace").parse().unwrap();
    assert_eq!(outcomes(&execution_of(&server, decision).await), ["voice-a:unsupported", "voice-b:ok"]);
    assert_eq!(a.hits(), 0);
    // A voice nobody speaks: nothing is called, and the caller is told why.
    let before = a.hits() + b.hits();
    let (status, _, error) =
        post(&server, "/v1/audio/speech", json!({"model": "text_to_speech", "input": "hi", "voice": "echo"})).await;
    assert!(status.is_client_error() || status.is_server_error(), "{status}");
    assert!(error.to_string().contains("speaks with nova, not `echo`"), "{error}");
    assert_eq!(a.hits() + b.hits(), before);
    // A recording over stt-a's size goes to stt-b; an mp3 to neither.
    let media_type = format!("multipart/form-data; boundary={BOUNDARY}");
    let (status, headers, text) = upload(
        &server,
        "/v1/audio/transcriptions",
        form(&[("model", "speech_to_text")], Some(&wav(4_000))),
        &media_type,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert_eq!(header(&headers, "x-caio-service"), "stt-b");
    let mp3 = form(&[("model", "speech_to_text")], Some(&wav(4_000))).replace_filename();
    let (status, _, text) = upload(&server, "/v1/audio/transcriptions", mp3, &media_type).await;
    assert_ne!(status, StatusCode::OK);
    assert!(text.contains("takes recordings in wav, flac, not `mp3`"), "{text}");
}

/// A form's file renamed from `hello.wav` to `hello.mp3`.
trait RenameFile {
    fn replace_filename(self) -> Vec<u8>;
}

impl RenameFile for Vec<u8> {
    fn replace_filename(self) -> Vec<u8> {
        let at = self.windows(9).position(|w| w == b"hello.wav").unwrap();
        let mut renamed = self;
        renamed[at + 6..at + 9].copy_from_slice(b"mp3");
        renamed
    }
}
