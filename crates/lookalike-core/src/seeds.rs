//! Seed lists as marketers upload them: one user id per line or a CSV with an id column; header
//! optional, CRLF and a UTF-8 BOM tolerated. Shared by the CLI and the web app.

/// A problem with a seed list, on a 1-based line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct SeedError {
    pub line: usize,
    pub message: String,
}

/// Parsed seed ids, first occurrence order, duplicates dropped.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SeedList {
    pub uids: Vec<u64>,
    pub duplicates: usize,
    pub had_header: bool,
}

impl SeedList {
    /// Ids in first-occurrence order, repeats dropped and counted.
    pub fn from_ids(ids: impl IntoIterator<Item = u64>) -> SeedList {
        let mut seen = std::collections::HashSet::new();
        let mut out = SeedList::default();
        for uid in ids {
            if seen.insert(uid) {
                out.uids.push(uid);
            } else {
                out.duplicates += 1;
            }
        }
        out
    }
}

/// Parses a seed list. The id column is `uid` (or `user_id`, `id`) when a header names it, else the first.
pub fn parse_seed_list(bytes: &[u8]) -> Result<SeedList, SeedError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut ids = Vec::new();
    let mut had_header = false;
    let mut column = 0usize;
    let mut first = true;
    for (i, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let line = i + 1;
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let text = std::str::from_utf8(raw).map_err(|_| SeedError {
            line,
            message: "not valid UTF-8 text (is this a CSV or text file of user ids?)".into(),
        })?;
        let text = text.trim();
        if text.is_empty() {
            continue;
        }
        let cells: Vec<&str> = text
            .split([',', ';', '\t'])
            .map(|c| c.trim().trim_matches('"'))
            .collect();
        if first {
            first = false;
            if cells[0].parse::<u64>().is_err() {
                // A header line: find the id column.
                had_header = true;
                column = cells
                    .iter()
                    .position(|c| {
                        matches!(
                            c.to_ascii_lowercase().as_str(),
                            "uid" | "user_id" | "userid" | "id"
                        )
                    })
                    .unwrap_or(0);
                continue;
            }
        }
        let cell = cells.get(column).copied().unwrap_or("");
        let uid: u64 = cell.parse().map_err(|_| SeedError {
            line,
            message: format!("{cell:?} is not a user id (expected a non-negative integer)"),
        })?;
        ids.push(uid);
    }
    let out = SeedList {
        had_header,
        ..SeedList::from_ids(ids)
    };
    if out.uids.is_empty() {
        return Err(SeedError {
            line: 1,
            message: "the seed list holds no user ids".into(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_csv_header_crlf_bom() {
        let s =
            parse_seed_list(b"\xEF\xBB\xBFname,uid\r\nann,12\r\nbob,7\r\n\r\nann,12\r\n").unwrap();
        assert_eq!(s.uids, vec![12, 7]);
        assert_eq!(s.duplicates, 1);
        assert!(s.had_header);
        let s = parse_seed_list(b"5\n6\n").unwrap();
        assert_eq!(s.uids, vec![5, 6]);
        assert!(!s.had_header);
    }

    #[test]
    fn bad_lists_name_the_line() {
        assert_eq!(
            parse_seed_list(b"").unwrap_err().message,
            "the seed list holds no user ids"
        );
        assert_eq!(parse_seed_list(b"uid\n").unwrap_err().line, 1);
        let e = parse_seed_list(b"uid\n1\nx2\n").unwrap_err();
        assert_eq!(e.line, 3);
        assert!(e.message.contains("x2"));
        let e = parse_seed_list(b"1\n\xff\xfe\x00junk\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.message.contains("UTF-8"));
    }
}
