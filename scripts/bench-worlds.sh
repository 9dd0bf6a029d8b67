#!/usr/bin/env bash
# The README's table "Where the shipped defaults stand", from nothing: makes every world (the bundled demo,
# two synthetic stories on their seeds, the independent generator's world, the real sets of
# scripts/fetch-real-data.sh), prepares each with the cold threshold the README gives it (its median
# stage-1 seed count, read before any run), runs one `lookalike bench` per world and merges them with
# scripts/bench-table.py --one-stage into OUT/table.md (the table, then MetaHeac against each baseline
# across the worlds). A world whose JSON exists is not run again, so an interrupted run continues where it
# stopped.
#
# With FOLDS=N (N ≥ 2) every world is prepared N times, `prepare --folds N --fold K` for each K, each fold
# benched on its own (OUT/WORLD.foldK.json) and the folds pooled into the world's row (bench-table.py's
# NAME=A.json+B.json): every campaign is then a test campaign once, N/2 times the default split's
# test campaigns for N = 2 (whose fold 1 is the default split).
#
# usage: scripts/bench-worlds.sh OUT [WORLD …]   (default: every world, in the order below)
# env:   LOOKALIKE (binary; default target/release/lookalike), SEEDS (5), MAX_ITERATIONS (200),
#        METHODS (lr,mlp,mlp-pre,metaheac), BENCH_FLAGS (more bench flags, e.g. "--similar never"),
#        FOLDS (1: the default split only).
# Every world at the defaults takes about two and a half hours on 2 cores; the real sets need Python 3
# and pip (a virtual environment in out/.real-venv).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:?usage: scripts/bench-worlds.sh OUT [WORLD …]}"
shift
bin="${LOOKALIKE:-target/release/lookalike}"
[[ -x "$bin" ]] || { echo "no lookalike binary at $bin (build it, or set LOOKALIKE)" >&2; exit 1; }

# world → cold threshold; the order is the table's.
declare -A cold=(
    [demo]=200 [tokens57]=200 [skew31]=200 [indep29]=150 [movielens]=100 [insteval]=40 [survey]=100
    [chem97]=40 [stops]=30 [flights]=100 [bfi]=115 [abortion]=180 [wages]=80 [loans]=30 [caravan]=40
    [birds]=29 [movies]=45 [pets]=198 [baseball]=80 [spending]=48 [yrbss]=51 [anes]=148 [skew43]=200
)
order=(demo tokens57 skew31 indep29 movielens insteval survey chem97 stops flights bfi abortion wages
    loans caravan birds movies pets baseball spending yrbss anes skew43)
worlds=("$@")
[[ ${#worlds[@]} -gt 0 ]] || worlds=("${order[@]}")
for w in "${worlds[@]}"; do
    [[ -n "${cold[$w]:-}" ]] || { echo "unknown world $w; known: ${order[*]}" >&2; exit 1; }
done

mkdir -p "$out/raw"
raw() { # the raw directory of world $1, made if missing
    local w=$1 dir
    case $w in
    tokens57 | skew31 | skew43 | indep29)
        dir="$out/raw/$w"
        if [[ ! -f "$dir/train.csv" ]]; then
            case $w in
            tokens57) "$bin" synth --out "$dir" --story tokens --seed 57 --campaigns 48 >&2 ;;
            skew31) "$bin" synth --out "$dir" --story skew --seed 31 --campaigns 48 >&2 ;;
            skew43) "$bin" synth --out "$dir" --story skew --seed 43 --campaigns 48 >&2 ;;
            indep29) python3 scripts/independent_world.py "$dir" --seed 29 >&2 ;;
            esac
        fi
        ;;
    *)
        dir="$out/raw/real/$w"
        [[ -f "$dir/train.csv" ]] || bash scripts/fetch-real-data.sh "$out/raw/real" >&2
        ;;
    esac
    echo "$dir"
}

folds=${FOLDS:-1}
[[ $folds =~ ^[1-9][0-9]*$ ]] || { echo "FOLDS must be a whole number ≥ 1, got $folds" >&2; exit 1; }
args=()
for w in "${worlds[@]}"; do
    runs=()
    for ((k = 0; k < folds; k++)); do
        name=$w split=()
        if ((folds > 1)); then
            name=$w.fold$k split=(--folds "$folds" --fold "$k")
        fi
        data="$out/$name.lkd"
        if [[ ! -f "$data" ]]; then
            source=() # the demo is bundled: prepare without --raw
            [[ $w == demo ]] || source=(--raw "$(raw "$w")")
            "$bin" prepare "${source[@]}" --out "$data" --cold-threshold "${cold[$w]}" "${split[@]}" \
                >"$out/$name.prepare.log" 2>&1
        fi
        if [[ ! -f "$out/$name.json" ]]; then
            echo "bench $name …" >&2
            start=$SECONDS
            # shellcheck disable=SC2086 # BENCH_FLAGS is a list of flags
            "$bin" bench --data "$data" --seeds "${SEEDS:-5}" --max-iterations "${MAX_ITERATIONS:-200}" \
                --methods "${METHODS:-lr,mlp,mlp-pre,metaheac}" ${BENCH_FLAGS:-} --json "$out/$name.json.tmp" \
                >"$out/$name.log" 2>"$out/$name.err"
            mv "$out/$name.json.tmp" "$out/$name.json"
            echo "bench $name: $((SECONDS - start)) s" >&2
        fi
        runs+=("$out/$name.json")
    done
    args+=("$w=$(IFS=+; echo "${runs[*]}")")
done
python3 scripts/bench-table.py --one-stage "${args[@]}" >"$out/table.md"
cat "$out/table.md"
