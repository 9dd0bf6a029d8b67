//! The raw-layout readers and `prepare` on good and bad input: every problem names file, line and field,
//! and nothing is half-written.

use lookalike_core::data::Role;
use lookalike_data::prepare::{Fold, PrepareConfig, Prepared, prepare};
use lookalike_data::synth::{Scale, SynthConfig, synth};
use std::io::Write;
use std::path::{Path, PathBuf};

fn world(tag: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join(tag);
    synth(&raw, &SynthConfig::new(Scale::Tiny, 7), false).unwrap();
    (dir, raw)
}

fn config() -> PrepareConfig {
    PrepareConfig {
        cold_threshold: 30,
        ..Default::default()
    }
}

fn quiet(_: &str, _: u64) {}

fn err(raw: &Path) -> String {
    prepare(raw, &config(), &quiet).unwrap_err().to_string()
}

fn rewrite(path: &Path, f: impl FnOnce(String) -> String) {
    let s = std::fs::read_to_string(path).unwrap();
    std::fs::write(path, f(s)).unwrap();
}

fn append(path: &Path, bytes: &[u8]) {
    std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .unwrap()
        .write_all(bytes)
        .unwrap();
}

#[test]
fn prepare_is_deterministic_and_round_trips() {
    let (dir, raw) = world("w");
    let p = prepare(&raw, &config(), &quiet).unwrap();
    assert!(p.campaigns.iter().any(|c| c.role == Role::Train));
    assert!(p.campaigns.iter().any(|c| c.role != Role::Train));
    // Vocabularies are sorted numerically and id 0 is free.
    let age = &p
        .schema
        .user_single
        .iter()
        .find(|f| f.name == "age")
        .unwrap()
        .vocab;
    assert_eq!(age.tokens(), ["1", "2", "3", "4", "5"]);
    assert_eq!(age.id("1"), 1);
    assert_eq!(age.id("never"), 0);
    // Lengths are clipped to each field's max length.
    let max: Vec<usize> = p.schema.user_multi.iter().map(|f| f.max_len).collect();
    assert!(
        p.users
            .lens
            .chunks(max.len())
            .all(|l| l.iter().zip(&max).all(|(&l, &m)| l as usize <= m))
    );
    let a = dir.path().join("a.lkd");
    let b = dir.path().join("b.lkd");
    p.save(&a).unwrap();
    prepare(&raw, &config(), &quiet).unwrap().save(&b).unwrap();
    // Same input, same content (the header's timing aside).
    let (back, again) = (Prepared::load(&a).unwrap(), Prepared::load(&b).unwrap());
    assert!(
        back.schema == again.schema
            && back.users == again.users
            && back.campaigns == again.campaigns
    );
    assert_eq!(back.schema, p.schema);
    assert_eq!(back.users, p.users);
    assert_eq!(back.campaigns, p.campaigns);
}

#[test]
fn crlf_bom_and_gzip_read_the_same() {
    let (_d1, plain) = world("plain");
    let (_d2, dos) = world("dos");
    for f in [
        "adFeature.csv",
        "train.csv",
        "test1_truth.csv",
        "userFeature.data",
    ] {
        rewrite(&dos.join(f), |s| {
            format!("\u{feff}{}", s.replace('\n', "\r\n"))
        });
    }
    let (_d3, gz) = world("gz");
    synth(&gz, &SynthConfig::new(Scale::Tiny, 7), true).unwrap();
    for f in [
        "adFeature.csv",
        "train.csv",
        "test1_truth.csv",
        "userFeature.data",
    ] {
        std::fs::remove_file(gz.join(f)).unwrap();
    }
    let a = prepare(&plain, &config(), &quiet).unwrap();
    for other in [&dos, &gz] {
        let b = prepare(other, &config(), &quiet).unwrap();
        assert_eq!(a.schema, b.schema);
        assert_eq!(a.users, b.users);
        assert_eq!(a.campaigns, b.campaigns);
    }
}

#[test]
fn bad_rows_name_file_line_and_field() {
    let cases: [(&str, &[u8], &str); 7] = [
        ("train.csv", b"1000,5\n", "expected 3 columns"),
        ("train.csv", b"1000,abc,1\n", "field `uid`"),
        ("train.csv", b"1000,100000,yes\n", "field `label`"),
        (
            "train.csv",
            b"999999,100000,1\n",
            "aid 999999 is not in adFeature.csv",
        ),
        ("test1_truth.csv", b"1000,1000\xff00,1\n", "not valid UTF-8"),
        (
            "userFeature.data",
            b"age 3|gender 1\n",
            "field `uid`: missing",
        ),
        (
            "userFeature.data",
            b"uid 100000|age 2\n",
            "uid 100000 appears twice",
        ),
    ];
    for (file, line, want) in cases {
        let (_d, raw) = world("bad");
        let path = raw.join(file);
        let lines = std::fs::read_to_string(&path).unwrap().lines().count();
        append(&path, line);
        let e = err(&raw);
        assert!(e.contains(want), "{file}: {e}");
        assert!(
            e.contains(&format!("{file}:{}", lines + 1)),
            "{file}: no line number in {e}"
        );
    }
}

#[test]
fn bad_files_are_explained() {
    let (_d, raw) = world("e1");
    std::fs::write(raw.join("train.csv"), "").unwrap();
    assert!(err(&raw).contains("train.csv: no rows"), "{}", err(&raw));

    let (_d, raw) = world("e2");
    rewrite(&raw.join("train.csv"), |s| {
        s.replacen("aid,uid,label\n", "", 1)
    });
    assert!(
        err(&raw).contains("train.csv:1: expected the header `aid,uid,label`"),
        "{}",
        err(&raw)
    );

    let (_d, raw) = world("e3");
    rewrite(&raw.join("adFeature.csv"), |s| {
        s.replacen("adCategoryId", "category", 1)
    });
    assert!(
        err(&raw).contains("adFeature.csv:1: field `adCategoryId`: missing column"),
        "{}",
        err(&raw)
    );

    let (_d, raw) = world("e4");
    std::fs::remove_file(raw.join("userFeature.data")).unwrap();
    assert!(err(&raw).contains("missing file"), "{}", err(&raw));

    let (_d, raw) = world("e5");
    std::fs::write(
        raw.join("userFeature.data"),
        b"\x00\x01\x02\xff\xfe binary junk\n",
    )
    .unwrap();
    assert!(err(&raw).contains("userFeature.data:1"), "{}", err(&raw));

    let (_d, raw) = world("e6");
    std::fs::write(raw.join("userFeature.data"), b"uid 1|age 2\n").unwrap();
    assert!(err(&raw).contains("none of the users"), "{}", err(&raw));

    let (_d, raw) = world("e7");
    let bad = PrepareConfig {
        train_fraction: 1.5,
        ..config()
    };
    assert!(
        prepare(&raw, &bad, &quiet)
            .unwrap_err()
            .to_string()
            .contains("train fraction")
    );
}

#[test]
fn the_folds_of_one_seed_test_every_campaign_once() {
    let (_d, raw) = world("folds");
    let tested = |p: &Prepared| -> Vec<String> {
        let mut aids: Vec<String> = p
            .campaigns
            .iter()
            .filter(|c| c.role != Role::Train)
            .map(|c| c.aid.clone())
            .collect();
        aids.sort();
        aids
    };
    let fold = |k, n| {
        let c = PrepareConfig {
            fold: Some(Fold { k, n }),
            ..config()
        };
        prepare(&raw, &c, &quiet).unwrap()
    };
    // Fold 1 of 2 is the default split (train fraction 0.5), roles and all.
    let default = prepare(&raw, &config(), &quiet).unwrap();
    let second = fold(1, 2);
    let roles = |p: &Prepared| -> Vec<(String, Role)> {
        p.campaigns
            .iter()
            .map(|c| (c.aid.clone(), c.role))
            .collect()
    };
    assert_eq!(roles(&second), roles(&default));
    // Three folds: disjoint test sets that together hold every campaign, each near a third.
    let n = default.campaigns.len();
    let folds: Vec<Vec<String>> = (0..3).map(|k| tested(&fold(k, 3))).collect();
    let mut all: Vec<String> = folds.concat();
    all.sort();
    let mut every: Vec<String> = default.campaigns.iter().map(|c| c.aid.clone()).collect();
    every.sort();
    assert_eq!(all, every);
    for f in &folds {
        assert!(
            f.len() == n / 3 || f.len() == n / 3 + 1,
            "{} of {n}",
            f.len()
        );
    }
    // A fold past the last, or a single fold, is refused with the reason.
    for (k, n) in [(2, 2), (0, 1)] {
        let c = PrepareConfig {
            fold: Some(Fold { k, n }),
            ..config()
        };
        let e = prepare(&raw, &c, &quiet).unwrap_err().to_string();
        assert!(e.contains(&format!("fold {k} of {n}")), "{e}");
    }
}

#[test]
fn failed_writes_leave_nothing_behind() {
    let (dir, raw) = world("w");
    let p = prepare(&raw, &config(), &quiet).unwrap();
    let target = dir.path().join("keep.lkd");
    std::fs::write(&target, b"old").unwrap();
    // A folder where the file should go: the write fails, the folder and the old file stay as they were.
    let blocked = dir.path().join("blocked.lkd");
    std::fs::create_dir(&blocked).unwrap();
    assert!(p.save(&blocked).is_err());
    assert!(blocked.is_dir());
    p.save(&target).unwrap();
    assert!(Prepared::load(&target).is_ok());
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    std::fs::write(&target, b"LKDATA\0\0\x01\0\0\0junk").unwrap();
    assert!(
        Prepared::load(&target)
            .unwrap_err()
            .to_string()
            .contains("damaged")
    );
}

#[test]
fn users_missing_from_the_user_file_get_unknown_features() {
    let (_d, raw) = world("m");
    append(&raw.join("train.csv"), b"1000,424242,1\n");
    let p = prepare(&raw, &config(), &quiet).unwrap();
    assert_eq!(p.info.missing_users, 1);
    let u = p.users.uids.iter().position(|&u| u == 424242).unwrap();
    assert!(p.users.single_of(u).iter().all(|&x| x == 0));
    assert!(p.users.lens_of(u).iter().all(|&x| x == 0));
}

#[test]
fn a_streamed_pool_reads_what_a_whole_read_reads() {
    use lookalike_data::raw::{self, FieldSpec, Vocabs, count_users, stream_users};
    let (_dir, raw_dir) = world("s");
    let p = prepare(&raw_dir, &config(), &quiet).unwrap();
    let path = raw_dir.join(raw::USER_FILE);
    let whole = raw::read_users(
        &path,
        &FieldSpec::of(&p.schema),
        None,
        Vocabs::Apply(&p.schema),
        &|_| {},
    )
    .unwrap()
    .table;
    // Every other user by uid, as a shard would keep them.
    let keep = |uid: u64| uid.is_multiple_of(2);
    let mut streamed = lookalike_core::data::UserTable::new(&p.schema);
    let stats = stream_users(
        &path,
        &p.schema,
        &keep,
        &mut |_| {},
        &mut |t: lookalike_core::data::UserTable| -> lookalike_data::Result<()> {
            for u in 0..t.len() {
                streamed.push(t.uids[u], t.single_of(u), t.multi_of(u), t.lens_of(u));
            }
            Ok(())
        },
    )
    .unwrap();
    assert_eq!(stats.lines, whole.len());
    let mut want = lookalike_core::data::UserTable::new(&p.schema);
    for u in (0..whole.len()).filter(|&u| keep(whole.uids[u])) {
        want.push(
            whole.uids[u],
            whole.single_of(u),
            whole.multi_of(u),
            whole.lens_of(u),
        );
    }
    assert!(!want.is_empty() && want.len() < whole.len());
    assert_eq!(streamed, want);
    assert_eq!(count_users(&path, &|uid| !keep(uid)).unwrap(), want.len());

    // A bad line stops the stream with its file, line and field.
    rewrite(&path, |s| s.replacen("uid ", "uid x", 1));
    let e = stream_users(&path, &p.schema, &|_| true, &mut |_| {}, &mut |_| {
        Ok::<(), lookalike_data::DataError>(())
    })
    .unwrap_err()
    .to_string();
    assert!(e.contains("userFeature.data:1") && e.contains("uid"), "{e}");
    let e = count_users(&path, &|_| false).unwrap_err().to_string();
    assert!(e.contains("userFeature.data:1"), "{e}");
}

#[test]
fn a_parquet_pool_reads_as_its_text() {
    use lookalike_data::{columnar, pool, raw};
    let (dir, raw_dir) = world("pq");
    let p = prepare(&raw_dir, &config(), &quiet).unwrap();
    let text = raw_dir.join(raw::USER_FILE);
    let parquet = dir.path().join("pool.parquet");
    let n = columnar::text_to_parquet(&text, &parquet).unwrap();
    let read = |path: &Path, keep: &(dyn Fn(u64) -> bool + Sync)| {
        let mut t = lookalike_core::data::UserTable::new(&p.schema);
        let stats = pool::stream_users(
            path,
            &p.schema,
            keep,
            &mut |_| {},
            &mut |piece: lookalike_core::data::UserTable| -> lookalike_data::Result<()> {
                for u in 0..piece.len() {
                    t.push(
                        piece.uids[u],
                        piece.single_of(u),
                        piece.multi_of(u),
                        piece.lens_of(u),
                    );
                }
                Ok(())
            },
        )
        .unwrap();
        (t, stats.lines)
    };
    let (from_text, lines) = read(&text, &|_| true);
    assert_eq!((n, lines), (from_text.len(), from_text.len()));
    assert_eq!(read(&parquet, &|_| true).0, from_text);
    let odd = |u: u64| u % 2 == 1;
    assert_eq!(read(&parquet, &odd).0, read(&text, &odd).0);
    assert_eq!(
        pool::count_users(&parquet, &odd).unwrap(),
        pool::count_users(&text, &odd).unwrap()
    );
    // And back: the text written from Parquet reads as the original.
    let back = dir.path().join("back").join(raw::USER_FILE);
    assert_eq!(columnar::parquet_to_text(&parquet, &back).unwrap(), n);
    assert_eq!(read(&back, &|_| true).0, from_text);
    // A directory holding only userFeature.parquet is a pool too.
    let only = dir.path().join("only");
    std::fs::create_dir_all(&only).unwrap();
    std::fs::copy(&parquet, only.join(pool::PARQUET_USER_FILE)).unwrap();
    assert_eq!(
        pool::user_file(&only).unwrap(),
        only.join(pool::PARQUET_USER_FILE)
    );
    assert!(pool::user_file(&dir.path().join("none")).is_err());
}

#[test]
fn bad_parquet_pools_name_file_row_and_column() {
    use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
    use lookalike_data::{columnar, pool};
    use std::sync::Arc;
    let (dir, raw_dir) = world("bad");
    let p = prepare(&raw_dir, &config(), &quiet).unwrap();
    let write = |name: &str, cols: Vec<(&str, ArrayRef)>| -> PathBuf {
        let path = dir.path().join(name);
        let batch = RecordBatch::try_from_iter(cols).unwrap();
        let f = std::fs::File::create(&path).unwrap();
        let mut w = parquet::arrow::ArrowWriter::try_new(f, batch.schema(), None).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        path
    };
    let err = |path: &Path| {
        pool::stream_users(path, &p.schema, &|_| true, &mut |_| {}, &mut |_| {
            Ok::<(), lookalike_data::DataError>(())
        })
        .unwrap_err()
        .to_string()
    };
    let age = p.schema.user_single[0].name.clone();
    let negative = write(
        "neg.parquet",
        vec![(
            "uid",
            Arc::new(Int64Array::from(vec![1, -2, 3])) as ArrayRef,
        )],
    );
    let e = err(&negative);
    assert!(
        e.contains("neg.parquet:2") && e.contains("uid") && e.contains("-2"),
        "{e}"
    );
    let floats = write(
        "float.parquet",
        vec![
            ("uid", Arc::new(Int64Array::from(vec![1, 2])) as ArrayRef),
            (
                &age,
                Arc::new(Float64Array::from(vec![1.0, 2.0])) as ArrayRef,
            ),
        ],
    );
    let e = err(&floats);
    assert!(
        e.contains("float.parquet") && e.contains(&age) && e.contains("Float64"),
        "{e}"
    );
    let no_uid = write(
        "nouid.parquet",
        vec![(
            age.as_str(),
            Arc::new(StringArray::from(vec!["1"])) as ArrayRef,
        )],
    );
    assert!(err(&no_uid).contains("no `uid` column"));
    let not_parquet = dir.path().join("text.parquet");
    std::fs::write(&not_parquet, "uid 1|age 2\n").unwrap();
    assert!(err(&not_parquet).contains("not a readable Parquet file"));
    // A failed conversion leaves nothing behind.
    let out = dir.path().join("out.data");
    assert!(columnar::parquet_to_text(&negative, &out).is_err());
    assert!(!out.exists());
}

#[test]
fn every_field_of_the_user_file_is_read_unless_the_list_is_asked_for() {
    use lookalike_data::prepare::UserFields;
    let (_d, raw) = world("fields");
    // Three more fields: an id (each user's own value), `likes` (a copy of interest1, which the
    // labels follow), `mood` (noise, as the synth world's ct, marriageStatus and os are); and a user
    // of the rows with a long interest1.
    let rows = std::fs::read_to_string(raw.join("train.csv")).unwrap();
    let uid: u64 = rows
        .lines()
        .nth(1)
        .unwrap()
        .split(',')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    rewrite(&raw.join("userFeature.data"), |s| {
        s.lines()
            .enumerate()
            .map(|(i, l)| {
                let this = l.split('|').next().unwrap().trim_start_matches("uid ");
                let interests = l.split('|').find(|p| p.starts_with("interest1 "));
                let likes = interests.map_or(String::new(), |p| format!("|likes {}", &p[10..]));
                let long = if this == uid.to_string() {
                    let many: Vec<String> = (1..=40).map(|t| t.to_string()).collect();
                    format!("|interest1 {}", many.join(" "))
                } else {
                    interests.map_or(String::new(), |p| format!("|{p}"))
                };
                let rest: Vec<&str> = l
                    .split('|')
                    .filter(|p| !p.starts_with("interest1 "))
                    .collect();
                let mood = (i * 7919) % 5;
                format!(
                    "{}|deviceId d{this}{long}{likes}|mood {mood}\n",
                    rest.join("|")
                )
            })
            .collect()
    });
    let listed = prepare(
        &raw,
        &PrepareConfig {
            user_fields: UserFields::Listed,
            ..config()
        },
        &quiet,
    )
    .unwrap();
    let all = prepare(&raw, &config(), &quiet).unwrap();
    let capped = prepare(
        &raw,
        &PrepareConfig {
            max_tokens: 12,
            ..config()
        },
        &quiet,
    )
    .unwrap();
    let names = |p: &Prepared| -> Vec<String> {
        p.schema
            .user_single
            .iter()
            .map(|f| f.name.clone())
            .collect()
    };
    let lens = |p: &Prepared| -> Vec<(String, usize)> {
        p.schema
            .user_multi
            .iter()
            .map(|f| (f.name.clone(), f.max_len))
            .collect()
    };
    // The listed spec is the reference's. `all` lengthens interest1 to its longest user, adds
    // `likes` after the listed fields, leaves the id out, and leaves out the fields unrelated to the
    // training campaigns' labels.
    let added = all.info.fields_added.as_ref().unwrap();
    let z = |name: &str| added.scores.iter().find(|(n, _)| n == name).unwrap().1;
    assert_eq!(names(&listed).len(), 7);
    assert_eq!(names(&all), names(&listed));
    assert_eq!(lens(&listed)[0], ("interest1".to_string(), 10));
    assert_eq!(lens(&all)[0], ("interest1".to_string(), 40));
    assert_eq!(lens(&all)[1..7], lens(&listed)[1..]);
    assert_eq!(lens(&all)[7].0, "likes");
    assert_eq!(lens(&capped)[0], ("interest1".to_string(), 12));
    assert_eq!(added.id_like, ["deviceId"]);
    assert_eq!(added.longer, [("interest1".to_string(), 10, 40)]);
    assert_eq!(added.unrelated, ["ct", "marriageStatus", "mood", "os"]);
    assert!(added.single.is_empty() && added.multi.len() == 1);
    assert!(z("likes") > 3.0 && z("mood") <= 3.0, "{:?}", added.scores);
    assert!(added.clipped.is_empty());
    let added = capped.info.fields_added.as_ref().unwrap();
    assert_eq!(added.clipped[0], ("interest1".to_string(), 40));
    assert!(listed.info.fields_added.is_none());
    // That user keeps all 40 interests; every listed field reads as the list reads it.
    let (u, l) = (&all.users, &listed.users);
    assert_eq!(u.uids, l.uids);
    let at = u.uids.iter().position(|&x| x == uid).unwrap();
    assert_eq!((u.lens[at * 8], l.lens[at * 7]), (40, 10));
    let (wa, wl) = (u.multi_width, l.multi_width);
    assert_eq!(u.single, l.single);
    for i in 0..u.len() {
        let listed_part = wl - 10;
        assert_eq!(
            u.multi[i * wa + 40..i * wa + 40 + listed_part],
            l.multi[i * wl + 10..(i + 1) * wl]
        );
        assert_eq!(u.lens[i * 8 + 1..i * 8 + 7], l.lens[i * 7 + 1..(i + 1) * 7]);
    }
}
