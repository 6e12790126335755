//! Metric names of the gateway, served at `/metrics`.

/// Counter: bid forms submitted, by `outcome`.
pub const BIDS: &str = "gateway_bids_total";
/// Counter: form posts refused for a missing or wrong CSRF token.
pub const CSRF_REJECTIONS: &str = "gateway_csrf_rejections_total";
/// Gauge: live-update streams open now.
pub const LIVE_STREAMS: &str = "gateway_live_streams";
/// Counter: live streams that lost the bid service's watch and subscribed again.
pub const LIVE_RESUBSCRIBES: &str = "gateway_live_resubscribes_total";
