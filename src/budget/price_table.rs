//! The operator's price list: prices per model, from code or a JSON file.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use serde_json::{Map, Value};

use super::{AudioTime, Micros, Prices, TokenClass};
use crate::usage::Usage;

/// What a [`PriceTable`] does with a model it has no prices for.
///
/// # Example
///
/// ```
/// use tower_realtime::budget::{PriceTable, Prices, UnknownModel};
///
/// let table = PriceTable::new().on_unknown_model(UnknownModel::Charge(Prices::new()));
/// assert!(table.prices("openai", "gpt-new").is_some());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum UnknownModel {
    /// Refuse: [`PriceTable::cost`] fails with [`UnpricedModel`] (the default).
    #[default]
    Refuse,
    /// Charge these prices.
    Charge(Prices),
}

/// Prices per model, and a policy for models without prices.
///
/// Models are named as clients select them (`openai/gpt-realtime`), or by
/// the upstream model name alone (`gpt-realtime`), which prices that model
/// at every provider; the full selector wins.
///
/// A price file is JSON: token prices are US dollars per million tokens,
/// minute prices dollars per minute of audio, written as decimal strings or
/// numbers with at most six decimal places. Any other key is an error.
///
/// ```json
/// {
///   "models": {
///     "openai/gpt-realtime": {
///       "input_text": "4", "cached_input_text": "0.4",
///       "input_audio": "32", "cached_input_audio": "0.4",
///       "input_image": "5", "cached_input_image": "0.5",
///       "output_text": "16", "output_audio": "64"
///     },
///     "xai/grok-voice": { "input_audio_per_minute": "0.05", "output_audio_per_minute": "0.05" }
///   },
///   "default": { "input_audio": "100", "output_audio": "200" }
/// }
/// ```
///
/// `default`, when present, prices every model not listed; without it such
/// models are refused.
///
/// # Example
///
/// ```
/// use tower_realtime::budget::{AudioTime, Micros, PriceTable};
/// use tower_realtime::usage::Usage;
///
/// let table = PriceTable::from_json(r#"{"models": {"gpt-realtime": {"output_text": "16"}}}"#).unwrap();
/// let usage = Usage::default().with_output_tokens(500);
/// assert_eq!(table.cost("openai", "gpt-realtime", &usage, AudioTime::default()), Ok(Micros::new(8_000)));
/// assert!(table.cost("openai", "other", &usage, AudioTime::default()).is_err());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PriceTable {
    models: HashMap<String, Prices>,
    unknown: UnknownModel,
}

impl PriceTable {
    /// A table without models that refuses unknown ones.
    pub fn new() -> Self {
        Self::default()
    }

    /// Prices `model`: a selector (`provider/model`) or an upstream model name.
    #[must_use]
    pub fn with_model(mut self, model: impl Into<String>, prices: Prices) -> Self {
        self.models.insert(model.into(), prices);
        self
    }

    /// Sets what happens to models without prices.
    #[must_use]
    pub fn on_unknown_model(mut self, policy: UnknownModel) -> Self {
        self.unknown = policy;
        self
    }

    /// The prices of `model` at `provider`: the selector's, the model's, or
    /// the default ones; `None` when the model is unknown and refused.
    pub fn prices(&self, provider: &str, model: &str) -> Option<&Prices> {
        self.models
            .get(&format!("{provider}/{model}"))
            .or_else(|| self.models.get(model))
            .or(match &self.unknown {
                UnknownModel::Refuse => None,
                UnknownModel::Charge(prices) => Some(prices),
            })
    }

    /// What `usage` and `audio` of `model` at `provider` cost.
    pub fn cost(
        &self,
        provider: &str,
        model: &str,
        usage: &Usage,
        audio: AudioTime,
    ) -> Result<Micros, UnpricedModel> {
        self.prices(provider, model)
            .map(|prices| prices.cost(usage, audio))
            .ok_or_else(|| UnpricedModel {
                model: format!("{provider}/{model}"),
            })
    }

    /// Reads a price file's text (format above).
    pub fn from_json(text: &str) -> Result<Self, PriceTableError> {
        let value: Value =
            serde_json::from_str(text).map_err(|e| PriceTableError::new("", e.to_string()))?;
        Self::from_value(&value)
    }

    /// Reads a price file in TOML: the same keys as in JSON (feature `toml`).
    ///
    /// ```
    /// use tower_realtime::budget::{AudioTime, Micros, PriceTable};
    /// use tower_realtime::usage::Usage;
    ///
    /// let table = PriceTable::from_toml(r#"
    /// [models."openai/gpt-realtime"]
    /// input_text = 4
    /// output_text = "16"
    ///
    /// [default]  # every model not listed
    /// output_text = 0.5
    /// "#).unwrap();
    /// let usage = Usage::default().with_output_tokens(1_000);
    /// assert_eq!(table.cost("openai", "gpt-realtime", &usage, AudioTime::default()), Ok(Micros::new(16_000)));
    /// assert_eq!(table.cost("openai", "other", &usage, AudioTime::default()), Ok(Micros::new(500)));
    /// ```
    #[cfg(feature = "toml")]
    pub fn from_toml(text: &str) -> Result<Self, PriceTableError> {
        let value: Value =
            toml::from_str(text).map_err(|e| PriceTableError::new("", e.to_string()))?;
        Self::from_value(&value)
    }

    fn from_value(value: &Value) -> Result<Self, PriceTableError> {
        let root = object(value, "")?;
        let mut table = PriceTable::new();
        for (key, value) in root {
            match key.as_str() {
                "models" => {
                    for (model, prices) in object(value, "models")? {
                        let path = format!("models.{model}");
                        table
                            .models
                            .insert(model.clone(), read_prices(prices, &path)?);
                    }
                }
                "default" => {
                    table.unknown = UnknownModel::Charge(read_prices(value, "default")?);
                }
                other => return Err(PriceTableError::new(other, "unknown key")),
            }
        }
        Ok(table)
    }

    /// Reads a price file (format above): TOML when its name ends in
    /// `.toml` and the feature `toml` is on, JSON otherwise.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, PriceTableError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| {
            PriceTableError::new("", format!("cannot read {}: {e}", path.display()))
        })?;
        #[cfg(feature = "toml")]
        if path
            .extension()
            .is_some_and(|extension| extension.eq_ignore_ascii_case("toml"))
        {
            return Self::from_toml(&text);
        }
        Self::from_json(&text)
    }
}

fn object<'a>(value: &'a Value, path: &str) -> Result<&'a Map<String, Value>, PriceTableError> {
    value
        .as_object()
        .ok_or_else(|| PriceTableError::new(path, "expected an object"))
}

fn read_prices(value: &Value, path: &str) -> Result<Prices, PriceTableError> {
    let mut prices = Prices::new();
    for (key, price) in object(value, path)? {
        let at = format!("{path}.{key}");
        let price =
            Micros::from_json(price).map_err(|e| PriceTableError::new(&at, e.to_string()))?;
        prices = match key.as_str() {
            "input_audio_per_minute" => prices.input_audio_per_minute(price),
            "output_audio_per_minute" => prices.output_audio_per_minute(price),
            name => match TokenClass::from_name(name) {
                Some(class) => prices.per_million(class, price),
                None => return Err(PriceTableError::new(&at, "unknown price")),
            },
        };
    }
    Ok(prices)
}

/// A model the [`PriceTable`] has no prices for, under [`UnknownModel::Refuse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnpricedModel {
    model: String,
}

impl UnpricedModel {
    /// The model, as `provider/model`.
    pub fn model(&self) -> &str {
        &self.model
    }
}

impl fmt::Display for UnpricedModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "no price for model {}", self.model)
    }
}

impl std::error::Error for UnpricedModel {}

/// A price file that cannot be read: where, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriceTableError {
    at: String,
    reason: String,
}

impl PriceTableError {
    fn new(at: &str, reason: impl Into<String>) -> Self {
        Self {
            at: at.to_owned(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for PriceTableError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.at.is_empty() {
            write!(f, "price table: {}", self.reason)
        } else {
            write!(f, "price table: {}: {}", self.at, self.reason)
        }
    }
}

impl std::error::Error for PriceTableError {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usage::{InputTokenDetails, OutputTokenDetails};
    use std::time::Duration;

    const FILE: &str = r#"{
        "models": {
            "openai/gpt-realtime": {
                "input_text": "4", "cached_input_text": 0.4,
                "input_audio": 32, "cached_input_audio": "0.40",
                "input_image": "5.00", "cached_input_image": "0.5",
                "output_text": "16", "output_audio": "64"
            },
            "gpt-realtime": { "output_text": "1" },
            "xai/grok-voice": { "input_audio_per_minute": "0.05", "output_audio_per_minute": 0.05 }
        }
    }"#;

    fn audio(input: u64, output: u64) -> AudioTime {
        AudioTime::new(Duration::from_secs(input), Duration::from_secs(output))
    }

    #[test]
    fn reads_every_token_class_and_minute_price() {
        let table = PriceTable::from_json(FILE).unwrap();
        let prices = table.prices("openai", "gpt-realtime").unwrap();
        let expected = [
            ("input_text", 4_000_000),
            ("cached_input_text", 400_000),
            ("input_audio", 32_000_000),
            ("cached_input_audio", 400_000),
            ("input_image", 5_000_000),
            ("cached_input_image", 500_000),
            ("output_text", 16_000_000),
            ("output_audio", 64_000_000),
        ];
        for (name, micros) in expected {
            let class = TokenClass::from_name(name).unwrap();
            assert_eq!(
                prices.price_per_million(class),
                Micros::new(micros),
                "{name}"
            );
        }
        let grok = table.prices("xai", "grok-voice").unwrap();
        assert_eq!(
            grok.cost(&Usage::default(), audio(60, 120)),
            Micros::new(150_000)
        );
    }

    #[test]
    fn the_selector_wins_over_the_model_name() {
        let table = PriceTable::from_json(FILE).unwrap();
        let usage = Usage {
            output_tokens: Some(1_000_000),
            output_token_details: Some(OutputTokenDetails {
                text_tokens: Some(1_000_000),
                audio_tokens: None,
            }),
            ..Usage::default()
        };
        let cost = |provider| table.cost(provider, "gpt-realtime", &usage, audio(0, 0));
        assert_eq!(cost("openai"), Ok(Micros::new(16_000_000)));
        assert_eq!(cost("azure"), Ok(Micros::new(1_000_000)));
    }

    #[test]
    fn unknown_models_are_refused_or_charged_the_default() {
        let refusing = PriceTable::from_json(FILE).unwrap();
        let error = refusing
            .cost("openai", "gpt-4o-realtime", &Usage::default(), audio(0, 0))
            .unwrap_err();
        assert_eq!(error.model(), "openai/gpt-4o-realtime");
        assert_eq!(
            error.to_string(),
            "no price for model openai/gpt-4o-realtime"
        );

        let charging = PriceTable::from_json(r#"{"default": {"input_audio": "100"}}"#).unwrap();
        let usage = Usage {
            input_tokens: Some(10),
            input_token_details: Some(InputTokenDetails {
                audio_tokens: Some(10),
                ..Default::default()
            }),
            ..Usage::default()
        };
        assert_eq!(
            charging.cost("any", "model", &usage, audio(0, 0)),
            Ok(Micros::new(1_000))
        );
        let in_code = PriceTable::new()
            .with_model("m", Prices::new())
            .on_unknown_model(UnknownModel::Charge(
                Prices::new().per_million(TokenClass::InputAudio, Micros::new(100_000_000)),
            ));
        assert_eq!(
            in_code.cost("any", "model", &usage, audio(0, 0)),
            Ok(Micros::new(1_000))
        );
        assert_eq!(
            in_code.cost("any", "m", &usage, audio(0, 0)),
            Ok(Micros::ZERO)
        );
    }

    #[test]
    fn mistakes_in_a_file_say_where() {
        for (text, message) in [
            ("[]", "price table: expected an object"),
            (
                "{",
                "price table: EOF while parsing an object at line 1 column 1",
            ),
            (r#"{"modles": {}}"#, "price table: modles: unknown key"),
            (
                r#"{"models": {"m": {"input_txt": "1"}}}"#,
                "price table: models.m.input_txt: unknown price",
            ),
            (
                r#"{"models": {"m": {"input_text": "-1"}}}"#,
                r#"price table: models.m.input_text: invalid amount "-1": not a decimal number of dollars"#,
            ),
            (
                r#"{"default": {"output_audio": 0.0000001}}"#,
                r#"price table: default.output_audio: invalid amount "0.0000001": more than six decimal places"#,
            ),
            (
                r#"{"models": {"m": 4}}"#,
                "price table: models.m: expected an object",
            ),
        ] {
            assert_eq!(
                PriceTable::from_json(text).unwrap_err().to_string(),
                message,
                "{text}"
            );
        }
    }

    #[test]
    fn reads_a_file() {
        let dir = std::env::temp_dir().join(format!("prices-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("prices.json");
        std::fs::write(&path, FILE).unwrap();
        let table = PriceTable::from_file(&path).unwrap();
        assert!(table.prices("xai", "grok-voice").is_some());
        std::fs::remove_dir_all(&dir).unwrap();
        let missing = PriceTable::from_file(&path).unwrap_err().to_string();
        assert!(
            missing.starts_with("price table: cannot read "),
            "{missing}"
        );
    }
}
