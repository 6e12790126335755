//! Creating an auction from the browser: `GET /auctions/new` shows the form, `POST /auctions`
//! calls `CreateAuction` and shows the seller key once. The form carries a pre-generated auction
//! id, so that posting it again (a reload) cannot create a second auction.

use askama::Template;
use auction_proto::v1::CreateAuctionRequest;
use axum::Form;
use axum::extract::State;
use axum::extract::rejection::FormRejection;
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use tonic::Code;
use tonic_types::StatusExt;
use uuid::Uuid;

use crate::App;
use crate::limits::{Client, too_many_posts};
use crate::pages::{error_page, plain_time, render};
use crate::security::{self, CSRF_COOKIE};

/// The units of "ends in", with their seconds.
const UNITS: [(&str, &str, i64); 4] = [
    ("seconds", "seconds", 1),
    ("minutes", "minutes", 60),
    ("hours", "hours", 3_600),
    ("days", "days", 86_400),
];

/// The form's fields, as typed (kept to fill the form in again).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct CreateForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    auction_id: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    seller: String,
    #[serde(default)]
    starting_price: String,
    #[serde(default)]
    reserve_price: String,
    #[serde(default)]
    increment: String,
    #[serde(default)]
    ends_in: String,
    #[serde(default)]
    ends_in_unit: String,
    #[serde(default)]
    soft_close_seconds: String,
    #[serde(default)]
    creation_token: String,
}

#[derive(Template)]
#[template(path = "create.html")]
struct CreatePage<'a> {
    csrf_token: String,
    form: &'a CreateForm,
    units: Vec<(&'static str, &'static str)>,
    problems: Vec<String>,
}

#[derive(Template)]
#[template(path = "created.html")]
struct CreatedPage {
    auction_id: String,
    title: String,
    end_at: String,
    seller_key: String,
}

fn page(
    app: &App,
    headers: &HeaderMap,
    status: StatusCode,
    form: &CreateForm,
    problems: Vec<String>,
) -> Response {
    let csrf = security::csrf_token(app.cookie_key(), headers);
    let mut response = render(
        status,
        &CreatePage {
            csrf_token: csrf.token.clone(),
            form,
            units: UNITS
                .iter()
                .map(|(value, label, _)| (*value, *label))
                .collect(),
            problems,
        },
    );
    if csrf.is_new {
        response.headers_mut().append(
            SET_COOKIE,
            security::set_cookie(
                CSRF_COOKIE,
                &csrf.cookie_value,
                None,
                app.settings().secure_cookies,
            ),
        );
    }
    response
}

/// `GET /auctions/new`: the form, with a fresh auction id.
pub(crate) async fn new_auction(State(app): State<App>, headers: HeaderMap) -> Response {
    let form = CreateForm {
        auction_id: format!("lot-{}", &Uuid::new_v4().simple().to_string()[..10]),
        starting_price: "1".to_owned(),
        ends_in: "10".to_owned(),
        ends_in_unit: "minutes".to_owned(),
        ..CreateForm::default()
    };
    page(&app, &headers, StatusCode::OK, &form, Vec::new())
}

/// A whole number typed into `label`'s field; empty is `None`.
fn number(raw: &str, label: &str, problems: &mut Vec<String>) -> Option<i64> {
    match raw.trim() {
        "" => None,
        raw => match raw.parse::<i64>() {
            Ok(n) => Some(n),
            Err(_) => {
                problems.push(format!("{label} must be a whole number, such as 25."));
                None
            }
        },
    }
}

/// The sentence for one field the bid service refused.
fn field_problem(field: &str, description: &str) -> String {
    let label = match field {
        "title" => "The title",
        "description" => "The description",
        "seller" => "Your name",
        "auction_id" => "The auction id",
        "starting_price" => "The starting price",
        "reserve_price" => "The reserve price",
        "fixed_increment" => "The increment",
        "end_time" => "The end",
        "soft_close_window" | "extension" => "The soft close",
        _ => "A field",
    };
    format!("{label} {description}.")
}

/// `POST /auctions`: creates the auction and shows the seller key once.
pub(crate) async fn create_auction(
    State(app): State<App>,
    client: Client,
    headers: HeaderMap,
    form: Result<Form<CreateForm>, FormRejection>,
) -> Response {
    if !app.client_limits().allow_post(client) {
        return too_many_posts("no auction was created");
    }
    let Ok(Form(form)) = form else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "Form not accepted",
            "The form could not be read, so no auction was created. Reload the page and try again.",
        );
    };
    if !security::csrf_matches(app.cookie_key(), &headers, &form.csrf_token) {
        return error_page(
            StatusCode::FORBIDDEN,
            "Form expired",
            "This form has expired or did not come from this site, so no auction was created. \
             Reload the page and try again.",
        );
    }
    let mut problems = Vec::new();
    let starting_price = number(&form.starting_price, "The starting price", &mut problems);
    let reserve_price = number(&form.reserve_price, "The reserve price", &mut problems);
    let increment = number(&form.increment, "The increment", &mut problems);
    let ends_in = number(&form.ends_in, "Ends in", &mut problems);
    let soft_close = number(&form.soft_close_seconds, "The soft close", &mut problems);
    let unit = UNITS
        .iter()
        .find(|(value, _, _)| *value == form.ends_in_unit)
        .map_or(60, |(_, _, seconds)| *seconds);
    let ends_in = match ends_in {
        Some(n) if n >= 1 => Some(n.saturating_mul(unit)),
        Some(_) => {
            problems.push("Ends in must be at least 1.".to_owned());
            None
        }
        None => {
            problems.push("Say when the auction ends.".to_owned());
            None
        }
    };
    if !problems.is_empty() {
        return page(
            &app,
            &headers,
            StatusCode::UNPROCESSABLE_ENTITY,
            &form,
            problems,
        );
    }
    let end = chrono::Utc::now() + chrono::Duration::seconds(ends_in.unwrap_or(60));
    let window = soft_close.unwrap_or(0).max(0);
    let request = CreateAuctionRequest {
        auction_id: form.auction_id.trim().to_owned(),
        title: form.title.clone(),
        description: form.description.clone(),
        seller: form.seller.clone(),
        starting_price: starting_price.unwrap_or(0),
        reserve_price: reserve_price.unwrap_or(0),
        fixed_increment: increment.unwrap_or(0),
        end_time: Some(prost_types::Timestamp {
            seconds: end.timestamp(),
            nanos: 0,
        }),
        soft_close_window: (window > 0).then_some(prost_types::Duration {
            seconds: window,
            nanos: 0,
        }),
        creation_token: form.creation_token.clone(),
        ..CreateAuctionRequest::default()
    };
    let mut client = app.client();
    match client.create_auction(app.with_timeout(request)).await {
        Ok(response) => {
            let response = response.into_inner();
            let state = response.auction.unwrap_or_default();
            render(
                StatusCode::CREATED,
                &CreatedPage {
                    title: state
                        .definition
                        .as_ref()
                        .map_or_else(|| state.auction_id.clone(), |d| d.title.clone()),
                    end_at: state.end_time.as_ref().map(plain_time).unwrap_or_default(),
                    auction_id: state.auction_id,
                    seller_key: response.seller_key,
                },
            )
        }
        Err(status) => {
            let problems = match status.code() {
                Code::InvalidArgument => status
                    .get_details_bad_request()
                    .map(|bad| {
                        bad.field_violations
                            .iter()
                            .map(|v| field_problem(&v.field, &v.description))
                            .collect()
                    })
                    .unwrap_or_else(|| vec![status.message().to_owned()]),
                Code::AlreadyExists => vec![
                    "An auction with this id exists already (perhaps this form was sent twice): \
                     choose another id."
                        .to_owned(),
                ],
                Code::PermissionDenied => {
                    vec!["This site needs a valid creation token to create auctions.".to_owned()]
                }
                _ => {
                    tracing::warn!(code = ?status.code(), message = status.message(), "CreateAuction failed");
                    vec![
                        "The bid service is unavailable right now, so the auction was not created. \
                         Try again in a moment."
                            .to_owned(),
                    ]
                }
            };
            let code = match status.code() {
                Code::InvalidArgument | Code::AlreadyExists => StatusCode::UNPROCESSABLE_ENTITY,
                Code::PermissionDenied => StatusCode::FORBIDDEN,
                _ => StatusCode::SERVICE_UNAVAILABLE,
            };
            page(&app, &headers, code, &form, problems)
        }
    }
}
