//! Multi-task data: MTReclib's layout read by column name, bad input named by file, line and column,
//! field sizes over train ∪ test, the validation split, standardisation, the synthetic generator and the
//! Tianchi conversion.

use lookalike_data::mtl::{self, MtlTable, Numerical, convert_tianchi, load, read_csv};
use lookalike_data::mtl_synth::{MtlScale, MtlSynthConfig, demo_dataset, generate};
use std::path::Path;

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

const HEADER: &str = "search_id,categorical_2,categorical_1,numerical_1,click,conversion";

fn folder(train: &str, test: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("train.csv"), train);
    write(&dir.path().join("test.csv"), test);
    dir
}

#[test]
fn columns_are_taken_by_name_and_test_ids_size_the_fields() {
    // Columns out of order in train; test has another order and an extra column.
    let train = format!("{HEADER}\n1,5,0,1.5,1,0\n1,2,3,2.5,0,0\n2,1,1,-1,1,1\n3,0,2,0,0,0\n");
    let test = "conversion,extra,click,numerical_1,categorical_1,categorical_2,search_id\n\
                0,x,1,3.0,9,4,7\n";
    let dir = folder(&train, test);
    let d = load(dir.path(), 0.25, 1, Numerical::Raw).unwrap();
    assert_eq!(d.train.categorical, ["categorical_1", "categorical_2"]);
    assert_eq!(d.test.categorical, ["categorical_1", "categorical_2"]);
    // categorical_1 reaches 9 in test only: the reference would size it 4 and index out of range.
    assert_eq!(d.field_sizes, vec![10, 6]);
    assert_eq!(d.test.cat, vec![9, 4]);
    assert_eq!(d.train.len() + d.valid.len(), 4);
    assert_eq!(d.valid.len(), 1);
    assert!(d.standardised.is_none());
    assert_eq!(d.test.num, vec![3.0]);
}

#[test]
fn standardising_uses_the_training_rows_only() {
    let train = format!("{HEADER}\n1,0,0,1,0,0\n1,0,0,3,0,0\n1,0,0,5,1,0\n1,0,0,7,0,0\n");
    let test = format!("{HEADER}\n1,0,0,4,0,0\n");
    let dir = folder(&train, &test);
    let d = load(dir.path(), 0.0, 1, Numerical::Standardise).unwrap();
    let (m, s) = d.standardised.as_ref().unwrap()[0];
    assert_eq!(m, 4.0);
    assert!((s - 5f32.sqrt()).abs() < 1e-6);
    assert_eq!(d.test.num, vec![0.0]);
    let mean: f32 = d.train.num.iter().sum::<f32>() / 4.0;
    assert!(mean.abs() < 1e-6);
}

#[test]
fn bad_input_names_file_line_and_column() {
    let cases: [(&str, &str, &str); 6] = [
        (
            "search_id,categorical_1,click\n1,2,0\n",
            "train.csv:1:",
            "`conversion`: missing",
        ),
        (
            &format!("{HEADER}\n1,0,x,1,0,0\n"),
            "train.csv:2:",
            "`categorical_1`",
        ),
        (
            &format!("{HEADER}\n1,0,0,1,0,0\n1,0,0,nan,0,0\n"),
            "train.csv:3:",
            "`numerical_1`",
        ),
        (
            &format!("{HEADER}\n1,0,0,1,2,0\n"),
            "train.csv:2:",
            "`click`",
        ),
        (
            &format!("{HEADER}\n1,0,0,1,0\n"),
            "train.csv:2:",
            "5 fields",
        ),
        (
            "search_id,categorical_1,categorical_1,click,conversion\n",
            "train.csv:1:",
            "twice",
        ),
    ];
    for (train, a, b) in cases {
        let dir = folder(train, &format!("{HEADER}\n"));
        let e = load(dir.path(), 0.2, 1, Numerical::Raw)
            .unwrap_err()
            .to_string();
        assert!(e.contains(a) && e.contains(b), "{a} / {b}: {e}");
    }
    // The test file must hold every column the train file has.
    let dir = folder(
        &format!("{HEADER}\n1,0,0,1,0,0\n1,0,0,1,1,0\n"),
        "search_id,categorical_1,numerical_1,click,conversion\n1,0,1,0,0\n",
    );
    let e = load(dir.path(), 0.2, 1, Numerical::Raw)
        .unwrap_err()
        .to_string();
    assert!(e.contains("test.csv") && e.contains("categorical_2"), "{e}");
    let empty = tempfile::tempdir().unwrap();
    let e = load(empty.path(), 0.2, 1, Numerical::Raw)
        .unwrap_err()
        .to_string();
    assert!(e.contains("train.csv") && e.contains("missing file"), "{e}");
}

#[test]
fn synthetic_data_is_deterministic_and_has_the_asked_rates() {
    let c = MtlSynthConfig::new(MtlScale::Tiny, 3);
    let ((train, ids), (test, _)) = generate(&c);
    let ((again, _), _) = generate(&c);
    assert_eq!(train, again, "same seed, same data");
    let ((other, _), _) = generate(&MtlSynthConfig::new(MtlScale::Tiny, 4));
    assert_ne!(train, other);
    assert_eq!((train.len(), test.len()), (4_000, 1_000));
    assert_eq!(train.categorical.len(), 16);
    assert_eq!(train.numerical.len(), 63);
    assert!(ids.windows(2).all(|w| w[0] <= w[1]));
    // Conversion implies click.
    assert!(
        train
            .conversion
            .iter()
            .zip(&train.click)
            .all(|(&v, &c)| v <= c)
    );
    // Rates on a larger draw (the tiny set has too few conversions to measure).
    let mut big = MtlSynthConfig::new(MtlScale::Tiny, 3);
    big.train_rows = 100_000;
    let ((t, _), _) = generate(&big);
    let (ctr, ctcvr) = t.rates();
    assert!((0.02..0.07).contains(&ctr), "CTR {ctr}");
    assert!((0.0005..0.01).contains(&ctcvr), "CTCVR {ctcvr}");
    assert!(t.num.iter().all(|x| x.is_finite()));
}

#[test]
fn the_built_in_demo_is_the_demo_scale_split_and_standardised() {
    let d = demo_dataset(0.1, 7, Numerical::Standardise);
    assert_eq!(
        (d.train.len(), d.valid.len(), d.test.len()),
        (72_000, 8_000, 20_000)
    );
    // The same rows as `mtl synth --scale demo --seed 2021` writes.
    let ((all, _), (test, _)) = generate(&MtlSynthConfig::new(MtlScale::Demo, 2021));
    assert_eq!(d.test.cat, test.cat);
    assert_eq!(d.train.len() + d.valid.len(), all.len());
    // Ids recur: 1,500 users (field 1) and 500 items (field 10) over 100,000 rows.
    assert_eq!((d.field_sizes[0], d.field_sizes[9]), (1_501, 501));
    let (ctr, ctcvr) = all.rates();
    assert!((0.03..0.05).contains(&ctr), "CTR {ctr}");
    assert!((0.003..0.005).contains(&ctcvr), "CTCVR {ctcvr}");
    // Standardised with the training rows' statistics.
    let stats = d.standardised.as_ref().expect("standardised");
    assert_eq!(stats.len(), 63);
    let n = d.train.numerical.len();
    let mean0 = d.train.num.chunks(n).map(|r| r[0] as f64).sum::<f64>() / d.train.len() as f64;
    assert!(mean0.abs() < 1e-3, "{mean0}");
    // Another split seed, another validation draw of the same rows.
    let other = demo_dataset(0.1, 8, Numerical::Standardise);
    assert_ne!(other.valid.cat, d.valid.cat);
    assert_eq!(other.test.cat, d.test.cat);
}

#[test]
fn written_data_reads_back() {
    let ((train, ids), _) = generate(&MtlSynthConfig::new(MtlScale::Tiny, 5));
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("train.csv");
    mtl::write_csv(&p, &train, &ids).unwrap();
    let back = read_csv(&p, None).unwrap();
    assert_eq!(back.cat, train.cat);
    assert_eq!(
        (back.click.clone(), back.conversion.clone()),
        (train.click.clone(), train.conversion.clone())
    );
    // Numbers are written to 5 significant digits.
    for (a, b) in back.num.iter().zip(&train.num) {
        assert!((a - b).abs() <= 1e-4 * b.abs().max(1.0), "{a} vs {b}");
    }
}

/// A Tianchi row of `n` columns, the first the search id, the rest `f(column)`.
fn tianchi_row(id: u32, n: usize, f: impl Fn(usize) -> String) -> String {
    std::iter::once(id.to_string())
        .chain((2..=n).map(f))
        .collect::<Vec<_>>()
        .join(",")
}

#[test]
fn tianchi_files_convert_as_mtreclib_preprocesses_them() {
    let src = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    for part in ["train", "test"] {
        let users: Vec<String> = (1..=3)
            .map(|id| tianchi_row(id, 33, |c| format!("{}", c * 10 + id as usize)))
            .collect();
        write(
            &src.path().join(format!("nl_user_{part}.csv")),
            &(users.join("\n") + "\n"),
        );
        // Search 9 has no user row: an inner join drops it. Labels 0, 1, 2.
        let items: Vec<String> = [(1, 0), (2, 1), (3, 2), (9, 1)]
            .iter()
            .map(|&(id, label)| {
                tianchi_row(id, 49, |c| {
                    if c == 49 {
                        label.to_string()
                    } else {
                        format!("{}", c + 1000)
                    }
                })
            })
            .collect();
        write(
            &src.path().join(format!("nl_item_{part}.csv")),
            &(items.join("\n") + "\n"),
        );
    }
    let c = convert_tianchi(src.path(), "NL", out.path()).unwrap();
    assert_eq!((c.train_rows, c.test_rows, c.unmatched), (3, 3, 2));
    let t: MtlTable = read_csv(&out.path().join("train.csv"), None).unwrap();
    assert_eq!(t.categorical.len(), 16);
    assert_eq!(t.numerical.len(), 63);
    assert_eq!(t.click, vec![0, 1, 1]);
    assert_eq!(t.conversion, vec![0, 0, 1]);
    // categorical_1 is user_2 (search 1: 2·10 + 1), categorical_10 is item_19.
    assert_eq!(t.cat[0], 21);
    assert_eq!(t.cat[9], 1019);
    // numerical_1 is user_9, numerical_24 is item_2.
    assert_eq!(t.num[0], 91.0);
    assert_eq!(t.num[23], 1002.0);
    let e = convert_tianchi(src.path(), "RU", out.path())
        .unwrap_err()
        .to_string();
    assert!(e.contains("NL, ES, FR and US"), "{e}");
    write(
        &src.path().join("nl_item_train.csv"),
        &(tianchi_row(1, 49, |c| if c == 49 { "7".into() } else { "0".into() }) + "\n"),
    );
    let e = convert_tianchi(src.path(), "NL", out.path())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("nl_item_train.csv:1:") && e.contains("`item_49`"),
        "{e}"
    );
}
