//! Query text normalisation, shared by the trainers that count queries and the serving side
//! that matches them against allow and deny lists.

/// Normalises a query: full-width ASCII forms to half-width, the ideographic space to a space,
/// ASCII letters to lower case, surrounding whitespace trimmed and inner whitespace collapsed to
/// single spaces. Non-ASCII letters are kept as they are.
pub fn normalize_query(text: &str) -> String {
    let mut normalized = String::with_capacity(text.len());
    let mut pending_space = false;
    for character in text.chars() {
        let half_width = match character {
            '\u{3000}' => ' ',
            '\u{FF01}'..='\u{FF5E}' => char::from_u32(character as u32 - 0xFEE0).unwrap_or(character),
            other => other,
        };
        if half_width.is_whitespace() {
            pending_space = !normalized.is_empty();
            continue;
        }
        if pending_space {
            normalized.push(' ');
            pending_space = false;
        }
        normalized.push(half_width.to_ascii_lowercase());
    }
    normalized
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_width_case_and_spaces() {
        assert_eq!(normalize_query("  Red   SHOES "), "red shoes");
        assert_eq!(normalize_query("ＩＰＨＯＮＥ\u{3000}１５"), "iphone 15");
        assert_eq!(normalize_query("连衣裙 夏季"), "连衣裙 夏季");
        assert_eq!(normalize_query("\t\n"), "");
    }
}
