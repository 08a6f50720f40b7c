//! The providers of the small examples: from the environment, or a local
//! echo upstream when none is configured, so that they run as they are.

use tower_realtime::Providers;
use tower_realtime::testing::MockUpstream;

/// The providers, a model to suggest, and the echo upstream if one was
/// started (it serves as long as it is kept).
pub async fn from_env_or_echo() -> std::io::Result<(Providers, String, Option<MockUpstream>)> {
    let providers = Providers::from_env().unwrap_or_else(|error| {
        eprintln!("configuration error: {error}");
        std::process::exit(2)
    });
    if providers.is_empty() {
        let echo = MockUpstream::echo().await?;
        let providers = Providers::new().with("echo", echo.provider());
        return Ok((providers, "echo/any".to_owned(), Some(echo)));
    }
    let name = providers.default_name().or(providers.names().next());
    let model = format!("{}/MODEL", name.unwrap_or_default());
    println!(
        "providers: {}",
        providers.names().collect::<Vec<_>>().join(", ")
    );
    Ok((providers, model, None))
}
