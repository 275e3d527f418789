//! A stand-in model server for trying caio without a model: it speaks the
//! OpenAI-compatible API (`/v1/chat/completions`, `/v1/embeddings`) and
//! Ollama's (`/api/chat`, `/api/embeddings`), and answers canned text.
//!
//! `cargo run -p caio-gateway --features fixture --example mock-upstream -- [ADDR]`
//! (default `127.0.0.1:11434`, where the example contract `ollama-llama3-8b`
//! expects Ollama).

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let address = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:11434".into());
    if address == "--help" || address == "-h" {
        println!("usage: mock-upstream [ADDR]   (default 127.0.0.1:11434)");
        return Ok(());
    }
    let listener = tokio::net::TcpListener::bind(&address).await?;
    let upstream = caio_gateway::fixture::Upstream::on(listener, "mock-upstream");
    println!("mock model server on {} (OpenAI API at {})", upstream.base(), upstream.openai_base());
    tokio::signal::ctrl_c().await?;
    Ok(())
}
