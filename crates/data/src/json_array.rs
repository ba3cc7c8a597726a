//! Splits a JSON array body into the byte ranges of its elements without parsing them, so that
//! each record can then be parsed — and refused — on its own: one malformed record (bad JSON,
//! invalid UTF-8, a wrong type) is reported with its index while the rest of the batch is kept.
//!
//! The scan only tracks strings (with escapes) and bracket depth; whether each element is
//! valid JSON is left to the per-record parser.

/// Why the body as a whole could not be split.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SplitError {
    #[error("the body must be a JSON array of records")]
    NotAnArray,
    #[error("the JSON array is not closed (unbalanced brackets or an unterminated string)")]
    Unterminated,
    #[error("unexpected data after the JSON array")]
    TrailingData,
    #[error("an empty element (two commas, or a comma before \"]\") at position {0}")]
    EmptyElement(usize),
}

fn skip_whitespace(body: &[u8], mut position: usize) -> usize {
    while position < body.len() && matches!(body[position], b' ' | b'\t' | b'\n' | b'\r') {
        position += 1;
    }
    position
}

/// The byte slices of the elements of the top-level JSON array in `body`.
pub fn split_array(body: &[u8]) -> Result<Vec<&[u8]>, SplitError> {
    let mut position = skip_whitespace(body, 0);
    if body.get(position) != Some(&b'[') {
        return Err(SplitError::NotAnArray);
    }
    position += 1;
    let mut elements = Vec::new();
    position = skip_whitespace(body, position);
    if body.get(position) == Some(&b']') {
        return finish(body, position + 1, elements);
    }
    loop {
        let start = skip_whitespace(body, position);
        let end = element_end(body, start)?;
        let trimmed_end = trim_end(body, start, end);
        if trimmed_end == start {
            return Err(SplitError::EmptyElement(start));
        }
        elements.push(&body[start..trimmed_end]);
        match body.get(end) {
            Some(b',') => position = end + 1,
            Some(b']') => return finish(body, end + 1, elements),
            _ => return Err(SplitError::Unterminated),
        }
    }
}

fn finish<'a>(body: &'a [u8], after_array: usize, elements: Vec<&'a [u8]>) -> Result<Vec<&'a [u8]>, SplitError> {
    if skip_whitespace(body, after_array) != body.len() {
        return Err(SplitError::TrailingData);
    }
    Ok(elements)
}

fn trim_end(body: &[u8], start: usize, mut end: usize) -> usize {
    while end > start && matches!(body[end - 1], b' ' | b'\t' | b'\n' | b'\r') {
        end -= 1;
    }
    end
}

/// The position of the `,` or `]` that ends the element starting at `start` (at depth 0).
fn element_end(body: &[u8], start: usize) -> Result<usize, SplitError> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for (offset, byte) in body[start..].iter().enumerate() {
        let position = start + offset;
        if in_string {
            match (escaped, byte) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => depth += 1,
            b']' | b'}' if depth > 0 => depth -= 1,
            b',' | b']' if depth == 0 => return Ok(position),
            _ => {}
        }
    }
    Err(SplitError::Unterminated)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn texts(body: &str) -> Vec<String> {
        split_array(body.as_bytes())
            .unwrap()
            .into_iter()
            .map(|slice| String::from_utf8_lossy(slice).into_owned())
            .collect()
    }

    #[test]
    fn splits_top_level_elements_only() {
        assert_eq!(texts("[]"), Vec::<String>::new());
        assert_eq!(texts(" [ 1 , \"a,]\" , {\"b\":[1,2]} ] "), vec!["1", "\"a,]\"", "{\"b\":[1,2]}"]);
        assert_eq!(texts(r#"[{"q":"\"],"}, {"x": "\\"}]"#), vec![r#"{"q":"\"],"}"#, r#"{"x": "\\"}"#]);
    }

    #[test]
    fn a_bad_element_does_not_hide_its_neighbours() {
        let body = b"[{\"a\":1}, {\"b\":\"\xff\"}, {bad json}, {\"c\":3}]";
        let elements = split_array(body).unwrap();
        assert_eq!(elements.len(), 4);
        assert!(serde_json::from_slice::<serde_json::Value>(elements[1]).is_err());
        assert!(serde_json::from_slice::<serde_json::Value>(elements[2]).is_err());
        assert!(serde_json::from_slice::<serde_json::Value>(elements[3]).is_ok());
    }

    #[test]
    fn refuses_what_is_not_one_array() {
        assert_eq!(split_array(b"{}"), Err(SplitError::NotAnArray));
        assert_eq!(split_array(b""), Err(SplitError::NotAnArray));
        assert_eq!(split_array(b"[1,2"), Err(SplitError::Unterminated));
        assert_eq!(split_array(b"[\"open]"), Err(SplitError::Unterminated));
        assert_eq!(split_array(b"[1] [2]"), Err(SplitError::TrailingData));
        assert!(matches!(split_array(b"[1,,2]"), Err(SplitError::EmptyElement(_))));
        assert!(matches!(split_array(b"[1,]"), Err(SplitError::EmptyElement(_))));
    }

    proptest! {
        #[test]
        fn agrees_with_serde_on_valid_arrays(values in prop::collection::vec(any::<(i32, String, bool)>(), 0..8)) {
            let array: Vec<serde_json::Value> = values.iter().map(|(number, text, flag)| serde_json::json!({"n": number, "t": text, "f": [flag]})).collect();
            let body = serde_json::to_vec(&array).unwrap();
            let elements = split_array(&body).unwrap();
            prop_assert_eq!(elements.len(), array.len());
            for (element, expected) in elements.iter().zip(&array) {
                prop_assert_eq!(&serde_json::from_slice::<serde_json::Value>(element).unwrap(), expected);
            }
        }

        #[test]
        fn never_panics(body in prop::collection::vec(any::<u8>(), 0..64)) {
            let _ = split_array(&body);
        }
    }
}
