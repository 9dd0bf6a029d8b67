//! The candidate pool in a compact binary form, for the web app: users (raw id and feature ids, encoded
//! with a record's vocabularies) and the campaigns of a prepared world (ad ids, seeds and labelled rows).
//!
//! Layout: `LKPOOL\0\0` magic, u32 format version, u64 header length, JSON [`PoolHeader`], then the
//! deflate-compressed body: uids (u64), single ids, multi ids (u16 when every vocabulary fits, else
//! u32), lens (u8), and per campaign its stage-1 then stage-2 rows (u32: user index, top bit = label).
//! The header carries the schema fingerprint, so a pool cannot be paired with the wrong record.

use crate::data::{Campaign, Role, Row, UserTable};
use crate::frame::{self, FrameError, take};
use crate::schema::Schema;
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};

pub const MAGIC: &[u8; 8] = b"LKPOOL\0\0";
pub const FORMAT_VERSION: u32 = 1;
const LABEL_BIT: u32 = 1 << 31;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PoolCampaignInfo {
    pub aid: String,
    pub role: Role,
    pub ad: Vec<u32>,
    pub stage1: usize,
    pub stage2: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PoolHeader {
    /// [`Schema::fingerprint`] of the vocabularies the ids were encoded with (hex).
    pub schema_fingerprint: String,
    pub users: usize,
    pub single_fields: usize,
    pub multi_width: usize,
    pub multi_fields: usize,
    /// Bytes per stored feature id: 2 or 4.
    pub id_bytes: u8,
    pub campaigns: Vec<PoolCampaignInfo>,
    /// Where the pool came from.
    pub source: String,
}

/// Users and campaigns, ready for the model.
#[derive(Debug, Clone, PartialEq)]
pub struct Pool {
    pub header: PoolHeader,
    pub users: UserTable,
    pub campaigns: Vec<Campaign>,
}

#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("not a look-alike pool file (bad magic bytes)")]
    BadMagic,
    #[error("pool format version {0} is not supported (this build reads version {FORMAT_VERSION})")]
    Version(u32),
    #[error("pool file is truncated: {0}")]
    Truncated(&'static str),
    #[error("pool header is not valid: {0}")]
    Header(#[from] serde_json::Error),
    #[error("pool body is damaged: {0}")]
    Body(String),
    #[error(
        "the pool was encoded with other vocabularies than this model's (pool {pool}, model {model}); export the pool with the same prepared data as the record"
    )]
    SchemaMismatch { pool: String, model: String },
}

impl Pool {
    /// Builds a pool from a user table and campaigns (row user indices must be in range).
    pub fn new(schema: &Schema, users: UserTable, campaigns: Vec<Campaign>, source: &str) -> Self {
        let max_id = users
            .single
            .iter()
            .chain(&users.multi)
            .copied()
            .max()
            .unwrap_or(0);
        let header = PoolHeader {
            schema_fingerprint: schema.fingerprint(),
            users: users.len(),
            single_fields: users.single_fields,
            multi_width: users.multi_width,
            multi_fields: users.multi_fields,
            id_bytes: if max_id <= u16::MAX as u32 { 2 } else { 4 },
            campaigns: campaigns
                .iter()
                .map(|c| PoolCampaignInfo {
                    aid: c.aid.clone(),
                    role: c.role,
                    ad: c.ad.clone(),
                    stage1: c.stage1.len(),
                    stage2: c.stage2.len(),
                })
                .collect(),
            source: source.to_string(),
        };
        Pool {
            header,
            users,
            campaigns,
        }
    }

    /// Fails unless the pool's ids were encoded with `schema`'s vocabularies.
    pub fn check_schema(&self, schema: &Schema) -> Result<(), PoolError> {
        let model = schema.fingerprint();
        if model != self.header.schema_fingerprint {
            return Err(PoolError::SchemaMismatch {
                pool: self.header.schema_fingerprint.clone(),
                model,
            });
        }
        Ok(())
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut body = Vec::new();
        let u = &self.users;
        for &uid in &u.uids {
            body.extend_from_slice(&uid.to_le_bytes());
        }
        for &id in u.single.iter().chain(&u.multi) {
            if self.header.id_bytes == 2 {
                body.extend_from_slice(&(id as u16).to_le_bytes());
            } else {
                body.extend_from_slice(&id.to_le_bytes());
            }
        }
        body.extend_from_slice(&u.lens);
        for c in &self.campaigns {
            for r in c.stage1.iter().chain(&c.stage2) {
                let v = r.user | if r.label { LABEL_BIT } else { 0 };
                body.extend_from_slice(&v.to_le_bytes());
            }
        }
        let mut z = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(&body).expect("in-memory write");
        let body = z.finish().expect("in-memory write");
        let json = serde_json::to_vec(&self.header).expect("pool header serialises");
        let mut out = frame::write_head(MAGIC, FORMAT_VERSION, &json, body.len());
        out.extend_from_slice(&body);
        out
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Pool, PoolError> {
        let (_, json, rest) = frame::read_head(bytes, MAGIC, FORMAT_VERSION..=FORMAT_VERSION)?;
        let header: PoolHeader = serde_json::from_slice(json)?;
        if header.id_bytes != 2 && header.id_bytes != 4 {
            return Err(PoolError::Body(format!(
                "id width {} bytes",
                header.id_bytes
            )));
        }
        let n_rows: usize = header.campaigns.iter().map(|c| c.stage1 + c.stage2).sum();
        let n = header.users;
        let ids = n * (header.single_fields + header.multi_width);
        let expected =
            n * 8 + ids * header.id_bytes as usize + n * header.multi_fields + n_rows * 4;
        // Bounded read: a damaged stream cannot inflate past what the header promises.
        let mut body = Vec::with_capacity(expected);
        flate2::read::DeflateDecoder::new(rest)
            .take(expected as u64 + 1)
            .read_to_end(&mut body)
            .map_err(|e| PoolError::Body(e.to_string()))?;
        if body.len() != expected {
            return Err(PoolError::Body(format!(
                "{} bytes after decompression, the header promises {expected}",
                body.len()
            )));
        }
        let mut b = &body[..];
        let mut users = UserTable {
            single_fields: header.single_fields,
            multi_width: header.multi_width,
            multi_fields: header.multi_fields,
            ..Default::default()
        };
        users.uids = take(&mut b, n * 8, "uids")?
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().expect("8")))
            .collect();
        let raw_ids = take(&mut b, ids * header.id_bytes as usize, "ids")?;
        let all: Vec<u32> = if header.id_bytes == 2 {
            raw_ids
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]) as u32)
                .collect()
        } else {
            raw_ids
                .chunks_exact(4)
                .map(|c| u32::from_le_bytes(c.try_into().expect("4")))
                .collect()
        };
        let (single, multi) = all.split_at(n * header.single_fields);
        users.single = single.to_vec();
        users.multi = multi.to_vec();
        users.lens = take(&mut b, n * header.multi_fields, "lens")?.to_vec();
        let row = |b: &mut &[u8]| -> Result<Row, PoolError> {
            let v = frame::u32_at(b, "rows")?;
            let user = v & !LABEL_BIT;
            if user as usize >= n {
                return Err(PoolError::Body(format!("row points at user {user} of {n}")));
            }
            Ok(Row {
                user,
                label: v & LABEL_BIT != 0,
            })
        };
        let mut campaigns = Vec::with_capacity(header.campaigns.len());
        for c in &header.campaigns {
            let stage1 = (0..c.stage1)
                .map(|_| row(&mut b))
                .collect::<Result<_, _>>()?;
            let stage2 = (0..c.stage2)
                .map(|_| row(&mut b))
                .collect::<Result<_, _>>()?;
            campaigns.push(Campaign {
                aid: c.aid.clone(),
                ad: c.ad.clone(),
                role: c.role,
                stage1,
                stage2,
            });
        }
        Ok(Pool {
            header,
            users,
            campaigns,
        })
    }
}

impl From<FrameError> for PoolError {
    fn from(e: FrameError) -> Self {
        match e {
            FrameError::BadMagic => PoolError::BadMagic,
            FrameError::Version(v) => PoolError::Version(v),
            FrameError::Truncated(what) => PoolError::Truncated(what),
        }
    }
}
