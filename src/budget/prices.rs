//! The prices of one model, and what a response costs at those prices.

use std::time::Duration;

use super::Micros;
use crate::usage::Usage;

/// A kind of token a provider bills at its own rate.
///
/// # Example
///
/// ```
/// use tower_realtime::budget::TokenClass;
///
/// assert_eq!(TokenClass::CachedInputAudio.name(), "cached_input_audio");
/// assert_eq!(TokenClass::from_name("output_audio"), Some(TokenClass::OutputAudio));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TokenClass {
    /// Text read by the model, not from the prompt cache.
    InputText,
    /// Audio read by the model, not from the prompt cache.
    InputAudio,
    /// Images read by the model, not from the prompt cache.
    InputImage,
    /// Text served from the prompt cache.
    CachedInputText,
    /// Audio served from the prompt cache.
    CachedInputAudio,
    /// Images served from the prompt cache.
    CachedInputImage,
    /// Text the model produced.
    OutputText,
    /// Audio the model produced.
    OutputAudio,
}

impl TokenClass {
    /// Every class, in a fixed order.
    pub const ALL: [TokenClass; 8] = [
        TokenClass::InputText,
        TokenClass::InputAudio,
        TokenClass::InputImage,
        TokenClass::CachedInputText,
        TokenClass::CachedInputAudio,
        TokenClass::CachedInputImage,
        TokenClass::OutputText,
        TokenClass::OutputAudio,
    ];

    /// The name of the class in a price file (`input_text`, `cached_input_audio`, ...).
    pub fn name(self) -> &'static str {
        match self {
            TokenClass::InputText => "input_text",
            TokenClass::InputAudio => "input_audio",
            TokenClass::InputImage => "input_image",
            TokenClass::CachedInputText => "cached_input_text",
            TokenClass::CachedInputAudio => "cached_input_audio",
            TokenClass::CachedInputImage => "cached_input_image",
            TokenClass::OutputText => "output_text",
            TokenClass::OutputAudio => "output_audio",
        }
    }

    /// The class a price file names `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|class| class.name() == name)
    }

    fn index(self) -> usize {
        self as usize
    }

    /// The uncached class a cached class falls back to when it has no price.
    fn uncached(self) -> Option<TokenClass> {
        match self {
            TokenClass::CachedInputText => Some(TokenClass::InputText),
            TokenClass::CachedInputAudio => Some(TokenClass::InputAudio),
            TokenClass::CachedInputImage => Some(TokenClass::InputImage),
            _ => None,
        }
    }
}

/// Audio time a gateway measured itself, for providers that bill audio by
/// the minute (xAI) rather than by the token.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use tower_realtime::budget::AudioTime;
///
/// let time = AudioTime::new(Duration::from_secs(90), Duration::ZERO);
/// assert_eq!(time.input, Duration::from_secs(90));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct AudioTime {
    /// Audio the client sent.
    pub input: Duration,
    /// Audio the model sent back.
    pub output: Duration,
}

impl AudioTime {
    /// `input` sent and `output` received.
    pub fn new(input: Duration, output: Duration) -> Self {
        Self { input, output }
    }
}

/// What one model costs: a price per million tokens for each [`TokenClass`],
/// and per minute of audio in and out.
///
/// A class without a price is free, except a cached class, which costs what
/// its uncached class costs. Tokens a provider reports without saying of
/// which kind (an `input_tokens` larger than its details add up to, or no
/// details at all) are charged at the highest price of their direction, so
/// a budget errs on the side of stopping early.
///
/// A cost is exact: every class is multiplied out in integers and the sum
/// is rounded up to a whole micro-dollar once.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use tower_realtime::budget::{AudioTime, Micros, Prices, TokenClass};
/// use tower_realtime::usage::{OutputTokenDetails, Usage};
///
/// let prices = Prices::new()
///     .per_million(TokenClass::OutputAudio, "64".parse().unwrap())
///     .output_audio_per_minute("0.05".parse().unwrap());
/// let usage = Usage::default()
///     .with_output_tokens(1_000)
///     .with_output_token_details(OutputTokenDetails::default().with_audio_tokens(1_000));
/// let audio = AudioTime::new(Duration::ZERO, Duration::from_secs(30));
/// // 1000 × $64 / 1M = $0.064, plus half a minute at $0.05
/// assert_eq!(prices.cost(&usage, audio), Micros::new(64_000 + 25_000));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Prices {
    per_million: [Option<Micros>; 8],
    input_audio_per_minute: Micros,
    output_audio_per_minute: Micros,
}

impl Prices {
    /// Prices where everything is free until set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the price of a million tokens of `class`.
    #[must_use]
    pub fn per_million(mut self, class: TokenClass, price: Micros) -> Self {
        self.per_million[class.index()] = Some(price);
        self
    }

    /// Sets the price of a minute of audio the client sends.
    #[must_use]
    pub fn input_audio_per_minute(mut self, price: Micros) -> Self {
        self.input_audio_per_minute = price;
        self
    }

    /// Sets the price of a minute of audio the model sends.
    #[must_use]
    pub fn output_audio_per_minute(mut self, price: Micros) -> Self {
        self.output_audio_per_minute = price;
        self
    }

    /// The price of a million tokens of `class` (a cached class without a
    /// price of its own costs what its uncached class costs).
    pub fn price_per_million(&self, class: TokenClass) -> Micros {
        self.per_million[class.index()]
            .or_else(|| class.uncached().and_then(|u| self.per_million[u.index()]))
            .unwrap_or(Micros::ZERO)
    }

    /// What `usage` and `audio` cost, rounded up to a whole micro-dollar.
    pub fn cost(&self, usage: &Usage, audio: AudioTime) -> Micros {
        // In units of 1/60_000_000 micro-dollar: a token class adds
        // count × price-per-million × 60, a minute price adds
        // microseconds × price-per-minute.
        const PER_MICRO: u128 = 60_000_000;
        let counts = TokenCounts::of(usage);
        let mut total: u128 = 0;
        for class in TokenClass::ALL {
            total += u128::from(counts.by_class[class.index()])
                * u128::from(self.price_per_million(class).get())
                * 60;
        }
        let highest = |classes: &[TokenClass]| {
            classes
                .iter()
                .map(|class| self.price_per_million(*class).get())
                .max()
                .unwrap_or(0)
        };
        let input = [
            TokenClass::InputText,
            TokenClass::InputAudio,
            TokenClass::InputImage,
        ];
        let output = [TokenClass::OutputText, TokenClass::OutputAudio];
        total += u128::from(counts.unclassified_input) * u128::from(highest(&input)) * 60;
        total += u128::from(counts.unclassified_output) * u128::from(highest(&output)) * 60;
        total += u128::from(counts.unclassified)
            * u128::from(highest(&input).max(highest(&output)))
            * 60;
        total += audio.input.as_micros() * u128::from(self.input_audio_per_minute.get());
        total += audio.output.as_micros() * u128::from(self.output_audio_per_minute.get());
        let micros = total.div_ceil(PER_MICRO);
        Micros::new(u64::try_from(micros).unwrap_or(u64::MAX))
    }
}

/// The tokens of one usage by class.
#[derive(Debug, Default, PartialEq, Eq)]
struct TokenCounts {
    by_class: [u64; 8],
    /// Input tokens the details do not account for.
    unclassified_input: u64,
    /// Output tokens the details do not account for.
    unclassified_output: u64,
    /// Tokens of a usage that reports only a total.
    unclassified: u64,
}

impl TokenCounts {
    fn of(usage: &Usage) -> Self {
        let mut counts = TokenCounts::default();
        let mut set = |class: TokenClass, n: u64| counts.by_class[class.index()] = n;

        let input = usage.input_token_details.clone().unwrap_or_default();
        let kinds = [
            input.text_tokens.unwrap_or(0),
            input.audio_tokens.unwrap_or(0),
            input.image_tokens.unwrap_or(0),
        ];
        let cached = cached_by_kind(&input, kinds);
        let uncached_classes = [
            TokenClass::InputText,
            TokenClass::InputAudio,
            TokenClass::InputImage,
        ];
        let cached_classes = [
            TokenClass::CachedInputText,
            TokenClass::CachedInputAudio,
            TokenClass::CachedInputImage,
        ];
        for i in 0..3 {
            set(uncached_classes[i], kinds[i].saturating_sub(cached[i]));
            set(cached_classes[i], cached[i]);
        }
        let input_classified = kinds
            .iter()
            .zip(cached)
            .map(|(kind, cached)| (*kind).max(cached))
            .fold(0u64, u64::saturating_add);

        let output = usage.output_token_details.clone().unwrap_or_default();
        let (text, audio) = (
            output.text_tokens.unwrap_or(0),
            output.audio_tokens.unwrap_or(0),
        );
        set(TokenClass::OutputText, text);
        set(TokenClass::OutputAudio, audio);
        let output_classified = text.saturating_add(audio);

        counts.unclassified_input = usage
            .input_tokens
            .unwrap_or(0)
            .saturating_sub(input_classified);
        counts.unclassified_output = usage
            .output_tokens
            .unwrap_or(0)
            .saturating_sub(output_classified);
        if usage.input_tokens.is_none() && usage.output_tokens.is_none() {
            counts.unclassified = usage
                .total_tokens
                .unwrap_or(0)
                .saturating_sub(input_classified.saturating_add(output_classified));
        }
        counts
    }
}

/// The cached input tokens of text, audio and images. Without a breakdown,
/// the cached total is taken from text first, then audio, then images.
fn cached_by_kind(input: &crate::usage::InputTokenDetails, kinds: [u64; 3]) -> [u64; 3] {
    if let Some(details) = &input.cached_tokens_details {
        return [
            details.text_tokens.unwrap_or(0),
            details.audio_tokens.unwrap_or(0),
            details.image_tokens.unwrap_or(0),
        ];
    }
    let mut left = input.cached_tokens.unwrap_or(0);
    kinds.map(|kind| {
        let taken = left.min(kind);
        left -= taken;
        taken
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usage::{CachedTokenDetails, InputTokenDetails, OutputTokenDetails};

    fn dollars(text: &str) -> Micros {
        text.parse().unwrap()
    }

    /// OpenAI's published gpt-realtime prices, per million tokens.
    fn gpt_realtime() -> Prices {
        Prices::new()
            .per_million(TokenClass::InputText, dollars("4"))
            .per_million(TokenClass::CachedInputText, dollars("0.4"))
            .per_million(TokenClass::InputAudio, dollars("32"))
            .per_million(TokenClass::CachedInputAudio, dollars("0.4"))
            .per_million(TokenClass::InputImage, dollars("5"))
            .per_million(TokenClass::CachedInputImage, dollars("0.5"))
            .per_million(TokenClass::OutputText, dollars("16"))
            .per_million(TokenClass::OutputAudio, dollars("64"))
    }

    fn input(details: InputTokenDetails) -> Usage {
        Usage {
            input_tokens: Some(
                details.text_tokens.unwrap_or(0)
                    + details.audio_tokens.unwrap_or(0)
                    + details.image_tokens.unwrap_or(0),
            ),
            input_token_details: Some(details),
            ..Usage::default()
        }
    }

    fn cost(usage: &Usage) -> u64 {
        gpt_realtime().cost(usage, AudioTime::default()).get()
    }

    #[test]
    fn each_input_class_at_its_price() {
        let million = Some(1_000_000);
        let text = input(InputTokenDetails {
            text_tokens: million,
            ..Default::default()
        });
        let audio = input(InputTokenDetails {
            audio_tokens: million,
            ..Default::default()
        });
        let image = input(InputTokenDetails {
            image_tokens: million,
            ..Default::default()
        });
        assert_eq!(cost(&text), 4_000_000);
        assert_eq!(cost(&audio), 32_000_000);
        assert_eq!(cost(&image), 5_000_000);
    }

    #[test]
    fn cached_tokens_by_kind_are_part_of_the_input() {
        // 1M text of which 600k cached, 1M audio of which 250k cached, 1M images of which 1M cached.
        let usage = input(InputTokenDetails {
            text_tokens: Some(1_000_000),
            audio_tokens: Some(1_000_000),
            image_tokens: Some(1_000_000),
            cached_tokens: Some(1_850_000),
            cached_tokens_details: Some(CachedTokenDetails {
                text_tokens: Some(600_000),
                audio_tokens: Some(250_000),
                image_tokens: Some(1_000_000),
            }),
        });
        let expected = 400_000 * 4 + 600_000 * 4 / 10 // text: 1.6 + 0.24
            + 750_000 * 32 + 250_000 * 4 / 10 // audio: 24 + 0.1
            + 1_000_000 / 2; // images: all cached at $0.5
        assert_eq!(cost(&usage), expected);
    }

    #[test]
    fn cached_total_without_breakdown_is_text_first() {
        let usage = input(InputTokenDetails {
            text_tokens: Some(100),
            audio_tokens: Some(1_000),
            cached_tokens: Some(300),
            ..Default::default()
        });
        // 100 cached text, 200 cached audio, 800 audio
        let expected_units: u64 = 100 * 400_000 + 200 * 400_000 + 800 * 32_000_000;
        assert_eq!(cost(&usage), expected_units.div_ceil(1_000_000));
    }

    #[test]
    fn a_cached_class_without_a_price_costs_the_uncached_price() {
        let prices = Prices::new().per_million(TokenClass::InputAudio, dollars("32"));
        assert_eq!(
            prices.price_per_million(TokenClass::CachedInputAudio),
            dollars("32")
        );
        assert_eq!(
            prices.price_per_million(TokenClass::CachedInputText),
            Micros::ZERO
        );
    }

    #[test]
    fn each_output_class_at_its_price() {
        let usage = Usage {
            output_tokens: Some(3_000),
            output_token_details: Some(OutputTokenDetails {
                text_tokens: Some(1_000),
                audio_tokens: Some(2_000),
            }),
            ..Usage::default()
        };
        assert_eq!(cost(&usage), 1_000 * 16 + 2_000 * 64);
    }

    #[test]
    fn tokens_of_no_kind_cost_the_highest_price_of_their_direction() {
        let bare = Usage {
            input_tokens: Some(1_000),
            output_tokens: Some(1_000),
            ..Usage::default()
        };
        assert_eq!(cost(&bare), 1_000 * 32 + 1_000 * 64);

        // 50 input tokens the details do not account for.
        let partial = Usage {
            input_tokens: Some(150),
            input_token_details: Some(InputTokenDetails {
                text_tokens: Some(100),
                ..Default::default()
            }),
            ..Usage::default()
        };
        assert_eq!(cost(&partial), 100 * 4 + 50 * 32);

        let total_only = Usage {
            total_tokens: Some(1_000),
            ..Usage::default()
        };
        assert_eq!(cost(&total_only), 1_000 * 64);
    }

    #[test]
    fn no_usage_costs_nothing() {
        assert_eq!(cost(&Usage::default()), 0);
    }

    #[test]
    fn rounds_up_once_for_the_whole_response() {
        // One text token at $4/M is 4 micro-dollars; one at $0.4/M is 0.4.
        let one_cached = input(InputTokenDetails {
            text_tokens: Some(1),
            cached_tokens: Some(1),
            ..Default::default()
        });
        assert_eq!(cost(&one_cached), 1);
        // Three cached tokens: 1.2 micro-dollars, rounded up once to 2
        // (rounding each token would give 3).
        let three_cached = input(InputTokenDetails {
            text_tokens: Some(3),
            cached_tokens: Some(3),
            ..Default::default()
        });
        assert_eq!(cost(&three_cached), 2);
    }

    #[test]
    fn audio_minutes_are_priced_by_the_microsecond() {
        // xAI: $0.05 per minute either way.
        let prices = Prices::new()
            .input_audio_per_minute(dollars("0.05"))
            .output_audio_per_minute(dollars("0.05"));
        let cost = |input_ms, output_ms| {
            prices
                .cost(
                    &Usage::default(),
                    AudioTime::new(
                        Duration::from_millis(input_ms),
                        Duration::from_millis(output_ms),
                    ),
                )
                .get()
        };
        assert_eq!(cost(60_000, 0), 50_000);
        assert_eq!(cost(60_000, 60_000), 100_000);
        assert_eq!(cost(1_200, 0), 1_000);
        // 1 ms is 0.83 micro-dollars: rounded up.
        assert_eq!(cost(1, 0), 1);
        assert_eq!(cost(0, 0), 0);
    }

    #[test]
    fn huge_counts_do_not_overflow() {
        let usage = Usage {
            input_tokens: Some(u64::MAX),
            output_tokens: Some(u64::MAX),
            ..Usage::default()
        };
        assert_eq!(cost(&usage), u64::MAX);
    }
}
