//! Query-string parameters as Confluent's registry reads them.
//!
//! Booleans are read case-insensitively (`true`, `True`, `TRUE`, `false`, `False`, ...), as
//! Confluent's registry does: confluent-kafka-python formats them with Python's `str()`, so it
//! sends `verbose=False`. Anything else is a 400 that names the parameter. Parameters a route
//! does not know are ignored, as Confluent's registry ignores them.

use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;

use crate::error::RegistryError;

/// The decoded `name=value` pairs of a request's query string, in order.
#[derive(Debug, Clone, Default)]
pub struct QueryParams(Vec<(String, String)>);

impl QueryParams {
    /// The last value given for `name`, if any (a repeated parameter counts as its last value).
    fn value(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// A text parameter, if given.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.value(name)
    }

    /// A boolean parameter: `false` when absent, `true`/`false` in any case, else a 400.
    pub fn flag(&self, name: &str) -> Result<bool, RegistryError> {
        self.flag_or(name, false)
    }

    /// A boolean parameter with `default` when absent.
    pub fn flag_or(&self, name: &str, default: bool) -> Result<bool, RegistryError> {
        match self.value(name) {
            None => Ok(default),
            Some(raw) => parse_bool(raw).ok_or_else(|| {
                RegistryError::bad_request(&format!(
                    "query parameter {name:?} must be true or false (in any case), not {raw:?}"
                ))
            }),
        }
    }

    /// Whichever of several spellings of a boolean parameter is given (`deletedOnly`, `deleted_only`).
    pub fn flag_any(&self, names: &[&str]) -> Result<bool, RegistryError> {
        for name in names {
            if self.value(name).is_some() {
                return self.flag(name);
            }
        }
        Ok(false)
    }

    /// An integer parameter with `default` when absent, else a 400 naming it.
    pub fn integer_or(&self, name: &str, default: i64) -> Result<i64, RegistryError> {
        match self.value(name) {
            None => Ok(default),
            Some(raw) => raw.trim().parse().map_err(|_| {
                RegistryError::bad_request(&format!(
                    "query parameter {name:?} must be an integer, not {raw:?}"
                ))
            }),
        }
    }

    /// The page of `items` that `offset` and `limit` select (a negative limit means all), as
    /// Confluent's listing routes read them.
    pub fn page<T>(&self, items: Vec<T>) -> Result<Vec<T>, RegistryError> {
        let offset = self.integer_or("offset", 0)?;
        let limit = self.integer_or("limit", -1)?;
        let skip = usize::try_from(offset.max(0)).unwrap_or(usize::MAX);
        let take = usize::try_from(limit).unwrap_or(usize::MAX);
        Ok(items.into_iter().skip(skip).take(take).collect())
    }
}

/// `true` or `false` in any case; `None` for anything else.
pub fn parse_bool(raw: &str) -> Option<bool> {
    if raw.eq_ignore_ascii_case("true") {
        Some(true)
    } else if raw.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

impl<S: Send + Sync> FromRequestParts<S> for QueryParams {
    type Rejection = RegistryError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let Query(pairs) = Query::<Vec<(String, String)>>::try_from_uri(&parts.uri)
            .map_err(|e| RegistryError::bad_request(&format!("unreadable query string: {e}")))?;
        Ok(Self(pairs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> QueryParams {
        QueryParams(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }

    #[test]
    fn booleans_are_read_in_any_case() {
        for (raw, expected) in [
            ("true", true),
            ("True", true),
            ("TRUE", true),
            ("false", false),
            ("False", false),
            ("FALSE", false),
        ] {
            assert_eq!(params(&[("verbose", raw)]).flag("verbose"), Ok(expected));
        }
        assert_eq!(params(&[]).flag("verbose"), Ok(false));
        assert_eq!(params(&[]).flag_or("verbose", true), Ok(true));
    }

    #[test]
    fn anything_else_is_a_400_naming_the_parameter() {
        for raw in ["yes", "1", "", "t"] {
            let error = params(&[("normalize", raw)]).flag("normalize").unwrap_err();
            assert_eq!(error.error_code, 400);
            assert!(
                error.message.contains("\"normalize\"") && error.message.contains("true or false"),
                "{}",
                error.message
            );
        }
    }

    #[test]
    fn offset_and_limit_select_a_page() {
        let items = vec![1, 2, 3, 4];
        assert_eq!(params(&[]).page(items.clone()), Ok(vec![1, 2, 3, 4]));
        assert_eq!(
            params(&[("offset", "1"), ("limit", "2")]).page(items.clone()),
            Ok(vec![2, 3])
        );
        assert_eq!(
            params(&[("offset", "0"), ("limit", "-1")]).page(items.clone()),
            Ok(vec![1, 2, 3, 4])
        );
        assert_eq!(
            params(&[("limit", "many")])
                .page(items)
                .unwrap_err()
                .error_code,
            400
        );
    }
}
