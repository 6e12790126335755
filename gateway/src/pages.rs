//! The HTML pages and the bid form: rendered on the server with askama (every value
//! HTML-escaped), usable without JavaScript, and posted with post/redirect/get.

use askama::Template;
use auction_proto::v1::{
    AuctionState, AuctionStatus, Bid, HighestBidRequest, ListAuctionsRequest,
    ListRecentBidsRequest, PlaceBidRequest,
};
use auction_schemas::AuctionId;
use axum::Form;
use axum::extract::rejection::FormRejection;
use axum::extract::{Path, Query, State};
use axum::http::header::{CACHE_CONTROL, LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::App;
use crate::limits::{Client, too_many_posts};
use crate::metrics as m;
use crate::outcome::BidOutcome;
use crate::security::{self, CSRF_COOKIE, FLASH_COOKIE, Flash};

/// A bid as a page shows it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct BidView {
    /// The bidder.
    pub name: String,
    /// The amount.
    pub price: i64,
    /// When it was placed, `YYYY-MM-DD HH:MM:SS UTC`.
    pub at: String,
}

impl From<&Bid> for BidView {
    fn from(bid: &Bid) -> Self {
        let at = bid
            .bid_ts
            .as_ref()
            .and_then(|ts| chrono::DateTime::from_timestamp(ts.seconds, 0))
            .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
            .unwrap_or_default();
        Self {
            name: bid.name.clone(),
            price: bid.price,
            at,
        }
    }
}

/// A time as pages show it without JavaScript.
pub(crate) fn plain_time(at: &prost_types::Timestamp) -> String {
    chrono::DateTime::from_timestamp(at.seconds, 0)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_default()
}

fn epoch_ms(at: &prost_types::Timestamp) -> i64 {
    at.seconds * 1000 + i64::from(at.nanos / 1_000_000)
}

/// How a closed auction ended, as pages say it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ResultView {
    /// A sentence: who won at what price, or why there was no sale.
    pub sentence: String,
}

/// An auction as a page shows it (never its reserve price or anyone's maximum: the bid service
/// does not say them).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct AuctionView {
    /// The auction id.
    pub id: String,
    /// The title, or the id for an auction nobody created.
    pub title: String,
    /// The seller, if the auction was created.
    pub seller: Option<String>,
    /// The description.
    pub description: String,
    /// `scheduled`, `open`, `closed` or `cancelled`.
    pub status: String,
    /// The status in words.
    pub status_text: String,
    /// The current end, in plain text.
    pub end_at: Option<String>,
    /// The current end, milliseconds since the epoch (for the countdown).
    pub end_ms: Option<i64>,
    /// When bidding opens, in plain text (scheduled auctions).
    pub start_at: Option<String>,
    /// How many times soft close moved the end.
    pub extensions: u32,
    /// Whether the auction has a reserve the price does not meet yet.
    pub reserve_not_met: bool,
    /// Set once closed.
    pub result: Option<ResultView>,
    /// Whether the bid form takes bids.
    pub taking_bids: bool,
    /// The highest bid, if any.
    pub highest: Option<BidView>,
    /// The lowest price a new bid must offer.
    pub minimum_next_bid: i64,
    /// How many bids the auction has accepted.
    pub bid_count: u64,
}

impl AuctionView {
    /// The view of an auction's state.
    pub(crate) fn from_state(state: &AuctionState) -> Self {
        let status = AuctionStatus::try_from(state.status).unwrap_or(AuctionStatus::Open);
        let definition = state.definition.as_ref();
        let (status_word, status_text) = match status {
            AuctionStatus::Scheduled => ("scheduled", "Not open yet"),
            AuctionStatus::Closed => ("closed", "Closed"),
            AuctionStatus::Cancelled => ("cancelled", "Cancelled by the seller"),
            AuctionStatus::Open | AuctionStatus::Unspecified => ("open", "Open for bids"),
        };
        let result = state.result.as_ref().map(|result| ResultView {
            sentence: match result.winning_bid.as_ref() {
                Some(winner) if result.sold => {
                    format!("Sold to {} for {}.", winner.name, winner.price)
                }
                _ if state.highest_bid.is_some() => {
                    "No sale: the highest bid did not meet the reserve price.".to_owned()
                }
                _ => "No sale: nobody bid.".to_owned(),
            },
        });
        Self {
            id: state.auction_id.clone(),
            title: definition.map_or_else(|| state.auction_id.clone(), |d| d.title.clone()),
            seller: definition.map(|d| d.seller.clone()),
            description: definition
                .map(|d| d.description.clone())
                .unwrap_or_default(),
            status: status_word.to_owned(),
            status_text: status_text.to_owned(),
            end_at: state.end_time.as_ref().map(plain_time),
            end_ms: state.end_time.as_ref().map(epoch_ms),
            start_at: definition
                .filter(|_| status == AuctionStatus::Scheduled)
                .and_then(|d| d.start_time.as_ref())
                .map(plain_time),
            extensions: state.extensions,
            reserve_not_met: definition.is_some_and(|d| d.has_reserve) && !state.reserve_met,
            result,
            taking_bids: matches!(
                status,
                AuctionStatus::Open | AuctionStatus::Unspecified | AuctionStatus::Scheduled
            ),
            highest: state.highest_bid.as_ref().map(BidView::from),
            minimum_next_bid: state.minimum_next_bid,
            bid_count: state.bid_count,
        }
    }

    fn unknown(id: &AuctionId) -> Self {
        Self {
            id: id.as_str().to_owned(),
            title: id.as_str().to_owned(),
            seller: None,
            description: String::new(),
            status: "open".to_owned(),
            status_text: "Open for bids".to_owned(),
            end_at: None,
            end_ms: None,
            start_at: None,
            extensions: 0,
            reserve_not_met: false,
            result: None,
            taking_bids: true,
            highest: None,
            minimum_next_bid: 1,
            bid_count: 0,
        }
    }
}

#[derive(Template)]
#[template(path = "index.html")]
struct IndexPage {
    auctions: Vec<AuctionView>,
    closed: Vec<AuctionView>,
    problem: Option<String>,
    open_value: String,
}

struct FormView {
    csrf_token: String,
    request_id: String,
    name: String,
    price: String,
    max_price: String,
}

#[derive(Template)]
#[template(path = "auction.html")]
struct AuctionPage {
    auction: AuctionView,
    recent: Vec<BidView>,
    flash: Option<Flash>,
    unavailable: bool,
    form: FormView,
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    title: &'a str,
    message: &'a str,
}

/// Renders a template; a template that fails to render is a generic error page, never details.
pub(crate) fn render(status: StatusCode, template: &impl Template) -> Response {
    match template.render() {
        Ok(html) => {
            let mut response = (status, Html(html)).into_response();
            // Pages carry the CSRF token and live data: never from a cache.
            response
                .headers_mut()
                .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Err(e) => {
            tracing::error!(error = %e, "a page did not render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong on our side. Please try again.",
            )
                .into_response()
        }
    }
}

/// An error page with a sentence.
pub(crate) fn error_page(status: StatusCode, title: &str, message: &str) -> Response {
    render(status, &ErrorPage { title, message })
}

/// The page for a path that is not an auction id the gateway can serve.
fn not_an_auction() -> Response {
    error_page(
        StatusCode::NOT_FOUND,
        "No such auction",
        "An auction id is 1 to 64 letters, digits, '.', '_' or '-' (and not just '.' or '..').",
    )
}

/// Parses an auction id from a path or form. `.` and `..` are valid ids for the bid service but
/// a browser rewrites them out of a URL, so the web pages cannot serve them.
pub(crate) fn parse_auction_id(raw: &str) -> Option<AuctionId> {
    if raw == "." || raw == ".." {
        return None;
    }
    AuctionId::parse(raw).ok()
}

/// `GET /`: the auctions with their highest bids.
pub(crate) async fn index(State(app): State<App>) -> Response {
    let mut client = app.client();
    let mut closed_client = app.client();
    let (all, closed) = tokio::join!(
        client.list_auctions(app.with_timeout(ListAuctionsRequest {
            limit: 100,
            ..Default::default()
        })),
        closed_client.list_auctions(app.with_timeout(ListAuctionsRequest {
            limit: 20,
            status: AuctionStatus::Closed as i32,
        })),
    );
    match (all, closed) {
        (Ok(all), Ok(closed)) => {
            let auctions = all
                .into_inner()
                .auctions
                .iter()
                .map(AuctionView::from_state)
                .filter(|a| a.taking_bids)
                .collect();
            let closed = closed
                .into_inner()
                .auctions
                .iter()
                .map(AuctionView::from_state)
                .collect();
            render(
                StatusCode::OK,
                &IndexPage {
                    auctions,
                    closed,
                    problem: None,
                    open_value: String::new(),
                },
            )
        }
        (Err(status), _) | (_, Err(status)) => {
            tracing::warn!(code = ?status.code(), message = status.message(), "ListAuctions failed");
            render(
                StatusCode::SERVICE_UNAVAILABLE,
                &IndexPage {
                    auctions: Vec::new(),
                    closed: Vec::new(),
                    problem: Some(
                        "The bid service is unavailable right now, so the auctions cannot be \
                         listed. Please try again in a moment."
                            .to_owned(),
                    ),
                    open_value: String::new(),
                },
            )
        }
    }
}

/// The query of the "open an auction" form.
#[derive(Debug, Deserialize)]
pub(crate) struct OpenQuery {
    #[serde(default)]
    auction_id: String,
}

/// `GET /open?auction_id=`: goes to an auction's page (an auction exists once it has a bid).
pub(crate) async fn open(
    query: Result<Query<OpenQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let raw = query.map(|q| q.0.auction_id).unwrap_or_default();
    let raw = raw.trim();
    match parse_auction_id(raw) {
        Some(id) => see_other(&format!("/auctions/{id}"), None),
        None => render(
            StatusCode::BAD_REQUEST,
            &IndexPage {
                auctions: Vec::new(),
                closed: Vec::new(),
                problem: Some(format!(
                    "\u{201c}{raw}\u{201d} is not an auction id: use 1 to 64 letters, digits, '.', '_' or '-'."
                )),
                open_value: raw.to_owned(),
            },
        ),
    }
}

/// `GET /auctions/{id}`: the highest bid, the bid form and the recent bids.
pub(crate) async fn auction(
    State(app): State<App>,
    Path(raw_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some(id) = parse_auction_id(&raw_id) else {
        return not_an_auction();
    };
    let mut client = app.client();
    let mut recent_client = app.client();
    let (highest, recent) = tokio::join!(
        client.highest_bid(app.with_timeout(HighestBidRequest {
            auction_id: id.to_string(),
        })),
        recent_client.list_recent_bids(app.with_timeout(ListRecentBidsRequest {
            auction_id: id.to_string(),
            limit: app.settings().recent_bids,
        })),
    );
    let (auction, recent, unavailable) = match (highest, recent) {
        (Ok(highest), Ok(recent)) => (
            highest.into_inner().auction.map_or_else(
                || AuctionView::unknown(&id),
                |s| AuctionView::from_state(&s),
            ),
            recent.into_inner().bids.iter().map(BidView::from).collect(),
            false,
        ),
        (Err(status), _) | (_, Err(status)) => {
            tracing::warn!(code = ?status.code(), message = status.message(), "reading an auction failed");
            (AuctionView::unknown(&id), Vec::new(), true)
        }
    };

    let flash =
        Flash::from_request(app.cookie_key(), &headers).filter(|f| f.auction_id == id.as_str());
    let csrf = security::csrf_token(app.cookie_key(), &headers);
    let form = FormView {
        csrf_token: csrf.token.clone(),
        // A new id per form shown; the same one again only after "unavailable", so that
        // submitting the kept entry again cannot place the bid twice.
        request_id: flash
            .as_ref()
            .and_then(|f| f.request_id.clone())
            .unwrap_or_else(|| Uuid::new_v4().to_string()),
        name: flash.as_ref().map(|f| f.name.clone()).unwrap_or_default(),
        price: flash.as_ref().map(|f| f.price.clone()).unwrap_or_default(),
        max_price: flash
            .as_ref()
            .map(|f| f.max_price.clone())
            .unwrap_or_default(),
    };
    let status = if unavailable {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    let mut response = render(
        status,
        &AuctionPage {
            auction,
            recent,
            flash,
            unavailable,
            form,
        },
    );
    let secure = app.settings().secure_cookies;
    if csrf.is_new {
        response.headers_mut().append(
            SET_COOKIE,
            security::set_cookie(CSRF_COOKIE, &csrf.cookie_value, None, secure),
        );
    }
    if security::cookie(&headers, FLASH_COOKIE).is_some() {
        // The message shows once.
        response.headers_mut().append(
            SET_COOKIE,
            security::set_cookie(FLASH_COOKIE, "", Some(0), secure),
        );
    }
    response
}

/// The bid form's fields; missing fields are empty rather than a rejection.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct BidForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    request_id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    price: String,
    /// The optional proxy maximum.
    #[serde(default)]
    max_price: String,
}

fn see_other(location: &str, cookie: Option<HeaderValue>) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(location) = HeaderValue::from_str(location) {
        response.headers_mut().insert(LOCATION, location);
    }
    if let Some(cookie) = cookie {
        response.headers_mut().append(SET_COOKIE, cookie);
    }
    response
}

/// `POST /auctions/{id}/bids`: places a bid, then redirects to the auction page with a message.
pub(crate) async fn place_bid(
    State(app): State<App>,
    client: Client,
    Path(raw_id): Path<String>,
    headers: HeaderMap,
    form: Result<Form<BidForm>, FormRejection>,
) -> Response {
    if !app.client_limits().allow_post(client) {
        return too_many_posts("nothing was placed");
    }
    let form = match form {
        Ok(Form(form)) => form,
        Err(rejection) => {
            let status = rejection.status();
            let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
                "The form was larger than this site accepts, so nothing was placed."
            } else {
                "The form could not be read, so nothing was placed. Reload the page and try again."
            };
            return error_page(status, "Form not accepted", message);
        }
    };
    // Before anything else: a post that did not come from our own form reaches no service.
    if !security::csrf_matches(app.cookie_key(), &headers, &form.csrf_token) {
        metrics::counter!(m::CSRF_REJECTIONS).increment(1);
        return error_page(
            StatusCode::FORBIDDEN,
            "Form expired",
            "This form has expired or did not come from this site, so nothing was placed. \
             Reload the auction page and try again.",
        );
    }
    let Some(id) = parse_auction_id(&raw_id) else {
        return not_an_auction();
    };
    let request_id = Uuid::parse_str(form.request_id.trim())
        .unwrap_or_else(|_| Uuid::new_v4())
        .to_string();

    let max_price = match form.max_price.trim() {
        "" => Ok(0),
        raw => raw.parse::<i64>(),
    };
    let price = match (form.price.trim(), &max_price) {
        // With a maximum, the amount may be left to the service.
        ("", Ok(max)) if *max > 0 => Ok(0),
        (raw, _) => raw.parse::<i64>(),
    };
    let outcome = match (price, max_price) {
        (Err(_), _) => BidOutcome::price_not_a_number(),
        (_, Err(_)) => BidOutcome::maximum_not_a_number(),
        (Ok(price), Ok(max_price)) => {
            let mut client = app.client();
            let request = app.with_timeout(PlaceBidRequest {
                auction_id: id.to_string(),
                name: form.name.clone(),
                price,
                request_id: request_id.clone(),
                max_price,
            });
            match client.place_bid(request).await {
                Ok(response) => BidOutcome::accepted(&response.into_inner()),
                Err(status) => BidOutcome::from_status(&status),
            }
        }
    };
    metrics::counter!(m::BIDS, "outcome" => outcome.label()).increment(1);

    let flash = match &outcome {
        BidOutcome::Accepted { message } => Flash {
            auction_id: id.to_string(),
            accepted: true,
            message: message.clone(),
            name: form.name.trim().to_owned(),
            price: String::new(),
            max_price: String::new(),
            request_id: None,
        },
        BidOutcome::TooLow { message } => Flash {
            auction_id: id.to_string(),
            accepted: false,
            message: message.clone(),
            name: form.name.clone(),
            price: String::new(),
            max_price: String::new(),
            request_id: None,
        },
        BidOutcome::Invalid { message } => Flash {
            auction_id: id.to_string(),
            accepted: false,
            message: message.clone(),
            name: form.name.clone(),
            price: form.price.clone(),
            max_price: form.max_price.clone(),
            request_id: None,
        },
        BidOutcome::Unavailable { message } => Flash {
            auction_id: id.to_string(),
            accepted: false,
            message: message.clone(),
            name: form.name.clone(),
            price: form.price.clone(),
            max_price: form.max_price.clone(),
            request_id: Some(request_id),
        },
    };
    let cookie = security::set_cookie(
        FLASH_COOKIE,
        &flash.to_cookie_value(app.cookie_key()),
        Some(120),
        app.settings().secure_cookies,
    );
    see_other(&format!("/auctions/{id}"), Some(cookie))
}

/// Any other path.
pub(crate) async fn not_found() -> Response {
    error_page(
        StatusCode::NOT_FOUND,
        "Page not found",
        "There is no page at this address.",
    )
}
