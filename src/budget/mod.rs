//! Budgets: prices, what one identity may spend, and why it is refused.
//!
//! Money is counted in [`Micros`] (millionths of a dollar), never in
//! floating point. A [`PriceTable`] (JSON file or code) turns a response's
//! [`Usage`](crate::usage::Usage) and measured [`AudioTime`] into money.
//! [`Limits`] say what one identity may spend per [`Window`] on each
//! [`Meter`] (tokens, input audio, money), and how many sessions it may
//! hold open or open per minute. The state those limits are checked
//! against lives in a [`BudgetStore`](crate::store::BudgetStore), in memory
//! or, to share it across replicas, in Redis.
//!
//! # Example
//!
//! ```
//! use tower_realtime::budget::{AudioTime, Limit, Limits, Micros, PriceTable, Spend, Window};
//! use tower_realtime::usage::Usage;
//!
//! let prices = PriceTable::from_json(r#"{"models": {"gpt-realtime": {"output_audio": "64"}}}"#).unwrap();
//! let usage = Usage::default().with_output_tokens(2_000);
//! let cost = prices.cost("openai", "gpt-realtime", &usage, AudioTime::default()).unwrap();
//! assert_eq!(cost, Micros::new(128_000));
//!
//! let limits = Limits::new()
//!     .with(Limit::tokens(Window::Day, 100_000))
//!     .with(Limit::money(Window::Month, "20".parse().unwrap()));
//! let spent = Spend::new().with_tokens(2_000).with_money(cost);
//! # let _ = (limits, spent);
//! ```

pub(crate) mod admission;
mod enforce;
pub(crate) mod exhaustion;
mod limits;
mod micros;
mod price_table;
mod prices;
mod refusal;
pub(crate) mod session_hook;
mod window;

pub use enforce::{Budget, BudgetError, ResponseStart, SessionBudget, SessionSlot};
pub use limits::{Limit, Limits, Meter, Spend};
pub use micros::{Micros, ParseMicrosError};
pub use price_table::{PriceTable, PriceTableError, UnknownModel, UnpricedModel};
pub use prices::{AudioTime, Prices, TokenClass};
pub use refusal::{Refusal, RefusalReason};
pub use window::Window;
pub(crate) use window::{Period, unix_ms};
