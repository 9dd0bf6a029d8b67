//! Feature schema and vocabularies: which user and ad fields the model reads, and how raw tokens map
//! to embedding ids. Id 0 is reserved for padding and for tokens never seen when the vocabulary was built.

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

/// One categorical field with its vocabulary.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Field {
    pub name: String,
    /// Maximum number of tokens kept (1 for single-valued fields).
    pub max_len: usize,
    pub vocab: Vocabulary,
}

impl Field {
    /// Rows of the embedding table: the vocabulary plus the reserved id 0.
    pub fn table_size(&self) -> usize {
        self.vocab.len() + 1
    }
}

/// Sorted token list; a token's id is its position + 1 (0 = padding / unknown).
///
/// Tokens sort numerically when every token is an integer (the Tencent data), lexicographically otherwise,
/// so ids do not depend on file order or hash seeds.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Vocabulary {
    tokens: Vec<String>,
    #[serde(skip)]
    index: Index,
}

/// A vocabulary's token → id index.
#[derive(Debug, Clone, PartialEq)]
enum Index {
    Text(FxHashMap<String, u32>),
    /// Every token is a decimal number in its one canonical spelling (the Tencent data): keyed by the
    /// number, found without hashing or comparing strings (profiles of `score` had a tenth of their
    /// samples in the string index).
    Number(FxHashMap<u64, u32>),
    /// Numbers as above, small enough to index an array (ids by number, 0 where none): one read.
    Dense(Vec<u32>),
}

impl Default for Index {
    fn default() -> Self {
        Index::Text(FxHashMap::default())
    }
}

/// The number a token spells, where it is the number's one canonical spelling (ASCII digits, no sign,
/// no leading zero, below 2^64): only then do two different tokens never map to one number.
fn canonical_number(token: &str) -> Option<u64> {
    let b = token.as_bytes();
    if b.is_empty() || (b[0] == b'0' && b.len() > 1) {
        return None;
    }
    b.iter().try_fold(0u64, |n, &c| {
        if c.is_ascii_digit() {
            n.checked_mul(10)?.checked_add(u64::from(c - b'0'))
        } else {
            None
        }
    })
}

impl Vocabulary {
    pub fn from_tokens<I: IntoIterator<Item = String>>(tokens: I) -> Self {
        let mut tokens: Vec<String> = tokens.into_iter().collect();
        tokens.sort_unstable();
        tokens.dedup();
        sort_ids(&mut tokens);
        let mut v = Vocabulary {
            tokens,
            index: Index::default(),
        };
        v.rebuild_index();
        v
    }

    /// Must be called after deserialising (the index is not stored).
    pub fn rebuild_index(&mut self) {
        let ids = || {
            self.tokens
                .iter()
                .enumerate()
                .map(|(i, t)| (t, i as u32 + 1))
        };
        let numbers: Option<FxHashMap<u64, u32>> = ids()
            .map(|(t, id)| canonical_number(t).map(|n| (n, id)))
            .collect();
        self.index = match numbers {
            // At most 8 slots a token (plus a little): 32 bytes a token, as the map's own size.
            Some(n) if n.keys().all(|&k| k < 8 * n.len() as u64 + 1024) => {
                let mut dense = vec![0; n.keys().max().map_or(0, |&k| k as usize + 1)];
                for (k, id) in n {
                    dense[k as usize] = id;
                }
                Index::Dense(dense)
            }
            Some(n) => Index::Number(n),
            None => Index::Text(ids().map(|(t, id)| (t.clone(), id)).collect()),
        };
    }

    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Id of a token; 0 when unseen.
    pub fn id(&self, token: &str) -> u32 {
        let id = match &self.index {
            Index::Text(index) => index.get(token),
            // A token that is not a canonical number is in no such vocabulary.
            Index::Number(index) => canonical_number(token).and_then(|n| index.get(&n)),
            Index::Dense(ids) => canonical_number(token)
                .and_then(|n| usize::try_from(n).ok())
                .and_then(|n| ids.get(n)),
        };
        id.copied().unwrap_or(0)
    }

    /// Id of an integer token (a Parquet integer column's value): the id of its decimal spelling,
    /// found without writing it out where the vocabulary is indexed by number.
    pub fn id_of_integer(&self, v: i128) -> u32 {
        let id = match &self.index {
            Index::Text(_) => return self.id(&v.to_string()),
            Index::Number(index) => u64::try_from(v).ok().and_then(|n| index.get(&n)),
            Index::Dense(ids) => usize::try_from(v).ok().and_then(|n| ids.get(n)),
        };
        id.copied().unwrap_or(0)
    }

    /// Token of an id (`None` for 0 and out-of-range ids).
    pub fn token(&self, id: u32) -> Option<&str> {
        if id == 0 {
            return None;
        }
        self.tokens.get(id as usize - 1).map(String::as_str)
    }

    pub fn tokens(&self) -> &[String] {
        &self.tokens
    }
}

/// Sorts ids numerically when all are integers, lexicographically otherwise.
pub fn sort_ids(ids: &mut [String]) {
    if ids.iter().all(|a| a.parse::<i64>().is_ok()) {
        ids.sort_by_key(|a| a.parse::<i64>().unwrap_or(0));
    } else {
        ids.sort();
    }
}

/// The default field lists of the reference code (`run.py`).
pub const DEFAULT_USER_SINGLE: [&str; 7] = [
    "carrier",
    "consumptionAbility",
    "LBS",
    "age",
    "education",
    "gender",
    "house",
];
pub const DEFAULT_USER_MULTI: [(&str, usize); 7] = [
    ("interest1", 10),
    ("interest2", 10),
    ("interest3", 10),
    ("kw1", 5),
    ("kw2", 5),
    ("topic1", 5),
    ("topic2", 5),
];
pub const DEFAULT_AD: [&str; 6] = [
    "advertiserId",
    "campaignId",
    "creativeSize",
    "adCategoryId",
    "productId",
    "productType",
];

/// All fields of a data set, in model order.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Schema {
    pub user_single: Vec<Field>,
    pub user_multi: Vec<Field>,
    pub ad: Vec<Field>,
}

impl Schema {
    /// Total token slots of the multi-valued fields (sum of max lengths).
    pub fn multi_width(&self) -> usize {
        self.user_multi.iter().map(|f| f.max_len).sum()
    }

    /// Each multi-valued field's max length: how the model slices the multi-valued slots.
    pub fn multi_lens(&self) -> Vec<usize> {
        self.user_multi.iter().map(|f| f.max_len).collect()
    }

    /// Number of user fields F (the expert input is F·D wide).
    pub fn user_fields(&self) -> usize {
        self.user_single.len() + self.user_multi.len()
    }

    pub fn rebuild_indices(&mut self) {
        for f in self
            .user_single
            .iter_mut()
            .chain(self.user_multi.iter_mut())
            .chain(self.ad.iter_mut())
        {
            f.vocab.rebuild_index();
        }
    }

    /// A stable 64-bit digest (FNV-1a of the JSON form: names, lengths, tokens), in hex: ids encoded
    /// with one schema are only meaningful to a model with the same fingerprint.
    pub fn fingerprint(&self) -> String {
        let json = serde_json::to_vec(self).expect("schema serialises");
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in json {
            h ^= b as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        format!("{h:016x}")
    }

    pub fn table_sizes(&self) -> TableSizes {
        TableSizes {
            user_single: self.user_single.iter().map(Field::table_size).collect(),
            user_multi: self.user_multi.iter().map(Field::table_size).collect(),
            ad: self.ad.iter().map(Field::table_size).collect(),
        }
    }
}

/// Embedding table sizes per field: all the model needs to know of a schema.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TableSizes {
    pub user_single: Vec<usize>,
    pub user_multi: Vec<usize>,
    pub ad: Vec<usize>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vocab(tokens: &[&str]) -> Vocabulary {
        Vocabulary::from_tokens(tokens.iter().map(|t| t.to_string()))
    }

    #[test]
    fn numbers_and_text_find_the_same_ids() {
        // Numbers far apart (a map) and close together (an array).
        let far = vocab(&["12", "7", "0", "18446744073709551615"]);
        assert!(matches!(far.index, Index::Number(_)));
        let near = vocab(&["12", "7", "0", "1030"]);
        assert!(matches!(near.index, Index::Dense(_)));
        for v in [&far, &near] {
            for (i, t) in v.tokens.iter().enumerate() {
                assert_eq!(v.id(t), i as u32 + 1, "{t}");
            }
            // Other spellings of a number, numbers not in it, and what is no number, are unknown.
            for t in [
                "007",
                "+7",
                "7 ",
                " 7",
                "",
                "7.0",
                "8",
                "2000",
                "18446744073709551616",
                "x",
            ] {
                assert_eq!(v.id(t), 0, "{t:?}");
            }
        }
        // One token spelled otherwise: the whole vocabulary is indexed by its text.
        let v = vocab(&["12", "7", "007", "a"]);
        assert!(matches!(v.index, Index::Text(_)));
        for (i, t) in v.tokens.iter().enumerate() {
            assert_eq!(v.id(t), i as u32 + 1, "{t}");
        }
        assert_ne!(v.id("7"), v.id("007"));
        assert_eq!(v.id("8"), 0);
        // An integer finds what its decimal spelling finds, in every kind of index.
        for v in [&far, &near, &vocab(&["12", "7", "-3", "a"])] {
            for n in [
                -3i128,
                -1,
                0,
                7,
                8,
                12,
                1030,
                18446744073709551615,
                18446744073709551616,
            ] {
                assert_eq!(v.id_of_integer(n), v.id(&n.to_string()), "{n}");
            }
        }
        // After a round trip through serde the index is rebuilt the same way.
        let mut back: Vocabulary =
            serde_json::from_str(&serde_json::to_string(&v).unwrap()).unwrap();
        back.rebuild_index();
        assert_eq!(back, v);
    }
}
