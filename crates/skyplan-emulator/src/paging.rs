//! Token paging, as SkySQL's list endpoints page (`GET …/services`, `…/configs`,
//! `…/topologies/{topology}/configs`): `page_size` 1–100 (default 100), `page_order`
//! `asc`|`desc`, `page_token` from the `X-SkySQL-Page-Token-Next` / `-Previous` headers.
//!
//! A token names the position key of a page's first item (a creation number, or a catalog
//! index), not an offset, so the pages stay stable when items are deleted in between.

use axum::http::{HeaderMap, HeaderValue};
use serde::Deserialize;

use super::api_error::ApiError;

pub(crate) const PAGE_TOKEN_NEXT: &str = "X-SkySQL-Page-Token-Next";
pub(crate) const PAGE_TOKEN_PREVIOUS: &str = "X-SkySQL-Page-Token-Previous";

/// The paging query parameters (each list endpoint's query struct holds these three; serde's
/// `flatten` would make the query decoder read `page_size` as a string and refuse it).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct PageQuery {
    pub page_size: Option<usize>,
    pub page_token: Option<String>,
    pub page_order: Option<String>,
}

/// One page of `items` and its headers. `key` is each item's position (unique; the order of the
/// listing); a token is `prefix` followed by a key in hex.
pub(crate) fn page<T>(
    mut items: Vec<T>,
    key: impl Fn(&T) -> u64,
    prefix: char,
    q: &PageQuery,
) -> Result<(HeaderMap, Vec<T>), ApiError> {
    let page_size = q.page_size.unwrap_or(100);
    if !(1..=100).contains(&page_size) {
        return Err(ApiError::bad_request("page_size must be between 1 and 100"));
    }
    let desc = match q.page_order.as_deref() {
        None | Some("asc") => false,
        Some("desc") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "page_order {other:?} must be \"asc\" or \"desc\""
            )))
        }
    };
    items.sort_by_key(&key);
    if desc {
        items.reverse();
    }
    let start = match &q.page_token {
        None => 0,
        Some(token) => {
            let at = parse_token(token, prefix)?;
            items
                .iter()
                .position(|i| if desc { key(i) <= at } else { key(i) >= at })
                .unwrap_or(items.len())
        }
    };
    let end = (start + page_size).min(items.len());
    let mut headers = HeaderMap::new();
    if let Some(next) = items.get(end) {
        headers.insert(PAGE_TOKEN_NEXT, token_header(prefix, key(next)));
    }
    if start > 0 {
        let previous = &items[start.saturating_sub(page_size)];
        headers.insert(PAGE_TOKEN_PREVIOUS, token_header(prefix, key(previous)));
    }
    let page = items.drain(start..end).collect();
    Ok((headers, page))
}

fn token_header(prefix: char, key: u64) -> HeaderValue {
    HeaderValue::from_str(&format!("{prefix}{key:x}"))
        .unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn parse_token(token: &str, prefix: char) -> Result<u64, ApiError> {
    token
        .strip_prefix(prefix)
        .and_then(|hex| u64::from_str_radix(hex, 16).ok())
        .ok_or_else(|| ApiError::bad_request(format!("invalid page_token {token:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(size: usize, token: Option<&str>, order: Option<&str>) -> PageQuery {
        PageQuery {
            page_size: Some(size),
            page_token: token.map(str::to_string),
            page_order: order.map(str::to_string),
        }
    }

    fn header(h: &HeaderMap, name: &str) -> Option<String> {
        h.get(name).map(|v| v.to_str().unwrap().to_string())
    }

    /// Follows the next tokens from the first page; returns every page.
    fn walk(items: &[u64], size: usize, order: Option<&str>) -> Vec<Vec<u64>> {
        let mut pages = Vec::new();
        let mut token = None;
        loop {
            let q = query(size, token.as_deref(), order);
            let (h, page) = page(items.to_vec(), |k| *k, 'x', &q).unwrap();
            pages.push(page);
            token = header(&h, PAGE_TOKEN_NEXT);
            if token.is_none() {
                return pages;
            }
        }
    }

    #[test]
    fn pages_follow_the_tokens_both_ways() {
        let items = [5, 1, 3, 9, 7];
        assert_eq!(walk(&items, 2, None), [vec![1, 3], vec![5, 7], vec![9]]);
        assert_eq!(
            walk(&items, 2, Some("desc")),
            [vec![9, 7], vec![5, 3], vec![1]]
        );
        assert_eq!(walk(&items, 100, None), [vec![1, 3, 5, 7, 9]]);
        let (h, p) = page(items.to_vec(), |k| *k, 'x', &query(2, Some("x5"), None)).unwrap();
        assert_eq!(p, [5, 7]);
        assert_eq!(header(&h, PAGE_TOKEN_PREVIOUS).as_deref(), Some("x1"));
        assert_eq!(header(&h, PAGE_TOKEN_NEXT).as_deref(), Some("x9"));
    }

    #[test]
    fn a_deleted_first_item_does_not_shift_the_page() {
        let (_, p) = page(vec![1, 7, 9], |k| *k, 'x', &query(2, Some("x5"), None)).unwrap();
        assert_eq!(p, [7, 9]);
    }

    #[test]
    fn bad_parameters_are_400() {
        for q in [
            query(0, None, None),
            query(101, None, None),
            query(10, None, Some("up")),
            query(10, Some("y5"), None),
            query(10, Some("xzz"), None),
        ] {
            let e = page(vec![1u64], |k| *k, 'x', &q).unwrap_err();
            assert_eq!(e.status, axum::http::StatusCode::BAD_REQUEST, "{q:?}");
        }
    }
}
