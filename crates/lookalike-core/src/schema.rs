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
    index: FxHashMap<String, u32>,
}

impl Vocabulary {
    pub fn from_tokens<I: IntoIterator<Item = String>>(tokens: I) -> Self {
        let mut tokens: Vec<String> = tokens.into_iter().collect();
        tokens.sort_unstable();
        tokens.dedup();
        sort_ids(&mut tokens);
        let mut v = Vocabulary {
            tokens,
            index: FxHashMap::default(),
        };
        v.rebuild_index();
        v
    }

    /// Must be called after deserialising (the index is not stored).
    pub fn rebuild_index(&mut self) {
        self.index = self
            .tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i as u32 + 1))
            .collect();
    }

    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Id of a token; 0 when unseen.
    pub fn id(&self, token: &str) -> u32 {
        self.index.get(token).copied().unwrap_or(0)
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
