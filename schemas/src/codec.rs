//! Bid events to and from Kafka record values, through a Confluent-compatible schema registry.
//!
//! Encoding and decoding both validate against the JSON Schema the record names: the registry
//! client (`schema_registry_converter`) fetches schemas and coalesces concurrent look-ups, and this
//! module keeps one compiled validator per schema id. Failed look-ups are never cached, so a
//! registry that was down or briefly empty is asked again on the next record.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use jsonschema::Validator;
use schema_registry_converter::async_impl::json::{JsonDecoder, JsonEncoder};
use schema_registry_converter::async_impl::schema_registry::{
    SrSettings, perform_sr_call, post_schema,
};
use schema_registry_converter::error::SRCError;
use schema_registry_converter::schema_registry_common::SrCall;
use schema_registry_converter::schema_registry_common::{
    SchemaType, SubjectNameStrategy, SuppliedSchema,
};
use serde_json::Value;

use crate::domain::{Bid, InvalidBid};
use crate::event::{self, HeaderIds, LogPosition, SCHEMA_V1, SCHEMA_V2};
use crate::wire::{self, FrameError};
use auction_process::Secret;

/// How to reach the schema registry.
#[derive(Debug, Clone)]
pub struct RegistrySettings {
    /// Base URL, such as `http://127.0.0.1:8081`.
    pub url: String,
    /// Basic-auth user (Confluent Cloud: the API key).
    pub username: Option<String>,
    /// Basic-auth password (Confluent Cloud: the API secret).
    pub password: Option<Secret>,
    /// Time limit of one registry call.
    pub timeout: Duration,
}

impl RegistrySettings {
    /// Settings for a registry without authentication.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            username: None,
            password: None,
            timeout: Duration::from_secs(5),
        }
    }

    fn client_settings(&self) -> Result<SrSettings, RegistryConfigError> {
        let url = self.url.trim_end_matches('/').to_owned();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(RegistryConfigError(format!(
                "the schema registry URL must start with http:// or https://, got {url:?}"
            )));
        }
        let mut builder = SrSettings::new_builder(url);
        if let Some(username) = &self.username {
            builder.set_basic_authorization(username, self.password.as_ref().map(Secret::expose));
        }
        builder.set_timeout(self.timeout);
        builder.build().map_err(|e| {
            RegistryConfigError(format!(
                "cannot set up the schema registry client: {}",
                e.error
            ))
        })
    }
}

/// The registry settings cannot be used.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct RegistryConfigError(String);

/// Why a record value is not a bid. Only [`DecodeError::RegistryUnavailable`] can succeed later;
/// every other variant is a property of the record itself (a dead letter).
#[derive(Debug, Clone, thiserror::Error)]
pub enum DecodeError {
    /// Not in the Confluent wire format.
    #[error("{0}")]
    Frame(#[from] FrameError),
    /// The registry does not know the schema id in the header.
    #[error("schema id {schema_id} is not known to the schema registry")]
    UnknownSchemaId {
        /// The id from the header.
        schema_id: u32,
    },
    /// The registry has the schema but it is not a usable JSON Schema.
    #[error("schema id {schema_id} cannot be used to validate bids: {reason}")]
    UnusableSchema {
        /// The id from the header.
        schema_id: u32,
        /// What is wrong with it.
        reason: String,
    },
    /// The registry could not be asked; retry later.
    #[error("the schema registry could not be reached for schema id {schema_id}: {reason}")]
    RegistryUnavailable {
        /// The id from the header.
        schema_id: u32,
        /// What failed.
        reason: String,
    },
    /// The payload is not JSON.
    #[error("the payload is not valid JSON: {reason}")]
    InvalidJson {
        /// The parser's message.
        reason: String,
    },
    /// The JSON does not match the schema it names.
    #[error("the payload does not match schema id {schema_id}: {}", .violations.join("; "))]
    SchemaViolation {
        /// The id from the header.
        schema_id: u32,
        /// One entry per violation, with its JSON pointer.
        violations: Vec<String>,
    },
    /// The JSON matches its schema but breaks a bid rule.
    #[error("{0}")]
    InvalidBid(#[from] InvalidBid),
}

impl DecodeError {
    /// True when the same record may decode later (the registry was unreachable).
    pub fn is_retriable(&self) -> bool {
        matches!(self, Self::RegistryUnavailable { .. })
    }

    /// A short stable name for metrics and dead-letter headers.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Frame(FrameError::Missing) => "missing_value",
            Self::Frame(FrameError::TooShort { .. }) => "too_short",
            Self::Frame(FrameError::BadMagicByte { .. }) => "bad_magic_byte",
            Self::UnknownSchemaId { .. } => "unknown_schema_id",
            Self::UnusableSchema { .. } => "unusable_schema",
            Self::RegistryUnavailable { .. } => "registry_unavailable",
            Self::InvalidJson { .. } => "invalid_json",
            Self::SchemaViolation { .. } => "schema_violation",
            Self::InvalidBid(_) => "invalid_bid",
        }
    }
}

/// Why a bid could not be encoded.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EncodeError {
    /// The registry could not be asked; retry later.
    #[error("the schema registry is unavailable: {0}")]
    RegistryUnavailable(String),
    /// The registry refused the product's schema (incompatible, or not allowed).
    #[error("the schema registry refused the bid schema: {0}")]
    RegistryRefused(String),
    /// The event does not match the registered schema.
    #[error("the bid does not match the registered schema: {0}")]
    SchemaViolation(String),
}

impl EncodeError {
    /// True when the same bid may encode later.
    pub fn is_retriable(&self) -> bool {
        matches!(self, Self::RegistryUnavailable(_))
    }
}

/// A decoded record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedBid {
    /// The bid, with the rules applied.
    pub bid: Bid,
    /// The schema id the record was written with.
    pub schema_id: u32,
}

/// The form in which bids are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum BidForm {
    /// Version 2: the ids in the value.
    #[default]
    Product,
    /// Version 1, the demo's schema, which its consumers accept (they refuse any other field):
    /// the bid id and auction id go into headers ([`crate::event::BID_ID_HEADER`],
    /// [`crate::event::AUCTION_ID_HEADER`]) and `bid_ts` is in the demo's form. For a cut-over
    /// while the demo's consumers still read the topic.
    DemoCompatible,
}

/// Writes bids as version 2 events (or version 1, [`BidForm::DemoCompatible`]) under
/// `<topic>-value`, registering the schema on first use.
pub struct BidEncoder {
    form: BidForm,
    registry: JsonEncoder,
    /// Set by [`BidEncoder::register_schemas`] or [`BidEncoder::verify_schema`]: v2's id in the
    /// registry and its validator; then bids are framed with that id and validated locally.
    known_id: std::sync::OnceLock<(u32, Validator)>,
    settings: SrSettings,
    subject_name: String,
    subject: SubjectNameStrategy,
}

impl fmt::Debug for BidEncoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BidEncoder").finish_non_exhaustive()
    }
}

impl BidEncoder {
    /// An encoder for records of `topic`, in the product's form.
    pub fn new(settings: &RegistrySettings, topic: &str) -> Result<Self, RegistryConfigError> {
        Self::with_form(settings, topic, BidForm::Product)
    }

    /// An encoder for records of `topic` in `form`.
    pub fn with_form(
        settings: &RegistrySettings,
        topic: &str,
        form: BidForm,
    ) -> Result<Self, RegistryConfigError> {
        let schema = SuppliedSchema::new(None, SchemaType::Json, form_schema(form).to_owned());
        let client_settings = settings.client_settings()?;
        Ok(Self {
            form,
            registry: JsonEncoder::new(client_settings.clone()),
            known_id: std::sync::OnceLock::new(),
            settings: client_settings,
            subject_name: format!("{topic}-value"),
            subject: SubjectNameStrategy::TopicNameStrategyWithSchema(
                topic.to_owned(),
                false,
                schema,
            ),
        })
    }

    /// The form bids are written in.
    pub fn form(&self) -> BidForm {
        self.form
    }

    /// Registers the demo's schema (v1) and then v2 under `<topic>-value`, in that order, so that
    /// the original Python producer, which registers v1 itself, keeps working on a subject where
    /// v2 is the latest: a registry answers an already registered schema with its id. A refused
    /// v1 (the subject holds other schemas) is only logged, unless bids are written in the
    /// demo-compatible form; a refused v2 is an error. Bids are then framed with the id of the
    /// form's schema.
    pub async fn register_schemas(&self) -> Result<u32, EncodeError> {
        let v1 = SuppliedSchema::new(None, SchemaType::Json, SCHEMA_V1.to_owned());
        let v1_id = match post_schema(&self.settings, self.subject_name.clone(), v1).await {
            Ok(registered) => Ok(registered.id),
            Err(e) => match classify_encode_error(&e) {
                EncodeError::RegistryUnavailable(reason) => {
                    return Err(EncodeError::RegistryUnavailable(reason));
                }
                refused => {
                    tracing::warn!(subject = %self.subject_name, error = %refused, "the demo schema (v1) was not registered");
                    Err(refused)
                }
            },
        };
        let v2 = SuppliedSchema::new(None, SchemaType::Json, SCHEMA_V2.to_owned());
        let v2_id = post_schema(&self.settings, self.subject_name.clone(), v2)
            .await
            .map(|registered| registered.id)
            .map_err(|e| classify_encode_error(&e))?;
        match self.form {
            BidForm::Product => self.use_schema_id(v2_id),
            BidForm::DemoCompatible => self.use_schema_id(v1_id.map_err(|refused| {
                EncodeError::RegistryRefused(format!(
                    "bids in the demo-compatible form need the demo's schema (v1) under subject {}: {refused}",
                    self.subject_name
                ))
            })?),
        }
    }

    /// For registries where clients may not register schemas: looks the form's schema up under
    /// `<topic>-value` (it must have been registered by an operator) and from then on frames
    /// bids with its id, without registering anything.
    pub async fn verify_schema(&self) -> Result<u32, EncodeError> {
        let (schema, file) = match self.form {
            BidForm::Product => (SCHEMA_V2, "auction-value.v2.json"),
            BidForm::DemoCompatible => (SCHEMA_V1, "auction-value.v1.json"),
        };
        let body = serde_json::json!({"schema": schema, "schemaType": "JSON"}).to_string();
        let found = perform_sr_call(
            &self.settings,
            SrCall::PostForVersion(&self.subject_name, &body),
        )
        .await
        .map_err(|e| match http_status(&e) {
            Some(404) => EncodeError::RegistryRefused(format!(
                "the bid schema (schemas/json/{file}) is not registered under subject {}; \
                     register it, or allow the service to register it",
                self.subject_name
            )),
            _ => classify_encode_error(&e),
        })?;
        let id = found.id.ok_or_else(|| {
            EncodeError::RegistryRefused(format!(
                "the registry's answer for {} carries no schema id",
                self.subject_name
            ))
        })?;
        self.use_schema_id(id)
    }

    /// From now on, frames bids with `id` (the form's schema's id in the registry), validating
    /// them locally: no registry client on the path of each bid.
    fn use_schema_id(&self, id: u32) -> Result<u32, EncodeError> {
        let schema: Value = serde_json::from_str(form_schema(self.form)).map_err(|e| {
            EncodeError::SchemaViolation(format!("the bid schema is not JSON: {e}"))
        })?;
        let validator = crate::draft::validator_for(&schema).map_err(|e| {
            EncodeError::SchemaViolation(format!("the bid schema does not compile: {e}"))
        })?;
        let _ = self.known_id.set((id, validator));
        Ok(id)
    }

    /// The framed record value of `bid`. In the demo-compatible form, the writer must also put
    /// the bid's ids into the record's headers.
    pub async fn encode(&self, bid: &Bid) -> Result<Vec<u8>, EncodeError> {
        let value = match self.form {
            BidForm::Product => event::to_json(bid),
            BidForm::DemoCompatible => event::to_demo_json(bid),
        };
        if let Some((id, validator)) = self.known_id.get() {
            if !validator.is_valid(&value)
                && let Some(error) = validator.iter_errors(&value).next()
            {
                return Err(EncodeError::SchemaViolation(error.to_string()));
            }
            let payload = serde_json::to_vec(&value).map_err(|e| {
                EncodeError::SchemaViolation(format!("the bid cannot be written as JSON: {e}"))
            })?;
            return Ok(wire::frame(*id, &payload));
        }
        self.registry
            .encode(&value, self.subject.clone())
            .await
            .map_err(|e| {
                self.registry.remove_errors_from_cache();
                classify_encode_error(&e)
            })
    }
}

fn form_schema(form: BidForm) -> &'static str {
    match form {
        BidForm::Product => SCHEMA_V2,
        BidForm::DemoCompatible => SCHEMA_V1,
    }
}

fn describe(error: &SRCError) -> String {
    match &error.cause {
        Some(cause) => format!("{} ({cause})", error.error),
        None => error.error.clone(),
    }
}

fn http_status(error: &SRCError) -> Option<u16> {
    let (_, rest) = error.error.split_once("failed with status ")?;
    rest.get(..3)?.parse().ok()
}

fn classify_encode_error(error: &SRCError) -> EncodeError {
    if error
        .error
        .contains("was not valid according to the schema")
    {
        return EncodeError::SchemaViolation(describe(error));
    }
    match http_status(error) {
        Some(409 | 422 | 403) => EncodeError::RegistryRefused(describe(error)),
        _ => EncodeError::RegistryUnavailable(describe(error)),
    }
}

/// Decodes a payload written with `schema_id`, validating it with that schema's `validator`
/// (what [`BidDecoder::decode`] does once it has the schema; public for the fuzz targets).
pub fn decode_payload(
    validator: &Validator,
    schema_id: u32,
    payload: &[u8],
    position: LogPosition<'_>,
    headers: HeaderIds<'_>,
) -> Result<DecodedBid, DecodeError> {
    let json: Value = serde_json::from_slice(payload).map_err(|e| DecodeError::InvalidJson {
        reason: e.to_string(),
    })?;
    // The common case, a valid record, takes the fast check; the errors are collected only for
    // a record that fails it.
    if validator.is_valid(&json) {
        let bid = event::from_json(&json, position, headers)?;
        return Ok(DecodedBid { bid, schema_id });
    }
    let violations: Vec<String> = validator
        .iter_errors(&json)
        .map(|e| match e.instance_path().to_string() {
            path if path.is_empty() => e.to_string(),
            path => format!("{path}: {e}"),
        })
        .collect();
    if !violations.is_empty() {
        return Err(DecodeError::SchemaViolation {
            schema_id,
            violations,
        });
    }
    let bid = event::from_json(&json, position, headers)?;
    Ok(DecodedBid { bid, schema_id })
}

/// Reads bid events of any registered version.
pub struct BidDecoder {
    registry: JsonDecoder,
    validators: RwLock<HashMap<u32, Arc<Validator>>>,
}

impl fmt::Debug for BidDecoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BidDecoder").finish_non_exhaustive()
    }
}

impl BidDecoder {
    /// A decoder using the registry at `settings`.
    pub fn new(settings: &RegistrySettings) -> Result<Self, RegistryConfigError> {
        Ok(Self {
            registry: JsonDecoder::new(settings.client_settings()?),
            validators: RwLock::new(HashMap::new()),
        })
    }

    /// Decodes and validates one record value read at `position`, taking ids the value lacks
    /// from its `headers`.
    pub async fn decode(
        &self,
        value: Option<&[u8]>,
        position: LogPosition<'_>,
        headers: HeaderIds<'_>,
    ) -> Result<DecodedBid, DecodeError> {
        let (schema_id, payload) = wire::unframe(value)?;
        let validator = self.validator(schema_id).await?;
        decode_payload(&validator, schema_id, payload, position, headers)
    }

    async fn validator(&self, schema_id: u32) -> Result<Arc<Validator>, DecodeError> {
        if let Some(found) = self.cached(schema_id) {
            return Ok(found);
        }
        let schema = self.registry.get_schema(schema_id).await.map_err(|e| {
            self.registry.remove_errors_from_cache();
            match http_status(&e) {
                Some(404) => DecodeError::UnknownSchemaId { schema_id },
                None if !e.retriable => DecodeError::UnusableSchema {
                    schema_id,
                    reason: describe(&e),
                },
                _ => DecodeError::RegistryUnavailable {
                    schema_id,
                    reason: describe(&e),
                },
            }
        })?;
        let validator = crate::draft::validator_for(&schema.schema).map_err(|e| {
            DecodeError::UnusableSchema {
                schema_id,
                reason: e.to_string(),
            }
        })?;
        let validator = Arc::new(validator);
        self.validators
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(schema_id, Arc::clone(&validator));
        Ok(validator)
    }

    fn cached(&self, schema_id: u32) -> Option<Arc<Validator>> {
        self.validators
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&schema_id)
            .cloned()
    }
}

/// Frames the records of the bid service's other topics with the id of their schema: the state
/// records of `auction.state` ([`crate::state::STATE_SCHEMA_V1`], written and read only by the bid
/// service, which validates them by their Rust types) and the results of `auction.results`
/// ([`crate::result::RESULT_SCHEMA_V1`]). The registry holds each schema so that anyone reading
/// the topic can find it.
pub struct RecordCodec {
    settings: SrSettings,
    subject: String,
    schema: &'static str,
    file: &'static str,
    id: std::sync::OnceLock<u32>,
}

impl fmt::Debug for RecordCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordCodec")
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

impl RecordCodec {
    /// A codec for the state records of `state_topic`.
    pub fn state(
        settings: &RegistrySettings,
        state_topic: &str,
    ) -> Result<Self, RegistryConfigError> {
        Ok(Self {
            settings: settings.client_settings()?,
            subject: format!("{state_topic}-value"),
            schema: crate::state::STATE_SCHEMA_V1,
            file: "schemas/json/auction.state-value.v1.json",
            id: std::sync::OnceLock::new(),
        })
    }

    /// A codec for the results of `results_topic`.
    pub fn results(
        settings: &RegistrySettings,
        results_topic: &str,
    ) -> Result<Self, RegistryConfigError> {
        Ok(Self {
            settings: settings.client_settings()?,
            subject: format!("{results_topic}-value"),
            schema: crate::result::RESULT_SCHEMA_V1,
            file: "schemas/json/auction.results-value.v1.json",
            id: std::sync::OnceLock::new(),
        })
    }

    /// Registers the schema (or, with `register` false, looks it up: an operator registered it)
    /// and returns its id.
    pub async fn prepare(&self, register: bool) -> Result<u32, EncodeError> {
        let id = if register {
            let schema = SuppliedSchema::new(None, SchemaType::Json, self.schema.to_owned());
            post_schema(&self.settings, self.subject.clone(), schema)
                .await
                .map(|registered| registered.id)
                .map_err(|e| classify_encode_error(&e))?
        } else {
            let body = serde_json::json!({"schema": self.schema, "schemaType": "JSON"}).to_string();
            perform_sr_call(&self.settings, SrCall::PostForVersion(&self.subject, &body))
                .await
                .map_err(|e| match http_status(&e) {
                    Some(404) => EncodeError::RegistryRefused(format!(
                        "the schema {} is not registered under subject {}; register it, or allow \
                         the service to register it",
                        self.file, self.subject
                    )),
                    _ => classify_encode_error(&e),
                })?
                .id
                .ok_or_else(|| {
                    EncodeError::RegistryRefused(format!(
                        "the registry's answer for {} carries no schema id",
                        self.subject
                    ))
                })?
        };
        let _ = self.id.set(id);
        Ok(id)
    }

    /// The framed value of `record` (schema id 0 before [`Self::prepare`] succeeded).
    pub fn encode(&self, record: &impl serde::Serialize) -> Vec<u8> {
        // Serialising plain data to JSON cannot fail.
        let json = serde_json::to_vec(record).unwrap_or_default();
        wire::frame(self.id.get().copied().unwrap_or(0), &json)
    }

    /// Reads a framed value.
    pub fn decode<T: serde::de::DeserializeOwned>(value: Option<&[u8]>) -> Result<T, String> {
        let (_, body) = wire::unframe(value).map_err(|e| e.to_string())?;
        serde_json::from_slice(body).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::SCHEMA_V1;
    use proptest::prelude::*;

    const POSITION: LogPosition<'static> = LogPosition {
        topic: "auction",
        partition: 1,
        offset: 2,
    };

    fn validator(schema: &str) -> Validator {
        jsonschema::validator_for(&serde_json::from_str(schema).unwrap()).unwrap()
    }

    fn field_name() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("name".to_owned()),
            Just("price".to_owned()),
            Just("bid_ts".to_owned()),
            Just("auction_id".to_owned()),
            Just("bid_id".to_owned()),
            ".{0,8}",
        ]
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>()
                .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
            ".{0,20}".prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 24, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map(field_name(), inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn any_bytes_decode_to_a_bid_or_a_permanent_error(payload in prop::collection::vec(any::<u8>(), 0..200)) {
            for schema in [SCHEMA_V1, SCHEMA_V2] {
                match decode_payload(&validator(schema), 1, &payload, POSITION, HeaderIds::NONE) {
                    Ok(decoded) => prop_assert!(decoded.bid.price.get() >= 1),
                    Err(e) => prop_assert!(!e.is_retriable(), "{e}"),
                }
            }
        }

        #[test]
        fn any_json_decodes_to_a_valid_bid_or_a_clear_error(value in json_value()) {
            let payload = serde_json::to_vec(&value).unwrap();
            match decode_payload(&validator(SCHEMA_V2), 2, &payload, POSITION, HeaderIds::NONE) {
                Ok(decoded) => {
                    // Whatever got through satisfies every rule and survives a round trip.
                    let again = event::from_json(&event::to_json(&decoded.bid), POSITION, HeaderIds::NONE).unwrap();
                    prop_assert_eq!(again, decoded.bid);
                }
                Err(DecodeError::SchemaViolation { violations, .. }) => prop_assert!(!violations.is_empty()),
                Err(DecodeError::InvalidBid(invalid)) => prop_assert!(!invalid.violations.is_empty()),
                Err(other) => prop_assert!(false, "unexpected error {other}"),
            }
        }

        #[test]
        fn bids_with_valid_fields_always_decode(
            name in "[^\\p{Cc}]{1,100}".prop_filter("not blank", |n| !n.trim().is_empty()),
            price in 1..=i64::from(i32::MAX),
            auction in "[A-Za-z0-9._-]{1,64}",
        ) {
            let value = serde_json::json!({"name": name, "price": price, "bid_ts": "2026-11-23 10:00:00",
                                           "auction_id": auction, "bid_id": uuid::Uuid::new_v4().to_string()});
            let decoded = decode_payload(&validator(SCHEMA_V2), 2, &serde_json::to_vec(&value).unwrap(), POSITION, HeaderIds::NONE)
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(decoded.bid.name.as_str(), name.trim());
            prop_assert_eq!(i64::from(decoded.bid.price.get()), price);
        }
    }
}
